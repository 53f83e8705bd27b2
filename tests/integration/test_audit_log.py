"""The audit log on a real ledger (Postgres, NATS): every configuration RPC writes one
entry in the transaction of its change (who, what, before and after, never a
secret); the merchant reads its own log, the operator any; the table refuses to
rewrite an entry."""

from __future__ import annotations

import asyncpg
import grpc
import pytest
from eth_account import Account
from paymesh.events.v1 import event_service_pb2 as epb
from paymesh.events.v1 import event_service_pb2_grpc as egrpc
from paymesh.events.v1 import payment_events_pb2 as evpb
from paymesh.ledger.v1 import api_key_service_pb2 as kpb
from paymesh.ledger.v1 import api_key_service_pb2_grpc as kgrpc
from paymesh.ledger.v1 import audit_service_pb2 as aupb
from paymesh.ledger.v1 import audit_service_pb2_grpc as augrpc
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import merchant_admin_service_pb2_grpc as agrpc
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import payout_service_pb2 as pspb
from paymesh.ledger.v1 import payout_service_pb2_grpc as psgrpc

from tests.support.ledger import ADMIN_TOKEN, bearer, create_merchant, fresh_xpub

pytestmark = pytest.mark.asyncio(loop_scope="session")
ADMIN = bearer(ADMIN_TOKEN)


async def log_of(channel, merchant_id: str, auth=ADMIN) -> list[aupb.AuditEntry]:
    reply = await augrpc.AuditServiceStub(channel).ListAuditEntries(
        aupb.ListAuditEntriesRequest(merchant_id=merchant_id, page_size=100), metadata=auth
    )
    return list(reply.entries)


async def test_every_configuration_rpc_leaves_one_entry(ledger_channel, ledger):
    admin = agrpc.MerchantAdminServiceStub(ledger_channel)
    xpub, account = fresh_xpub()
    merchant = await create_merchant(ledger_channel, xpub, derivation_path=f"m/44'/60'/{account}'")
    mid = merchant.merchant_id
    treasury = Account.create().address
    new_xpub, new_account = fresh_xpub()
    secret = "a-brand-new-webhook-secret-0123456789"
    changes = [
        (
            admin.SetTreasury,
            apb.SetTreasuryRequest(merchant_id=mid, treasury=apb.Treasury(chain_id=31337, address=treasury)),
            "treasury.set",
        ),  # noqa: E501
        (
            admin.SetWebhook,
            apb.SetWebhookRequest(merchant_id=mid, webhook_url="https://shop.example/hook", webhook_secret=secret),
            "webhook.set",
        ),  # noqa: E501
        (
            admin.SetXpub,
            apb.SetXpubRequest(merchant_id=mid, xpub=new_xpub, derivation_path=f"m/44'/60'/{new_account}'"),
            "xpub.set",
        ),  # noqa: E501
        (
            admin.SetPaymentPolicy,
            apb.SetPaymentPolicyRequest(merchant_id=mid, policy=pb.PaymentPolicy(underpayment_tolerance_bps=50)),
            "payment_policy.set",
        ),  # noqa: E501
        (
            admin.SetPayoutPolicy,
            apb.SetPayoutPolicyRequest(
                merchant_id=mid, limits=[apb.AssetPayoutLimits(chain_id=31337, asset="ETH", approval_above="0")]
            ),
            "payout_policy.set",
        ),  # noqa: E501
        (admin.DisableMerchant, apb.DisableMerchantRequest(merchant_id=mid), "merchant.disabled"),
        (admin.EnableMerchant, apb.EnableMerchantRequest(merchant_id=mid), "merchant.enabled"),
    ]
    for rpc, request, action in changes:
        before = len(await log_of(ledger_channel, mid))
        await rpc(request, metadata=ADMIN)
        entries = await log_of(ledger_channel, mid)
        assert len(entries) == before + 1 and entries[0].action == action, (action, [e.action for e in entries])
        assert entries[0].actor == "operator"
    entries = {e.action: e for e in await log_of(ledger_channel, mid)}
    assert "merchant.created" in entries
    # A change of where money goes is also announced: a config_changed event, committed
    # with it (webhooks, NATS, ListEvents).
    events = await egrpc.EventServiceStub(ledger_channel).ListEvents(
        epb.ListEventsRequest(types=[evpb.PAYMENT_EVENT_TYPE_CONFIG_CHANGED], page_size=100), metadata=merchant.auth
    )
    assert [e.audit.action for e in events.events] == ["treasury.set", "xpub.set"]
    assert events.events[0].audit.after["address"] == treasury and events.events[0].audit.actor == "operator"
    assert entries["treasury.set"].target == "31337" and entries["treasury.set"].after["address"] == treasury
    assert entries["xpub.set"].before["xpub"] == xpub and entries["xpub.set"].after["xpub"] == new_xpub
    assert entries["webhook.set"].after["webhook_secret"] == "(changed)"
    rotated = await admin.RotateApiKey(apb.RotateApiKeyRequest(merchant_id=mid), metadata=ADMIN)
    key_auth = bearer(rotated.api_key)
    made = await kgrpc.ApiKeyServiceStub(ledger_channel).CreateApiKey(
        kpb.CreateApiKeyRequest(name="ci", scopes=[kpb.API_KEY_SCOPE_PAYOUTS_WRITE]), metadata=key_auth
    )
    await kgrpc.ApiKeyServiceStub(ledger_channel).RevokeApiKey(
        kpb.RevokeApiKeyRequest(key_id=made.api_key.key_id), metadata=key_auth
    )
    payout = (
        await psgrpc.PayoutServiceStub(ledger_channel).CreatePayout(
            pspb.CreatePayoutRequest(chain_id=31337, asset="ETH", amount="3", destination=Account.create().address),
            metadata=key_auth,
        )
    ).payout
    await admin.ApprovePayout(apb.ApprovePayoutRequest(payout_id=payout.payout_id), metadata=ADMIN)
    # The merchant reads its own log (a key with keys:manage); newest first.
    own = await log_of(ledger_channel, "", auth=key_auth)
    assert [e.action for e in own[:4]] == ["payout.approved", "api_key.revoked", "api_key.created", "api_keys.rotated"]
    primary_key_id = own[2].actor
    assert primary_key_id.startswith("key_") and own[2].target == made.api_key.key_id
    assert own[0].target == payout.payout_id and own[0].actor == "operator"
    # Never a secret: not the webhook secret, not an API key.
    text = str([(e.before, e.after) for e in own])
    assert secret not in text and rotated.api_key not in text and made.secret not in text


async def test_a_merchant_reads_only_its_own_log_and_entries_cannot_be_rewritten(
    ledger_channel, ledger, merchant, other_merchant
):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await log_of(ledger_channel, other_merchant.merchant_id, auth=merchant.auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    reader = await kgrpc.ApiKeyServiceStub(ledger_channel).CreateApiKey(
        kpb.CreateApiKeyRequest(name="r", scopes=[kpb.API_KEY_SCOPE_PAYMENTS_READ]), metadata=merchant.auth
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await log_of(ledger_channel, "", auth=bearer(reader.secret))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "keys:manage" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await log_of(ledger_channel, "")  # the operator names the merchant
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    url = ledger.settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(url)
    try:
        for sql in (
            "UPDATE audit_log SET actor = 'someone' WHERE merchant_id = $1",
            "DELETE FROM audit_log WHERE merchant_id = $1",
        ):  # noqa: E501
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute(sql, merchant.merchant_id)
    finally:
        await conn.close()
