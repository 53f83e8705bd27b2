"""Translation between ledger records and protobuf messages: the only place a
record becomes a message (API replies, and the PaymentEvent payloads the outbox
stores, adapters/repository/outbox.py), and where wire enums map to the domain's.
Pure functions of their input."""

from __future__ import annotations

from paymesh.events.v1 import payment_events_pb2 as ev
from paymesh.ledger.v1 import address_feed_service_pb2 as fpb
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import sweep_ledger_service_pb2 as swpb

from services.common.timestamps import from_timestamp, to_timestamp
from services.ledger.domain.records import (
    MerchantRecord,
    PaymentEventRecord,
    PaymentRecord,
    SweepJobRecord,
    SweepTxRecord,
    TransferRecord,
    WatchedAddressRecord,
)
from services.ledger.domain.status import PaymentStatus

STATUS_TO_PB = {s: pb.PaymentStatus.Value(f"PAYMENT_STATUS_{s.name}") for s in PaymentStatus}
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


ts = to_timestamp
from_ts = from_timestamp


def transfer_to_pb(t: TransferRecord) -> pb.Transfer:
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
    )


def payment_to_pb(p: PaymentRecord, *, with_transfers: bool = True) -> pb.Payment:
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
        transfers=[transfer_to_pb(t) for t in p.transfers] if with_transfers else [],
        version=p.version,
        sweep_tx_hash=p.sweep_tx_hash,
        sweep_fee=str(p.sweep_fee),
        sweep_dust=str(p.sweep_dust),
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
    )


def sweep_tx_to_pb(s: SweepTxRecord, asset: str) -> swpb.SweepTransaction:
    """A recorded sweep transaction; `asset` is its sweep job's (the payment's, until
    payment options; for a gas top-up, the asset of the job it tops up for)."""
    return swpb.SweepTransaction(
        payment_id=s.payment_id,
        merchant_id=s.merchant_id,
        chain_id=s.chain_id,
        asset=asset,
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
    """A claimed sweep job as the sweeper sees it: what to move (confirmed funds no
    sweep has accounted for yet), from where, to which treasury, until when. Until
    payment options a payment has one job, its own chain and asset, and every
    recorded transaction of the payment is that job's."""
    return swpb.SweepJob(
        payment_id=j.payment.id,
        merchant_id=j.payment.merchant_id,
        chain_id=j.payment.chain_id,
        asset=j.payment.asset,
        token_address=j.payment.token_address or "",
        deposit_address=j.payment.deposit_address,
        derivation_path=j.payment.derivation_path,
        amount=str(j.payment.amount_confirmed - j.payment.amount_accounted),
        treasury_address=j.treasury_address,
        lease_expires_at=ts(j.lease_until),
        transactions=[sweep_tx_to_pb(t, j.payment.asset) for t in j.transactions],
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
