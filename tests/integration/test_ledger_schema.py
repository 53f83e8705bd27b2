"""The Alembic migrations create exactly the schema the models describe."""

from __future__ import annotations

from alembic import command

from services.ledger.adapters.db import alembic_config, migrate


def test_migrations_match_models(postgres):
    url = postgres.create_database("schema_check")
    migrate(url)
    command.check(alembic_config(url))  # raises if models and migrations differ
    command.downgrade(alembic_config(url), "base")
    migrate(url)


def test_replicas_starting_together_migrate_one_at_a_time(postgres):
    """Two ledgers and two notifiers starting at once on a fresh database, as
    processes (Alembic's context is per process): each migrates under its advisory
    lock, so none fails on another's half-made schema."""
    import subprocess
    import sys

    from services.notifier.adapters.db import alembic_config as notifier_alembic_config

    url = postgres.create_database("schema_race")
    notifier_url = postgres.create_database("schema_race_notifier")
    runs = [
        f"from services.{service}.adapters.db import migrate; migrate({target!r})"
        for service, target in (
            ("ledger", url),
            ("ledger", url),
            ("notifier", notifier_url),
            ("notifier", notifier_url),
        )
    ]
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for code in runs]
    errors = [proc.communicate(timeout=120)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0, 0], errors
    command.check(alembic_config(url))
    command.check(notifier_alembic_config(notifier_url))


def test_0002_splits_native_amount_swept_into_treasury_fee_and_dust(postgres):
    """Before 0002 a native payment's amount_swept held the gross amount its sweep dealt
    with. The migration keeps the sum (the status stays SWEPT) and splits it: the sweep
    transaction's value, its gas (gas_limit x max_fee_per_gas), the rest as dust. Token
    payments are left as they were. The downgrade folds it back."""
    import asyncio

    import asyncpg

    url = postgres.create_database("migration_0002")
    migrate(url, "0001")
    plain = url.replace("postgresql+asyncpg://", "postgresql://")
    gross, value, gas, fee_cap, reserve = 10**18, 10**18 - 21_000 * 7 - 500, 21_000, 7, 500

    async def run(sql: str, *args):
        conn = await asyncpg.connect(plain)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    async def seed():
        await run(
            "INSERT INTO merchants (id, name, api_key_hash, api_key_prefix, xpub, derivation_path) "
            "VALUES ('mch_1', 'shop', 'h', 'p', 'xpub', 'm/44''/60''/0''')"
        )
        token_address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
        for pid, token, swept in (("pay_native", None, gross), ("pay_token", token_address, 25_000_000)):
            await run(
                "INSERT INTO payments (id, merchant_id, chain_id, asset, token_address, decimals, amount_due, "
                "amount_received, amount_confirmed, amount_swept, status, request_fingerprint, deposit_address, "
                "derivation_index, derivation_path, confirmations_required, created_at, updated_at, expires_at) "
                "VALUES ($1, 'mch_1', 31337, 'X', $2, 18, $3, $3, $3, $3, 'swept', 'f', '0xdep', 0, 'm/0', 2, "
                "now(), now(), now())",
                pid,
                token,
                swept,
            )
            await run(
                "INSERT INTO sweep_transactions (payment_id, merchant_id, chain_id, kind, state, tx_hash, raw_tx, "
                "nonce, from_address, to_address, amount, gas_limit, max_fee_per_gas, completed) "
                "VALUES ($1, 'mch_1', 31337, 'sweep', 'confirmed', $2, '\\x00', 0, '0xdep', '0xtre', $3, $4, $5, true)",
                pid,
                "0x" + pid[-1] * 64,
                value if token is None else swept,
                gas,
                fee_cap,
            )

    asyncio.run(seed())
    migrate(url)
    rows = {r["id"]: r for r in asyncio.run(run("SELECT id, amount_swept, sweep_fee, sweep_dust FROM payments"))}
    assert (rows["pay_native"]["amount_swept"], rows["pay_native"]["sweep_fee"], rows["pay_native"]["sweep_dust"]) == (
        value,
        gas * fee_cap,
        reserve,
    )
    assert (rows["pay_token"]["amount_swept"], rows["pay_token"]["sweep_fee"], rows["pay_token"]["sweep_dust"]) == (
        25_000_000,
        0,
        0,
    )
    command.downgrade(alembic_config(url), "0001")
    rows = {r["id"]: r for r in asyncio.run(run("SELECT id, amount_swept FROM payments"))}
    assert rows["pay_native"]["amount_swept"] == gross and rows["pay_token"]["amount_swept"] == 25_000_000


def test_0003_names_existing_transfers_asset_and_gas_topups(postgres):
    """Credited transfers get their payment's symbol; a transfer whose tx is a recorded
    gas top-up of its payment becomes a gas_topup; anything else keeps kind payment."""
    import asyncio

    import asyncpg

    url = postgres.create_database("migration_0003")
    migrate(url, "0002")
    plain = url.replace("postgresql+asyncpg://", "postgresql://")
    token_address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    topup_hash, stray_hash, paid_hash = ("0x" + c * 64 for c in "abc")

    async def run(sql: str, *args):
        conn = await asyncpg.connect(plain)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    async def seed():
        await run(
            "INSERT INTO merchants (id, name, api_key_hash, api_key_prefix, xpub, derivation_path) "
            "VALUES ('mch_1', 'shop', 'h', 'p', 'xpub', 'm/44''/60''/0''')"
        )
        await run(
            "INSERT INTO payments (id, merchant_id, chain_id, asset, token_address, decimals, amount_due, "
            "status, request_fingerprint, deposit_address, derivation_index, derivation_path, "
            "confirmations_required, created_at, updated_at, expires_at) VALUES ('pay_t', 'mch_1', 31337, 'TUSD', "
            "$1, 6, 5, 'confirmed', 'f', '0xdep', 0, 'm/0', 2, now(), now(), now())",
            token_address,
        )
        await run(
            "INSERT INTO sweep_transactions (payment_id, merchant_id, chain_id, kind, state, tx_hash, raw_tx, nonce, "
            "from_address, to_address, amount, gas_limit, max_fee_per_gas) VALUES ('pay_t', 'mch_1', 31337, "
            "'gas_topup', 'confirmed', $1, '\\x00', 0, '0xgas', '0xdep', 9, 21000, 1)",
            topup_hash,
        )
        for tx_hash, token, credited in (
            (paid_hash, token_address, True),
            (topup_hash, None, False),
            (stray_hash, None, False),
        ):
            await run(
                "INSERT INTO transfers (chain_id, tx_hash, log_index, block_hash, block_number, block_timestamp, "
                "from_address, to_address, token_address, amount, payment_id, state, credited) VALUES (31337, $1, "
                "-1, $1, 1, now(), '0xfrom', '0xdep', $2, 5, 'pay_t', 'confirmed', $3)",
                tx_hash,
                token,
                credited,
            )

    asyncio.run(seed())
    migrate(url)
    rows = {
        r["tx_hash"]: (r["asset"], r["kind"]) for r in asyncio.run(run("SELECT tx_hash, asset, kind FROM transfers"))
    }
    assert rows == {paid_hash: ("TUSD", "payment"), topup_hash: ("", "gas_topup"), stray_hash: ("", "payment")}
