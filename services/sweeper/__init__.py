"""The sweeper: moves confirmed funds from deposit addresses to merchants' treasuries."""
