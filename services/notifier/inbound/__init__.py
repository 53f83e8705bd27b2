"""What the notifier takes in from NATS: the PAYMENTS stream's payment events
(payment_events.py), decoded into plain records for the intake use case."""
