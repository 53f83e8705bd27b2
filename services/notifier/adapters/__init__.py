"""What the notifier talks to outside the process: its Postgres tables
(db.py, models.py, repository.py), the ledger's MerchantDirectoryService
(ledger_client.py) and the merchants' webhook endpoints (webhook_sender.py)."""
