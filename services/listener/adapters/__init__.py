"""Everything the listener uses to talk to the outside: chain RPC, heads, the
ledger's address feed, NATS (state store and event publisher)."""
