"""The notifier's Postgres tables: engine and migrations (own Alembic history,
version table alembic_version_notifier), on the shared helpers of services.common.db.

alembic.ini and migrations/ (the schema's history) stay at the top of the
package, services/notifier/, one level above this module."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import db

# services/notifier/, which holds alembic.ini and migrations/.
PACKAGE_DIR = Path(__file__).resolve().parent.parent


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    return db.create_engine(url, pool_size)


def alembic_config(url: str) -> Config:
    return db.alembic_config(PACKAGE_DIR, url)


def migrate(url: str, revision: str = "head") -> None:
    db.migrate(PACKAGE_DIR, url, revision)


async def migrate_async(url: str) -> None:
    await db.migrate_async(PACKAGE_DIR, url)
