"""The Alembic migrations create exactly the schema the models describe."""

from __future__ import annotations

from alembic import command

from services.ledger.db import alembic_config, migrate


def test_migrations_match_models(postgres):
    url = postgres.create_database("schema_check")
    migrate(url)
    command.check(alembic_config(url))  # raises if models and migrations differ
    command.downgrade(alembic_config(url), "base")
    migrate(url)
