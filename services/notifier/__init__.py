"""The notifier: delivers payment events to merchants' webhooks (signed, retried,
recorded) and lets merchants and operators list and replay deliveries."""
