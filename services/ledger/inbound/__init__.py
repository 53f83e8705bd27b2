"""What the ledger consumes from NATS: chain_consumer.py, the CHAIN stream."""
