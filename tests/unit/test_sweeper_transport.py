"""The sweeper's edges: protobuf <-> domain types, and gRPC failures from the
ledger turned into errors a person can act on."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from paymesh.ledger.v1 import sweep_ledger_service_pb2 as ipb

from services.common.grpc_client import ServiceClient
from services.sweeper.adapters.ledger_client import LedgerClient, job_from_pb, tx_from_pb
from services.sweeper.domain.model import SignedTx, SweepJobKey, TxKind, TxState


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


def test_a_job_from_protobuf_keeps_only_its_own_transactions():
    """A SweepJob carries only its own transactions; one of another job of the same
    payment (another asset) is dropped all the same, one without an asset (a ledger with
    one job per payment) is kept."""

    def tx(asset: str, nonce: int) -> ipb.SweepTransaction:
        return ipb.SweepTransaction(
            payment_id="pay_1", chain_id=31337, asset=asset, kind=ipb.SWEEP_TRANSACTION_KIND_SWEEP, nonce=nonce
        )

    job = job_from_pb(
        ipb.SweepJob(
            payment_id="pay_1", chain_id=31337, asset="ETH", transactions=[tx("ETH", 1), tx("TUSD", 2), tx("", 3)]
        )
    )
    assert job.key == SweepJobKey("pay_1", 31337, "ETH")
    assert [(t.asset, t.nonce) for t in job.transactions] == [("ETH", 1), ("", 3)]


class _RecordingStub:
    """A SweepLedgerService stub that keeps the requests and answers empty replies."""

    def __init__(self) -> None:
        self.requests: dict[str, object] = {}
        replies = {
            "ClaimSweeps": ipb.ClaimSweepsResponse,
            "RecordSweepTransaction": ipb.RecordSweepTransactionResponse,
            "CompleteSweep": ipb.CompleteSweepResponse,
            "ReleaseSweep": ipb.ReleaseSweepResponse,
        }
        for method, reply in replies.items():
            setattr(self, method, self._answer(method, reply))

    def _answer(self, method: str, reply):
        async def call(request, metadata=None, timeout=None):
            self.requests[method] = request
            return reply()

        return call


async def test_the_ledger_client_names_the_sweep_job_on_every_job_call():
    stub = _RecordingStub()
    client = LedgerClient.__new__(LedgerClient)
    client._ledger = ServiceClient(stub, peer="ledger", token="t", timeout=1)
    key = SweepJobKey("pay_1", 31337, "TUSD")
    await client.claim(31337, "w", 5, 60)
    signed = SignedTx(
        kind=TxKind.GAS_TOPUP,
        tx_hash="0x" + "1" * 64,
        raw_tx=b"\x02",
        nonce=0,
        from_address="0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        to_address="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        amount=1,
        token_address="",
        gas_limit=21_000,
        max_fee_per_gas=1,
        max_priority_fee_per_gas=1,
    )
    await client.record("w", key, signed)
    await client.complete(key, "0x" + "2" * 64, 5, 1)
    await client.release(key, "w", "why", 30)
    assert stub.requests["ClaimSweeps"].jobs_per_asset is True
    recorded = stub.requests["RecordSweepTransaction"].transaction
    assert (recorded.payment_id, recorded.chain_id, recorded.asset) == ("pay_1", 31337, "TUSD")  # a top-up: its job's
    for method in ("CompleteSweep", "ReleaseSweep"):
        request = stub.requests[method]
        assert (request.payment_id, request.chain_id, request.asset) == ("pay_1", 31337, "TUSD"), method
