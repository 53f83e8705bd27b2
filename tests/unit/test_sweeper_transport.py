"""The sweeper's edges: protobuf <-> domain types, and gRPC failures from the
ledger turned into errors a person can act on."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from paymesh.ledger.v1 import sweep_ledger_service_pb2 as ipb

from services.sweeper.adapters.ledger_client import job_from_pb, tx_from_pb
from services.sweeper.domain.model import TxKind, TxState


def _stamp(dt: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(dt)
    return out


def test_job_and_transactions_from_protobuf():
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    job = job_from_pb(
        ipb.SweepJob(
            payment_id="pay_1",
            merchant_id="mch_1",
            chain_id=31337,
            asset="TUSD",
            token_address="0x5FbDB2315678afecb367f032d93F642f64180aa3",
            deposit_address="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            derivation_path="m/44'/60'/1'/0/7",
            amount="123456789012345678901234567890",
            treasury_address="",
            attempts=2,
            transactions=[
                ipb.SweepTransaction(
                    payment_id="pay_1",
                    chain_id=31337,
                    kind=ipb.SWEEP_TRANSACTION_KIND_GAS_TOPUP,
                    state=ipb.SWEEP_TRANSACTION_STATE_REPLACED,
                    tx_hash="0xAB" + "0" * 62,
                    raw_tx=b"\x02raw",
                    nonce=9,
                    from_address="0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
                    to_address="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                    amount="21000000",
                    gas_limit=21000,
                    max_fee_per_gas="1000",
                    max_priority_fee_per_gas="",
                    updated_at=_stamp(when),
                )
            ],
        )
    )
    assert job.amount == 123456789012345678901234567890 and not job.is_native and job.attempts == 2
    (tx,) = job.transactions
    assert tx.kind is TxKind.GAS_TOPUP and tx.state is TxState.REPLACED and not tx.is_open
    assert tx.tx_hash == "0xab" + "0" * 62 and tx.raw_tx == b"\x02raw"
    assert tx.max_priority_fee_per_gas is None and tx.fee_cost == 21_000_000
    assert tx.updated_at == when and tx.created_at is None
    assert tx_from_pb(ipb.SweepTransaction(state=ipb.SWEEP_TRANSACTION_STATE_MINED)).is_open
