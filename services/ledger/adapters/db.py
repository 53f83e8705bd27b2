"""The ledger's Postgres plumbing: the SQLAlchemy engine, the raw asyncpg pool of
the hot paths, the asyncpg connection under a SQLAlchemy one, and migrations
(Alembic from services/ledger/alembic.ini and services/ledger/migrations/).

The repository reaches the database three ways, each for a reason:
- SQLAlchemy Core on an AsyncConnection (the engine): everything that is not hot;
- `driver(conn)`: the asyncpg connection inside that same SQLAlchemy transaction,
  for the chain-event apply's statements (no per-statement ORM overhead);
- the raw pool (`create_hot_pool`): CreatePayment's group commit and the outbox
  relay, one statement and one round trip each.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.common import db

# services/ledger: the folder of alembic.ini and migrations/.
PACKAGE_DIR = Path(__file__).resolve().parents[1]


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


async def driver(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under a SQLAlchemy one, inside the same transaction.
    The chain-event hot path uses it to skip per-statement ORM overhead."""
    return (await conn.get_raw_connection()).driver_connection


def alembic_config(url: str) -> Config:
    return db.alembic_config(PACKAGE_DIR, url)


def migrate(url: str, revision: str = "head") -> None:
    db.migrate(PACKAGE_DIR, url, revision)


async def migrate_async(url: str) -> None:
    await db.migrate_async(PACKAGE_DIR, url)
