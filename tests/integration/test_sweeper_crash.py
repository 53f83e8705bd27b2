"""The sweeper as a real process (`python -m services.sweeper`), SIGKILLed at the
moments that matter (failpoints), restarted; and two processes at once. Every
payment ends swept exactly once: one sweep transaction, exact balances."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
import pytest_asyncio
from paymesh.sweeper.v1 import sweeper_service_pb2 as swpb
from paymesh.sweeper.v1 import sweeper_service_pb2_grpc as swgrpc

from tests.support.ledger import ADMIN_TOKEN, TOKEN_ADDRESS, bearer, eventually, publish_head
from tests.support.procs import ServiceProcess
from tests.support.sweeper_chain import ANVIL_KEYS, ETHER, GAS_WALLET, TUSD, start_stack, stop_stack
from tools import devstack

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(240)]

ANVIL_ACCOUNT_3 = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(tmp_path_factory, postgres):
    s = await start_stack(tmp_path_factory.mktemp("sweeper-crash"), postgres)
    try:
        yield s
    finally:
        await stop_stack(s)


@pytest.fixture
def procs(stack):
    started: list[ServiceProcess] = []

    def make(name: str, **env: str) -> ServiceProcess:
        proc = ServiceProcess(
            "services.sweeper",
            stack.env(PAYMESH_SWEEPER_WORKER_ID=name, **env),
            stack.dir / "logs" / f"{name}.log",
            devstack.free_port(),
        )
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.kill()


async def wait_exit(proc: ServiceProcess, within: float = 30.0) -> int:
    return await asyncio.to_thread(proc.wait_exit, within)


async def start(proc: ServiceProcess, **extra_env: str) -> ServiceProcess:
    """Start; wait for SERVING unless a failpoint may kill it before anyone could look."""
    return await asyncio.to_thread(proc.start, extra_env or None, "PAYMESH_FAILPOINTS" not in extra_env)


async def assert_native_swept_once(stack, paid, expected_hash: str | None = None):
    await stack.wait_swept(paid)
    txs = await stack.sweep_txs(paid.payment_id)
    assert [(t["kind"], t["state"]) for t in txs] == [("sweep", "confirmed")], txs
    if expected_hash is not None:
        assert txs[0]["tx_hash"] == expected_hash  # the recorded transaction, not a new one
    assert await stack.chain.balance(paid.deposit) == 0
    assert await stack.chain.balance(paid.treasury) == int(txs[0]["amount"])
    row = await stack.sweep_row(paid.payment_id)
    # amount_swept is what reached the treasury; with the sweep's fee, the whole payment.
    assert int(row["amount_swept"]) == int(txs[0]["amount"]) and row["sweep_tx_hash"] == txs[0]["tx_hash"]
    assert int(row["amount_swept"]) + int(row["sweep_fee"]) == paid.amount and row["sweep_dust"] == 0


@pytest.mark.parametrize("failpoint", ["sweeper.after_record_before_broadcast", "sweeper.after_broadcast"])
async def test_killed_around_broadcast_then_restarted_sweeps_once(stack, procs, failpoint):
    merchant, treasury = await stack.merchant()
    paid = await stack.pay(merchant, treasury, 2 * ETHER + 777)
    proc = procs(f"crashy-{failpoint.rsplit('.', 1)[-1]}")
    await start(proc, PAYMESH_FAILPOINTS=failpoint)
    assert await wait_exit(proc) == -9, proc.tail()  # SIGKILLed by the failpoint
    (recorded,) = await stack.sweep_txs(paid.payment_id)
    assert recorded["state"] == "signed"  # write-ahead: in the ledger, whatever happened next
    on_chain = await stack.chain.rpc("eth_getTransactionByHash", [recorded["tx_hash"]])
    if failpoint.endswith("before_broadcast"):
        assert on_chain is None and await stack.chain.balance(paid.deposit) == paid.amount
    else:
        assert on_chain is not None
    await start(proc)  # same worker id: it resumes its own lease at once
    await assert_native_swept_once(stack, paid, recorded["tx_hash"])
    assert "resuming a recorded sweep" in proc.tail(200)


async def test_token_sweep_killed_after_recording_top_up_and_nonce_used_meanwhile(stack, procs):
    """Killed after the gas top-up was recorded, before it was sent; meanwhile the
    operator spends the gas wallet's nonce by hand. The restarted sweeper finds the
    recorded top-up can never be mined (nonce too low), marks it failed, tops up
    with a fresh nonce, and sweeps the tokens once."""
    merchant, treasury = await stack.merchant()
    paid = await stack.pay(merchant, treasury, 42 * TUSD, token=True)
    proc = procs("crashy-topup")
    await start(proc, PAYMESH_FAILPOINTS="sweeper.after_record_before_broadcast.gas_topup")
    assert await wait_exit(proc) == -9, proc.tail()
    (topup,) = await stack.sweep_txs(paid.payment_id)
    assert topup["kind"] == "gas_topup" and topup["state"] == "signed"
    assert await stack.chain.nonce(GAS_WALLET) == topup["nonce"]
    await stack.chain.send(ANVIL_KEYS[0], ANVIL_ACCOUNT_3, 1)  # the operator uses nonce N by hand
    await start(proc)
    await stack.wait_swept(paid)
    txs = await stack.sweep_txs(paid.payment_id)
    assert [(t["kind"], t["state"]) for t in txs] == [
        ("gas_topup", "failed"),
        ("gas_topup", "confirmed"),
        ("sweep", "confirmed"),
    ], txs
    assert "nonce too low" in txs[0]["error"] and txs[1]["nonce"] == topup["nonce"] + 1
    assert await stack.chain.token_balance(TOKEN_ADDRESS, treasury) == 42 * TUSD
    assert await stack.chain.token_balance(TOKEN_ADDRESS, paid.deposit) == 0


async def test_two_processes_never_double_sweep_and_take_over_from_a_dead_one(stack, procs):
    merchant, treasury = await stack.merchant()
    natives = [await stack.pay(merchant, treasury, ETHER + i, confirm=False) for i in range(6)]
    tokens = [await stack.pay(merchant, treasury, (i + 1) * TUSD, token=True, confirm=False) for i in range(3)]
    a, b = procs("twin-a"), procs("twin-b")
    await asyncio.gather(start(a), start(b))  # started together

    async def leaders() -> list[bool]:
        return [(await _status(proc)).leader for proc in (a, b)]

    assert (await eventually(lambda: _one_leader(leaders), timeout=15)).count(True) == 1
    # Confirm the payments now (all at once), with both processes running.
    head = await stack.chain.head()
    await publish_head(stack.js, head + stack.confirmations)
    # Kill the leader as soon as it has swept something: the other one must finish the rest.
    first_done = await eventually(lambda: _any_swept(stack, natives + tokens), timeout=60)
    assert first_done
    roles = await leaders()
    leader = a if roles[0] else b
    leader.kill()
    survivor = b if leader is a else a
    # The dead leader may have finished the first batch before it died; payments confirmed
    # only after its death can be swept by nobody but the survivor, so the take-over is
    # always exercised.
    late_native = await stack.pay(merchant, treasury, 3 * ETHER, confirm=False)
    late_token = await stack.pay(merchant, treasury, 7 * TUSD, token=True, confirm=False)
    await publish_head(stack.js, await stack.chain.head() + stack.confirmations)
    natives.append(late_native)
    tokens.append(late_token)
    await stack.wait_swept(*natives, *tokens, within=90)
    assert (await _status(survivor)).leader
    assert _swept_by(survivor, late_native.payment_id) and _swept_by(survivor, late_token.payment_id)  # took over
    native_total = 0
    for p in natives:
        txs = await stack.sweep_txs(p.payment_id)
        confirmed = [t for t in txs if t["kind"] == "sweep" and t["state"] == "confirmed"]
        assert len(confirmed) == 1, txs
        native_total += int(confirmed[0]["amount"])
        assert await stack.chain.balance(p.deposit) == 0
    for p in tokens:
        txs = await stack.sweep_txs(p.payment_id)
        assert len([t for t in txs if t["kind"] == "sweep" and t["state"] == "confirmed"]) == 1, txs
        assert await stack.chain.token_balance(TOKEN_ADDRESS, p.deposit) == 0
    assert await stack.chain.balance(treasury) == native_total
    assert await stack.chain.token_balance(TOKEN_ADDRESS, treasury) == 13 * TUSD
    for p in natives + tokens:
        row = await stack.sweep_row(p.payment_id)
        # Tokens: all of it reached the treasury. Native: the value did, the gas paid the rest.
        to_network = 0 if p.token else int(row["sweep_fee"])
        assert int(row["amount_swept"]) + to_network == p.amount and row["sweep_dust"] == 0


def _swept_by(proc: ServiceProcess, payment_id: str) -> bool:
    """The process logged this payment's sweep as done (its "payment swept" line)."""
    for line in proc.log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "payment swept" and entry.get("payment_id") == payment_id:
            return True
    return False


async def _status(proc: ServiceProcess):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{proc.port}") as channel:
        reply = await swgrpc.SweeperServiceStub(channel).GetStatus(
            swpb.GetStatusRequest(), metadata=bearer(ADMIN_TOKEN), timeout=5
        )
    return reply.chains[0]


async def _one_leader(leaders):
    roles = await leaders()
    return roles if roles.count(True) == 1 else None


async def _any_swept(stack, paid) -> bool:
    for p in paid:
        row = await stack.sweep_row(p.payment_id)
        if row["status"] == "swept":
            return True
    return False


async def test_sigterm_drains_and_exits_cleanly(stack, procs):
    merchant, treasury = await stack.merchant()
    paid = await stack.pay(merchant, treasury, ETHER)
    proc = procs("graceful")
    await start(proc)
    await stack.wait_swept(paid)
    code = await asyncio.to_thread(proc.terminate, 20)
    assert code == 0, proc.tail()
    log = proc.tail(50)
    assert "sweeper stopped" in log and "test test" not in log  # and the seed never shows


async def test_refuses_to_start_without_a_valid_seed_and_never_prints_it(stack):
    import subprocess
    import sys

    from tools.services import REPO_ROOT

    base = {k: v for k, v in stack.env().items() if k != "PAYMESH_SWEEPER_MNEMONIC"}
    bad = "test test test test test test test test test test test test"  # wrong checksum word
    for extra, expected in [({}, "needs the HD seed"), ({"PAYMESH_SWEEPER_MNEMONIC": bad}, "not a valid BIP-39")]:
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "services.sweeper"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", **base, **extra},
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert expected in result.stdout and "Traceback" not in result.stdout + result.stderr
        assert bad not in result.stdout + result.stderr
