"""Sweep bookkeeping for the sweeper: leases, write-ahead transaction records,
completion. The ledger never signs anything; it remembers what was signed so a
crashed sweeper rebroadcasts the same transaction instead of signing a new one.

A sweep job is one (payment, chain, asset). Until payment options exist a payment
has exactly one, its own chain and asset: the requests that name a job
(RecordSweepTransaction, CompleteSweep, ReleaseSweep) may leave chain_id and asset
empty for it, and anything else they name is refused (`check_job`). A sweep
transaction's asset (SweepTransaction.asset) is its job's, so today the
payment's: derived from the payment, not stored (`JobTransaction`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.common.errors import FailedPrecondition, InvalidArgument, NotFound, Reason
from services.common.page_tokens import PageTokens, filter_fingerprint, page_size
from services.ledger.adapters import repository as repo
from services.ledger.domain.accounting import SweepFigures, complete_sweep, sweep_allowance
from services.ledger.domain.records import PaymentRecord, SweepJobRecord, SweepTxRecord
from services.ledger.domain.validation import checksum_address, utcnow
from services.ledger.payment_state import refresh_payment

MAX_WORKER_ID = 128  # payments.sweep_claimed_by
TX_STATES = ("signed", "broadcast", "mined", "confirmed", "failed", "replaced")


@dataclass
class NewSweepTx:
    payment_id: str
    chain_id: int
    kind: str
    tx_hash: str
    raw_tx: bytes
    nonce: int
    from_address: str
    to_address: str
    amount: int
    token_address: str | None
    gas_limit: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int | None
    replaces_tx_hash: str
    l1_fee_reserve: int = 0
    asset: str = ""  # the sweep job's asset; "" = the payment's own


@dataclass(frozen=True)
class JobTransaction:
    """A recorded sweep transaction and the asset of the sweep job it belongs to
    (SweepTransaction.asset; a gas top-up's is the asset of the job it tops up for)."""

    tx: SweepTxRecord
    asset: str


def check_job(payment: PaymentRecord, chain_id: int, asset: str, fields: str = "") -> None:
    """(payment, chain_id, asset) must name one of the payment's sweep jobs: 0 and ""
    name its own chain and asset, which is its only job until payment options exist.
    `fields` prefixes the field names in the message ("transaction.")."""
    if (not chain_id or chain_id == payment.chain_id) and (not asset or asset == payment.asset):
        return
    named = f"{fields}chain_id {chain_id or payment.chain_id} and {fields}asset {(asset or payment.asset)[:32]!r}"
    raise FailedPrecondition(
        f"payment {payment.id} has one sweep job, {payment.asset} on chain {payment.chain_id}, but the request "
        f"names {named}: name that job, or leave {fields}chain_id and {fields}asset empty for the payment's own"
    )


def _tx_hash(value: str, field: str = "tx_hash") -> str:
    if not (value.startswith("0x") and len(value) == 66):
        raise InvalidArgument(f"{field} must be 0x followed by 64 hex digits; got {value[:70]!r}")
    try:
        int(value, 16)
    except ValueError:
        raise InvalidArgument(f"{field} is not hexadecimal: {value[:70]!r}") from None
    return value.lower()


class SweepService:
    def __init__(self, engine: AsyncEngine, on_outbox: Callable[[], None], tokens: PageTokens) -> None:
        self._engine = engine
        self._tokens = tokens
        self._on_outbox = on_outbox

    async def claim(self, chain_id: int, worker_id: str, limit: int, lease_seconds: int) -> list[SweepJobRecord]:
        if not 1 <= len(worker_id) <= MAX_WORKER_ID:
            raise InvalidArgument(
                f"worker_id must be 1 to {MAX_WORKER_ID} characters (it names the sweeper that holds the lease); "
                f"got {len(worker_id)}"
            )
        if not 1 <= limit <= 500:
            raise InvalidArgument("limit must be 1 to 500")
        if not 10 <= lease_seconds <= 3600:
            raise InvalidArgument("lease_seconds must be 10 to 3600")
        now = utcnow()
        lease_until = now + timedelta(seconds=lease_seconds)
        jobs = []
        async with self._engine.begin() as conn:
            claimed = await repo.sweeps.claim_sweeps(conn, chain_id, worker_id, lease_until, now, limit)
            for payment, attempts in claimed:
                jobs.append(
                    SweepJobRecord(
                        payment=payment,
                        treasury_address=await repo.merchants.treasury_of(conn, payment.merchant_id, chain_id),
                        lease_until=lease_until,
                        attempts=attempts,
                        transactions=await repo.sweeps.sweep_txs_of(conn, payment.id),
                    )
                )
        return jobs

    async def record(self, worker_id: str, tx: NewSweepTx) -> JobTransaction:
        tx_hash = _tx_hash(tx.tx_hash)
        replaces = _tx_hash(tx.replaces_tx_hash, "transaction.replaces_tx_hash") if tx.replaces_tx_hash else ""
        token = checksum_address(tx.token_address, "transaction.token_address") if tx.token_address else None
        if tx.kind not in ("gas_topup", "sweep"):
            raise InvalidArgument("transaction.kind must be GAS_TOPUP or SWEEP")
        if not tx.raw_tx:
            raise InvalidArgument("transaction.raw_tx is required (write-ahead needs the signed bytes)")
        now = utcnow()
        async with self._engine.begin() as conn:
            existing = await repo.sweeps.get_sweep_tx(conn, tx_hash)
            if existing is not None:
                return await _with_asset(conn, existing)  # recording twice is a no-op
            payment = await repo.payments.get_payment(conn, tx.payment_id)
            if payment is None:
                raise NotFound(f"payment {tx.payment_id} not found")
            check_job(payment, tx.chain_id, tx.asset, "transaction.")
            if not await repo.sweeps.holds_lease(conn, tx.payment_id, worker_id, now):
                raise FailedPrecondition(
                    f"worker {worker_id!r} does not hold the sweep lease of {tx.payment_id}; claim it first",
                    reason=Reason.SWEEP_LEASE_NOT_HELD,
                )
            await repo.sweeps.insert_sweep_tx(
                conn,
                {
                    "payment_id": payment.id,
                    "merchant_id": payment.merchant_id,
                    "chain_id": payment.chain_id,
                    "kind": tx.kind,
                    "state": "signed",
                    "tx_hash": tx_hash,
                    "raw_tx": tx.raw_tx,
                    "nonce": tx.nonce,
                    "from_address": checksum_address(tx.from_address, "transaction.from_address"),
                    "to_address": checksum_address(tx.to_address, "transaction.to_address"),
                    "amount": tx.amount,
                    "token_address": token,
                    "gas_limit": tx.gas_limit,
                    "max_fee_per_gas": tx.max_fee_per_gas,
                    "max_priority_fee_per_gas": tx.max_priority_fee_per_gas,
                    "replaces_tx_hash": replaces,
                    "l1_fee_reserve": tx.l1_fee_reserve,
                },
            )
            if replaces:
                await repo.sweeps.update_sweep_tx(conn, replaces, state="replaced")
            if tx.kind == "gas_topup":
                await repo.transfers.mark_gas_topup_transfers(conn, payment.id, tx_hash)
            stored = await repo.sweeps.get_sweep_tx(conn, tx_hash)
        assert stored is not None
        return JobTransaction(stored, payment.asset)

    async def update(
        self, tx_hash: str, state: str, block_number: int, error: str, fee: int | None = None
    ) -> JobTransaction:
        """`fee`: what the transaction paid per its receipt (None: keep the recorded one).
        Back to BROADCAST (its block left the chain) forgets the fee of that block."""
        tx_hash = _tx_hash(tx_hash)
        if state not in TX_STATES or state == "signed":
            raise InvalidArgument("state must be BROADCAST, MINED, CONFIRMED, FAILED or REPLACED")
        async with self._engine.begin() as conn:
            existing = await repo.sweeps.get_sweep_tx(conn, tx_hash, for_update=True)
            if existing is None:
                raise NotFound(f"sweep transaction {tx_hash} is not recorded")
            if existing.state == "confirmed" and state != "confirmed":
                raise FailedPrecondition(
                    f"sweep transaction {tx_hash} is confirmed; its state cannot go back to {state}"
                )
            values: dict = {"state": state, "block_number": block_number, "error": error[:2000]}
            if fee is not None:
                values["fee"] = fee
            elif state == "broadcast":
                values["fee"] = None
            await repo.sweeps.update_sweep_tx(conn, tx_hash, **values)
            stored = await repo.sweeps.get_sweep_tx(conn, tx_hash)
            assert stored is not None
            return await _with_asset(conn, stored)

    async def complete(
        self, payment_id: str, tx_hash: str, amount: int, fee: int, *, chain_id: int = 0, asset: str = ""
    ) -> PaymentRecord:
        """The sweep transaction of the job (payment_id, chain_id, asset) is confirmed: it
        moved `amount` to the treasury and paid `fee` (its receipt). The payment's figures
        follow domain/accounting.py."""
        tx_hash = _tx_hash(tx_hash)
        now = utcnow()
        async with self._engine.begin() as conn:
            payment = await repo.payments.get_payment(conn, payment_id, for_update=True)
            if payment is None:
                raise NotFound(f"payment {payment_id} not found")
            check_job(payment, chain_id, asset)
            tx = await repo.sweeps.get_sweep_tx(conn, tx_hash, for_update=True)
            if tx is None or tx.payment_id != payment_id or tx.kind != "sweep":
                raise FailedPrecondition(f"{tx_hash} is not a recorded sweep transaction of {payment_id}")
            if tx.state == "confirmed" and payment.sweep_tx_hash == tx_hash:
                payment.transfers = await repo.transfers.transfers_of(conn, payment_id)
                return payment  # completing twice is a no-op
            native = payment.is_native
            after = complete_sweep(
                SweepFigures(payment.amount_swept, payment.sweep_fee, payment.sweep_dust),
                native=native,
                confirmed=payment.amount_confirmed,
                allowance=sweep_allowance(
                    native=native,
                    amount=tx.amount,
                    gas_limit=tx.gas_limit,
                    max_fee_per_gas=tx.max_fee_per_gas,
                    l1_fee_reserve=tx.l1_fee_reserve,
                ),
                recorded_amount=tx.amount,
                amount=amount,
                fee=fee,
            )
            await repo.sweeps.update_sweep_tx(conn, tx_hash, state="confirmed", completed=True, fee=fee)
            payment.amount_swept, payment.sweep_fee, payment.sweep_dust = after.swept, after.fee, after.dust
            payment.sweep_tx_hash = tx_hash
            await refresh_payment(conn, payment, now, touched=True)
        self._on_outbox()
        return payment

    async def release(
        self, payment_id: str, worker_id: str, error: str, retry_after: int, *, chain_id: int = 0, asset: str = ""
    ) -> None:
        """Give the job (payment_id, chain_id, asset) back: today the payment's one lease."""
        due = utcnow() + timedelta(seconds=max(1, retry_after))
        async with self._engine.begin() as conn:
            if chain_id or asset:
                payment = await repo.payments.get_payment(conn, payment_id)
                if payment is not None:  # unknown: "does not hold the lease", as without them
                    check_job(payment, chain_id, asset)
            if not await repo.sweeps.release_sweep(conn, payment_id, worker_id, error[:2000], due):
                raise FailedPrecondition(
                    f"worker {worker_id!r} does not hold the sweep lease of {payment_id}",
                    reason=Reason.SWEEP_LEASE_NOT_HELD,
                )

    async def request(self, *, payment_id: str = "", merchant_id: str = "") -> int:
        if not payment_id and not merchant_id:
            raise InvalidArgument("give payment_id or merchant_id")
        async with self._engine.begin() as conn:
            if payment_id:
                payment = await repo.payments.get_payment(conn, payment_id)
                if payment is None:
                    raise NotFound(f"payment {payment_id} not found")
            elif await repo.merchants.get_merchant(conn, merchant_id) is None:
                raise NotFound(f"merchant {merchant_id} not found")
            count = await repo.sweeps.request_sweep(conn, utcnow(), payment_id=payment_id, merchant_id=merchant_id)
        if payment_id and count == 0:
            raise FailedPrecondition(
                f"payment {payment_id} is {payment.status.value}; only confirmed funds not yet swept can be swept"
            )
        return count

    async def list(
        self,
        *,
        chain_id: int,
        payment_id: str,
        merchant_id: str,
        states: list[str],
        size: int,
        token: str,
        asset: str = "",
    ) -> tuple[list[JobTransaction], str]:
        """`asset`: only the transactions of sweep jobs of that asset (empty: all)."""
        limit = page_size(size)
        scope = "ListSweepTransactions|internal"
        # The asset joins the fingerprint only when given: tokens issued without it stay valid.
        filters = filter_fingerprint(chain_id, payment_id, merchant_id, sorted(states), *([asset] if asset else []))
        after = self._tokens.read(scope, token, int, filters)
        async with self._engine.connect() as conn:
            rows = await repo.sweeps.list_sweep_txs(
                conn,
                chain_id=chain_id,
                payment_id=payment_id,
                merchant_id=merchant_id,
                states=states,
                after=after,  # type: ignore[arg-type]
                limit=limit + 1,
                asset=asset,
            )
            assets = await repo.sweeps.job_assets(conn, {r.payment_id for r in rows[:limit]})
        token_out = ""
        if len(rows) > limit:
            rows = rows[:limit]
            token_out = self._tokens.issue(scope, rows[-1].created_at, rows[-1].id, filters)
        return [JobTransaction(r, assets.get(r.payment_id, "")) for r in rows], token_out


async def _with_asset(conn: AsyncConnection, tx: SweepTxRecord) -> JobTransaction:
    """`tx` with its sweep job's asset (the payment's, until payment options)."""
    assets = await repo.sweeps.job_assets(conn, {tx.payment_id})
    return JobTransaction(tx, assets.get(tx.payment_id, ""))
