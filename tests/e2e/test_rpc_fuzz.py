"""Bad input that would reach Postgres or the converters: every public RPC of every
service, against the whole mesh (separate OS processes, real Postgres, NATS, anvil).

1. A matrix of the cases issue 12 found (NUL in strings, Timestamps and
   Durations out of range, uint64 above BIGINT): each is INVALID_ARGUMENT with
   a message naming the field, and stores nothing; then what the property
   found (status messages too long for the client) and forged page tokens.
2. A property over every RPC of every service in the generated descriptors
   (so an RPC or a service added later is fuzzed without an edit here): requests
   drawn from the method's input descriptor (tests/support/proto_strategies.py),
   sent with the credential the method accepts (found by probing), are never
   answered INTERNAL, UNKNOWN, UNIMPLEMENTED, UNAVAILABLE (the mesh is healthy,
   so UNAVAILABLE would be a dependency's INTERNAL passed on) or
   RESOURCE_EXHAUSTED, never hang, and a
   call that fails changes nothing stored in the ledger's or the notifier's
   database. A call that succeeds may change state (it was valid); the mesh is
   let settle after it before the next comparison.

PAYMESH_FUZZ_EXAMPLES sets the examples per RPC (default 50).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib
import json
import os
import pkgutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import paymesh
import pytest
import pytest_asyncio
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paymesh.ledger.v1 import address_feed_service_pb2 as fpb
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import merchant_directory_service_pb2 as dpb
from paymesh.ledger.v1 import payment_service_pb2 as spb
from paymesh.ledger.v1 import sweep_ledger_service_pb2 as ipb
from paymesh.listener.v1 import listener_service_pb2 as lpb
from paymesh.notifier.v1 import notifier_service_pb2 as npb
from paymesh.sweeper.v1 import sweeper_service_pb2 as wpb

from tests.support.ledger import (
    ADDRESS_FEED_TOKEN,
    ADMIN_TOKEN,
    MERCHANT_DIRECTORY_TOKEN,
    SERVICE_TOKENS,
    SWEEP_LEDGER_TOKEN,
    TOKEN_ADDRESS,
    bearer,
    create_merchant,
    eventually,
    fresh_xpub,
    random_hash,
)
from tests.support.proto_strategies import Hints, MessageStrategies
from tools.services import HTTP_SERVICES

C = grpc.StatusCode
# RESOURCE_EXHAUSTED too: the requests drawn stay far below the 4 MiB limit, so it
# can only be a status message too long for the client to receive.
NEVER = {C.INTERNAL, C.UNKNOWN, C.UNIMPLEMENTED, C.UNAVAILABLE, C.DATA_LOSS, C.RESOURCE_EXHAUSTED}
UNARY_DEADLINE = 10.0  # seconds: a unary call that takes longer hangs
STREAM_WAIT = 2.0  # seconds for a stream's first message; a stream may wait for news
EXAMPLES = int(os.environ.get("PAYMESH_FUZZ_EXAMPLES", "50"))


def generated_services() -> list[ServiceDescriptor]:
    """Every service in the generated code under gen/paymesh (imported, so new ones count)."""
    found: dict[str, ServiceDescriptor] = {}
    for module in pkgutil.walk_packages(paymesh.__path__, "paymesh."):
        if module.name.endswith("_pb2"):
            for service in importlib.import_module(module.name).DESCRIPTOR.services_by_name.values():
                found[service.full_name] = service
    return [found[name] for name in sorted(found)]


SERVICES = generated_services()
RPCS = [(s, m) for s in SERVICES for m in s.methods]


def test_every_package_is_fuzzed():
    """The enumeration really finds the services (guards against an import path change)."""
    names = {s.full_name for s in SERVICES}
    assert {
        "paymesh.ledger.v1.PaymentService",
        "paymesh.ledger.v1.MerchantAdminService",
        "paymesh.ledger.v1.AddressFeedService",
        "paymesh.ledger.v1.SweepLedgerService",
        "paymesh.ledger.v1.MerchantDirectoryService",
        "paymesh.ledger.v1.PayoutService",
        "paymesh.ledger.v1.PayoutLedgerService",
        "paymesh.ledger.v1.ApiKeyService",
        "paymesh.ledger.v1.AuditService",
        "paymesh.ledger.v1.WebhookEndpointService",
        "paymesh.listener.v1.ListenerService",
        "paymesh.sweeper.v1.SweeperService",
        "paymesh.notifier.v1.NotifierService",
    } <= names
    assert len(RPCS) >= 35


# ------------------------------------------------------------------ stored state

LEDGER_FINGERPRINT = """
WITH volatile AS (SELECT id FROM payments WHERE expires_at < $1)
SELECT
  (SELECT count(*) FROM payments) AS payments,
  (SELECT md5(coalesce(string_agg(p::text, '|' ORDER BY p.id), '')) FROM payments p WHERE p.expires_at >= $1)
    AS payment_rows,
  (SELECT md5(coalesce(string_agg(row(m.id, m.name, m.status, m.api_key_hash, m.api_key_prefix, m.webhook_url,
                                      m.webhook_secret, m.xpub, m.derivation_path, m.payout_policy,
                                      m.updated_at)::text,
                                  '|' ORDER BY m.id), '')) FROM merchants m) AS merchants,
  (SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM treasuries t) AS treasuries,
  (SELECT md5(coalesce(string_agg(s::text, '|' ORDER BY s.id), '')) FROM sweep_transactions s) AS sweeps,
  (SELECT md5(coalesce(string_agg(r::text, '|' ORDER BY r.id), '')) FROM payouts r) AS payouts,
  (SELECT md5(coalesce(string_agg(row(k.id, k.scopes, k.expires_at, k.revoked_at)::text, '|' ORDER BY k.id), ''))
     FROM api_keys k) AS api_keys,
  (SELECT count(*) FROM audit_log) AS audit_entries,
  (SELECT md5(coalesce(string_agg(w::text, '|' ORDER BY w.id), '')) FROM webhook_endpoints w) AS webhook_endpoints,
  (SELECT md5(coalesce(string_agg(c::text, '|' ORDER BY c.id), '')) FROM config_changes c) AS config_changes,
  (SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x.id), '')) FROM payout_transactions x) AS payout_txs,
  (SELECT count(*) FROM transfers) AS transfers,
  (SELECT count(*) FROM deposit_addresses) AS addresses,
  (SELECT count(*) FROM outbox o WHERE o.payment_id NOT IN (SELECT id FROM volatile)) AS events,
  (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM volatile) AS volatile
"""
NOTIFIER_FINGERPRINT = """
SELECT
  count(*) FILTER (WHERE NOT d.payment_id = ANY($1::text[])) AS deliveries,
  md5(coalesce(string_agg(row(d.id, d.state, d.attempt_count, d.cycle_attempts, d.next_attempt_at, d.url,
                              d.last_status_code, d.last_error, d.updated_at)::text, '|' ORDER BY d.id)
               FILTER (WHERE NOT d.payment_id = ANY($1::text[])), '')) AS delivery_rows,
  (SELECT count(*) FROM notifier_attempts a JOIN notifier_deliveries x ON x.id = a.delivery_id
    WHERE NOT x.payment_id = ANY($1::text[])) AS attempts,
  (SELECT count(*) FROM notifier_events e WHERE NOT e.payment_id = ANY($1::text[])) AS events
FROM notifier_deliveries d
"""


@dataclass
class Harness:
    """The mesh as the fuzzer sees it: a channel per process, which process serves
    which service, the credentials each method accepts, and the databases."""

    mesh: Any
    channels: dict[str, grpc.aio.Channel]
    ledger_db: asyncpg.Connection
    notifier_db: asyncpg.Connection
    horizon: datetime  # payments expiring before it may change in the background: left out
    process_of: dict[str, str] = field(default_factory=dict)  # service full name -> mesh process
    hints: Hints = field(default_factory=Hints)
    caller: Any = None  # the merchant whose API key the fuzzer uses
    caller_payment: str = ""
    target: Any = None  # a merchant whose ids are offered as hints (may be disabled, rotated)
    credentials: dict[str, dict[str, tuple]] = field(default_factory=dict)  # full method -> name -> metadata

    async def fingerprint(self) -> tuple:
        row = await self.ledger_db.fetchrow(LEDGER_FINGERPRINT, self.horizon)
        volatile = list(row["volatile"])
        notes = await self.notifier_db.fetchrow(NOTIFIER_FINGERPRINT, volatile)
        return tuple(v for k, v in row.items() if k != "volatile") + tuple(notes.values())

    async def settle(self) -> None:
        """Wait until the outbox is published and the notifier has finished with every event."""

        async def quiet() -> bool:
            unpublished, events = await self.ledger_db.fetchrow(
                "SELECT count(*) FILTER (WHERE published_at IS NULL), count(*) FROM outbox"
            )
            deliveries, pending = await self.notifier_db.fetchrow(
                "SELECT count(*) FILTER (WHERE event_type <> 'test'), count(*) FILTER (WHERE state = 'pending') "
                "FROM notifier_deliveries"
            )
            return unpublished == 0 and deliveries == events and pending == 0

        await eventually(quiet, timeout=30)

    async def call(
        self, service: ServiceDescriptor, method: MethodDescriptor, request: Any, metadata: tuple
    ) -> tuple[C, str]:
        channel = self.channels[self.process_of[service.full_name]]
        path = f"/{service.full_name}/{method.name}"
        output = message_factory.GetMessageClass(method.output_type)
        try:
            if method.server_streaming:
                stream = channel.unary_stream(
                    path, request_serializer=type(request).SerializeToString, response_deserializer=output.FromString
                )(request, metadata=metadata, timeout=STREAM_WAIT)
                try:
                    async for _ in stream:
                        break  # the first message is enough
                finally:
                    stream.cancel()
            else:
                await channel.unary_unary(
                    path, request_serializer=type(request).SerializeToString, response_deserializer=output.FromString
                )(request, metadata=metadata, timeout=UNARY_DEADLINE)
        except grpc.aio.AioRpcError as err:
            return err.code(), err.details() or ""
        return C.OK, ""


async def _services_of(addr: str) -> list[str]:
    def listing() -> list[str]:
        with grpc.insecure_channel(addr) as channel:
            return list(ProtoReflectionDescriptorDatabase(channel).get_services())

    return await asyncio.to_thread(listing)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def harness(mesh):
    env = mesh.env
    ledger_url = env["PAYMESH_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    notifier_url = env.get("PAYMESH_NOTIFIER_DATABASE_URL", ledger_url).replace(
        "postgresql+asyncpg://", "postgresql://"
    )
    grpc_services = [name for name in mesh.ports if f"services.{name}" not in HTTP_SERVICES]  # not the checkout
    channels = {name: grpc.aio.insecure_channel(mesh.addr(name)) for name in grpc_services}
    ledger_db = await asyncpg.connect(ledger_url)
    notifier_db = await asyncpg.connect(notifier_url)
    h = Harness(
        mesh=mesh,
        channels=channels,
        ledger_db=ledger_db,
        notifier_db=notifier_db,
        horizon=datetime.now(UTC) + timedelta(minutes=59),
    )
    try:
        for name in grpc_services:
            for service in await _services_of(mesh.addr(name)):
                h.process_of[service] = name
        h.caller = await create_merchant(channels["ledger"], fresh_xpub()[0])
        h.target = await create_merchant(channels["ledger"], fresh_xpub()[0])
        mine = await h.caller.create(amount="1000", idempotency_key="fuzz-1")
        h.caller_payment = mine.payment_id
        theirs = await h.target.create(amount="1000")
        await h.settle()
        deliveries = await notifier_db.fetch("SELECT id::text, event_id::text FROM notifier_deliveries")
        address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # anvil's account 1
        ids = [mine.payment_id, theirs.payment_id]
        h.hints = Hints(
            by_field={
                "chain_id": [31337],
                "asset": ["ETH", "TUSD", "eth"],
                "amount": ["1000", "1"],
                "payment_id": ids,
                "merchant_id": [h.target.merchant_id],
                "worker_id": ["worker-1"],
                "limit": [1, 10, 500],
                "lease_seconds": [10, 60, 3600],
                "retry_after_seconds": [1, 60],
                "page_size": [1, 50, 500],
                "from_block": [0, 1, 5],
                "to_block": [1, 5, 10],
                "block_number": [1, 5],
                "tx_hash": [random_hash()],
                "replaces_tx_hash": [random_hash()],
                "nonce": [0, 1],
                "gas_limit": [21_000],
                "max_fee_per_gas": ["1000000000"],
                "max_priority_fee_per_gas": ["1"],
                "from_address": [address],
                "to_address": [address],
                "token_address": [TOKEN_ADDRESS],
                "address": [address],
                "raw_tx": [bytes.fromhex("02f86c827a6980")],
                "delivery_id": [d["id"] for d in deliveries],
                "event_id": [d["event_id"] for d in deliveries],
                "name": ["Shop"],
                "xpub": [fresh_xpub()[0]],
                "derivation_path": ["m/44'/60'/0'", ""],
                "idempotency_key": ["fuzz-1", "fuzz-2"],
                "merchant_order_id": ["order-1"],
                "webhook_secret": ["s" * 16],
                "reason": ["changed my mind"],
                "error": ["boom"],
                "api_key": [h.caller.api_key],
                "expires_in": [Duration(seconds=3600)],
                "expires_at": [_later()],
            },
            strings=[*ids, h.target.merchant_id, "ETH", "1000", address],
        )
        yield h
    finally:
        await ledger_db.close()
        await notifier_db.close()
        for channel in channels.values():
            await channel.close()


async def test_the_fingerprint_sees_what_a_call_changes(harness):
    """The property's "stored nothing" means something: changes a call makes show."""
    h = harness
    service, method = _method("/paymesh.ledger.v1.MerchantAdminService/SetWebhook")
    first = await h.fingerprint()
    code, details = await h.call(
        service, method, apb.SetWebhookRequest(merchant_id=h.target.merchant_id), bearer(ADMIN_TOKEN)
    )  # a new signing secret
    assert code == C.OK, details
    await h.settle()
    second = await h.fingerprint()
    assert second != first
    payment = await h.target.create(amount="1")  # a row, an event, then a delivery
    await h.settle()
    third = await h.fingerprint()
    assert third != second and third[0] == second[0] + 1
    await h.target.payments.CancelPayment(
        spb.CancelPaymentRequest(payment_id=payment.payment_id, reason="done"), metadata=h.target.auth
    )
    await h.settle()
    assert await h.fingerprint() != third


# ------------------------------------------------------------------ 1. the cases of issue 12


def _ts(seconds: int, nanos: int = 0) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=nanos)


def _later() -> Timestamp:
    return _ts(int((datetime.now(UTC) + timedelta(hours=2)).timestamp()))


def _issue_12_cases(h: Harness) -> list[tuple[str, Any, str, str]]:
    """(full method, request, credential, what the message must say)."""
    pay = "/paymesh.ledger.v1.PaymentService/"
    adm = "/paymesh.ledger.v1.MerchantAdminService/"
    internal = "/paymesh.ledger.v1.SweepLedgerService/"

    def create(**fields) -> spb.CreatePaymentRequest:
        return spb.CreatePaymentRequest(**{"chain_id": 31337, "asset": "ETH", "amount": "1000", **fields})

    mine = h.caller_payment
    big = 2**64 - 1
    too_big = f"{big} is larger than 9223372036854775807"
    return [
        (
            pay + "CreatePayment",
            create(merchant_order_id="order\x001"),
            "merchant",
            "merchant_order_id contains a NUL character (U+0000)",
        ),
        (pay + "CreatePayment", create(metadata={"k": "v\x00"}), "merchant", 'metadata["k"] contains a NUL'),
        (pay + "CreatePayment", create(metadata={"k\x00": "v"}), "merchant", 'metadata key "k\\u0000" contains a NUL'),
        (pay + "CreatePayment", create(idempotency_key="key\x00"), "merchant", "idempotency_key contains a NUL"),
        (
            pay + "CreatePayment",
            create(expires_at=_ts(253_402_300_800)),
            "merchant",
            "expires_at is outside 0001-01-01..9999-12-31",
        ),
        (
            pay + "CreatePayment",
            create(expires_at=_ts(-62_135_596_801)),
            "merchant",
            "expires_at is outside 0001-01-01..9999-12-31",
        ),
        (
            pay + "CreatePayment",
            create(expires_at=_ts(_later().seconds, -1)),
            "merchant",
            "expires_at.nanos is -1; it must be 0 to 999999999",
        ),
        (
            pay + "CreatePayment",
            create(expires_in=Duration(seconds=3600, nanos=-1)),
            "merchant",
            "expires_in has seconds 3600 and nanos -1 of different signs",
        ),
        (
            pay + "CreatePayment",
            create(expires_in=Duration(seconds=2**62)),
            "merchant",
            "expires_in is outside ±315576000000 seconds",
        ),
        (
            pay + "CreatePayment",
            create(expires_in=Duration(seconds=3600, nanos=10**9)),
            "merchant",
            "expires_in.nanos is 1000000000",
        ),
        (pay + "CreatePayment", create(chain_id=big), "merchant", f"chain_id {too_big}"),
        (pay + "GetPayment", spb.GetPaymentRequest(payment_id=mine + "\x00"), "merchant", "payment_id contains a NUL"),
        (
            pay + "CancelPayment",
            spb.CancelPaymentRequest(payment_id=mine, reason="why\x00"),
            "merchant",
            "reason contains a NUL",
        ),
        (pay + "ListPayments", spb.ListPaymentsRequest(page_token="\x00"), "merchant", "page_token contains a NUL"),
        (
            pay + "ListPayments",
            spb.ListPaymentsRequest(merchant_order_id="o\x00"),
            "merchant",
            "merchant_order_id contains a NUL",
        ),
        (pay + "ListPayments", spb.ListPaymentsRequest(chain_id=big), "merchant", f"chain_id {too_big}"),
        (
            pay + "ListPayments",
            spb.ListPaymentsRequest(created_after=_ts(-62_135_596_801)),
            "merchant",
            "created_after is outside 0001-01-01..9999-12-31",
        ),
        (
            pay + "ListPayments",
            spb.ListPaymentsRequest(created_before=_ts(253_402_300_800)),
            "merchant",
            "created_before is outside 0001-01-01..9999-12-31",
        ),
        (
            pay + "ListPayments",
            spb.ListPaymentsRequest(created_before=_ts(0, 10**9)),
            "merchant",
            "created_before.nanos is 1000000000",
        ),
        (pay + "WatchPayment", spb.WatchPaymentRequest(payment_id="\x00"), "merchant", "payment_id contains a NUL"),
        (
            adm + "CreateMerchant",
            apb.CreateMerchantRequest(name="Shop\x00", xpub=fresh_xpub()[0]),
            "admin",
            "name contains a NUL",
        ),
        (adm + "GetMerchant", apb.GetMerchantRequest(merchant_id="mch_\x00"), "admin", "merchant_id contains a NUL"),
        (
            adm + "DisableMerchant",
            apb.DisableMerchantRequest(merchant_id="\x00"),
            "admin",
            "merchant_id contains a NUL",
        ),
        (adm + "ListMerchants", apb.ListMerchantsRequest(page_token="\x00"), "admin", "page_token contains a NUL"),
        (
            adm + "SetWebhook",
            apb.SetWebhookRequest(merchant_id=h.target.merchant_id, webhook_secret="s" * 20 + "\x00"),
            "admin",
            "webhook_secret contains a NUL",
        ),
        (
            adm + "SetTreasury",
            apb.SetTreasuryRequest(
                merchant_id=h.target.merchant_id, treasury=apb.Treasury(chain_id=big, address="0x" + "1" * 40)
            ),
            "admin",
            f"treasury.chain_id {too_big}",
        ),
        (
            internal + "ClaimSweeps",
            ipb.ClaimSweepsRequest(chain_id=31337, worker_id="w\x00", limit=1, lease_seconds=60),
            "internal",
            "worker_id contains a NUL",
        ),
        (
            internal + "ReleaseSweep",
            ipb.ReleaseSweepRequest(payment_id=mine + "\x00", worker_id="w"),
            "internal",
            "payment_id contains a NUL",
        ),
        (
            internal + "ListSweepTransactions",
            ipb.ListSweepTransactionsRequest(chain_id=big),
            "internal",
            f"chain_id {too_big}",
        ),
        (
            internal + "ListSweepTransactions",
            ipb.ListSweepTransactionsRequest(merchant_id="\x00"),
            "internal",
            "merchant_id contains a NUL",
        ),
        (adm + "LookupPayment", apb.LookupPaymentRequest(payment_id="\x00"), "admin", "payment_id contains a NUL"),
        (
            "/paymesh.ledger.v1.MerchantDirectoryService/GetWebhookTarget",
            dpb.GetWebhookTargetRequest(merchant_id="\x00"),
            "directory",
            "merchant_id contains a NUL",
        ),
        (
            internal + "RequestSweep",
            ipb.RequestSweepRequest(payment_id="\x00"),
            "internal",
            "payment_id contains a NUL",
        ),
        (
            internal + "UpdateSweepTransaction",
            ipb.UpdateSweepTransactionRequest(
                tx_hash=random_hash(), state=ipb.SWEEP_TRANSACTION_STATE_MINED, block_number=big
            ),
            "internal",
            f"block_number {too_big}",
        ),
        (
            "/paymesh.ledger.v1.AddressFeedService/WatchAddresses",
            fpb.WatchAddressesRequest(chain_id=big),
            "feed",
            f"chain_id {too_big}",
        ),
        (
            "/paymesh.listener.v1.ListenerService/Rescan",
            lpb.RescanRequest(chain_id=31337, from_block=big, to_block=big),
            "admin",
            f"from_block {too_big}",
        ),
        (
            "/paymesh.sweeper.v1.SweeperService/ListSweeps",
            wpb.ListSweepsRequest(payment_id="\x00"),
            "admin",
            "payment_id contains a NUL",
        ),
        (
            "/paymesh.sweeper.v1.SweeperService/SweepNow",
            wpb.SweepNowRequest(merchant_id="mch\x00"),
            "admin",
            "merchant_id contains a NUL",
        ),
        (
            "/paymesh.notifier.v1.NotifierService/ListDeliveries",
            npb.ListDeliveriesRequest(page_token="\x00"),
            "admin",
            "page_token contains a NUL",
        ),
        (
            "/paymesh.notifier.v1.NotifierService/ListDeliveries",
            npb.ListDeliveriesRequest(state=99),
            "admin",
            "state is 99, which is not a DeliveryState value",
        ),
    ]


def _method(full: str) -> tuple[ServiceDescriptor, MethodDescriptor]:
    service_name, _, method_name = full.lstrip("/").rpartition("/")
    service = next(s for s in SERVICES if s.full_name == service_name)
    return service, service.methods_by_name[method_name]


async def test_unstorable_input_is_refused_where_it_enters(harness):
    h = harness
    creds = {
        "merchant": h.caller.auth,
        "admin": bearer(ADMIN_TOKEN),
        "internal": bearer(SWEEP_LEDGER_TOKEN),
        "directory": bearer(MERCHANT_DIRECTORY_TOKEN),
        "feed": bearer(ADDRESS_FEED_TOKEN),
    }
    before = await h.fingerprint()
    wrong = []
    for full, request, who, expected in _issue_12_cases(h):
        service, method = _method(full)
        code, details = await h.call(service, method, request, creds[who])
        if code != C.INVALID_ARGUMENT or expected not in details:
            wrong.append(f"{full} {request!r}: {code.name} {details!r} (wanted INVALID_ARGUMENT with {expected!r})")
    assert not wrong, "\n".join(wrong)
    assert await h.fingerprint() == before


async def test_what_fuzzing_found(harness):
    """Found by the property below; each failed before its fix."""
    h = harness
    internal = "/paymesh.ledger.v1.SweepLedgerService/"
    cases = [
        # The message quoted the id: 5,000 emoji, percent-encoded, passed the client's
        # metadata limit and it got RESOURCE_EXHAUSTED "Stream removed" instead.
        (
            "/paymesh.ledger.v1.MerchantAdminService/GetMerchant",
            apb.GetMerchantRequest(merchant_id="\U0001f4a5" * 5000),
            bearer(ADMIN_TOKEN),
            C.NOT_FOUND,
            "not found",
        ),
        (
            "/paymesh.ledger.v1.PaymentService/CancelPayment",
            spb.CancelPaymentRequest(payment_id="\u00e9" * 5000),
            h.caller.auth,
            C.NOT_FOUND,
            "not found",
        ),
        (
            internal + "ReleaseSweep",
            ipb.ReleaseSweepRequest(payment_id=h.caller_payment, worker_id="\U0001f4a5" * 3000),
            bearer(SWEEP_LEDGER_TOKEN),
            C.FAILED_PRECONDITION,
            "does not hold the sweep lease",
        ),
    ]
    before = await h.fingerprint()
    wrong = []
    for full, request, metadata, expected, text in cases:
        service, method = _method(full)
        code, details = await h.call(service, method, request, metadata)
        if code != expected or text not in details or len(details.encode()) > 1024:
            wrong.append(f"{full}: {code.name} {details[:300]!r} (wanted {expected.name} with {text!r})")
    assert not wrong, "\n".join(wrong)
    assert await h.fingerprint() == before


def _token(created_at: str, row_id, **extra) -> str:
    raw = json.dumps({"t": created_at, "i": row_id, **extra}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


async def test_page_tokens_made_by_hand_are_refused(harness):
    """A page token is base64 JSON: decodable by anyone, so its parts reach the
    queries unless checked: a NUL in the id, an id beyond BIGINT, a time that
    leaves 0001..9999 once converted to UTC, an id of the wrong type."""
    h = harness
    sweeper_filter = hashlib.sha256(json.dumps(["None"] * 4).encode()).hexdigest()[:16]  # the notifier's, no filters
    now = "2024-01-01T00:00:00+00:00"
    string_ids = [
        _token(now, "pay_\u0000"),
        _token("0001-01-01T00:00:00+14:00", "x"),
        _token("9999-12-31T23:59:59-14:00", "x"),
        _token(now, True),
        _token(now, 5),
    ]
    int_ids = [
        _token(now, 2**70),
        _token(now, -(2**70)),
        _token("0001-01-01T00:00:00+14:00", 5),
        _token(now, "x"),
        _token(now, True),
    ]
    delivery = "6f1c2a7e-0000-4000-8000-000000000000"
    notifier = [
        _token("0001-01-01T00:00:00+14:00", delivery, f=sweeper_filter),
        _token("9999-12-31T23:59:59-14:00", delivery, f=sweeper_filter),
    ]
    admin, internal = bearer(ADMIN_TOKEN), bearer(SWEEP_LEDGER_TOKEN)
    calls = [
        ("/paymesh.ledger.v1.PaymentService/ListPayments", spb.ListPaymentsRequest, h.caller.auth, string_ids),
        ("/paymesh.ledger.v1.MerchantAdminService/ListMerchants", apb.ListMerchantsRequest, admin, string_ids),
        (
            "/paymesh.ledger.v1.SweepLedgerService/ListSweepTransactions",
            ipb.ListSweepTransactionsRequest,
            internal,
            int_ids,
        ),
        ("/paymesh.sweeper.v1.SweeperService/ListSweeps", wpb.ListSweepsRequest, admin, int_ids),
        ("/paymesh.notifier.v1.NotifierService/ListDeliveries", npb.ListDeliveriesRequest, admin, notifier),
    ]
    before = await h.fingerprint()
    wrong = []
    for full, request_type, metadata, tokens in calls:
        service, method = _method(full)
        for token in tokens:
            code, details = await h.call(service, method, request_type(page_token=token), metadata)
            if code != C.INVALID_ARGUMENT or "page_token" not in details:
                wrong.append(f"{full} {base64.urlsafe_b64decode(token + '==')!r}: {code.name} {details}")
    assert not wrong, "\n".join(wrong)
    assert await h.fingerprint() == before


# ------------------------------------------------------------------ 2. the property over every RPC


async def _accepted_credentials(h: Harness, service: ServiceDescriptor, method: MethodDescriptor) -> dict[str, tuple]:
    """Which of the three credentials the method accepts: those whose answer to an
    empty request (every field at its default, which no RPC acts on) is not the
    answer a made-up token gets."""
    full = f"{service.full_name}/{method.name}"
    if full not in h.credentials:
        candidates = {
            "merchant": h.caller.auth,
            "admin": bearer(ADMIN_TOKEN),
            **{name: bearer(token) for name, token in SERVICE_TOKENS.items()},
        }
        request = message_factory.GetMessageClass(method.input_type)()
        refused = await h.call(service, method, request, bearer("not-a-credential-of-this-mesh"))
        assert refused[0] in (C.UNAUTHENTICATED, C.PERMISSION_DENIED), f"{full} accepts a made-up token: {refused}"
        accepted = {}
        for name, metadata in candidates.items():
            if await h.call(service, method, request, metadata) != refused:
                accepted[name] = metadata
        h.credentials[full] = accepted
    return h.credentials[full]


@pytest.mark.parametrize(("service", "method"), RPCS, ids=[f"{s.name}.{m.name}" for s, m in RPCS])
async def test_no_rpc_fails_inside_or_stores_on_failure(harness, service, method):
    h = harness
    assert service.full_name in h.process_of, f"{service.full_name} is generated but no process of the mesh serves it"
    credentials = await _accepted_credentials(h, service, method)
    assert credentials, f"{service.full_name}/{method.name} accepts none of the merchant, admin or service credentials"
    loop = asyncio.get_running_loop()
    strategies = MessageStrategies(h.hints)
    names = sorted(credentials)
    last: list[tuple | None] = [None]
    seen: Counter[str] = Counter()  # how far the calls got, printed (pytest -rP shows it)
    samples: dict[str, str] = {}

    def run(coro):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=120)

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)
    @given(request=strategies.messages(method.input_type), who=st.sampled_from(names))
    def property_(request, who):
        if last[0] is None:
            last[0] = run(h.fingerprint())
        code, details = run(h.call(service, method, request, credentials[who]))
        seen[code.name] += 1
        samples.setdefault(code.name, details[:200])
        assert code not in NEVER, f"{code.name}: {details}"
        if code == C.DEADLINE_EXCEEDED:
            assert method.server_streaming, f"the call did not answer within {UNARY_DEADLINE} s"
        elif code == C.OK:
            run(h.settle())  # a valid request may change state; let its consequences land
            last[0] = None
            return
        else:
            assert details, f"{code.name} without a message"
        after = run(h.fingerprint())
        assert after == last[0], f"a call that failed ({code.name}: {details}) changed stored state"

    await asyncio.to_thread(property_)
    print(f"{service.name}/{method.name}:", ", ".join(f"{k} {v}" for k, v in seen.most_common()))
    for code, details in samples.items():
        print(f"  {code}: {details}")
