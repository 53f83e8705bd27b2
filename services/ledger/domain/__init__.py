"""The ledger's pure domain: no grpc, nats or sqlalchemy imports here."""
