"""Delayed changes of where money goes, on a real ledger (its own NATS and database)
with PAYMESH_CONFIG_CHANGE_DELAY_SECONDS set, and a real notifier: a treasury change
is announced to the merchant's webhook endpoint at once, can be cancelled by the
merchant in its window (and then never takes effect), and otherwise takes effect when
due, with its audit entries; the xpub the same; bad input gets clear statuses. Every
wait is bounded; nothing asserts a duration."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from eth_account import Account
from paymesh.ledger.v1 import audit_service_pb2 as aupb
from paymesh.ledger.v1 import audit_service_pb2_grpc as augrpc
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import merchant_admin_service_pb2_grpc as agrpc
from paymesh.ledger.v1 import webhook_endpoint_service_pb2 as wepb
from paymesh.ledger.v1 import webhook_endpoint_service_pb2_grpc as wegrpc

from services.ledger.app import LedgerApp
from services.notifier.verify import verify
from tests.integration.conftest import ledger_settings
from tests.support.ledger import ADMIN_TOKEN, bearer, create_merchant, eventually, fresh_xpub
from tests.support.webhooks import WebhookReceiver, ok, running_notifier
from tools import devstack

pytestmark = pytest.mark.asyncio(loop_scope="session")

DELAY = 3.0
ADMIN = bearer(ADMIN_TOKEN)
PENDING, APPLIED, CANCELLED = (
    aupb.CONFIG_CHANGE_STATE_PENDING,
    aupb.CONFIG_CHANGE_STATE_APPLIED,
    aupb.CONFIG_CHANGE_STATE_CANCELLED,
)


@pytest.fixture(scope="module")
def own_nats(stack_dir: Path) -> Iterator[devstack.Nats]:
    """Its own NATS: the session ledger consumes the shared one's chain events."""
    server = devstack.start_nats(stack_dir / f"nats-changes-{devstack.free_port()}")
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def delayed(postgres, own_nats, chains_file) -> AsyncIterator[LedgerApp]:
    settings = ledger_settings(
        postgres.create_database("ledger_config_changes"),
        own_nats.url,
        chains_file,
        config_change_delay_seconds=DELAY,
        config_change_interval_seconds=0.1,
    )
    app = LedgerApp(settings)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def channel(delayed) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{delayed.port}") as ch:
        yield ch


async def merchant_on(channel):
    xpub, account = fresh_xpub()
    return await create_merchant(channel, xpub, derivation_path=f"m/44'/60'/{account}'")


async def treasury_of(channel, merchant_id: str) -> str:
    got = await agrpc.MerchantAdminServiceStub(channel).GetMerchant(
        apb.GetMerchantRequest(merchant_id=merchant_id), metadata=ADMIN
    )
    return next((t.address for t in got.merchant.treasuries if t.chain_id == 31337), "")


async def test_a_treasury_change_is_announced_cancellable_in_its_window_and_applied_when_due(
    postgres, own_nats, delayed, channel
):
    admin, audit = agrpc.MerchantAdminServiceStub(channel), augrpc.AuditServiceStub(channel)
    async with running_notifier(postgres, own_nats.url, delayed.port) as _notifier, WebhookReceiver(ok()) as receiver:
        merchant = await merchant_on(channel)
        created = await wegrpc.WebhookEndpointServiceStub(channel).CreateWebhookEndpoint(
            wepb.CreateWebhookEndpointRequest(url=receiver.url, event_types=["merchant.config_changed"]),
            metadata=merchant.auth,
        )
        before = await treasury_of(channel, merchant.merchant_id)
        stolen = Account.create().address
        asked = await admin.SetTreasury(
            apb.SetTreasuryRequest(
                merchant_id=merchant.merchant_id, treasury=apb.Treasury(chain_id=31337, address=stolen)
            ),
            metadata=ADMIN,
        )
        change = asked.pending_change
        assert change.state == PENDING and change.action == "treasury.set" and change.target == "31337"
        assert change.after["address"] == stolen and change.created_by == "operator"
        assert await treasury_of(channel, merchant.merchant_id) == before  # nothing changed yet

        # The merchant's endpoint hears of it at once (signed, with the audit entry).
        def scheduled():
            found = [r for r in receiver.succeeded() if r.json()["data"]["audit"]["action"] == "treasury.scheduled"]
            return found[0] if found else None

        announcement = await receiver.wait_for(scheduled)
        event = verify(announcement.body, announcement.headers["paymesh-signature"], created.secret)
        assert event["type"] == "merchant.config_changed"
        assert event["data"]["audit"]["after"]["change_id"] == change.change_id
        assert event["data"]["audit"]["after"]["address"] == stolen

        # A second change of the same treasury while one waits is refused.
        with pytest.raises(grpc.aio.AioRpcError) as twice:
            await admin.SetTreasury(
                apb.SetTreasuryRequest(
                    merchant_id=merchant.merchant_id, treasury=apb.Treasury(chain_id=31337, address=stolen)
                ),
                metadata=ADMIN,
            )
        assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION and change.change_id in twice.value.details()

        # The merchant cancels it in its window, with its own key.
        cancelled = await audit.CancelConfigChange(
            aupb.CancelConfigChangeRequest(change_id=change.change_id), metadata=merchant.auth
        )
        assert cancelled.change.state == CANCELLED and cancelled.change.decided_by.startswith("key_")
        await receiver.wait_for(
            lambda: any(r.json()["data"]["audit"]["action"] == "treasury.cancelled" for r in receiver.succeeded())
        )
        with pytest.raises(grpc.aio.AioRpcError) as again:
            await audit.CancelConfigChange(
                aupb.CancelConfigChangeRequest(change_id=change.change_id), metadata=merchant.auth
            )
        assert (
            again.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "cancelled already" in again.value.details()
        )

        # A change that is not cancelled takes effect when due, recorded as it is applied.
        wanted = Account.create().address
        asked = await admin.SetTreasury(
            apb.SetTreasuryRequest(
                merchant_id=merchant.merchant_id, treasury=apb.Treasury(chain_id=31337, address=wanted)
            ),
            metadata=ADMIN,
        )

        async def applied():
            listed = await audit.ListConfigChanges(aupb.ListConfigChangesRequest(state=APPLIED), metadata=merchant.auth)
            return listed.changes or None

        done = await eventually(applied, timeout=DELAY + 15)
        assert [c.change_id for c in done] == [asked.pending_change.change_id]
        assert await treasury_of(channel, merchant.merchant_id) == wanted  # the cancelled one never applied
        assert done[0].decided_by == "ledger"
        entries = (
            await audit.ListAuditEntries(aupb.ListAuditEntriesRequest(page_size=50), metadata=merchant.auth)
        ).entries
        actions = [e.action for e in reversed(entries) if e.action.startswith("treasury.")]
        assert actions == ["treasury.scheduled", "treasury.cancelled", "treasury.scheduled", "treasury.set"]
        applied_entry = next(e for e in entries if e.action == "treasury.set")
        assert applied_entry.after["change_id"] == asked.pending_change.change_id
        assert applied_entry.actor == "operator" and applied_entry.after["address"] == wanted
        await receiver.wait_for(
            lambda: any(r.json()["data"]["audit"]["action"] == "treasury.set" for r in receiver.succeeded())
        )
        assert not [r for r in receiver.requests if r.status != 200]


async def test_an_xpub_change_waits_too_and_bad_input_is_refused(delayed, channel):
    admin, audit = agrpc.MerchantAdminServiceStub(channel), augrpc.AuditServiceStub(channel)
    merchant, other = await merchant_on(channel), await merchant_on(channel)
    new_xpub, account = fresh_xpub()
    asked = await admin.SetXpub(
        apb.SetXpubRequest(merchant_id=merchant.merchant_id, xpub=new_xpub, derivation_path=f"m/44'/60'/{account}'"),
        metadata=ADMIN,
    )
    assert asked.pending_change.state == PENDING and asked.merchant.xpub == merchant.xpub
    with pytest.raises(grpc.aio.AioRpcError) as theirs:
        await audit.CancelConfigChange(
            aupb.CancelConfigChangeRequest(change_id=asked.pending_change.change_id), metadata=other.auth
        )
    assert theirs.value.code() == grpc.StatusCode.NOT_FOUND
    for request, code in [
        (aupb.CancelConfigChangeRequest(change_id=""), grpc.StatusCode.INVALID_ARGUMENT),
        (aupb.CancelConfigChangeRequest(change_id="chg_" + "0" * 32), grpc.StatusCode.NOT_FOUND),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await audit.CancelConfigChange(request, metadata=ADMIN)
        assert bad.value.code() == code, bad.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as bad_state:
        await audit.ListConfigChanges(aupb.ListConfigChangesRequest(state=99), metadata=merchant.auth)
    assert bad_state.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as no_merchant:
        await audit.ListConfigChanges(aupb.ListConfigChangesRequest(), metadata=ADMIN)
    assert no_merchant.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The operator cancels; the xpub stays as it was after the window.
    cancelled = await audit.CancelConfigChange(
        aupb.CancelConfigChangeRequest(change_id=asked.pending_change.change_id), metadata=ADMIN
    )
    assert cancelled.change.state == CANCELLED and cancelled.change.decided_by == "operator"
    listed = await audit.ListConfigChanges(
        aupb.ListConfigChangesRequest(merchant_id=merchant.merchant_id, state=PENDING), metadata=ADMIN
    )
    assert not listed.changes
    got = await admin.GetMerchant(apb.GetMerchantRequest(merchant_id=merchant.merchant_id), metadata=ADMIN)
    assert got.merchant.xpub == merchant.xpub
