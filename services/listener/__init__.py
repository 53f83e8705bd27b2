"""The listener: follows each configured chain, matches transfers into watched
deposit addresses and publishes transfer / head / reorg events to NATS."""
