"""What the ledger uses to talk to the outside: Postgres (models.py, db.py, the
repository/ package, create_batch.py's group commit) and NATS (the PAYMENTS
publisher of the outbox relay, the core-NATS subscriber of WatchPayment)."""
