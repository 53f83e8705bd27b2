"""Engine creation and migrations for the ledger's Postgres."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

HERE = Path(__file__).resolve().parent


def async_url(url: str) -> str:
    """Accept postgresql:// or postgres:// and use the asyncpg driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    return url


def create_engine(url: str, pool_size: int = 20) -> AsyncEngine:
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip per checkout; a dead connection
        # fails its statement, is discarded, and the caller's retry gets a new one.
        pool_pre_ping=False,
        pool_recycle=1800,
    )


def plain_url(url: str) -> str:
    """The libpq form asyncpg wants (no +driver)."""
    return async_url(url).replace("postgresql+asyncpg://", "postgresql://", 1)


async def create_hot_pool(url: str, size: int) -> asyncpg.Pool:
    """A raw asyncpg pool for the hot paths (CreatePayment): one statement, one
    round trip, no ORM overhead. Everything else goes through SQLAlchemy."""
    return await asyncpg.create_pool(plain_url(url), min_size=1, max_size=size, command_timeout=30)


def alembic_config(url: str) -> Config:
    config = Config(str(HERE / "alembic.ini"))
    config.set_main_option("script_location", str(HERE / "migrations"))
    config.set_main_option("sqlalchemy.url", async_url(url).replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the schema (blocking; call from a thread inside an event loop)."""
    command.upgrade(alembic_config(url), revision)


async def migrate_async(url: str) -> None:
    await asyncio.to_thread(migrate, url)
