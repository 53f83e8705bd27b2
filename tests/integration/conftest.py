"""Ledger fixtures: a migrated database on the session Postgres, and a ledger
running in-process on a random port against the session NATS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from services.ledger.app import LedgerApp
from services.ledger.settings import LedgerSettings
from tests.support.ledger import ADMIN_TOKEN, SERVICE_TOKENS, create_merchant, fresh_xpub, write_chains_file


@pytest.fixture(scope="session")
def chains_file(stack_dir: Path) -> Path:
    return write_chains_file(stack_dir / "chains.yaml")


def no_rates_file(folder: Path) -> Path:
    """A rates.yaml with no sources: the shared ledger prices in base units only
    (tests/integration/test_ledger_fiat.py runs one with sources)."""
    path = folder / "no-rates.yaml"
    path.write_text("rates: []\n")
    return path


def ledger_settings(database_url: str, nats_url: str, chains_file: Path, **extra) -> LedgerSettings:
    return LedgerSettings(
        database_url=database_url,
        nats_url=nats_url,
        chains_file=chains_file,
        grpc_port=0,
        admin_token=ADMIN_TOKEN,
        **SERVICE_TOKENS,
        expiry_interval_seconds=0.2,
        shutdown_grace_seconds=1.0,
        allow_private_webhooks=True,  # test receivers listen on loopback
        **{"rates_file": no_rates_file(Path(chains_file).parent), **extra},
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def ledger(postgres, nats_server, chains_file) -> AsyncIterator[LedgerApp]:
    url = postgres.create_database("ledger_shared")
    app = LedgerApp(ledger_settings(url, nats_server.url, chains_file))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def ledger_channel(ledger) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ledger.port}") as channel:
        yield channel


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def js(nats_server):
    import nats

    nc = await nats.connect(nats_server.url)
    try:
        yield nc.jetstream()
    finally:
        await nc.drain()


@pytest_asyncio.fixture(loop_scope="session")
async def merchant(ledger_channel):
    """A new merchant with its own xpub (account m/44'/60'/N' of anvil's mnemonic)."""
    xpub, account = fresh_xpub()
    return await create_merchant(ledger_channel, xpub, derivation_path=f"m/44'/60'/{account}'")


@pytest_asyncio.fixture(loop_scope="session")
async def other_merchant(ledger_channel):
    xpub, account = fresh_xpub()
    return await create_merchant(ledger_channel, xpub, derivation_path=f"m/44'/60'/{account}'")
