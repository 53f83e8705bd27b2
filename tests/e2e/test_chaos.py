"""Scenario 2: chaos. While a stream of payments is created and paid, each
service in turn is killed with SIGKILL and restarted (and one is frozen with
SIGSTOP/SIGCONT). Afterwards every payment must reach its right final state
(swept), no transfer is credited twice, no sweep is sent twice (balances prove
it), and every webhook event is delivered at least once under a stable id.

CI runs a short version; `make chaos` sets PAYMESH_CHAOS_PAYMENTS=1000 and
PAYMESH_CHAOS_KILL_EVERY=3 for the long one."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import time

import grpc
import nats
import pytest
from eth_utils import to_checksum_address
from paymesh.events.v1 import payment_events_pb2 as evpb
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import payment_service_pb2 as spb
from paymesh.ledger.v1 import sweep_ledger_service_pb2 as ipb
from paymesh.ledger.v1 import sweep_ledger_service_pb2_grpc as igrpc

from tests.support.ledger import SWEEP_LEDGER_TOKEN, bearer, create_merchant, fresh_xpub
from tests.support.webhooks import WebhookReceiver, ok
from tools.pay import TOKEN_ADDRESS

PAYMENTS = int(os.environ.get("PAYMESH_CHAOS_PAYMENTS", "24"))
KILL_EVERY = float(os.environ.get("PAYMESH_CHAOS_KILL_EVERY", "4"))
SERVICES = ("ledger", "listener", "sweeper", "notifier")
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL)


async def retrying(call, *, within: float = 120.0):
    """What a merchant's backend does while the ledger restarts: retry the same request."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as err:
            if err.code() not in RETRYABLE or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


async def chaos(mesh, stop: asyncio.Event, log: list[str]) -> None:
    order = list(SERVICES)
    random.Random(7).shuffle(order)
    turn = 0
    # Runs until the payment stream is over and every service was hit at least once.
    while not (stop.is_set() and turn >= len(order) + 1):
        if not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=KILL_EVERY)
            except TimeoutError:
                pass
        name = order[turn % len(order)]
        proc = mesh.procs[name]
        if turn % 5 == 4:  # now and then freeze instead of kill
            os.kill(proc.proc.pid, signal.SIGSTOP)
            log.append(f"freeze {name}")
            await asyncio.sleep(3)
            os.kill(proc.proc.pid, signal.SIGCONT)
        else:
            await asyncio.to_thread(proc.kill)
            log.append(f"kill {name}")
            await asyncio.sleep(random.uniform(0.2, 1.5))
            await asyncio.to_thread(mesh.start_service, name)
        turn += 1


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.timeout(max(600, PAYMENTS * 3))
async def test_chaos(mesh, chain):
    treasury = to_checksum_address("0x" + secrets.token_hex(20))
    rng = random.Random(42)
    async with WebhookReceiver(ok()) as receiver, grpc.aio.insecure_channel(mesh.addr("ledger")) as channel:
        xpub, account = fresh_xpub()
        merchant = await create_merchant(
            channel,
            xpub,
            derivation_path=f"m/44'/60'/{account}'",
            webhook_url=receiver.url,
            treasuries=[apb.Treasury(chain_id=31337, address=treasury)],
        )
        stop = asyncio.Event()
        log: list[str] = []
        chaos_task = asyncio.create_task(chaos(mesh, stop, log))
        paid: dict[str, tuple[str, str, int]] = {}  # payment id -> (asset, deposit address, amount)
        # Spread the stream over at least five chaos turns, so every service is hit.
        pace = max(KILL_EVERY * 5.5 / PAYMENTS, 0.02)
        try:
            for i in range(PAYMENTS):
                token = i % 4 == 3
                # ETH from 0.001: smaller amounts are dust the sweeper rightly leaves
                # in place rather than sweep at a loss (fee ~1e14 wei here).
                amount = rng.randint(1, 10**6) if token else rng.randint(10**5, 10**6) * 10**10
                request = spb.CreatePaymentRequest(
                    chain_id=31337, asset="TUSD" if token else "ETH", amount=str(amount), idempotency_key=f"chaos-{i}"
                )
                reply = await retrying(
                    lambda r=request: merchant.payments.CreatePayment(r, metadata=merchant.auth, timeout=5)
                )
                p = reply.payment
                if token:
                    await chain.send_token(p.deposit_address, amount, wait=False)
                else:
                    await chain.send_eth(p.deposit_address, amount, key_index=2, wait=False)
                paid[p.payment_id] = ("TUSD" if token else "ETH", p.deposit_address, amount)
                await asyncio.sleep(pace * rng.uniform(0.5, 1.5))
        finally:
            stop.set()
            await chaos_task
        assert {entry.split()[1] for entry in log if entry.startswith("kill")} == set(SERVICES), log

        async def all_swept() -> dict[str, pb.Payment]:
            out = {}
            for payment_id in paid:
                reply = await retrying(
                    lambda pid=payment_id: merchant.payments.GetPayment(
                        spb.GetPaymentRequest(payment_id=pid), metadata=merchant.auth, timeout=5
                    )
                )
                out[payment_id] = reply.payment
            return out

        deadline = time.monotonic() + max(180, PAYMENTS)
        while True:
            final = await all_swept()
            if all(p.status == pb.PAYMENT_STATUS_SWEPT for p in final.values()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        stuck = {
            pid: pb.PaymentStatus.Name(p.status) for pid, p in final.items() if p.status != pb.PAYMENT_STATUS_SWEPT
        }
        assert not stuck, f"not swept: {stuck}; chaos: {log}"

        # Nothing credited twice, and exactly what was paid.
        for payment_id, (_asset, _address, amount) in paid.items():
            p = final[payment_id]
            # Credited transfers only: a token payment's address also receives the
            # sweeper's gas top-up, recorded as an uncredited native transfer.
            live = [t for t in p.transfers if t.state != pb.TRANSFER_STATE_ORPHANED and t.credited]
            assert len(live) == 1, (payment_id, list(p.transfers))
            # amount_swept reached the treasury; a native sweep's fee paid the rest, to the wei.
            to_network = int(p.sweep_fee) if not p.token_address else 0
            assert p.amount_confirmed == str(amount) and p.sweep_dust == "0"
            assert int(p.amount_swept) + to_network == amount

        # Nothing swept twice: one confirmed sweep per payment, and the chain agrees.
        internal = igrpc.SweepLedgerServiceStub(channel)
        sweeps, token_ = [], ""
        while True:
            page = await internal.ListSweepTransactions(
                ipb.ListSweepTransactionsRequest(merchant_id=merchant.merchant_id, page_size=500, page_token=token_),
                metadata=bearer(SWEEP_LEDGER_TOKEN),
            )
            sweeps += page.transactions
            token_ = page.next_page_token
            if not token_:
                break
        done = [
            s
            for s in sweeps
            if s.kind == ipb.SWEEP_TRANSACTION_KIND_SWEEP and s.state == ipb.SWEEP_TRANSACTION_STATE_CONFIRMED
        ]
        assert sorted(s.payment_id for s in done) == sorted(paid)
        token_total = sum(a for asset, _, a in paid.values() if asset == "TUSD")
        data = "0x70a08231" + treasury[2:].lower().rjust(64, "0")
        assert int(await chain.rpc("eth_call", {"to": TOKEN_ADDRESS, "data": data}, "latest"), 16) == token_total
        native_balance = int(await chain.rpc("eth_getBalance", treasury, "latest"), 16)
        assert native_balance == sum(int(s.amount) for s in done if not s.token_address)
        for asset, address, _ in paid.values():
            if asset == "ETH":
                assert int(await chain.rpc("eth_getBalance", address, "latest"), 16) == 0

        # Every event the ledger published reached the webhook, under the same id.
        nc = await nats.connect(mesh.env["PAYMESH_NATS_URL"])
        try:
            js = nc.jetstream()
            sub = await js.subscribe(f"paymesh.payments.{merchant.merchant_id}.>", ordered_consumer=True)
            published: set[str] = set()
            kinds: dict[str, set[int]] = {payment_id: set() for payment_id in paid}
            while True:
                try:
                    msg = await sub.next_msg(timeout=2)
                except (nats.errors.TimeoutError, TimeoutError):
                    break
                event = evpb.PaymentEvent.FromString(msg.data)
                published.add(event.event_id)
                kinds[event.payment.payment_id].add(event.type)
        finally:
            await nc.drain()
        # (DETECTED may be skipped: a transfer that reaches the ledger already deep
        # enough, after the listener caught up, goes straight to CONFIRMED.)
        for payment_id, seen_kinds in kinds.items():
            assert {evpb.PAYMENT_EVENT_TYPE_CREATED, evpb.PAYMENT_EVENT_TYPE_SWEPT} <= seen_kinds, payment_id
        await receiver.wait_for(lambda: published <= receiver.event_ids(answered_ok=True), within=120)
        assert receiver.event_ids() <= published  # no invented ids
