"""Pure sweeping rules and records: fee math, dust policy, treasury checks, recovery
groups, replacement decisions, settle outcomes, release rules, receipts and ERC-20
encoding.

Nothing here imports grpc, nats, sqlalchemy, structlog or does I/O; the use cases
(services/sweeper/*.py) feed in what they read from the chain and the ledger and
act on what comes back.
"""
