"""The listener's gRPC API (ListenerService) and its protobuf conversion."""
