"""Translation between ledger records and protobuf messages: the only place a
record becomes a message (API replies, and the PaymentEvent payloads the outbox
stores, adapters/repository/outbox.py), and where wire enums map to the domain's.
Pure functions of their input."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from google.protobuf.duration_pb2 import Duration
from google.protobuf.struct_pb2 import Struct
from paymesh.events.v1 import payment_events_pb2 as ev
from paymesh.ledger.v1 import address_feed_service_pb2 as fpb
from paymesh.ledger.v1 import api_key_service_pb2 as kpb
from paymesh.ledger.v1 import audit_service_pb2 as aupb
from paymesh.ledger.v1 import checkout_ledger_service_pb2 as cpb
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import payment_link_service_pb2 as lpb
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import payment_service_pb2 as spb
from paymesh.ledger.v1 import payout_ledger_service_pb2 as plpb
from paymesh.ledger.v1 import payout_pb2 as popb
from paymesh.ledger.v1 import sweep_ledger_service_pb2 as swpb
from paymesh.ledger.v1 import webhook_endpoint_service_pb2 as wepb

from services.common.errors import InvalidArgument
from services.common.timestamps import from_timestamp, to_timestamp
from services.common.webhook_types import webhook_type
from services.ledger.domain import policy as policies
from services.ledger.domain.payouts import (
    PayoutEventRecord,
    PayoutKind,
    PayoutRecord,
    PayoutSource,
    PayoutState,
    PayoutTxRecord,
)
from services.ledger.domain.policy import Policy, PolicyError
from services.ledger.domain.pricing import Price, format_decimal
from services.ledger.domain.records import (
    MerchantRecord,
    PaymentEventRecord,
    PaymentLinkRecord,
    PaymentOptionRecord,
    PaymentRecord,
    QuoteRecord,
    SweepJobRecord,
    SweepTxRecord,
    TransferRecord,
    WatchedAddressRecord,
)
from services.ledger.domain.scopes import Scope, parse_scopes
from services.ledger.domain.status import OptionStatus, PaymentStatus, Resolution

if TYPE_CHECKING:  # types only: the checkout use case imports the repository, which imports this
    from services.ledger.chain_events import HeadCache
    from services.ledger.checkout import CheckoutRecord

STATUS_TO_PB = {s: pb.PaymentStatus.Value(f"PAYMENT_STATUS_{s.name}") for s in PaymentStatus}
OPTION_STATUS_TO_PB = {s: pb.PaymentOptionStatus.Value(f"PAYMENT_OPTION_STATUS_{s.name}") for s in OptionStatus}
PB_TO_STATUS = {v: k for k, v in STATUS_TO_PB.items()}
TRANSFER_KIND_TO_PB = {"payment": pb.TRANSFER_KIND_PAYMENT, "gas_topup": pb.TRANSFER_KIND_GAS_TOPUP}
TRANSFER_STATE_TO_PB = {
    "seen": pb.TRANSFER_STATE_SEEN,
    "confirmed": pb.TRANSFER_STATE_CONFIRMED,
    "orphaned": pb.TRANSFER_STATE_ORPHANED,
}
SWEEP_KIND_TO_PB = {"gas_topup": swpb.SWEEP_TRANSACTION_KIND_GAS_TOPUP, "sweep": swpb.SWEEP_TRANSACTION_KIND_SWEEP}
PB_TO_SWEEP_KIND = {v: k for k, v in SWEEP_KIND_TO_PB.items()}
SWEEP_STATE_TO_PB = {
    "signed": swpb.SWEEP_TRANSACTION_STATE_SIGNED,
    "broadcast": swpb.SWEEP_TRANSACTION_STATE_BROADCAST,
    "mined": swpb.SWEEP_TRANSACTION_STATE_MINED,
    "confirmed": swpb.SWEEP_TRANSACTION_STATE_CONFIRMED,
    "failed": swpb.SWEEP_TRANSACTION_STATE_FAILED,
    "replaced": swpb.SWEEP_TRANSACTION_STATE_REPLACED,
}
PB_TO_SWEEP_STATE = {v: k for k, v in SWEEP_STATE_TO_PB.items()}
RESOLUTION_TO_PB = {Resolution.ACCEPTED: pb.RESOLUTION_ACCEPTED, Resolution.REFUND: pb.RESOLUTION_REFUND}
PB_TO_RESOLUTION = {v: k for k, v in RESOLUTION_TO_PB.items()}


ts = to_timestamp
from_ts = from_timestamp


def money_to_pb(amount: Decimal, price: Price) -> pb.Money:
    """An amount in the price's currency, written with its minor units."""
    return pb.Money(currency=price.currency.code, amount=format_decimal(amount, price.currency.minor_units))


def price_to_pb(price: Price | None) -> pb.Money | None:
    """A price as Money; None (the field stays unset) without one."""
    return None if price is None else money_to_pb(price.amount, price)


def value_to_pb(p: PaymentRecord, option: PaymentOptionRecord | None, units: int) -> pb.Money | None:
    """What `units` of an option's asset are worth at its locked quote, as Money in
    the payment's currency; None (the field stays unset) for a payment in base units."""
    value = None if option is None else p.option_value(option, units)
    return None if value is None or p.price is None else money_to_pb(value, p.price)


def option_to_pb(p: PaymentRecord, o: PaymentOptionRecord) -> pb.PaymentOption:
    return pb.PaymentOption(
        chain_id=o.chain_id,
        asset=o.asset,
        token_address=o.token_address or "",
        decimals=o.decimals,
        amount_due=str(o.amount_due),
        amount_minimum=str(p.option_minimum(o)),
        amount_received=str(o.amount_received),
        amount_confirmed=str(o.amount_confirmed),
        amount_swept=str(o.amount_swept),
        sweep_fee=str(o.sweep_fee),
        sweep_dust=str(o.sweep_dust),
        amount_refunded=str(o.amount_refunded),
        quote=quote_to_pb(o.quote) if o.quote is not None else None,
        value_confirmed=value_to_pb(p, o, o.amount_confirmed),
        confirmations_required=o.confirmations_required,
        status=OPTION_STATUS_TO_PB[o.status],
        selected=o.selected,
    )


def quote_to_pb(q: QuoteRecord) -> pb.Quote:
    return pb.Quote(
        asset=q.asset,
        currency=q.currency,
        rate=str(q.rate),
        source=q.source,
        observed_at=ts(q.observed_at),
        quoted_at=ts(q.quoted_at),
        expires_at=ts(q.expires_at),
    )


def duration(value: timedelta) -> Duration:
    d = Duration()
    d.FromTimedelta(value)
    return d


def policy_to_pb(policy: Policy) -> pb.PaymentPolicy:
    """A policy as given (a merchant's): only the fields it sets."""
    out = pb.PaymentPolicy(
        confirmations=[
            pb.ChainConfirmations(chain_id=c, confirmations=n) for c, n in sorted(policy.confirmations.items())
        ],
        confirmation_tiers=[
            pb.ConfirmationTier(min_price=money_to_pb(t.min_price.amount, t.min_price), confirmations=t.confirmations)
            for t in policy.tiers
        ],
    )
    if policy.tolerance_bps is not None:
        out.underpayment_tolerance_bps = policy.tolerance_bps
    if policy.watch_after_expiry is not None:
        out.watch_after_expiry.CopyFrom(duration(policy.watch_after_expiry))
    return out


def policy_from_pb(message: pb.PaymentPolicy, where: str) -> Policy:
    """A policy from the wire; a chain named twice or a tier that is not a price is
    InvalidArgument (the use case checks the rest against the chains)."""
    depths: dict[int, int] = {}
    for c in message.confirmations:
        if c.chain_id in depths:
            raise InvalidArgument(f"{where}.confirmations names chain {c.chain_id} twice")
        depths[c.chain_id] = c.confirmations
    try:
        tiers = tuple(
            policies.tier(t.min_price.currency, t.min_price.amount, t.confirmations, f"{where}.confirmation_tiers[{i}]")
            for i, t in enumerate(message.confirmation_tiers)
        )
    except PolicyError as err:
        raise InvalidArgument(str(err)) from None
    return Policy(
        tolerance_bps=message.underpayment_tolerance_bps if message.HasField("underpayment_tolerance_bps") else None,
        confirmations=depths,
        tiers=tiers,
        watch_after_expiry=message.watch_after_expiry.ToTimedelta() if message.HasField("watch_after_expiry") else None,
    )


def transfer_to_pb(t: TransferRecord, payment: PaymentRecord | None = None) -> pb.Transfer:
    return pb.Transfer(
        chain_id=t.chain_id,
        tx_hash=t.tx_hash,
        log_index=t.log_index,
        block_number=t.block_number,
        block_hash=t.block_hash,
        from_address=t.from_address,
        amount=str(t.amount),
        state=TRANSFER_STATE_TO_PB[t.state],
        credited=t.credited,
        late=t.late,
        observed_at=ts(t.observed_at),
        token_address=t.token_address or "",
        asset=t.asset,
        kind=TRANSFER_KIND_TO_PB[t.kind],
        value=value_to_pb(payment, payment.transfer_option(t), t.amount) if payment is not None else None,
        after_quote_expiry=t.after_quote_expiry,
    )


# The public checkout's base URL (PAYMESH_CHECKOUT_BASE_URL), set once by the app at
# start: every Payment message names its page (Payment.checkout_url) from it.
_checkout_base = {"url": ""}


def set_checkout_base_url(url: str) -> None:
    _checkout_base["url"] = url.rstrip("/")


def checkout_url(token: str, page: str = "pay") -> str:
    base = _checkout_base["url"]
    return f"{base}/{page}/{token}" if base and token else ""


def payment_to_pb(p: PaymentRecord, *, with_transfers: bool = True) -> pb.Payment:
    in_force = pb.PaymentPolicy(
        underpayment_tolerance_bps=p.tolerance_bps,
        confirmations=[
            pb.ChainConfirmations(chain_id=c, confirmations=n)
            for c, n in sorted({o.chain_id: o.confirmations_required for o in p.options}.items())
        ]
        or [pb.ChainConfirmations(chain_id=p.chain_id, confirmations=p.confirmations_required)],
    )
    if p.watch_until is not None:
        in_force.watch_after_expiry.CopyFrom(duration(p.watch_until - p.expires_at))
    return pb.Payment(
        payment_id=p.id,
        merchant_id=p.merchant_id,
        chain_id=p.chain_id,
        asset=p.asset,
        token_address=p.token_address or "",
        decimals=p.decimals,
        amount_due=str(p.amount_due),
        amount_received=str(p.amount_received),
        amount_confirmed=str(p.amount_confirmed),
        amount_swept=str(p.amount_swept),
        deposit_address=p.deposit_address,
        status=STATUS_TO_PB[p.status],
        merchant_order_id=p.merchant_order_id,
        metadata=p.metadata,
        confirmations_required=p.confirmations_required,
        created_at=ts(p.created_at),
        expires_at=ts(p.expires_at),
        updated_at=ts(p.updated_at),
        transfers=[transfer_to_pb(t, p) for t in p.transfers] if with_transfers else [],
        version=p.version,
        sweep_tx_hash=p.sweep_tx_hash,
        sweep_fee=str(p.sweep_fee),
        sweep_dust=str(p.sweep_dust),
        price=price_to_pb(p.price),
        quote=quote_to_pb(p.quote) if p.quote is not None else None,
        policy=in_force,
        amount_minimum=str(p.amount_minimum),
        value_confirmed=value_to_pb(p, p.option(p.chain_id, p.asset), p.amount_confirmed),
        resolution=RESOLUTION_TO_PB[p.resolution] if p.resolution is not None else pb.RESOLUTION_UNSPECIFIED,
        resolution_note=p.resolution_note,
        resolved_at=ts(p.resolved_at),
        watch_until=ts(p.watch_until),
        options=[option_to_pb(p, o) for o in p.options],
        checkout_token=p.checkout_token,
        checkout_url=checkout_url(p.checkout_token),
        description=p.description,
        return_url=p.return_url,
        amount_refunded=str(selected.amount_refunded if (selected := p.option(p.chain_id, p.asset)) else 0),
    )


def event_to_pb(e: PaymentEventRecord) -> ev.PaymentEvent:
    return ev.PaymentEvent(
        event_id=e.event_id,
        type=ev.PaymentEventType.Value(f"PAYMENT_EVENT_TYPE_{e.event_type.upper()}"),
        merchant_id=e.payment.merchant_id,
        payment=payment_to_pb(e.payment),
        created_at=ts(e.created_at),
        previous_status=STATUS_TO_PB[e.previous_status] if e.previous_status else pb.PAYMENT_STATUS_UNSPECIFIED,
    )


def merchant_to_pb(m: MerchantRecord) -> apb.Merchant:
    return apb.Merchant(
        merchant_id=m.id,
        name=m.name,
        status=apb.MERCHANT_STATUS_ACTIVE if m.status == "active" else apb.MERCHANT_STATUS_DISABLED,
        webhook_url=m.webhook_url,
        xpub=m.xpub,
        derivation_path=m.derivation_path,
        treasuries=[apb.Treasury(chain_id=c, address=a) for c, a in sorted(m.treasuries.items())],
        api_key_prefix=m.api_key_prefix,
        created_at=ts(m.created_at),
        next_address_index=m.next_address_index,
        payment_policy=policy_to_pb(m.payment_policy),
    )


def sweep_tx_to_pb(s: SweepTxRecord) -> swpb.SweepTransaction:
    """A recorded sweep transaction, with its sweep job's asset (for a gas top-up, the
    asset of the job it tops up for)."""
    return swpb.SweepTransaction(
        payment_id=s.payment_id,
        merchant_id=s.merchant_id,
        chain_id=s.chain_id,
        asset=s.asset,
        kind=SWEEP_KIND_TO_PB[s.kind],
        state=SWEEP_STATE_TO_PB[s.state],
        tx_hash=s.tx_hash,
        raw_tx=s.raw_tx,
        nonce=s.nonce,
        from_address=s.from_address,
        to_address=s.to_address,
        amount=str(s.amount),
        token_address=s.token_address or "",
        gas_limit=s.gas_limit,
        max_fee_per_gas=str(s.max_fee_per_gas),
        max_priority_fee_per_gas="" if s.max_priority_fee_per_gas is None else str(s.max_priority_fee_per_gas),
        block_number=s.block_number,
        error=s.error,
        replaces_tx_hash=s.replaces_tx_hash,
        created_at=ts(s.created_at),
        updated_at=ts(s.updated_at),
        fee="" if s.fee is None else str(s.fee),
        l1_fee_reserve=str(s.l1_fee_reserve),
    )


def sweep_job_to_pb(j: SweepJobRecord) -> swpb.SweepJob:
    """A claimed sweep job as the sweeper sees it: one option's confirmed funds no
    sweep has accounted for yet, from where, to which treasury, until when."""
    o = j.option
    return swpb.SweepJob(
        payment_id=j.payment.id,
        merchant_id=j.payment.merchant_id,
        chain_id=o.chain_id,
        asset=o.asset,
        token_address=o.token_address or "",
        deposit_address=j.payment.deposit_address,
        derivation_path=j.payment.derivation_path,
        amount=str(o.amount_confirmed - o.amount_accounted),
        treasury_address=j.treasury_address,
        lease_expires_at=ts(j.lease_until),
        transactions=[sweep_tx_to_pb(t) for t in j.transactions],
        attempts=j.attempts,
    )


def watched_address_to_pb(r: WatchedAddressRecord) -> fpb.WatchedAddress:
    return fpb.WatchedAddress(
        chain_id=r.chain_id,
        address=r.address,
        payment_id=r.payment_id,
        from_block=r.from_block,
        created_at=ts(r.created_at),
    )


def _customer_option(option: pb.PaymentOption) -> pb.PaymentOption:
    """An option as the customer sees it: without the merchant's sweep figures."""
    for name in ("amount_swept", "sweep_fee", "sweep_dust"):
        option.ClearField(name)
    return option


def checkout_view_to_pb(c: CheckoutRecord, heads: HeadCache) -> cpb.CheckoutView:
    """A payment as its customer sees it: no ids, metadata or sweep figures."""
    p = c.payment
    confirmations, depth = c.confirmations(heads)
    return cpb.CheckoutView(
        merchant_name=c.merchant_name,
        merchant_order_id=p.merchant_order_id,
        description=p.description,
        status=STATUS_TO_PB[p.status],
        price=price_to_pb(p.price),
        deposit_address=p.deposit_address,
        options=[_customer_option(option_to_pb(p, o)) for o in p.options],
        expires_at=ts(p.expires_at),
        return_url=p.return_url,
        expired=p.expired_at is not None or p.cancelled_at is not None,
        confirmations=confirmations,
        confirmations_required=depth,
        version=p.version,
    )


def link_to_pb(link: PaymentLinkRecord) -> lpb.PaymentLink:
    return lpb.PaymentLink(
        link_id=link.id,
        url=checkout_url(link.token, "link"),
        token=link.token,
        description=link.description,
        price=price_to_pb(link.price),
        min_price=price_to_pb(link.min_price),
        max_price=price_to_pb(link.max_price),
        options=[spb.AcceptedAsset(chain_id=c, asset=a) for c, a in link.options],
        accept_all_assets=link.accept_all,
        accept_chain_ids=link.accept_chain_ids,
        expires_at=ts(link.expires_at) if link.expires_at is not None else None,
        max_uses=link.max_uses,
        uses=link.uses,
        return_url=link.return_url,
        active=link.active,
        created_at=ts(link.created_at),
    )


def link_view_to_pb(link: PaymentLinkRecord, merchant_name: str, is_open: bool) -> cpb.LinkView:
    return cpb.LinkView(
        merchant_name=merchant_name,
        description=link.description,
        price=price_to_pb(link.price),
        min_price=price_to_pb(link.min_price),
        max_price=price_to_pb(link.max_price),
        open=is_open,
    )


# ------------------------------------------------------------------ refunds and payouts

PAYOUT_STATE_TO_PB = {
    PayoutState.REQUESTED: popb.PAYOUT_STATE_REQUESTED,
    PayoutState.APPROVED: popb.PAYOUT_STATE_APPROVED,
    PayoutState.SIGNED: popb.PAYOUT_STATE_SIGNED,
    PayoutState.BROADCAST: popb.PAYOUT_STATE_BROADCAST,
    PayoutState.CONFIRMED: popb.PAYOUT_STATE_CONFIRMED,
    PayoutState.FAILED: popb.PAYOUT_STATE_FAILED,
    PayoutState.CANCELLED: popb.PAYOUT_STATE_CANCELLED,
    PayoutState.AWAITING_CLAIM: popb.PAYOUT_STATE_AWAITING_CLAIM,
}
PAYOUT_STATE_FROM_PB = {v: k for k, v in PAYOUT_STATE_TO_PB.items()}
PAYOUT_TX_STATES = ("signed", "broadcast", "mined", "confirmed", "failed", "replaced")
PAYOUT_TX_STATE_TO_PB = {
    name: plpb.PayoutTransactionState.Value(f"PAYOUT_TRANSACTION_STATE_{name.upper()}") for name in PAYOUT_TX_STATES
}
PAYOUT_TX_STATE_FROM_PB = {v: k for k, v in PAYOUT_TX_STATE_TO_PB.items()}
PAYOUT_TX_KIND_TO_PB = {
    "payout": plpb.PAYOUT_TRANSACTION_KIND_PAYOUT,
    "gas_topup": plpb.PAYOUT_TRANSACTION_KIND_GAS_TOPUP,
}
PAYOUT_TX_KIND_FROM_PB = {v: k for k, v in PAYOUT_TX_KIND_TO_PB.items()}


def payout_to_pb(p: PayoutRecord) -> popb.Payout:
    return popb.Payout(
        payout_id=p.id,
        merchant_id=p.merchant_id,
        kind=popb.PAYOUT_KIND_REFUND if p.kind is PayoutKind.REFUND else popb.PAYOUT_KIND_PAYOUT,
        payment_id=p.payment_id or "",
        batch_id=p.batch_id,
        chain_id=p.chain_id,
        asset=p.asset,
        token_address=p.token_address or "",
        decimals=p.decimals,
        amount=str(p.amount),
        fee_from_amount=p.fee_from_amount,
        amount_sent="" if p.amount_sent is None else str(p.amount_sent),
        fee="" if p.fee is None else str(p.fee),
        destination=p.destination,
        source=popb.PAYOUT_SOURCE_DEPOSIT_ADDRESS
        if p.source is PayoutSource.DEPOSIT
        else popb.PAYOUT_SOURCE_PAYOUT_WALLET,
        source_address=p.source_address,
        state=PAYOUT_STATE_TO_PB[p.state],
        memo=p.memo,
        failure_reason=p.failure_reason,
        last_error=p.last_error,
        tx_hash=p.tx_hash,
        approval_required=p.approval_required,
        approved_by=p.approved_by,
        created_at=ts(p.created_at),
        updated_at=ts(p.updated_at),
        completed_at=ts(p.completed_at),
        claim_url=checkout_url(p.claim_token, "refund") if p.claim_token else "",
    )


def refund_claim_to_pb(p: PayoutRecord, merchant_name: str, chain_name: str) -> cpb.RefundClaimView:
    """What the claim page shows: nothing of the payment but the refund itself."""
    return cpb.RefundClaimView(
        merchant_name=merchant_name,
        chain_name=chain_name,
        asset=p.asset,
        decimals=p.decimals,
        amount=str(p.amount),
        reason=p.memo,
        open=p.state is PayoutState.AWAITING_CLAIM,
        destination=p.destination,
        state=PAYOUT_STATE_TO_PB[p.state],
    )


def payout_tx_to_pb(t: PayoutTxRecord) -> plpb.PayoutTransaction:
    return plpb.PayoutTransaction(
        payout_id=t.payout_id,
        chain_id=t.chain_id,
        kind=PAYOUT_TX_KIND_TO_PB[t.kind],
        state=PAYOUT_TX_STATE_TO_PB[t.state],
        tx_hash=t.tx_hash,
        raw_tx=t.raw_tx,
        nonce=t.nonce,
        from_address=t.from_address,
        to_address=t.to_address,
        amount=str(t.amount),
        token_address=t.token_address or "",
        gas_limit=t.gas_limit,
        max_fee_per_gas=str(t.max_fee_per_gas),
        max_priority_fee_per_gas="" if t.max_priority_fee_per_gas is None else str(t.max_priority_fee_per_gas),
        block_number=t.block_number,
        error=t.error,
        replaces_tx_hash=t.replaces_tx_hash,
        fee="" if t.fee is None else str(t.fee),
        l1_fee_reserve=str(t.l1_fee_reserve),
        created_at=ts(t.created_at),
        updated_at=ts(t.updated_at),
    )


def payout_event_to_pb(e: PayoutEventRecord) -> ev.PaymentEvent:
    return ev.PaymentEvent(
        event_id=e.event_id,
        type=ev.PaymentEventType.Value(f"PAYMENT_EVENT_TYPE_{e.event_type.upper()}"),
        merchant_id=e.payout.merchant_id,
        payment=payment_to_pb(e.payment, with_transfers=False) if e.payment is not None else None,
        created_at=ts(e.created_at),
        payout=payout_to_pb(e.payout),
    )


# ------------------------------------------------------------------ API keys

SCOPE_TO_PB = {s: kpb.ApiKeyScope.Value("API_KEY_SCOPE_" + s.name) for s in Scope}
SCOPE_FROM_PB = {v: k for k, v in SCOPE_TO_PB.items()}


def api_key_to_pb(row) -> kpb.ApiKey:
    """An api_keys row, without its hash."""
    return kpb.ApiKey(
        key_id=row.id,
        merchant_id=row.merchant_id,
        name=row.name,
        prefix=row.key_prefix,
        scopes=[SCOPE_TO_PB[s] for s in sorted(parse_scopes(row.scopes))],
        created_at=ts(row.created_at),
        expires_at=ts(row.expires_at),
        revoked_at=ts(row.revoked_at),
        last_used_at=ts(row.last_used_at),
        created_by=row.created_by,
    )


# ------------------------------------------------------------------ webhook endpoints


# Every webhook type an endpoint can ask for: the published PaymentEvent types as
# webhooks name them ("test" is sent only by SendTestEvent, to the endpoint named).
WEBHOOK_EVENT_TYPES = frozenset(
    webhook_type(name[len("PAYMENT_EVENT_TYPE_") :].lower())
    for name in ev.PaymentEventType.keys()
    if name not in ("PAYMENT_EVENT_TYPE_UNSPECIFIED", "PAYMENT_EVENT_TYPE_TEST")
)


def webhook_endpoint_to_pb(row) -> wepb.WebhookEndpoint:
    """A webhook_endpoints row, without its secrets."""
    return wepb.WebhookEndpoint(
        endpoint_id=row.id,
        merchant_id=row.merchant_id,
        url=row.url,
        description=row.description,
        event_types=list(row.event_types),
        enabled=row.enabled,
        created_at=ts(row.created_at),
        updated_at=ts(row.updated_at),
        secret_rolled_at=ts(row.secret_rolled_at),
        previous_secret_expires_at=ts(row.previous_secret_expires_at),
    )


# ------------------------------------------------------------------ audit log


def audit_entry_to_pb(row) -> aupb.AuditEntry:
    """An audit_log row."""
    before, after = Struct(), Struct()
    before.update(row.before or {})
    after.update(row.after or {})
    return aupb.AuditEntry(
        entry_id=row.id,
        merchant_id=row.merchant_id,
        actor=row.actor,
        action=row.action,
        target=row.target,
        before=before,
        after=after,
        created_at=ts(row.created_at),
    )


CONFIG_CHANGE_STATE_TO_PB = {
    "pending": aupb.CONFIG_CHANGE_STATE_PENDING,
    "applied": aupb.CONFIG_CHANGE_STATE_APPLIED,
    "cancelled": aupb.CONFIG_CHANGE_STATE_CANCELLED,
    "failed": aupb.CONFIG_CHANGE_STATE_FAILED,
}
CONFIG_CHANGE_STATE_FROM_PB = {v: k for k, v in CONFIG_CHANGE_STATE_TO_PB.items()}


def config_change_to_pb(row) -> aupb.ConfigChange:
    """A config_changes row."""
    after = Struct()
    after.update(row.after or {})
    return aupb.ConfigChange(
        change_id=row.id,
        merchant_id=row.merchant_id,
        action=row.action,
        target=row.target,
        after=after,
        state=CONFIG_CHANGE_STATE_TO_PB[row.state],
        created_by=row.created_by,
        created_at=ts(row.created_at),
        effective_at=ts(row.effective_at),
        decided_at=ts(row.decided_at),
        decided_by=row.decided_by,
        failure=row.failure,
    )


def audit_event_to_pb(event_id: str, row) -> ev.PaymentEvent:
    """The config_changed event of an audit entry."""
    return ev.PaymentEvent(
        event_id=event_id,
        type=ev.PAYMENT_EVENT_TYPE_CONFIG_CHANGED,
        merchant_id=row.merchant_id,
        created_at=ts(row.created_at),
        audit=audit_entry_to_pb(row),
    )
