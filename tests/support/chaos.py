"""The chaos scenario the chaos tests share (tests/e2e/test_chaos.py with one
process per service, tests/e2e/test_chaos_replicas.py with two of each, a NATS
cluster and two RPC providers): while a stream of payments is created and paid, a
chaos schedule (the caller's) kills, freezes and cuts what it chooses. Meanwhile
refunds (of overpayments' excess, as soon as a payment is OVERPAID) and payouts
from the merchant's payout wallet are asked for. Afterwards every payment must
reach its right final state (swept), no transfer is credited twice, no sweep,
refund or payout is sent twice and none is lost (balances prove it, to the wei),
and every webhook event is delivered under a stable id.

`MetricsTally` adds up a counter over the restarts of each process (scraped every
second, so a killed process's last second is not counted): how the work spread."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
import httpx
import nats
from eth_utils import to_checksum_address
from paymesh.events.v1 import payment_events_pb2 as evpb
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import payment_service_pb2 as spb
from paymesh.ledger.v1 import payout_pb2 as popb
from paymesh.ledger.v1 import payout_service_pb2 as pspb
from paymesh.ledger.v1 import payout_service_pb2_grpc as psgrpc
from paymesh.ledger.v1 import sweep_ledger_service_pb2 as ipb
from paymesh.ledger.v1 import sweep_ledger_service_pb2_grpc as igrpc
from prometheus_client.parser import text_string_to_metric_families

from services.common import grpc_client
from tests.support.ledger import SWEEP_LEDGER_TOKEN, bearer, create_merchant, fresh_xpub
from tests.support.webhooks import WebhookReceiver, ok
from tools.pay import TOKEN_ADDRESS

RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL)

# The chaos schedule: runs until `stop` is set (the payment stream is over) and
# then as long as it needs to finish its round; appends what it did to the log.
Chaos = Callable[[asyncio.Event, list[str]], Awaitable[None]]


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


async def hit(mesh, name: str, *, freeze: bool, log: list[str], rng: random.Random) -> None:
    """One chaos turn on the process `name`: frozen for 3 s (SIGSTOP/SIGCONT), or
    SIGKILLed and started again after 0.2-1.5 s (returns once it serves)."""
    proc = mesh.procs[name]
    if freeze:
        os.kill(proc.proc.pid, signal.SIGSTOP)
        log.append(f"freeze {name}")
        await asyncio.sleep(3)
        os.kill(proc.proc.pid, signal.SIGCONT)
    else:
        await asyncio.to_thread(proc.kill)
        log.append(f"kill {name}")
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        await asyncio.to_thread(mesh.start_service, name)


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less once the payment stream is over."""
    if not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)


@dataclass
class Outcome:
    chaos: list[str]
    payments: int
    refunds: int
    payouts: int
    webhook_events: int
    seconds: float


class MetricsTally:
    """Scrapes each process's /metrics every second (bounded by the run) and keeps,
    per process and counter, the total over its restarts: a value lower than the
    last one seen is a restart, so the last one is banked."""

    def __init__(self, ports: dict[str, int], counters: tuple[str, ...]) -> None:
        self.ports = ports
        self.counters = counters
        self._banked: dict[tuple[str, str], float] = {}
        self._last: dict[tuple[str, str], float] = {}
        self._task: asyncio.Task | None = None

    def total(self, process: str, counter: str) -> int:
        key = (process, counter)
        return int(self._banked.get(key, 0) + self._last.get(key, 0))

    async def scrape_once(self, client: httpx.AsyncClient) -> None:
        for process, port in self.ports.items():
            try:
                reply = await client.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
            except httpx.HTTPError:
                continue  # down or frozen now
            values = dict.fromkeys(self.counters, 0.0)
            for family in text_string_to_metric_families(reply.text):
                for sample in family.samples:
                    if sample.name in values:
                        values[sample.name] += sample.value
            for counter, value in values.items():
                key = (process, counter)
                if value < self._last.get(key, 0):
                    self._banked[key] = self._banked.get(key, 0) + self._last[key]
                self._last[key] = value

    async def _run(self) -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            while True:
                await self.scrape_once(client)
                await asyncio.sleep(1)

    async def __aenter__(self) -> MetricsTally:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        async with httpx.AsyncClient(trust_env=False) as client:
            await self.scrape_once(client)  # the final figures


async def payments_under_chaos(mesh, chain, chaos: Chaos, *, payments: int, kill_every: float) -> Outcome:
    """The scenario: `payments` payments created and paid in a stream spread over at
    least five turns of `kill_every` seconds while `chaos` runs; then every check."""
    treasury = to_checksum_address("0x" + secrets.token_hex(20))
    rng = random.Random(42)
    began = time.monotonic()
    # The merchant's backend reaches every ledger replica, as through a load balancer.
    async with WebhookReceiver(ok()) as receiver, grpc_client.channel(mesh.target("ledger")) as channel:
        xpub, account = fresh_xpub()
        merchant = await create_merchant(
            channel,
            xpub,
            derivation_path=f"m/44'/60'/{account}'",
            webhook_url=receiver.url,
            treasuries=[apb.Treasury(chain_id=31337, address=treasury)],
        )
        payouts_api = psgrpc.PayoutServiceStub(channel)
        wallet = (
            await payouts_api.GetPayoutWallet(pspb.GetPayoutWalletRequest(chain_id=31337), metadata=merchant.auth)
        ).address
        wallet_funds = 10**18
        await chain.send_eth(wallet, wallet_funds, key_index=3)
        stop = asyncio.Event()
        log: list[str] = []
        chaos_task = asyncio.create_task(chaos(stop, log))
        paid: dict[str, tuple[str, str, int]] = {}  # payment id -> (asset, deposit address, amount)
        excess_of: dict[str, int] = {}  # overpaid payment id -> what it received above its amount due
        refunds: dict[str, tuple[str, str]] = {}  # payment id -> (refund id, destination)
        payouts: dict[str, tuple[str, int]] = {}  # payout id -> (destination, amount)

        async def refund_overpaid() -> None:
            """Refund the excess of every payment that is OVERPAID now (the merchant's backend
            reacting to the overpaid event), with an idempotency key per payment."""
            for payment_id in [p for p in excess_of if p not in refunds]:
                reply = await retrying(
                    lambda pid=payment_id: merchant.payments.GetPayment(
                        spb.GetPaymentRequest(payment_id=pid), metadata=merchant.auth, timeout=5
                    )
                )
                if reply.payment.status not in (pb.PAYMENT_STATUS_OVERPAID, pb.PAYMENT_STATUS_SWEPT):
                    continue
                to = to_checksum_address("0x" + secrets.token_hex(20))
                created = await retrying(
                    lambda pid=payment_id, to=to: payouts_api.CreateRefund(
                        pspb.CreateRefundRequest(
                            payment_id=pid, mode=pspb.REFUND_AMOUNT_EXCESS, destination=to, idempotency_key=f"rf-{pid}"
                        ),
                        metadata=merchant.auth,
                        timeout=5,
                    )
                )
                refunds[payment_id] = (created.refund.payout_id, created.refund.destination)

        # Spread the stream over at least five chaos turns, so every service is hit.
        pace = max(kill_every * 5.5 / payments, 0.02)
        try:
            for i in range(payments):
                token = i % 4 == 3
                # ETH from 0.001: smaller amounts are dust the sweeper rightly leaves
                # in place rather than sweep at a loss (fee ~1e14 wei here).
                amount = rng.randint(1, 10**6) if token else rng.randint(10**5, 10**6) * 10**10
                # Every fifth native payment is overpaid by a quarter: its excess is refunded.
                overpaid = not token and i % 5 == 1
                sent = amount + amount // 4 if overpaid else amount
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
                    await chain.send_eth(p.deposit_address, sent, key_index=2, wait=False)
                paid[p.payment_id] = ("TUSD" if token else "ETH", p.deposit_address, sent)
                if overpaid:
                    excess_of[p.payment_id] = sent - amount
                if i % 6 == 5:  # a payout from the payout wallet, now and then
                    to = to_checksum_address("0x" + secrets.token_hex(20))
                    value = 10**15 + i
                    created = await retrying(
                        lambda to=to, value=value, i=i: payouts_api.CreatePayout(
                            pspb.CreatePayoutRequest(
                                chain_id=31337,
                                asset="ETH",
                                amount=str(value),
                                destination=to,
                                idempotency_key=f"po-{i}",
                            ),
                            metadata=merchant.auth,
                            timeout=5,
                        )
                    )
                    payouts[created.payout.payout_id] = (to, value)
                await refund_overpaid()
                await asyncio.sleep(pace * rng.uniform(0.5, 1.5))
        finally:
            stop.set()
            await chaos_task
        refund_deadline = time.monotonic() + 120
        while len(refunds) < len(excess_of) and time.monotonic() < refund_deadline:
            await refund_overpaid()
            await asyncio.sleep(0.5)
        if len(refunds) < len(excess_of):
            missing = {}
            for payment_id in [p for p in excess_of if p not in refunds]:
                got = await merchant.payments.GetPayment(
                    spb.GetPaymentRequest(payment_id=payment_id), metadata=merchant.auth, timeout=5
                )
                missing[payment_id] = (pb.PaymentStatus.Name(got.payment.status), list(got.payment.transfers))
            raise AssertionError(f"overpaid payments never OVERPAID: {missing}; chaos: {log}")

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

        deadline = time.monotonic() + max(180, payments)
        while True:
            final = await all_swept()
            if all(p.status == pb.PAYMENT_STATUS_SWEPT for p in final.values()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        stuck = {
            pid: pb.PaymentStatus.Name(p.status) for pid, p in final.items() if p.status != pb.PAYMENT_STATUS_SWEPT
        }
        assert not stuck, f"not swept: {stuck}; chaos: {log}"

        # Every refund and payout ends CONFIRMED, and paid exactly its amount, once.
        async def ended() -> dict[str, popb.Payout]:
            out = {}
            for payout_id in [r for r, _ in refunds.values()]:
                reply = await retrying(
                    lambda pid=payout_id: payouts_api.GetRefund(
                        pspb.GetRefundRequest(refund_id=pid), metadata=merchant.auth, timeout=5
                    )
                )
                out[payout_id] = reply.refund
            for payout_id in payouts:
                reply = await retrying(
                    lambda pid=payout_id: payouts_api.GetPayout(
                        pspb.GetPayoutRequest(payout_id=pid), metadata=merchant.auth, timeout=5
                    )
                )
                out[payout_id] = reply.payout
            return out

        deadline = time.monotonic() + max(120, payments)
        while True:
            sent_out = await ended()
            if all(x.state == popb.PAYOUT_STATE_CONFIRMED for x in sent_out.values()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        unsent = {
            k: popb.PayoutState.Name(v.state) for k, v in sent_out.items() if v.state != popb.PAYOUT_STATE_CONFIRMED
        }
        assert not unsent, f"not sent: {unsent}; chaos: {log}"
        final = await all_swept()  # a refund from a deposit address is swept after it
        from_wallet = 0
        for payment_id, (refund_id, to) in refunds.items():
            refund = sent_out[refund_id]
            assert int(await chain.rpc("eth_getBalance", to, "latest"), 16) == excess_of[payment_id]
            assert final[payment_id].amount_refunded == str(excess_of[payment_id])
            if refund.source == popb.PAYOUT_SOURCE_PAYOUT_WALLET:
                from_wallet += excess_of[payment_id] + int(refund.fee)
        for payout_id, (to, value) in payouts.items():
            assert int(await chain.rpc("eth_getBalance", to, "latest"), 16) == value
            from_wallet += value + int(sent_out[payout_id].fee)
        assert int(await chain.rpc("eth_getBalance", wallet, "latest"), 16) == wallet_funds - from_wallet

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
            refund = sent_out[refunds[payment_id][0]] if payment_id in refunds else None
            if refund is not None and refund.source == popb.PAYOUT_SOURCE_DEPOSIT_ADDRESS:
                # Refunded from the deposit address first: the excess and its fee left from there.
                to_network += int(refund.fee) + excess_of[payment_id]
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
        nc = await nats.connect(servers=mesh.env["PAYMESH_NATS_URL"].split(","))
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
                if event.payment.payment_id in kinds:  # a payout's event names no payment
                    kinds[event.payment.payment_id].add(event.type)
        finally:
            await nc.drain()
        # (DETECTED may be skipped: a transfer that reaches the ledger already deep
        # enough, after the listener caught up, goes straight to CONFIRMED.)
        for payment_id, seen_kinds in kinds.items():
            assert {evpb.PAYMENT_EVENT_TYPE_CREATED, evpb.PAYMENT_EVENT_TYPE_SWEPT} <= seen_kinds, payment_id
        await receiver.wait_for(lambda: published <= receiver.event_ids(answered_ok=True), within=120)
        assert receiver.event_ids() <= published  # no invented ids
        return Outcome(
            chaos=log,
            payments=len(paid),
            refunds=len(refunds),
            payouts=len(payouts),
            webhook_events=len(published),
            seconds=time.monotonic() - began,
        )
