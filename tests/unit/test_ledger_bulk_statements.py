"""The ledger's bulk statements (services/ledger/adapters/repository/bulk.py): one
column list gives the SQL of an `unnest` statement and the arrays it is sent, in the
same order; the statements are built once, at import, and name real columns of the
schema with their Postgres types."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy.dialects import postgresql

from services.ledger.adapters import models
from services.ledger.adapters.repository import outbox, payments, transfers
from services.ledger.adapters.repository.bulk import Column, ColumnList
from services.ledger.domain.records import PaymentEventRecord, PaymentOptionRecord, PaymentRecord
from services.ledger.domain.status import PaymentStatus

pytestmark = pytest.mark.unit

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
SHOP = ColumnList(
    Column("id", "varchar"),
    Column("amount", "numeric", str),
    Column("metadata", "jsonb", json.dumps),
)


# ---------------------------------------------------------------- the generator


def test_unnest_numbers_one_typed_array_per_column_and_names_them_in_order():
    assert SHOP.unnest("t") == "unnest($1::varchar[], $2::text[]::numeric[], $3::jsonb[]) AS t(id, amount, metadata)"


def test_unnest_with_ordinality_adds_the_position_as_the_last_column():
    assert SHOP.unnest("e", ordinality="n") == (
        "unnest($1::varchar[], $2::text[]::numeric[], $3::jsonb[]) WITH ORDINALITY AS e(id, amount, metadata, n)"
    )


def test_select_qualifies_each_column_and_takes_other_expressions_where_given():
    assert SHOP.select() == "id, amount, metadata"
    assert SHOP.select("i", amount="0") == "i.id, 0, i.metadata"
    with pytest.raises(ValueError, match="not in the column list"):
        SHOP.select("i", price="0")


def test_set_from_assigns_every_column_from_the_alias():
    assert SHOP.set_from("u") == "id = u.id, amount = u.amount, metadata = u.metadata"


def test_arrays_follow_the_list_and_apply_each_converter():
    rows = [
        {"metadata": {"a": "1"}, "id": "p1", "amount": 10**30},
        {"id": "p2", "amount": 0, "metadata": {}, "ignored": True},
    ]
    assert SHOP.arrays(rows) == [["p1", "p2"], [str(10**30), "0"], ['{"a": "1"}', "{}"]]
    records = [SimpleNamespace(id="p1", amount=7, metadata={})]
    assert SHOP.arrays_of(records) == [["p1"], ["7"], ["{}"]]
    assert SHOP.arrays([]) == [[], [], []]


def test_lists_concatenate_in_order_and_refuse_a_column_twice():
    joined = SHOP + ColumnList(Column("created_at", "timestamptz"))
    assert joined.names == ("id", "amount", "metadata", "created_at")
    assert joined.unnest("t").startswith("unnest($1::varchar[], $2::text[]::numeric[], $3::jsonb[], $4::timestamptz[])")
    with pytest.raises(ValueError, match="listed twice"):
        SHOP + ColumnList(Column("id", "varchar"))


# ---------------------------------------------------------------- the ledger's statements

# Each statement and its column lists, in the order their arrays are sent.
STATEMENTS = [
    ("create payments", payments.CREATE_PAYMENTS_SQL, [payments.CREATE_COLUMNS, payments.CREATE_OPTION_COLUMNS]),
    ("save payment states", payments.SAVE_PAYMENTS_SQL, [payments.SAVE_PAYMENT_COLUMNS]),
    ("save option states", payments.SAVE_OPTIONS_SQL, [payments.SAVE_OPTION_COLUMNS]),
    ("insert transfers", transfers.INSERT_TRANSFERS_SQL, [transfers.TRANSFER_COLUMNS]),
    ("insert events", outbox.INSERT_EVENTS_SQL, [outbox.OUTBOX_COLUMNS]),
]


@pytest.mark.parametrize(("name", "sql", "lists"), STATEMENTS, ids=[s[0] for s in STATEMENTS])
def test_each_statement_takes_exactly_one_array_per_column_of_its_lists(name, sql, lists):
    columns = [c for lst in lists for c in lst]
    placeholders = sorted({int(n) for n in re.findall(r"\$(\d+)::", sql)})
    assert placeholders == list(range(1, len(columns) + 1))
    for i, column in enumerate(columns, start=1):
        assert f"{column.parameter(i)}" in sql, (name, column.name)
    for lst in lists:
        assert f"({', '.join(lst.names)}" in sql  # the unnest alias names them in the same order


def test_create_writes_every_new_payment_column_and_the_created_event_from_the_outbox_list():
    sql = payments.CREATE_PAYMENTS_SQL
    names = ", ".join(payments.NEW_PAYMENT_COLUMNS.names)
    assert f"INSERT INTO payments ({names}, status, updated_at)" in sql
    assert f"SELECT {names}, 'pending', created_at" in sql
    assert f"INSERT INTO outbox ({', '.join(outbox.OUTBOX_COLUMNS.names)})" in sql
    assert "i.event_id, i.merchant_id, i.id, 'created', i.subject, i.payload, i.created_at" in sql


def test_save_writes_back_every_state_column_and_keys_on_the_id():
    sql = payments.SAVE_PAYMENTS_SQL
    for name in payments.PAYMENT_STATE_COLUMNS.names:
        assert f"{name} = u.{name}" in sql
    assert "WHERE p.id = u.id" in sql
    sql = payments.SAVE_OPTIONS_SQL
    for name in payments.OPTION_STATE_COLUMNS.names:
        assert f"{name} = u.{name}" in sql
    assert "WHERE o.payment_id = u.payment_id AND o.position = u.position" in sql
    assert "CASE WHEN u.sweepable" in sql


def test_create_writes_each_option_and_one_deposit_address_per_chain():
    sql = payments.CREATE_PAYMENTS_SQL
    assert f"INSERT INTO payment_options ({', '.join(payments.NEW_OPTION_COLUMNS.names)}, status)" in sql
    assert "SELECT DISTINCT ON (o.payment_id, o.chain_id)" in sql


# Element types of the array parameters -> the Postgres types of the model columns they fill.
PG_TYPES = {
    "varchar": ("VARCHAR", "TEXT"),
    "int": ("INTEGER",),
    "bigint": ("BIGINT",),
    "numeric": ("NUMERIC",),
    "timestamptz": ("TIMESTAMP WITH TIME ZONE",),
    "bool": ("BOOLEAN",),
    "boolean": ("BOOLEAN",),
    "jsonb": ("JSONB",),
    "uuid": ("UUID",),
    "bytea": ("BYTEA",),
}
TABLE_COLUMNS = [
    (payments.NEW_PAYMENT_COLUMNS, models.PAYMENTS),
    (payments.PAYMENT_STATE_COLUMNS, models.PAYMENTS),
    (transfers.TRANSFER_COLUMNS, models.TRANSFERS),
    (outbox.OUTBOX_COLUMNS, models.OUTBOX),
    (payments.CREATED_WITH_COLUMNS, models.OUTBOX),  # event_id, subject, payload
    (payments.NEW_OPTION_COLUMNS, models.PAYMENT_OPTIONS),
    (payments.OPTION_STATE_COLUMNS, models.PAYMENT_OPTIONS),
    (ColumnList(*payments.CREATE_OPTION_COLUMNS.columns[-1:]), models.DEPOSIT_ADDRESSES),  # from_block
]


@pytest.mark.parametrize(("columns", "table"), TABLE_COLUMNS, ids=[f"{t.name}:{c.names[0]}" for c, t in TABLE_COLUMNS])
def test_every_listed_column_is_a_column_of_its_table_with_that_type(columns, table):
    dialect = postgresql.dialect()
    for column in columns:
        assert column.name in table.c, f"{table.name} has no column {column.name}"
        stored = table.c[column.name].type.compile(dialect=dialect).split("(")[0]
        assert stored in PG_TYPES[column.pg_type], (table.name, column.name, stored, column.pg_type)


# ---------------------------------------------------------------- the SQL sent


def payment(**changes) -> PaymentRecord:
    values = dict(
        id="pay_1",
        merchant_id="mch_1",
        chain_id=31337,
        asset="ETH",
        token_address=None,
        decimals=18,
        amount_due=10**18,
        amount_received=0,
        amount_confirmed=0,
        amount_swept=0,
        status=PaymentStatus.PENDING,
        late=False,
        merchant_order_id="order-1",
        metadata={"k": "v"},
        deposit_address="0x" + "ab" * 20,
        derivation_index=7,
        derivation_path="m/44'/60'/0'/0/7",
        confirmations_required=2,
        version=1,
        created_at=NOW,
        updated_at=NOW,
        expires_at=NOW + timedelta(hours=1),
        expired_at=None,
        cancelled_at=None,
        sweep_tx_hash="",
    )
    values.update(changes)
    record = PaymentRecord(**values)
    record.options = [
        PaymentOptionRecord(
            position=0,
            chain_id=record.chain_id,
            asset=record.asset,
            token_address=record.token_address,
            decimals=record.decimals,
            amount_due=record.amount_due,
            confirmations_required=record.confirmations_required,
            amount_received=record.amount_received,
            amount_confirmed=record.amount_confirmed,
            selected=True,
        )
    ]
    return record


def created_event(p: PaymentRecord) -> PaymentEventRecord:
    return PaymentEventRecord(
        event_id=str(uuid.uuid4()), event_type="created", payment=p, previous_status=None, created_at=NOW
    )


class Recorder:
    """Stands in for an asyncpg pool or connection: keeps what it was sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple]] = []

    async def fetch(self, sql, *args):
        self.calls.append((sql, args))
        return []

    async def execute(self, sql, *args):
        self.calls.append((sql, args))


async def test_create_sends_the_import_time_statement_with_the_arrays_of_its_list():
    p = payment()
    row = payments.creation_row(
        p, created_event(p), idempotency_key="key-1", request_fingerprint="f", from_blocks={31337: 9}
    )
    assert set(row) == {*payments.CREATE_COLUMNS.names, "options"}
    assert set(row["options"][0]) == set(payments.CREATE_OPTION_COLUMNS.names)
    assert row["options"][0]["from_block"] == 9
    assert row["subject"] == "paymesh.payments.mch_1.created" and row["payload"]  # encoded once, here
    pool = Recorder()
    await payments.create_payments(pool, [row])
    ((sql, args),) = pool.calls
    assert sql is payments.CREATE_PAYMENTS_SQL  # the constant itself, not a string built per call
    assert list(args) == payments.CREATE_COLUMNS.arrays([row]) + payments.CREATE_OPTION_COLUMNS.arrays(row["options"])
    assert args[payments.CREATE_COLUMNS.names.index("amount_due")] == [str(10**18)]
    assert args[payments.CREATE_COLUMNS.names.index("metadata")] == ['{"k": "v"}']


async def test_save_and_insert_statements_are_the_constants_with_one_array_per_column(monkeypatch):
    conn = Recorder()

    async def driver(_conn):
        return conn

    for module in (payments, transfers, outbox):
        monkeypatch.setattr(module, "driver", driver)
    confirmed = payment(status=PaymentStatus.CONFIRMED, amount_received=10**18, amount_confirmed=10**18)
    await payments.save_payment_states(None, [confirmed, payment(id="pay_2")])
    transfer = {name: None for name in transfers.TRANSFER_COLUMNS.names} | {"amount": 5, "payment_id": "pay_1"}
    await transfers.insert_transfers(None, [transfer])
    await outbox.insert_events(None, [created_event(confirmed)])
    (save_sql, save_args), (option_sql, option_args), (transfer_sql, transfer_args), (event_sql, event_args) = (
        conn.calls
    )
    assert save_sql is payments.SAVE_PAYMENTS_SQL and len(save_args) == len(payments.SAVE_PAYMENT_COLUMNS)
    by_name = dict(zip(payments.SAVE_PAYMENT_COLUMNS.names, save_args, strict=True))
    assert by_name["id"] == ["pay_1", "pay_2"]
    assert by_name["status"] == ["confirmed", "pending"]
    assert by_name["amount_confirmed"] == [str(10**18), "0"]
    assert option_sql is payments.SAVE_OPTIONS_SQL
    options = dict(zip(payments.SAVE_OPTION_COLUMNS.names, option_args, strict=True))
    assert options["payment_id"] == ["pay_1", "pay_2"] and options["position"] == [0, 0]
    assert options["sweepable"] == [True, False]  # PaymentRecord.option_sweepable
    assert transfer_sql is transfers.INSERT_TRANSFERS_SQL
    assert dict(zip(transfers.TRANSFER_COLUMNS.names, transfer_args, strict=True))["amount"] == ["5"]
    assert event_sql is outbox.INSERT_EVENTS_SQL and len(event_args) == len(outbox.OUTBOX_COLUMNS)
    events = dict(zip(outbox.OUTBOX_COLUMNS.names, event_args, strict=True))
    assert events["subject"] == ["paymesh.payments.mch_1.created"] and events["payment_id"] == ["pay_1"]


async def test_nothing_to_write_is_no_statement(monkeypatch):
    conn = Recorder()

    async def driver(_conn):
        return conn

    for module in (payments, transfers, outbox):
        monkeypatch.setattr(module, "driver", driver)
    await payments.save_payment_states(None, [])
    assert await transfers.insert_transfers(None, []) == set()
    await outbox.insert_events(None, [])
    assert conn.calls == []
