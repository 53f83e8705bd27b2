"""The ledger's Postgres: engine, the raw asyncpg pool of the hot paths, migrations."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import db

HERE = Path(__file__).resolve().parent


def create_engine(url: str, pool_size: int = 20) -> AsyncEngine:
    return db.create_engine(url, pool_size)


async def create_hot_pool(url: str, size: int) -> asyncpg.Pool:
    """A raw asyncpg pool for the hot paths (CreatePayment, the outbox relay): one
    statement, one round trip, no ORM overhead. Everything else goes through SQLAlchemy."""
    return await asyncpg.create_pool(
        db.plain_url(url), min_size=1, max_size=size, command_timeout=30, reset=_keep_session
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool release hook. The hot paths change no session state (no session-level
    SET, LISTEN, advisory locks or cursors; the relay's SET LOCAL ends with its
    transaction), so asyncpg's default reset, an extra round trip per release,
    is skipped; an open transaction is still rolled back by asyncpg."""


def alembic_config(url: str) -> Config:
    return db.alembic_config(HERE, url)


def migrate(url: str, revision: str = "head") -> None:
    db.migrate(HERE, url, revision)


async def migrate_async(url: str) -> None:
    await db.migrate_async(HERE, url)
