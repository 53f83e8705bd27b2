"""Everything the listener uses to talk to the outside: the chain's node
(chain_rpc: JSON-RPC over HTTP and the newHeads WebSocket; heads: following the
head; range_reader: reading a block range), the ledger (address_subscription:
the watched addresses) and NATS (state_store: the cursor in KV;
event_publisher: chain events on JetStream, as protobuf)."""
