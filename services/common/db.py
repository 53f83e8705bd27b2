"""Postgres plumbing shared by the services that own a database (ledger, notifier):
URL normalisation, the SQLAlchemy async engine, Alembic from a package folder."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def async_url(url: str) -> str:
    """Accept postgresql:// or postgres:// and use the asyncpg driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
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
