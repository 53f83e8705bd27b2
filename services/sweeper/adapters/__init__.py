"""Everything the sweeper talks to outside the process: one chain over JSON-RPC
(chain_rpc.py), the ledger (ledger_client.py), and the HD seed (key_store.py)."""
