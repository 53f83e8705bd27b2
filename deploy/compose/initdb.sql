-- Run once by the postgres image on a new volume: the notifier gets its own
-- role and database, so only the ledger holds credentials for payment state.
CREATE ROLE notifier LOGIN PASSWORD 'notifier';
CREATE DATABASE notifier OWNER notifier;
