"""Scoped API keys on a real ledger (Postgres, NATS): many keys per merchant, scopes
enforced from one table for every merchant RPC, expiry, revocation with overlap,
self-service with the keys scope, the operator over any merchant, and an approval
that needs a second key. Every wait is bounded; nothing asserts a duration."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from eth_account import Account
from google.protobuf.timestamp_pb2 import Timestamp
from paymesh.ledger.v1 import api_key_service_pb2 as kpb
from paymesh.ledger.v1 import api_key_service_pb2_grpc as kgrpc
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import merchant_admin_service_pb2_grpc as agrpc
from paymesh.ledger.v1 import merchant_directory_service_pb2 as dpb
from paymesh.ledger.v1 import merchant_directory_service_pb2_grpc as dgrpc
from paymesh.ledger.v1 import payment_service_pb2 as spb
from paymesh.ledger.v1 import payout_pb2 as popb
from paymesh.ledger.v1 import payout_service_pb2 as pspb
from paymesh.ledger.v1 import payout_service_pb2_grpc as psgrpc

from tests.support.ledger import ADMIN_TOKEN, MERCHANT_DIRECTORY_TOKEN, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

S = kpb.ApiKeyScope


def at(delta: timedelta) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC) + delta)
    return stamp


async def new_key(channel, auth, *scopes, name="k", merchant_id="", expires_in: timedelta | None = None):
    request = kpb.CreateApiKeyRequest(merchant_id=merchant_id, name=name, scopes=list(scopes))
    if expires_in is not None:
        request.expires_at.CopyFrom(at(expires_in))
    return await kgrpc.ApiKeyServiceStub(channel).CreateApiKey(request, metadata=auth)


async def denied(call, scope: str):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, err.value.details()
    assert scope in err.value.details(), err.value.details()


async def test_a_read_only_key_reads_and_cannot_write(ledger_channel, merchant):
    reply = await new_key(ledger_channel, merchant.auth, S.API_KEY_SCOPE_PAYMENTS_READ, name="dashboard")
    assert reply.secret and reply.api_key.prefix and reply.api_key.created_by.startswith("key_")
    assert list(reply.api_key.scopes) == [S.API_KEY_SCOPE_PAYMENTS_READ]
    reader = bearer(reply.secret)
    payments = merchant.payments
    made = await merchant.create(amount="1000")
    got = await payments.GetPayment(spb.GetPaymentRequest(payment_id=made.payment_id), metadata=reader)
    assert got.payment.payment_id == made.payment_id
    await denied(
        payments.CreatePayment(spb.CreatePaymentRequest(chain_id=31337, asset="ETH", amount="5"), metadata=reader),
        "payments:write",
    )
    await denied(
        psgrpc.PayoutServiceStub(ledger_channel).CreatePayout(
            pspb.CreatePayoutRequest(chain_id=31337, asset="ETH", amount="5", destination=Account.create().address),
            metadata=reader,
        ),
        "payouts:write",
    )
    await denied(new_key(ledger_channel, reader, S.API_KEY_SCOPE_PAYMENTS_READ), "keys:manage")
    # The notifier learns the scopes with the merchant (it enforces webhooks:manage itself).
    directory = dgrpc.MerchantDirectoryServiceStub(ledger_channel)
    seen = await directory.AuthenticateApiKey(
        dpb.AuthenticateApiKeyRequest(api_key=reply.secret), metadata=bearer(MERCHANT_DIRECTORY_TOKEN)
    )
    assert seen.merchant_id == merchant.merchant_id and list(seen.scopes) == [S.API_KEY_SCOPE_PAYMENTS_READ]


async def test_a_key_cannot_grant_more_than_it_has(ledger_channel, merchant):
    manager = await new_key(ledger_channel, merchant.auth, S.API_KEY_SCOPE_KEYS_MANAGE, S.API_KEY_SCOPE_PAYMENTS_READ)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await new_key(ledger_channel, bearer(manager.secret), S.API_KEY_SCOPE_PAYOUTS_WRITE)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "payouts:write" in err.value.details()
    for bad, says in (((), "at least one scope"), ((S.API_KEY_SCOPE_UNSPECIFIED,), "scopes[0]")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await new_key(ledger_channel, merchant.auth, *bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and says in err.value.details()


async def test_rotation_with_overlap_and_expiry(ledger_channel, merchant):
    keys = kgrpc.ApiKeyServiceStub(ledger_channel)
    old = await new_key(ledger_channel, merchant.auth, S.API_KEY_SCOPE_PAYMENTS_READ, name="old")
    new = await new_key(ledger_channel, merchant.auth, S.API_KEY_SCOPE_PAYMENTS_READ, name="new")
    # The old key keeps working for 2 more seconds, then stops; the new one goes on.
    revoked = await keys.RevokeApiKey(
        kpb.RevokeApiKeyRequest(key_id=old.api_key.key_id, revoke_at=at(timedelta(seconds=2))), metadata=merchant.auth
    )
    assert revoked.api_key.HasField("revoked_at")
    listing = spb.ListPaymentsRequest(page_size=1)
    await merchant.payments.ListPayments(listing, metadata=bearer(old.secret))  # still in the overlap
    with pytest.raises(grpc.aio.AioRpcError) as err:  # the revocation can only come sooner
        await keys.RevokeApiKey(
            kpb.RevokeApiKeyRequest(key_id=old.api_key.key_id, revoke_at=at(timedelta(days=1))), metadata=merchant.auth
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await asyncio.sleep(2.2)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await merchant.payments.ListPayments(listing, metadata=bearer(old.secret))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked at" in err.value.details()
    await merchant.payments.ListPayments(listing, metadata=bearer(new.secret))
    short = await new_key(
        ledger_channel, merchant.auth, S.API_KEY_SCOPE_PAYMENTS_READ, expires_in=timedelta(seconds=1), name="short"
    )
    await merchant.payments.ListPayments(listing, metadata=bearer(short.secret))
    await asyncio.sleep(1.2)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await merchant.payments.ListPayments(listing, metadata=bearer(short.secret))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and "expired at" in err.value.details()
    listed = await keys.ListApiKeys(kpb.ListApiKeysRequest(), metadata=merchant.auth)
    names = {k.name for k in listed.api_keys}
    assert {"primary", "old", "new", "short"} <= names
    assert all(k.merchant_id == merchant.merchant_id for k in listed.api_keys)
    used = next(k for k in listed.api_keys if k.name == "new")
    assert used.HasField("last_used_at")


async def test_a_merchant_sees_and_revokes_only_its_own_keys_the_operator_any(ledger_channel, merchant, other_merchant):
    keys = kgrpc.ApiKeyServiceStub(ledger_channel)
    theirs = await new_key(ledger_channel, other_merchant.auth, S.API_KEY_SCOPE_PAYMENTS_READ)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await keys.RevokeApiKey(kpb.RevokeApiKeyRequest(key_id=theirs.api_key.key_id), metadata=merchant.auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await keys.ListApiKeys(kpb.ListApiKeysRequest(merchant_id=other_merchant.merchant_id), metadata=merchant.auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    admin = bearer(ADMIN_TOKEN)
    listed = await keys.ListApiKeys(kpb.ListApiKeysRequest(merchant_id=other_merchant.merchant_id), metadata=admin)
    assert theirs.api_key.key_id in {k.key_id for k in listed.api_keys}
    await keys.RevokeApiKey(kpb.RevokeApiKeyRequest(key_id=theirs.api_key.key_id), metadata=admin)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await other_merchant.payments.ListPayments(spb.ListPaymentsRequest(), metadata=bearer(theirs.secret))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    made = await new_key(
        ledger_channel, admin, S.API_KEY_SCOPE_PAYMENTS_READ, merchant_id=other_merchant.merchant_id, name="by-op"
    )
    assert made.api_key.created_by == "operator"


async def test_the_operators_rotation_ends_every_key_and_issues_a_full_one(ledger_channel, merchant):
    extra = await new_key(ledger_channel, merchant.auth, S.API_KEY_SCOPE_PAYMENTS_READ)
    rotated = await agrpc.MerchantAdminServiceStub(ledger_channel).RotateApiKey(
        apb.RotateApiKeyRequest(merchant_id=merchant.merchant_id), metadata=bearer(ADMIN_TOKEN)
    )
    for old in (merchant.api_key, extra.secret):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await merchant.payments.ListPayments(spb.ListPaymentsRequest(), metadata=bearer(old))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await merchant.payments.CreatePayment(
        spb.CreatePaymentRequest(chain_id=31337, asset="ETH", amount="7"), metadata=bearer(rotated.api_key)
    )


async def test_an_approval_needs_a_second_key_with_the_approve_scope(ledger_channel, merchant):
    await agrpc.MerchantAdminServiceStub(ledger_channel).SetPayoutPolicy(
        apb.SetPayoutPolicyRequest(
            merchant_id=merchant.merchant_id,
            limits=[apb.AssetPayoutLimits(chain_id=31337, asset="ETH", approval_above="0")],
        ),
        metadata=bearer(ADMIN_TOKEN),
    )
    clerk = await new_key(ledger_channel, merchant.auth, S.API_KEY_SCOPE_PAYOUTS_WRITE, S.API_KEY_SCOPE_PAYOUTS_APPROVE)
    boss = await new_key(ledger_channel, merchant.auth, S.API_KEY_SCOPE_PAYOUTS_APPROVE, S.API_KEY_SCOPE_PAYMENTS_READ)
    api = psgrpc.PayoutServiceStub(ledger_channel)
    payout = (
        await api.CreatePayout(
            pspb.CreatePayoutRequest(chain_id=31337, asset="ETH", amount="9", destination=Account.create().address),
            metadata=bearer(clerk.secret),
        )
    ).payout
    assert payout.state == popb.PAYOUT_STATE_REQUESTED
    approve = pspb.PayoutServiceApprovePayoutRequest(payout_id=payout.payout_id)
    with pytest.raises(grpc.aio.AioRpcError) as err:  # the same key that asked for it
        await api.ApprovePayout(approve, metadata=bearer(clerk.secret))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "another key" in err.value.details()
    done = (await api.ApprovePayout(approve, metadata=bearer(boss.secret))).payout
    assert done.state == popb.PAYOUT_STATE_APPROVED and done.approved_by == boss.api_key.key_id
