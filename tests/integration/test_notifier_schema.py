"""The notifier's Alembic migrations create exactly the schema its models
describe, and live next to another service's tables in a shared database."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from alembic import command

from services.ledger.adapters.db import migrate as migrate_ledger
from services.notifier.adapters.db import alembic_config, migrate

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_migrations_match_models_and_share_a_database(postgres):
    url = postgres.create_database("notifier_schema_check")

    def alembic_steps() -> None:  # Alembic runs its own event loop: keep it off this one
        migrate_ledger(url)  # another service's schema and alembic_version in the same database
        migrate(url)
        command.check(alembic_config(url))  # raises if models and migrations differ
        command.downgrade(alembic_config(url), "base")
        migrate(url)
        migrate(url)  # idempotent

    await asyncio.to_thread(alembic_steps)
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT version_num FROM alembic_version_notifier") == "n0003"  # the head
        assert await conn.fetchval("SELECT count(*) FROM alembic_version") == 1  # the ledger's, untouched
        tables = {r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {
            "notifier_deliveries",
            "notifier_attempts",
            "notifier_signing_keys",
            "merchants",
            "payments",
            "signing_keys",
        } <= tables
    finally:
        await conn.close()
