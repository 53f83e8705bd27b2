"""SQL of the transfers aggregate: the chain transfers recorded for payments, their
confirmation at a head, and the gas top-up label. Functions take the connection
(the caller owns the transaction) and return plain records."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.adapters.db import driver
from services.ledger.adapters.models import TRANSFERS
from services.ledger.adapters.repository.bulk import Column, ColumnList
from services.ledger.domain.records import TransferRecord

TRANSFER_COLUMNS = ColumnList(
    Column("chain_id", "bigint"),
    Column("tx_hash", "varchar"),
    Column("log_index", "bigint"),
    Column("block_hash", "varchar"),
    Column("block_number", "bigint"),
    Column("block_timestamp", "timestamptz"),
    Column("from_address", "varchar"),
    Column("to_address", "varchar"),
    Column("token_address", "varchar"),
    Column("amount", "numeric", str),
    Column("payment_id", "varchar"),
    Column("state", "varchar"),
    Column("credited", "boolean"),
    Column("late", "boolean"),
    Column("asset", "varchar"),
    Column("kind", "varchar"),
    Column("after_quote_expiry", "boolean"),
)

# Replays (the identity constraint) and transfers of orphaned blocks (a transfer
# event that arrives after the reorg that removed its block) write nothing. Ids
# follow the events' order (ORDER BY the array position): which option paid a
# payment first is decided in that order (domain/status.settle).
INSERT_TRANSFERS_SQL = f"""
INSERT INTO transfers ({TRANSFER_COLUMNS.select()})
SELECT {TRANSFER_COLUMNS.select("t")} FROM {TRANSFER_COLUMNS.unnest("t", ordinality="n")}
WHERE NOT EXISTS (SELECT 1 FROM orphaned_blocks o WHERE o.chain_id = t.chain_id AND o.block_hash = t.block_hash)
ORDER BY t.n
ON CONFLICT ON CONSTRAINT uq_transfers_identity DO NOTHING
RETURNING payment_id
"""


async def insert_transfers(conn: AsyncConnection, rows: list[dict[str, Any]]) -> set[str]:
    """Insert many transfers (rows of TRANSFER_COLUMNS) in one statement (replays and
    orphaned blocks are skipped); returns the payment ids that got a new transfer."""
    if not rows:
        return set()
    result = await (await driver(conn)).fetch(INSERT_TRANSFERS_SQL, *TRANSFER_COLUMNS.arrays(rows))
    return {r["payment_id"] for r in result}


async def transfers_of(conn: AsyncConnection, payment_id: str) -> list[TransferRecord]:
    rows = await (await driver(conn)).fetch("SELECT * FROM transfers WHERE payment_id = $1 ORDER BY id", payment_id)
    return [TransferRecord.from_row(r) for r in rows]


# One index probe per key (see payments._LOCK_BY_ADDRESS_SQL for why not `= ANY`).
_TRANSFERS_OF_MANY_SQL = (
    "SELECT t.* FROM unnest($1::varchar[]) AS k(payment_id) CROSS JOIN LATERAL "
    "(SELECT * FROM transfers x WHERE x.payment_id = k.payment_id OFFSET 0) t ORDER BY t.id"
)


async def transfers_of_many(conn: AsyncConnection, payment_ids: list[str]) -> dict[str, list[TransferRecord]]:
    rows = await (await driver(conn)).fetch(
        _TRANSFERS_OF_MANY_SQL,
        sorted(set(payment_ids)),  # each key once: a repeated key would repeat its rows
    )
    out: dict[str, list[TransferRecord]] = {}
    for r in rows:
        out.setdefault(r["payment_id"], []).append(TransferRecord.from_row(r))
    return out


# The rule of services/common/confirmations.py (last_confirmed_block) in SQL, per
# payment and chain: each keeps the depth it was created with on that chain
# (deposit_addresses.confirmations_required), so a change of chains.yaml applies
# to new payments only. The partial index on seen transfers keeps this to the few
# that wait.
_CONFIRM_TRANSFERS_SQL = """
UPDATE transfers x SET state = 'confirmed'
FROM deposit_addresses d
WHERE d.payment_id = x.payment_id AND d.chain_id = x.chain_id AND x.chain_id = $1 AND x.state = 'seen'
  AND x.block_number <= $2 - d.confirmations_required + 1
RETURNING x.payment_id
"""


async def confirm_transfers(conn: AsyncConnection, chain_id: int, head: int) -> list[str]:
    """Mark confirmed the seen transfers that have their payment's confirmations at
    `head`; return their payment ids."""
    rows = await (await driver(conn)).fetch(_CONFIRM_TRANSFERS_SQL, chain_id, head)
    return sorted({r["payment_id"] for r in rows if r["payment_id"]})


async def mark_gas_topup_transfers(conn: AsyncConnection, payment_id: str, tx_hash: str) -> int:
    """Transfers of this payment in a just-recorded gas top-up are top-ups, never
    credited (for a transfer recorded first: a restored database, a hand-made top-up
    recorded late; a payment with a native option on the chain credited it). Returns
    how many were relabelled."""
    result = await conn.execute(
        update(TRANSFERS)
        .where(
            TRANSFERS.c.payment_id == payment_id,
            TRANSFERS.c.tx_hash == tx_hash,
            TRANSFERS.c.token_address.is_(None),
            TRANSFERS.c.kind != "gas_topup",
        )
        .values(kind="gas_topup", credited=False)
    )
    return result.rowcount
