"""The merchant API over HTTP/JSON (the Connect protocol) beside gRPC, on a real ledger
(Postgres, NATS): one table of cases, two transports, the same outcome (status code,
message, ErrorInfo reason, reply). Plain httpx and the real curl; a server stream
(WatchPayment) too. Every wait is bounded; nothing asserts a duration."""

from __future__ import annotations

import asyncio
import json
import shutil
import struct

import httpx
import pytest
from paymesh.ledger.v1 import api_key_service_pb2 as kpb
from paymesh.ledger.v1 import api_key_service_pb2_grpc as kgrpc
from paymesh.ledger.v1 import payment_pb2 as pb

from services.common.connect_gateway import procedures
from services.ledger.app import MERCHANT_SERVICES
from tests.support.connect import http_url, over_grpc, over_http
from tests.support.procs import run_command

pytestmark = pytest.mark.asyncio(loop_scope="session")

PROCEDURES = procedures(MERCHANT_SERVICES)
ADDRESS = "0x" + "ab" * 20


def cases(merchant, reader_auth):
    """(path, request JSON, auth, expected code) — the whole merchant API's shapes."""
    pay, link, payout = "/paymesh.ledger.v1.PaymentService/", "/paymesh.ledger.v1.PaymentLinkService/", ""
    payout = "/paymesh.ledger.v1.PayoutService/"
    keys, events = "/paymesh.ledger.v1.ApiKeyService/", "/paymesh.events.v1.EventService/"
    audit = "/paymesh.ledger.v1.AuditService/"
    auth, nobody = (merchant.auth if merchant else ()), (("authorization", "Bearer nope"),)
    eth = {"chainId": "31337", "asset": "ETH"}
    unknown = {"paymentId": "pay_" + "0" * 32}
    return [
        (pay + "CreatePayment", {**eth, "amount": "1000", "idempotencyKey": "two-transports"}, auth, "ok"),
        (pay + "CreatePayment", {**eth, "amount": "1e3"}, auth, "invalid_argument"),
        (pay + "CreatePayment", {"chain_id": 31337, "asset": "ETH", "amount": "5"}, reader_auth, "permission_denied"),
        (pay + "GetPayment", unknown, auth, "not_found"),
        (pay + "GetPayment", unknown, nobody, "unauthenticated"),
        (pay + "ListPayments", {"pageSize": 2}, reader_auth, "ok"),
        (link + "CreatePaymentLink", {"description": "x"}, auth, "invalid_argument"),
        (payout + "CreateRefund", {**unknown, "amount": "1", "destination": ADDRESS}, auth, "not_found"),
        (payout + "CreatePayout", {**eth, "amount": "1", "destination": ADDRESS}, reader_auth, "permission_denied"),
        (payout + "ListPayouts", {}, auth, "ok"),
        (keys + "CreateApiKey", {"name": "x", "scopes": []}, auth, "invalid_argument"),
        (events + "ListEvents", {"pageSize": 5}, auth, "ok"),
        (pay + "CancelPayment", unknown, auth, "not_found"),
        (pay + "RequotePayment", unknown, auth, "not_found"),
        (pay + "ResolvePayment", unknown, auth, "invalid_argument"),
        (link + "GetPaymentLink", {"linkId": "lnk_" + "0" * 32}, auth, "not_found"),
        (link + "DeactivatePaymentLink", {"linkId": "lnk_" + "0" * 32}, auth, "not_found"),
        (payout + "GetRefund", {"refundId": "po_" + "0" * 32}, auth, "not_found"),
        (payout + "ListRefunds", {}, reader_auth, "ok"),
        (payout + "CreatePayoutBatch", {**eth, "items": []}, auth, "invalid_argument"),
        (payout + "GetPayout", {"payoutId": "po_" + "0" * 32}, auth, "not_found"),
        (payout + "CancelPayout", {"payoutId": "po_" + "0" * 32}, auth, "not_found"),
        (payout + "GetPayoutWallet", {"chainId": "999"}, auth, "invalid_argument"),
        (payout + "ApprovePayout", {"payoutId": "po_" + "0" * 32}, auth, "not_found"),
        (keys + "ListApiKeys", {}, auth, "ok"),
        (keys + "RevokeApiKey", {"keyId": "key_" + "0" * 32}, auth, "not_found"),
        (audit + "ListAuditEntries", {"pageSize": 3}, auth, "ok"),
        (audit + "ListAuditEntries", {}, reader_auth, "permission_denied"),
        (audit + "ListConfigChanges", {}, auth, "ok"),
        (audit + "CancelConfigChange", {"changeId": "chg_" + "0" * 32}, auth, "not_found"),
    ]


# The webhook endpoint RPCs have their own table, run over both transports the same
# way (tests/integration/test_webhook_endpoints.py); WatchPayment is a stream (below).
ELSEWHERE = {p for p in PROCEDURES if "WebhookEndpointService" in p} | {
    "/paymesh.ledger.v1.PaymentService/WatchPayment"
}


async def test_the_table_covers_every_merchant_rpc():
    covered = {path for path, *_ in cases(None, ())} | ELSEWHERE
    assert set(PROCEDURES) == covered, sorted(set(PROCEDURES) - covered)


async def test_one_table_two_transports_same_outcome(ledger, ledger_channel, merchant):
    reader = await kgrpc.ApiKeyServiceStub(ledger_channel).CreateApiKey(
        kpb.CreateApiKeyRequest(name="reader", scopes=[kpb.API_KEY_SCOPE_PAYMENTS_READ]), metadata=merchant.auth
    )
    reader_auth = (("authorization", f"Bearer {reader.secret}"),)
    for path, body, auth, expected in cases(merchant, reader_auth):
        via_grpc = await over_grpc(ledger_channel, path, body, auth)
        via_http = await over_http(ledger, path, body, auth)
        assert via_grpc[0] == expected, (path, via_grpc)
        assert via_http[:3] == via_grpc[:3], (path, via_http, via_grpc)  # code, message, reason
        if path.endswith("CreatePayment") and expected == "ok":  # the same idempotency key: the same payment
            assert via_http[3]["payment"]["paymentId"] == via_grpc[3]["payment"]["paymentId"]
            assert via_http[3]["payment"]["amountDue"] == "1000" and via_http[3]["created"] is False


async def test_protocol_errors_are_clear(ledger, merchant):
    auth = {"Authorization": merchant.auth[0][1]}
    async with httpx.AsyncClient() as client:
        path = "/paymesh.ledger.v1.PaymentService/GetPayment"
        wrong_type = await client.post(
            http_url(ledger, path), content="{}", headers={**auth, "Content-Type": "text/plain"}
        )
        assert wrong_type.status_code == 415 and "application/json" in wrong_type.text
        broken = await client.post(
            http_url(ledger, path), content="{not json", headers={**auth, "Content-Type": "application/json"}
        )
        assert broken.status_code == 400 and broken.json()["code"] == "invalid_argument"
        assert "GetPaymentRequest" in broken.json()["message"]
        unknown_field = await client.post(
            http_url(ledger, path), json={"paymentID": "x"}, headers={**auth, "Content-Type": "application/json"}
        )
        assert unknown_field.status_code == 400 and "paymentID" in unknown_field.json()["message"]
        admin = await client.post(
            http_url(ledger, "/paymesh.ledger.v1.MerchantAdminService/ListMerchants"),
            json={},
            headers={**auth, "Content-Type": "application/json"},
        )
        assert admin.status_code == 404 and admin.json()["code"] == "unimplemented"  # not a merchant procedure


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl on this machine")
async def test_the_real_curl_creates_a_payment(ledger, merchant):
    code, out, err = await run_command(
        "curl",
        "-sS",
        "-H",
        "Content-Type: application/json",
        "-H",
        f"Authorization: {merchant.auth[0][1]}",
        "-d",
        '{"chainId": "31337", "asset": "ETH", "amount": "4242", "idempotencyKey": "curl-1"}',
        http_url(ledger, "/paymesh.ledger.v1.PaymentService/CreatePayment"),
        within=30,
    )
    assert code == 0, err
    payment = json.loads(out)["payment"]
    assert payment["amountDue"] == "4242" and payment["status"] == "PAYMENT_STATUS_PENDING"
    assert payment["depositAddress"].startswith("0x")


def envelope(flags: int, data: bytes) -> bytes:
    return struct.pack(">BI", flags, len(data)) + data


def frames(raw: bytes) -> list[tuple[int, dict]]:
    out = []
    while raw:
        flags, length = struct.unpack(">BI", raw[:5])
        out.append((flags, json.loads(raw[5 : 5 + length])))
        raw = raw[5 + length :]
    return out


async def test_watch_payment_streams_over_connect_until_the_payment_is_final(ledger, merchant):
    payment = await merchant.create(amount="777")
    headers = {"Content-Type": "application/connect+json", "Authorization": merchant.auth[0][1]}
    body = envelope(0, json.dumps({"paymentId": payment.payment_id}).encode())
    async with httpx.AsyncClient(timeout=30) as client:

        async def watch() -> bytes:
            reply = await client.post(
                http_url(ledger, "/paymesh.ledger.v1.PaymentService/WatchPayment"), content=body, headers=headers
            )
            assert reply.status_code == 200 and reply.headers["content-type"].startswith("application/connect+json")
            return reply.content

        watching = asyncio.create_task(watch())
        await asyncio.sleep(0.5)
        cancel = await client.post(
            http_url(ledger, "/paymesh.ledger.v1.PaymentService/CancelPayment"),
            json={"paymentId": payment.payment_id, "reason": "test"},
            headers={"Content-Type": "application/json", "Authorization": merchant.auth[0][1]},
        )
        assert cancel.status_code == 200 and cancel.json()["payment"]["status"] == "PAYMENT_STATUS_CANCELLED"
        raw = await asyncio.wait_for(watching, timeout=20)
    got = frames(raw)
    assert got[-1] == (0x02, {})  # the end of the stream, no error
    statuses = [f["payment"]["status"] for flags, f in got[:-1]]
    assert statuses[0] == "PAYMENT_STATUS_PENDING" and statuses[-1] == "PAYMENT_STATUS_CANCELLED"
    # An error in a stream comes in the end-of-stream envelope, with the gRPC code.
    async with httpx.AsyncClient(timeout=30) as client:
        bad = await client.post(
            http_url(ledger, "/paymesh.ledger.v1.PaymentService/WatchPayment"),
            content=envelope(0, json.dumps({"paymentId": "pay_" + "2" * 32}).encode()),
            headers=headers,
        )
    (end,) = frames(bad.content)
    assert end[0] == 0x02 and end[1]["error"]["code"] == "not_found"
    assert pb.PAYMENT_STATUS_CANCELLED  # the enum the JSON names
