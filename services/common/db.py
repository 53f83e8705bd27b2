"""Postgres plumbing shared by the services that own a database (ledger, notifier):
URL normalisation, the SQLAlchemy async engine, Alembic from a package folder,
and the service's own signing keys."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Column, Connection, DateTime, LargeBinary, MetaData, String, Table, func, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def async_url(url: str) -> str:
    """Accept postgresql:// or postgres:// and use the asyncpg driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def plain_url(url: str) -> str:
    """The libpq form asyncpg wants (no +driver)."""
    return async_url(url).replace("postgresql+asyncpg://", "postgresql://", 1)


# Prepared statements (asyncpg prepares every statement) switch to a cached
# generic plan after five runs, and keep it until the table is next analyzed.
# A generic plan made while a table was small scans it sequentially for every
# key of a batch lookup once it has grown (measured: 0.7 ms per key at 10,000
# payments, so 180 ms per 256-event batch). Custom plans look at the table's
# current size each time, for ~0.1 ms of planning.
CUSTOM_PLANS = {"plan_cache_mode": "force_custom_plan"}


def create_engine(url: str, pool_size: int) -> AsyncEngine:
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip per checkout; a dead connection
        # fails its statement, is discarded, and the caller's retry gets a new one.
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={"server_settings": CUSTOM_PLANS},
    )


def alembic_config(package_dir: Path, url: str) -> Config:
    """Alembic config of a service folder holding alembic.ini and migrations/."""
    config = Config(str(package_dir / "alembic.ini"))
    config.set_main_option("script_location", str(package_dir / "migrations"))
    config.set_main_option("sqlalchemy.url", async_url(url).replace("%", "%%"))
    return config


def migrate(package_dir: Path, url: str, revision: str = "head") -> None:
    """Upgrade the schema (blocking; from async code use migrate_async)."""
    command.upgrade(alembic_config(package_dir, url), revision)


async def migrate_async(package_dir: Path, url: str) -> None:
    await asyncio.to_thread(migrate, package_dir, url)


async def run_migrations_locked(url: str, lock_key: int, run: Callable[[Connection], None]) -> None:
    """For a migrations/env.py: `run` (which configures Alembic's context and runs the
    migrations) under a session advisory lock, so replicas that start together on a
    fresh database migrate one at a time; the second then finds the schema at head."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            # Tried, not waited for: a session waiting in pg_advisory_lock holds a
            # snapshot, which a CREATE INDEX CONCURRENTLY of the migrating replica
            # would wait for in turn (a deadlock). Each try is its own short transaction.
            while not (await connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key})).scalar():
                await connection.commit()
                await asyncio.sleep(0.2)
            await connection.commit()
            try:
                await connection.run_sync(run)
            finally:
                await connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key})
                await connection.commit()
    finally:
        await engine.dispose()


# ---------------------------------------------------------------- signing keys
# Secrets a service generates for itself and every replica must share (the page
# token key): kept in the service's own database, made on first use.


def signing_keys_table(metadata: MetaData, table: str) -> Table:
    """A service's signing keys table (named `table`), for its models and so its migrations."""
    return Table(
        table,
        metadata,
        Column("name", String(64), primary_key=True),
        Column("secret", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    )


async def signing_key(engine: AsyncEngine, table: str, name: str) -> bytes:
    """The service's key called `name` in `table`: created once (32 random bytes) by
    whichever replica comes first, then the same for all of them."""
    async with engine.begin() as conn:
        await conn.execute(
            text(f"INSERT INTO {table} (name, secret) VALUES (:name, :secret) ON CONFLICT (name) DO NOTHING"),
            {"name": name, "secret": secrets.token_bytes(32)},
        )
        row = await conn.execute(text(f"SELECT secret FROM {table} WHERE name = :name"), {"name": name})
        return bytes(row.scalar_one())
