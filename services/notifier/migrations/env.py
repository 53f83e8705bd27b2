"""Alembic environment of the notifier: async engine from the URL the caller set,
its own version table, and an advisory lock so replicas starting together
migrate one at a time."""

from __future__ import annotations

import asyncio

from alembic import context

from services.common import db
from services.notifier.adapters.models import VERSION_TABLE, Base

target_metadata = Base.metadata
LOCK_KEY = 0x6E6F746966696572  # "notifier"


def _include(obj, name, type_, reflected, compare_to) -> bool:
    # The database may be shared: never touch tables that are not ours.
    if type_ == "table":
        return name.startswith("notifier_")
    return True


def _do_run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        version_table=VERSION_TABLE,
        include_object=_include,
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True, version_table=VERSION_TABLE)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(db.run_migrations_locked(url, LOCK_KEY, _do_run))


run()
