"""Pure logic of the listener (no grpc, nats, httpx or sqlalchemy): chain data
parsing, address matching, event identities, reorg walk-back, range sizing."""
