"""The notifier's gRPC API: NotifierService (notifier_service.py), who is
calling (callers.py) and records <-> NotifierService messages (convert.py)."""
