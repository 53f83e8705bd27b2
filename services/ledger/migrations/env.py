"""Alembic environment of the ledger: async engine from the URL the caller set in
the config, and an advisory lock so replicas starting together migrate one at a time."""

from __future__ import annotations

import asyncio

from alembic import context

from services.common import db
from services.ledger.adapters.models import Base

target_metadata = Base.metadata
LOCK_KEY = 0x6C6564676572  # "ledger"


def _do_run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(db.run_migrations_locked(url, LOCK_KEY, _do_run))


run()
