"""Sweep bookkeeping for the sweeper: leases, write-ahead transaction records,
completion. The ledger never signs anything; it remembers what was signed so a
crashed sweeper rebroadcasts the same transaction instead of signing a new one.

A sweep job is one (payment, chain, asset): one option of the payment
(payment_options holds its lease and figures). The requests that name a job
(RecordSweepTransaction, CompleteSweep, ReleaseSweep) may leave chain_id and asset
empty when they leave only one option to match (`job_option`); a sweep
transaction stores its job's asset (SweepTransaction.asset)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.errors import FailedPrecondition, InvalidArgument, NotFound, Reason
from services.common.page_tokens import PageTokens, filter_fingerprint, page_size
from services.ledger.adapters import repository as repo
from services.ledger.domain.accounting import SweepFigures, complete_sweep, sweep_allowance
from services.ledger.domain.records import PaymentOptionRecord, PaymentRecord, SweepJobRecord, SweepTxRecord
from services.ledger.domain.validation import checksum_address, tx_hash_field, utcnow
from services.ledger.payment_state import refresh_payment

MAX_WORKER_ID = 128  # payment_options.sweep_claimed_by
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
    asset: str = ""  # the sweep job's asset; "" = the payment's only option


def job_option(payment: PaymentRecord, chain_id: int, asset: str, fields: str = "") -> PaymentOptionRecord:
    """The option (sweep job) that (chain_id, asset) names: 0 and "" match any, and
    exactly one option must match. `fields` prefixes the field names in the message
    ("transaction.")."""
    found = [o for o in payment.options if (not chain_id or o.chain_id == chain_id) and (not asset or o.asset == asset)]
    if len(found) == 1:
        return found[0]
    jobs = ", ".join(f"{o.asset} on chain {o.chain_id}" for o in payment.options)
    if not found:
        named = f"{fields}chain_id {chain_id or 'any'} and {fields}asset {(asset or 'any')[:32]!r}"
        raise FailedPrecondition(f"payment {payment.id} has no sweep job {named}; its jobs are: {jobs}")
    raise FailedPrecondition(
        f"payment {payment.id} has several sweep jobs ({jobs}); name one with {fields}chain_id and {fields}asset"
    )


class SweepService:
    def __init__(self, engine: AsyncEngine, on_outbox: Callable[[], None], tokens: PageTokens) -> None:
        self._engine = engine
        self._tokens = tokens
        self._on_outbox = on_outbox

    async def claim(
        self,
        chain_id: int,
        worker_id: str,
        limit: int,
        lease_seconds: int,
        *,
        jobs_per_asset: bool = True,
        take_over: bool = False,
    ) -> list[SweepJobRecord]:
        """`jobs_per_asset` False: a sweeper that keys jobs by payment alone gets only
        payments with one option. `take_over`: the caller is the chain's new signer and
        takes the jobs another worker still holds too."""
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
            claimed = await repo.sweeps.claim_sweeps(
                conn, chain_id, worker_id, lease_until, now, limit, jobs_per_asset=jobs_per_asset, take_over=take_over
            )
            for payment_id, position, attempts in claimed:
                payment = await repo.payments.get_payment(conn, payment_id)
                assert payment is not None  # an option's payment (foreign key)
                option = next(o for o in payment.options if o.position == position)
                jobs.append(
                    SweepJobRecord(
                        payment=payment,
                        option=option,
                        treasury_address=await repo.merchants.treasury_of(conn, payment.merchant_id, chain_id),
                        lease_until=lease_until,
                        attempts=attempts,
                        transactions=await repo.sweeps.sweep_txs_of(conn, payment_id, option.chain_id, option.asset),
                    )
                )
        return jobs

    async def record(self, worker_id: str, tx: NewSweepTx) -> SweepTxRecord:
        tx_hash = tx_hash_field(tx.tx_hash)
        replaces = tx_hash_field(tx.replaces_tx_hash, "transaction.replaces_tx_hash") if tx.replaces_tx_hash else ""
        token = checksum_address(tx.token_address, "transaction.token_address") if tx.token_address else None
        if tx.kind not in ("gas_topup", "sweep"):
            raise InvalidArgument("transaction.kind must be GAS_TOPUP or SWEEP")
        if not tx.raw_tx:
            raise InvalidArgument("transaction.raw_tx is required (write-ahead needs the signed bytes)")
        now = utcnow()
        async with self._engine.begin() as conn:
            existing = await repo.sweeps.get_sweep_tx(conn, tx_hash)
            if existing is not None:
                return existing  # recording twice is a no-op
            # Locked: a refund from the deposit address (payouts.py) is decided under this lock too.
            payment = await repo.payments.get_payment(conn, tx.payment_id, for_update=True)
            if payment is None:
                raise NotFound(f"payment {tx.payment_id} not found")
            option = job_option(payment, tx.chain_id, tx.asset, "transaction.")
            if not await repo.sweeps.holds_lease(conn, payment.id, option.chain_id, option.asset, worker_id, now):
                raise FailedPrecondition(
                    f"worker {worker_id!r} does not hold the sweep lease of {tx.payment_id}; claim it first",
                    reason=Reason.SWEEP_LEASE_NOT_HELD,
                )
            if tx.kind == "sweep" and await repo.payouts.active_deposit_refunds(
                conn, payment.id, option.chain_id, option.asset
            ):
                raise FailedPrecondition(
                    f"payment {payment.id}'s {option.asset} on chain {option.chain_id} is held back for a refund from "
                    "its deposit address; it is swept once the refund has ended",
                    reason=Reason.SWEEP_HELD_FOR_REFUND,
                )
            await repo.sweeps.insert_sweep_tx(
                conn,
                {
                    "payment_id": payment.id,
                    "merchant_id": payment.merchant_id,
                    "chain_id": option.chain_id,
                    "asset": option.asset,
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
            events = []
            if tx.kind == "gas_topup" and await repo.transfers.mark_gas_topup_transfers(conn, payment.id, tx_hash):
                # It was recorded first and may have been credited to a native option.
                events = await refresh_payment(conn, payment, now)
            stored = await repo.sweeps.get_sweep_tx(conn, tx_hash)
        assert stored is not None
        if events:
            self._on_outbox()
        return stored

    async def update(
        self, tx_hash: str, state: str, block_number: int, error: str, fee: int | None = None
    ) -> SweepTxRecord:
        """`fee`: what the transaction paid per its receipt (None: keep the recorded one).
        Back to BROADCAST (its block left the chain) forgets the fee of that block."""
        tx_hash = tx_hash_field(tx_hash)
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
            return stored

    async def complete(
        self, payment_id: str, tx_hash: str, amount: int, fee: int, *, chain_id: int = 0, asset: str = ""
    ) -> PaymentRecord:
        """The sweep transaction of the job (payment_id, chain_id, asset) is confirmed: it
        moved `amount` to the treasury and paid `fee` (its receipt). The payment's figures
        follow domain/accounting.py."""
        tx_hash = tx_hash_field(tx_hash)
        now = utcnow()
        async with self._engine.begin() as conn:
            payment = await repo.payments.get_payment(conn, payment_id, for_update=True)
            if payment is None:
                raise NotFound(f"payment {payment_id} not found")
            option = job_option(payment, chain_id, asset)
            tx = await repo.sweeps.get_sweep_tx(conn, tx_hash, for_update=True)
            if (
                tx is None
                or tx.payment_id != payment_id
                or tx.kind != "sweep"
                or (tx.chain_id, tx.asset) != (option.chain_id, option.asset)
            ):
                raise FailedPrecondition(
                    f"{tx_hash} is not a recorded sweep transaction of {payment_id}'s {option.asset} "
                    f"on chain {option.chain_id}"
                )
            if tx.state == "confirmed" and option.sweep_tx_hash == tx_hash:
                payment.transfers = await repo.transfers.transfers_of(conn, payment_id)
                return payment  # completing twice is a no-op
            native = option.is_native
            after = complete_sweep(
                SweepFigures(option.amount_swept, option.sweep_fee, option.sweep_dust),
                native=native,
                confirmed=option.amount_confirmed,
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
            option.amount_swept, option.sweep_fee, option.sweep_dust = after.swept, after.fee, after.dust
            option.sweep_tx_hash = payment.sweep_tx_hash = tx_hash
            await refresh_payment(conn, payment, now, touched=True)
        self._on_outbox()
        return payment

    async def release(
        self, payment_id: str, worker_id: str, error: str, retry_after: int, *, chain_id: int = 0, asset: str = ""
    ) -> None:
        """Give the job (payment_id, chain_id, asset) back; other jobs of the payment keep their leases."""
        due = utcnow() + timedelta(seconds=max(1, retry_after))
        async with self._engine.begin() as conn:
            payment = await repo.payments.get_payment(conn, payment_id)
            # Unknown payment: "does not hold the lease", as for any job it does not hold.
            option = job_option(payment, chain_id, asset) if payment is not None else None
            if option is None or not await repo.sweeps.release_sweep(
                conn, payment_id, option.chain_id, option.asset, worker_id, error[:2000], due
            ):
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
    ) -> tuple[list[SweepTxRecord], str]:
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
        token_out = ""
        if len(rows) > limit:
            rows = rows[:limit]
            token_out = self._tokens.issue(scope, rows[-1].created_at, rows[-1].id, filters)
        return rows, token_out
