"""Group commit of CreatePayment (services/ledger/adapters/create_batch.py) on a real
Postgres: concurrent inserts share statements, every payment still gets its own
deposit address and outbox event, idempotency keys repeated inside one batch
insert once, and one bad row does not fail the rows batched with it."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from services.common.db import plain_url
from services.ledger.adapters.create_batch import CreatePaymentBatcher
from services.ledger.adapters.db import migrate_async
from services.ledger.domain import keys
from services.ledger.metrics import CREATE_BATCH_SIZE

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def pool(postgres):
    url = postgres.create_database(f"create_batch_{secrets.token_hex(4)}")
    await migrate_async(url)
    pool = await asyncpg.create_pool(plain_url(url), min_size=1, max_size=4)
    await pool.execute(
        "INSERT INTO merchants (id, name, api_key_hash, api_key_prefix, xpub, derivation_path) "
        "VALUES ('m_batch', 'batch shop', $1, 'pk_test', 'xpub-test', 'm/44''/60''/0''')",
        secrets.token_hex(32),
    )
    try:
        yield pool
    finally:
        await pool.close()


def row(merchant_id: str = "m_batch", key: str | None = None, extra_options=lambda payment_id: ()) -> dict:
    now = datetime.now(UTC)
    values = {
        "id": keys.new_payment_id(),
        "merchant_id": merchant_id,
        "chain_id": 31337,
        "asset": "ETH",
        "token_address": None,
        "decimals": 18,
        "amount_due": 10**18 + secrets.randbelow(10**6),
        "merchant_order_id": "",
        "metadata": {"k": "v"},
        "idempotency_key": key,
        "request_fingerprint": "f" * 64,
        "deposit_address": "0x" + secrets.token_hex(20),
        "derivation_index": secrets.randbelow(2**31),
        "derivation_path": "m/44'/60'/0'/0/1",
        "confirmations_required": 2,
        "created_at": now,
        "expires_at": now + timedelta(hours=1),
        "price_currency": None,
        "price_amount": None,
        "quote": None,
        "underpayment_tolerance_bps": 0,
        "watch_until": now + timedelta(days=7, hours=1),
        "checkout_token": secrets.token_urlsafe(24),
        "description": "",
        "return_url": "",
        "event_id": str(uuid.uuid4()),
        "subject": "paymesh.payments.m_batch.created",
        "payload": b"\x08\x01",
    }
    values["options"] = [
        option(values["id"], 0, 31337, "ETH", None, 18, values["amount_due"], from_block=7),
        *extra_options(values["id"]),
    ]
    return values


def option(payment_id, position, chain_id, asset, token, decimals, due, *, from_block, depth=2) -> dict:
    return {
        "payment_id": payment_id,
        "position": position,
        "chain_id": chain_id,
        "asset": asset,
        "token_address": token,
        "decimals": decimals,
        "amount_due": due,
        "quote": None,
        "confirmations_required": depth,
        "from_block": from_block,
    }


def batch_counts() -> tuple[float, float]:
    samples = {s.name: s.value for s in CREATE_BATCH_SIZE.collect()[0].samples}
    return samples["paymesh_ledger_create_batch_size_count"], samples["paymesh_ledger_create_batch_size_sum"]


async def test_concurrent_inserts_share_statements_and_each_gets_address_and_event(pool):
    batcher = CreatePaymentBatcher(pool, max_batch=16)
    rows = [row() for _ in range(100)]
    count_before, sum_before = batch_counts()
    results = await asyncio.gather(*(batcher.insert(r) for r in rows))
    count_after, sum_after = batch_counts()
    assert results == [True] * 100
    assert sum_after - sum_before == 100
    assert count_after - count_before < 100, "no two inserts shared a statement"
    ids = [r["id"] for r in rows]
    stored = await pool.fetch(
        "SELECT p.id, p.amount_due, p.metadata, d.address, d.from_block, o.event_id::text AS event_id "
        "FROM payments p JOIN deposit_addresses d ON d.payment_id = p.id JOIN outbox o ON o.payment_id = p.id "
        "WHERE p.id = ANY($1::varchar[])",
        ids,
    )
    by_id = {s["id"]: s for s in stored}
    assert len(stored) == 100 and set(by_id) == set(ids)
    for r in rows:
        s = by_id[r["id"]]
        assert int(s["amount_due"]) == r["amount_due"]
        assert (s["address"], s["from_block"], s["event_id"]) == (r["deposit_address"], 7, r["event_id"])


async def test_a_key_repeated_inside_one_batch_inserts_once(pool):
    batcher = CreatePaymentBatcher(pool, max_batch=64)
    key = f"dup-{secrets.token_hex(4)}"
    rows = [row(key=key) for _ in range(10)] + [row() for _ in range(5)]
    results = await asyncio.gather(*(batcher.insert(r) for r in rows))
    assert results[:10].count(True) == 1 and results[10:] == [True] * 5
    assert await pool.fetchval("SELECT count(*) FROM payments WHERE idempotency_key = $1", key) == 1
    winner = rows[results.index(True)]["id"]
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE payment_id = $1", winner) == 1
    assert await pool.fetchval("SELECT count(*) FROM deposit_addresses WHERE payment_id = $1", winner) == 1


async def test_one_bad_row_fails_alone(pool):
    batcher = CreatePaymentBatcher(pool, max_batch=64)
    good = [row() for _ in range(6)]
    bad = row(merchant_id="m_does_not_exist")  # foreign key violation
    outcomes = await asyncio.gather(*(batcher.insert(r) for r in [*good[:3], bad, *good[3:]]), return_exceptions=True)
    assert isinstance(outcomes[3], asyncpg.ForeignKeyViolationError)
    assert [o for i, o in enumerate(outcomes) if i != 3] == [True] * 6
    ids = [r["id"] for r in good] + [bad["id"]]
    assert await pool.fetchval("SELECT count(*) FROM payments WHERE id = ANY($1::varchar[])", ids) == 6


async def test_options_are_stored_with_one_watched_address_per_chain(pool):
    """A payment with three options on two chains: three option rows in order, and its
    one deposit address watched on each chain from that chain's head, at that chain's depth."""
    token = "0x" + "cd" * 20
    r = row(
        extra_options=lambda pid: (
            option(pid, 1, 31337, "TUSD", token, 6, 25_000_000, from_block=7),
            option(pid, 2, 8453, "ETH", None, 18, 10**16, from_block=900, depth=10),
        )
    )
    assert await CreatePaymentBatcher(pool).insert(r)
    options = await pool.fetch(
        "SELECT position, chain_id, asset, amount_due, status FROM payment_options WHERE payment_id = $1 "
        "ORDER BY position",
        r["id"],
    )
    assert [(o["position"], o["chain_id"], o["asset"], int(o["amount_due"]), o["status"]) for o in options] == [
        (0, 31337, "ETH", r["amount_due"], "awaiting"),
        (1, 31337, "TUSD", 25_000_000, "awaiting"),
        (2, 8453, "ETH", 10**16, "awaiting"),
    ]
    watched = await pool.fetch(
        "SELECT chain_id, address, from_block, confirmations_required FROM deposit_addresses "
        "WHERE payment_id = $1 ORDER BY chain_id",
        r["id"],
    )
    assert [tuple(w.values()) for w in watched] == [
        (8453, r["deposit_address"], 900, 10),
        (31337, r["deposit_address"], 7, 2),
    ]
