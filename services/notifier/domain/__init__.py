"""Pure notifier rules: retry schedule, signatures, SSRF address policy, payload
shape, page tokens. No grpc, nats, sqlalchemy or httpx here."""
