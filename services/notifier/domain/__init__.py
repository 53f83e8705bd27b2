"""Pure notifier rules: the retry schedule (backoff.py), webhook signatures
(signing.py), the webhook body (payload.py) and the plain records the layers
pass around (records.py). No grpc, nats, sqlalchemy, httpx or protobuf here."""
