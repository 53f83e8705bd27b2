"""NATS messages into the sweeper: the payment events that wake a chain's sweeper."""
