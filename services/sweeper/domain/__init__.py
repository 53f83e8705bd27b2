"""Pure sweeping rules: fee math, dust policy, replacement bumps, recovery decisions.

Nothing here imports grpc, nats, sqlalchemy or does I/O; the worker feeds in what
it read from the chain and the ledger and acts on what comes back.
"""
