"""Refunds and payouts: what merchants ask for (PayoutService), what the operator
approves and limits (MerchantAdminService), and the sweeper's book of sending them
(PayoutLedgerService). The rules are domain/payouts.py.

Guarantees:
- one refund or payout per merchant idempotency key (a unique index; a retry returns
  the stored one, a different request under the same key is ALREADY_EXISTS);
- a refund never gives back more than its option's confirmed funds: the refundable
  amount, the daily limit and the source are decided under the payment's and the
  merchant's row locks, so two concurrent requests cannot both take the last unit;
- a refund from a deposit address holds the option's sweep back (the sweep claim
  skips it and a sweep transaction cannot be recorded for it) until the refund
  ends; its value and, for the native coin, its fee then count as dealt with, and
  what remains is swept;
- the sweeper records every signed transaction here before broadcasting it
  (write-ahead); a payout is SIGNED from then on and can no longer be cancelled,
  and FAILED only while none of its transactions may still be mined, so funds a
  transaction may have sent are never reported unsent;
- each state change writes its refund_* / payout_* event to the outbox in the same
  transaction.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.common.chains import Chains
from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Reason,
    Unavailable,
)
from services.common.money import parse_amount
from services.common.page_tokens import PageTokens, filter_fingerprint, page_size
from services.ledger.adapters import repository as repo
from services.ledger.domain import keys as keys_
from services.ledger.domain import payouts as rules
from services.ledger.domain.audit import OPERATOR
from services.ledger.domain.hd import payout_wallet_address
from services.ledger.domain.payouts import (
    AssetLimits,
    PayoutEventRecord,
    PayoutKind,
    PayoutPolicy,
    PayoutRecord,
    PayoutSource,
    PayoutState,
    PayoutTxRecord,
    RefundableFunds,
    RefundMode,
)
from services.ledger.domain.pricing import Price, PricingError, parse_price, units_worth
from services.ledger.domain.records import MerchantRecord, PaymentOptionRecord, PaymentRecord
from services.ledger.domain.validation import check_idempotency_key, checksum_address, tx_hash_field, utcnow
from services.ledger.payment_state import refresh_payment
from services.ledger.sweeps import job_option

MAX_WORKER_ID = 128
NO_CLAIM = "no such refund claim"
_CLAIM_TOKEN = re.compile(keys_.CHECKOUT_TOKEN_PATTERN)
TX_STATES = ("signed", "broadcast", "mined", "confirmed", "failed", "replaced")
_OPEN_TX = ("signed", "broadcast", "mined")


@dataclass
class NewPayoutTx:
    """A signed payout transaction as the sweeper reports it (RecordPayoutTransaction)."""

    payout_id: str
    kind: str  # payout | gas_topup
    tx_hash: str
    raw_tx: bytes
    nonce: int
    from_address: str
    to_address: str
    amount: int
    token_address: str
    gas_limit: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int | None
    replaces_tx_hash: str = ""
    l1_fee_reserve: int = 0


@dataclass
class PayoutJobRecord:
    payout: PayoutRecord
    transactions: list[PayoutTxRecord]


@dataclass
class WalletView:
    address: str
    derivation_path: str
    chain_id: int
    balances: list[tuple[str, str, int, int]]  # (asset, token address, balance, reserved)
    balances_error: str = ""  # why the balances could not be read now ("" when they were)


@dataclass(frozen=True)
class BatchItem:
    amount: str
    destination: str
    memo: str


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()


def _memo(value: str, field: str) -> str:
    if len(value) > rules.MAX_MEMO:
        raise InvalidArgument(f"{field} is {len(value)} characters; at most {rules.MAX_MEMO}")
    return value


def _decided(approval: bool, now: datetime) -> dict:
    """The columns of a refund or payout whose approval is decided now: waiting for the
    operator or a second key (REQUESTED), or approved by the policy and due at once."""
    return {
        "state": (PayoutState.REQUESTED if approval else PayoutState.APPROVED).value,
        "approval_required": approval,
        "approved_by": "" if approval else "policy",
        "due_at": None if approval else now,
    }


class PayoutsService:
    def __init__(
        self,
        engine: AsyncEngine,
        chains: Chains,
        on_outbox: Callable[[], None],
        tokens: PageTokens,
        balances: Callable | None = None,
    ) -> None:
        """`balances(chain_id, address, [(asset, token address or None)])` reads what an
        address holds on chain (adapters/chain_balances.py); None: not available."""
        self._engine = engine
        self._chains = chains
        self._on_outbox = on_outbox
        self._tokens = tokens
        self._balances = balances

    # ------------------------------------------------------------------ merchant: refunds

    async def create_refund(
        self,
        merchant_id: str,
        *,
        payment_id: str,
        mode: RefundMode,
        amount: str,
        chain_id: int,
        asset: str,
        destination: str,
        idempotency_key: str,
        reason: str,
        value: tuple[str, str] | None = None,
        claim_link: bool = False,
        key_id: str = "",
    ) -> tuple[PayoutRecord, bool]:
        """`value`: (currency, decimal amount) instead of `amount`, a priced payment's
        refund as a worth in its currency, at the option's locked quote."""
        worth: Price | None = None
        if value is not None:
            if amount or mode is not RefundMode.AMOUNT:
                raise InvalidArgument("give one of amount, value or mode")
            try:
                worth = parse_price(*value)
            except PricingError as err:
                raise InvalidArgument(f"value: {err}") from None
            wanted: int | None = None
        elif mode is RefundMode.AMOUNT:
            wanted = parse_amount(amount, field="amount")
        elif amount:
            raise InvalidArgument(f"give amount or mode {mode.name}, not both")
        else:
            wanted = None
        if not payment_id:
            raise InvalidArgument("payment_id is required: the payment to refund")
        if claim_link and destination:
            raise InvalidArgument("give destination or claim_link, not both")
        to = "" if claim_link else checksum_address(destination, "destination")
        memo = _memo(reason, "reason")
        key = check_idempotency_key(idempotency_key)
        fingerprint = _fingerprint(
            "refund", payment_id, mode.value, amount, chain_id, asset, to, memo, value, claim_link
        )
        now = utcnow()
        async with self._engine.begin() as conn:
            if key is not None and (found := await self._retry(conn, merchant_id, key, fingerprint)) is not None:
                return found, False
            merchant = await self._lock_merchant(conn, merchant_id)
            payment = await repo.payments.get_payment(conn, payment_id, for_update=True)
            if payment is None or payment.merchant_id != merchant_id:
                raise NotFound(f"payment {payment_id} not found")
            option = job_option(payment, chain_id, asset) if (chain_id or asset) else _selected(payment)
            if worth is not None:
                wanted = _units_worth(payment, option, worth)
            refunding, deposit_active = await repo.payouts.refunding(conn, payment.id, option.chain_id, option.asset)
            value = rules.refund_amount(
                mode,
                wanted,
                RefundableFunds(confirmed=option.amount_confirmed, amount_due=option.amount_due, refunding=refunding),
            )
            if claim_link:
                # Where it leaves from is decided when the customer claims it.
                source, (source_address, source_path), fee_from_amount = (
                    PayoutSource.PAYOUT_WALLET,
                    self._wallet(merchant),
                    False,
                )
            else:
                source, source_address, source_path, fee_from_amount = await self._refund_route(
                    conn, merchant, payment, option, value, to, deposit_active
                )
            record = await self._insert(
                conn,
                merchant,
                kind=PayoutKind.REFUND,
                payment=payment,
                chain_id=option.chain_id,
                asset=option.asset,
                token_address=option.token_address,
                decimals=option.decimals,
                amounts=[(value, to, memo)],
                source=source,
                source_address=source_address,
                source_path=source_path,
                fee_from_amount=fee_from_amount,
                keys=[key],
                fingerprint=fingerprint,
                now=now,
                claim=claim_link,
                key_id=key_id,
            )
            if record is None:  # a concurrent request with the same key won
                found = await self._retry(conn, merchant_id, key or "", fingerprint)
                assert found is not None
                return found, False
        self._on_outbox()
        return record[0], True

    # ------------------------------------------------------------------ merchant: payouts

    async def create_payout(
        self,
        merchant_id: str,
        *,
        chain_id: int,
        asset: str,
        amount: str,
        destination: str,
        idempotency_key: str,
        memo: str,
        key_id: str = "",
    ) -> tuple[PayoutRecord, bool]:
        payouts, created = await self.create_batch(
            merchant_id,
            chain_id=chain_id,
            asset=asset,
            items=[BatchItem(amount, destination, memo)],
            idempotency_key=idempotency_key,
            batch=False,
            key_id=key_id,
        )
        return payouts[0], created

    async def create_batch(
        self,
        merchant_id: str,
        *,
        chain_id: int,
        asset: str,
        items: list[BatchItem],
        idempotency_key: str,
        batch: bool = True,
        key_id: str = "",
    ) -> tuple[list[PayoutRecord], bool]:
        """All or none. The batch's idempotency key is stored as "<key>#<index>" on each."""
        if not items:
            raise InvalidArgument("items is empty: give 1 to 500 payouts")
        if len(items) > rules.MAX_BATCH:
            raise InvalidArgument(f"items has {len(items)} payouts; at most {rules.MAX_BATCH} per batch")
        chain = self._chains.get(chain_id)
        if chain is None:
            raise InvalidArgument(f"chain_id {chain_id} is not configured; configured chains: {self._chains.ids()}")
        configured = chain.asset(asset)
        if configured is None:
            raise InvalidArgument(
                f"asset {asset[:32]!r} is not configured on chain {chain_id}; configured: "
                f"{', '.join(a.symbol for a in chain.assets)}"
            )
        where = (lambda i: f"items[{i}].") if batch else (lambda i: "")
        parsed = []
        for i, item in enumerate(items):
            value = parse_amount(item.amount, field=f"{where(i)}amount")
            to = checksum_address(item.destination, f"{where(i)}destination")
            parsed.append((value, to, _memo(item.memo, f"{where(i)}memo")))
        key = check_idempotency_key(idempotency_key)
        fingerprint = _fingerprint("payout", chain_id, asset, [(str(v), t, m) for v, t, m in parsed])
        keys = [None if key is None else (f"{key}#{i}" if batch else key) for i in range(len(parsed))]
        now = utcnow()
        async with self._engine.begin() as conn:
            if key is not None and (found := await self._retry(conn, merchant_id, keys[0] or "", fingerprint)):
                return (await self._batch_of(conn, found) if batch else [found]), False
            merchant = await self._lock_merchant(conn, merchant_id)
            source_address, source_path = self._wallet(merchant)
            token = configured.token_address
            for i, item in enumerate(parsed):
                to = item[1]
                problem = rules.destination_problem(to, source_address=source_address, token_address=token)
                if problem:
                    raise InvalidArgument(f"payout refused: {where(i)}{problem}", reason=Reason.PAYOUT_BAD_DESTINATION)
            records = await self._insert(
                conn,
                merchant,
                kind=PayoutKind.PAYOUT,
                payment=None,
                chain_id=chain_id,
                asset=configured.symbol,
                token_address=token,
                decimals=configured.decimals,
                amounts=parsed,
                source=PayoutSource.PAYOUT_WALLET,
                source_address=source_address,
                source_path=source_path,
                fee_from_amount=False,
                keys=keys,
                fingerprint=fingerprint,
                now=now,
                batch_id=("pob_" + uuid.uuid4().hex) if batch else "",
                key_id=key_id,
            )
            if records is None:
                found = await self._retry(conn, merchant_id, keys[0] or "", fingerprint)
                assert found is not None
                return (await self._batch_of(conn, found) if batch else [found]), False
        self._on_outbox()
        return records, True

    async def _refund_route(
        self,
        conn: AsyncConnection,
        merchant: MerchantRecord,
        payment: PaymentRecord,
        option: PaymentOptionRecord,
        value: int,
        to: str,
        deposit_active: int,
    ) -> tuple[PayoutSource, str, str, bool]:
        """Where a refund of `value` to `to` leaves from: (source, its address, its key's
        path, fee out of the amount?); InvalidArgument for a destination it must not go
        to. `deposit_active`: other refunds under way from the deposit address."""
        at_deposit = option.amount_confirmed - option.amount_accounted - deposit_active
        busy = await repo.payouts.open_sweep_txs(conn, payment.id, option.chain_id, option.asset) > 0
        source = rules.choose_source(at_deposit=at_deposit, amount=value, sweep_busy=busy)
        if source is PayoutSource.DEPOSIT:
            source_address, source_path = payment.deposit_address, payment.derivation_path
        else:
            source_address, source_path = self._wallet(merchant)
        # Everything a native option still holds goes back from its deposit address,
        # which pays the fee out of it (nothing else is there to pay it).
        fee_from_amount = source is PayoutSource.DEPOSIT and option.is_native and value == at_deposit
        problem = rules.destination_problem(to, source_address=source_address, token_address=option.token_address) or (
            f"destination {to} is the payment's own deposit address"
            if to.lower() == payment.deposit_address.lower()
            else ""
        )
        if problem:
            raise InvalidArgument(f"refund refused: {problem}", reason=Reason.PAYOUT_BAD_DESTINATION)
        return source, source_address, source_path, fee_from_amount

    # ------------------------------------------------------------------ the customer: claim pages

    async def claim_view(self, claim_token: str) -> tuple[PayoutRecord, str, str]:
        """(the refund, the merchant's name, the chain's name) of a claim page; the same
        NotFound for an unknown and a malformed token."""
        if not _CLAIM_TOKEN.fullmatch(claim_token):
            raise NotFound(NO_CLAIM)
        async with self._engine.connect() as conn:
            payout = await repo.payouts.by_claim_token(conn, claim_token)
            if payout is None:
                raise NotFound(NO_CLAIM)
            merchant = await repo.merchants.get_merchant(conn, payout.merchant_id)
        assert merchant is not None
        return payout, merchant.name, self._chain_name(payout.chain_id)

    def _chain_name(self, chain_id: int) -> str:
        chain = self._chains.get(chain_id)
        return chain.name if chain is not None else str(chain_id)

    async def submit_claim(self, claim_token: str, destination: str, again: str) -> tuple[PayoutRecord, str, str]:
        """The customer's address, entered twice: the refund's destination from now on;
        it goes on as if created with it (approval by the policy in force now)."""
        if not _CLAIM_TOKEN.fullmatch(claim_token):
            raise NotFound(NO_CLAIM)
        to = checksum_address(destination, "destination")
        if checksum_address(again, "destination_again") != to:
            raise InvalidArgument("the two addresses differ: enter the same address twice")
        now = utcnow()
        async with self._engine.begin() as conn:
            found = await repo.payouts.by_claim_token(conn, claim_token)
            if found is None:
                raise NotFound(NO_CLAIM)
            merchant = await self._lock_merchant(conn, found.merchant_id)
            assert found.payment_id is not None
            payment = await repo.payments.get_payment(conn, found.payment_id, for_update=True)
            payout = await repo.payouts.get_payout(conn, found.id, for_update=True)
            assert payment is not None and payout is not None
            if payout.state is not PayoutState.AWAITING_CLAIM:
                raise FailedPrecondition("this refund was claimed already (or cancelled); nothing was changed")
            option = payment.option(payout.chain_id, payout.asset)
            assert option is not None
            _, deposit_active = await repo.payouts.refunding(conn, payment.id, option.chain_id, option.asset)
            source, source_address, source_path, fee_from_amount = await self._refund_route(
                conn, merchant, payment, option, payout.amount, to, deposit_active
            )
            policy = PayoutPolicy.from_json(await repo.merchants.payout_policy_of(conn, merchant.id))
            approval = rules.needs_approval(policy.for_asset(payout.chain_id, payout.asset), payout.amount)
            await repo.payouts.update_payout(
                conn,
                payout.id,
                destination=to,
                source=source.value,
                source_address=source_address,
                source_path=source_path,
                fee_from_amount=fee_from_amount,
                updated_at=now,
                **_decided(approval, now),
            )
            stored = await repo.payouts.get_payout(conn, payout.id)
            assert stored is not None
            if not approval:
                await repo.outbox.insert_payout_events(conn, [self._event(stored, PayoutState.APPROVED, payment, now)])
        if not approval:
            self._on_outbox()
        return stored, merchant.name, self._chain_name(stored.chain_id)

    async def _batch_of(self, conn: AsyncConnection, first: PayoutRecord) -> list[PayoutRecord]:
        return await repo.payouts.batch_payouts(conn, first.merchant_id, first.batch_id)

    async def _retry(self, conn: AsyncConnection, merchant_id: str, key: str, fingerprint: str) -> PayoutRecord | None:
        found = await repo.payouts.payout_by_key(conn, merchant_id, key)
        if found is not None and found.request_fingerprint != fingerprint:
            raise AlreadyExists(
                f"idempotency_key {key.split('#')[0][:64]!r} was used for a different request ({found.id}); "
                "use a new key for a new request"
            )
        return found

    async def _lock_merchant(self, conn: AsyncConnection, merchant_id: str) -> MerchantRecord:
        """The merchant, its row locked: limits are checked against a sum no concurrent
        request of the same merchant can change meanwhile."""
        merchant = await repo.merchants.get_merchant(conn, merchant_id, for_update=True)
        if merchant is None:
            raise NotFound(f"merchant {merchant_id} not found")
        return merchant

    def _wallet(self, merchant: MerchantRecord) -> tuple[str, str]:
        return payout_wallet_address(merchant.xpub), rules.payout_wallet_path(merchant.derivation_path)

    async def _insert(
        self,
        conn: AsyncConnection,
        merchant: MerchantRecord,
        *,
        kind: PayoutKind,
        payment: PaymentRecord | None,
        chain_id: int,
        asset: str,
        token_address: str | None,
        decimals: int,
        amounts: list[tuple[int, str, str]],
        source: PayoutSource,
        source_address: str,
        source_path: str,
        fee_from_amount: bool,
        keys: list[str | None],
        fingerprint: str,
        now: datetime,
        batch_id: str = "",
        claim: bool = False,
        key_id: str = "",
    ) -> list[PayoutRecord] | None:
        """Check the merchant's payout policy for the total, then insert (None: the
        idempotency key was taken meanwhile) with the creation events. `claim`: a
        refund that waits for its claim page (its approval is decided at the claim)."""
        policy = await repo.merchants.payout_policy_of(conn, merchant.id)
        limits = PayoutPolicy.from_json(policy).for_asset(chain_id, asset)
        total = sum(a for a, _, _ in amounts)
        used = await repo.payouts.used_since(conn, merchant.id, chain_id, asset, now - rules.DAILY_WINDOW)
        rules.check_daily_limit(limits, used=used, amount=total)
        rows = []
        for i, ((value, to, memo), key) in enumerate(zip(amounts, keys, strict=True)):
            # A claim link's refund waits for its address; its approval is decided at the claim.
            decided = (
                {
                    "state": PayoutState.AWAITING_CLAIM.value,
                    "approval_required": False,
                    "approved_by": "",
                    "due_at": None,
                }
                if claim
                else _decided(rules.needs_approval(limits, value), now)
            )
            rows.append(
                {
                    "id": rules.new_payout_id(kind),
                    "merchant_id": merchant.id,
                    "kind": kind.value,
                    "payment_id": payment.id if payment else None,
                    "batch_id": batch_id,
                    "batch_index": i,
                    "chain_id": chain_id,
                    "asset": asset,
                    "token_address": token_address,
                    "decimals": decimals,
                    "amount": value,
                    "fee_from_amount": fee_from_amount,
                    "destination": to,
                    "source": source.value,
                    "source_address": source_address,
                    "source_path": source_path,
                    "memo": memo,
                    "idempotency_key": key,
                    "request_fingerprint": fingerprint,
                    "claim_token": keys_.new_checkout_token() if claim else None,
                    "created_by_key": key_id,
                    **decided,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        if not await repo.payouts.insert_payouts(conn, rows):
            return None
        stored = await repo.payouts.payouts_by_ids(conn, [r["id"] for r in rows])
        events = []
        for r in stored:
            events.append(self._event(r, PayoutState.REQUESTED, payment, now))
            if r.state is PayoutState.APPROVED:
                events.append(self._event(r, PayoutState.APPROVED, payment, now))
        await repo.outbox.insert_payout_events(conn, events)
        return stored

    def _event(
        self, payout: PayoutRecord, state: PayoutState, payment: PaymentRecord | None, now: datetime
    ) -> PayoutEventRecord:
        return PayoutEventRecord(
            event_id=str(uuid.uuid4()),
            event_type=rules.event_type(payout.kind, state),
            payout=payout,
            payment=payment,
            created_at=now,
        )

    async def _payment_of(self, conn: AsyncConnection, payout: PayoutRecord) -> PaymentRecord | None:
        return await repo.payments.get_payment(conn, payout.payment_id) if payout.payment_id else None

    # ------------------------------------------------------------------ merchant: read, cancel, wallet

    async def get(self, merchant_id: str, payout_id: str, kind: PayoutKind) -> PayoutRecord:
        noun = "refund" if kind is PayoutKind.REFUND else "payout"
        if not payout_id:
            raise InvalidArgument(f"{noun}_id is required")
        async with self._engine.connect() as conn:
            found = await repo.payouts.get_payout(conn, payout_id, merchant_id=merchant_id)
        if found is None or found.kind is not kind:
            raise NotFound(f"{noun} {payout_id[:64]} not found")
        return found

    async def list(
        self,
        merchant_id: str,
        kind: PayoutKind,
        *,
        payment_id: str = "",
        batch_id: str = "",
        states: list[str] | None = None,
        size: int = 0,
        token: str = "",
    ) -> tuple[list[PayoutRecord], str]:
        limit = page_size(size)
        scope = f"List{kind.value}s|{merchant_id}"
        filters = filter_fingerprint(payment_id, batch_id, sorted(states or []))
        after = self._tokens.read(scope, token, str, filters)
        async with self._engine.connect() as conn:
            rows = await repo.payouts.list_payouts(
                conn,
                merchant_id,
                kind=kind.value,
                payment_id=payment_id,
                batch_id=batch_id,
                states=states,
                after=after,  # type: ignore[arg-type]
                limit=limit + 1,
            )
        token_out = ""
        if len(rows) > limit:
            rows = rows[:limit]
            token_out = self._tokens.issue(scope, rows[-1].created_at, rows[-1].id, filters)
        return rows, token_out

    async def cancel(self, merchant_id: str | None, payout_id: str) -> PayoutRecord:
        """`merchant_id` None: the operator."""
        if not payout_id:
            raise InvalidArgument("payout_id is required")
        now = utcnow()
        async with self._engine.begin() as conn:
            payout = await repo.payouts.get_payout(conn, payout_id, merchant_id=merchant_id, for_update=True)
            if payout is None:
                raise NotFound(f"payout {payout_id[:64]} not found")
            if payout.state is PayoutState.CANCELLED:
                return payout  # cancelling twice is a no-op
            txs = (await repo.payouts.payout_txs_of(conn, [payout.id]))[payout.id]
            if payout.state not in rules.CANCELLABLE_STATES or any(t.is_open for t in txs):
                raise FailedPrecondition(
                    f"{payout.kind.value} {payout.id} is {payout.state.value}; only a requested or approved one can "
                    "be cancelled, or one awaiting its claim (once signed, its transaction may be mined)",
                    reason=Reason.PAYOUT_NOT_CANCELLABLE,
                )
            stored = await self._end(conn, payout.id, PayoutState.CANCELLED, now)
        self._on_outbox()
        return stored

    async def _end(
        self, conn: AsyncConnection, payout_id: str, state: PayoutState, now: datetime, **values
    ) -> PayoutRecord:
        """The payout reaches a final state (CONFIRMED, FAILED, CANCELLED): no longer due
        or leased; written with `values` and its event."""
        await repo.payouts.update_payout(
            conn,
            payout_id,
            state=state.value,
            due_at=None,
            claimed_by=None,
            lease_until=None,
            updated_at=now,
            completed_at=now,
            **values,
        )
        return await self._changed(conn, payout_id, state, now)

    async def _changed(self, conn: AsyncConnection, payout_id: str, state: PayoutState, now: datetime) -> PayoutRecord:
        """Read the payout back and write the event of reaching `state`."""
        stored = await repo.payouts.get_payout(conn, payout_id)
        assert stored is not None
        await repo.outbox.insert_payout_events(
            conn, [self._event(stored, state, await self._payment_of(conn, stored), now)]
        )
        return stored

    async def wallet(self, merchant_id: str, chain_id: int) -> WalletView:
        chain = self._chains.get(chain_id)
        if chain is None:
            raise InvalidArgument(f"chain_id {chain_id} is not configured; configured chains: {self._chains.ids()}")
        async with self._engine.connect() as conn:
            merchant = await repo.merchants.get_merchant(conn, merchant_id)
            if merchant is None:
                raise NotFound(f"merchant {merchant_id} not found")
            address, path = self._wallet(merchant)
            reserved = await repo.payouts.reserved_of(conn, address, chain_id)
        assets = [(a.symbol, a.token_address) for a in chain.assets]
        if self._balances is None:
            return WalletView(address, path, chain_id, [], "balances are not read by this ledger")
        try:
            held = await self._balances(chain_id, address, assets)
        except Unavailable as err:
            # The address is the merchant's to fund whatever the node says: give it anyway.
            return WalletView(address, path, chain_id, [], err.message)
        return WalletView(
            address=address,
            derivation_path=path,
            chain_id=chain_id,
            balances=[(s, t or "", held.get(s, 0), reserved.get(s, 0)) for s, t in assets],
        )

    # ------------------------------------------------------------------ operator

    async def approve(self, payout_id: str, *, merchant_id: str | None = None, key_id: str = "") -> PayoutRecord:
        """`merchant_id` None: the operator; else a merchant key (`key_id`) with the
        approve scope, never the key that asked for the payout (two keys, two people)."""
        if not payout_id:
            raise InvalidArgument("payout_id is required")
        now = utcnow()
        async with self._engine.begin() as conn:
            payout = await repo.payouts.get_payout(conn, payout_id, merchant_id=merchant_id, for_update=True)
            if payout is None:
                raise NotFound(f"payout {payout_id[:64]} not found")
            if merchant_id is not None and payout.created_by_key and payout.created_by_key == key_id:
                raise PermissionDenied(
                    f"{payout.kind.value} {payout.id} was asked for with this API key; another key with the "
                    "payouts:approve scope (or the operator) must approve it",
                    reason=Reason.SAME_KEY_APPROVAL,
                )
            if payout.state is not PayoutState.REQUESTED:
                if payout.state is PayoutState.APPROVED or payout.approved_by:
                    return payout  # approving twice is a no-op
                raise FailedPrecondition(f"{payout.kind.value} {payout.id} is {payout.state.value}; nothing to approve")
            await repo.payouts.update_payout(
                conn,
                payout.id,
                state=PayoutState.APPROVED.value,
                approved_by="operator" if merchant_id is None else key_id,
                due_at=now,
                updated_at=now,
            )
            stored = await self._changed(conn, payout.id, PayoutState.APPROVED, now)
            await repo.audit.append(
                conn,
                merchant_id=payout.merchant_id,
                actor=OPERATOR if merchant_id is None else key_id,
                action="payout.approved",
                target=payout.id,
                before={"state": payout.state.value},
                after={"state": PayoutState.APPROVED.value, "amount": str(payout.amount), "asset": payout.asset},
            )
        self._on_outbox()
        return stored

    async def set_policy(self, merchant_id: str, limits: list[tuple[int, str, str, str]]) -> PayoutPolicy:
        """`limits`: (chain_id, asset, approval_above, daily_limit), amounts as decimal
        strings of base units ("" for none)."""
        parsed = []
        for i, (chain_id, asset, above, daily) in enumerate(limits):
            chain = self._chains.get(chain_id)
            if chain is None or chain.asset(asset) is None:
                raise InvalidArgument(f"limits[{i}]: {asset[:32]!r} on chain {chain_id} is not a configured asset")
            parsed.append(
                AssetLimits(
                    chain_id=chain_id,
                    asset=asset,
                    approval_above=parse_amount(above, field=f"limits[{i}].approval_above", allow_zero=True)
                    if above
                    else None,
                    daily_limit=parse_amount(daily, field=f"limits[{i}].daily_limit", allow_zero=True)
                    if daily
                    else None,
                )
            )
        rules.check_policy_unique(parsed)
        policy = PayoutPolicy(tuple(parsed))
        async with self._engine.begin() as conn:
            before = await repo.merchants.payout_policy_of(conn, merchant_id)
            if not await repo.merchants.set_payout_policy(conn, merchant_id, policy.to_json()):
                raise NotFound(f"merchant {merchant_id} not found")
            await repo.audit.append(
                conn,
                merchant_id=merchant_id,
                actor=OPERATOR,
                action="payout_policy.set",
                before=before,
                after=policy.to_json(),
            )
        return policy

    # ------------------------------------------------------------------ the sweeper

    def _check_worker(self, worker_id: str) -> None:
        if not 1 <= len(worker_id) <= MAX_WORKER_ID:
            raise InvalidArgument(f"worker_id must be 1 to {MAX_WORKER_ID} characters; got {len(worker_id)}")

    async def claim(
        self, chain_id: int, worker_id: str, limit: int, lease_seconds: int, *, take_over: bool = False
    ) -> list[PayoutJobRecord]:
        """Lease due payouts of the chain; `take_over`: the caller is the chain's new
        signer and takes those another worker still holds too."""
        self._check_worker(worker_id)
        if not 1 <= limit <= 500:
            raise InvalidArgument("limit must be 1 to 500")
        if not 10 <= lease_seconds <= 3600:
            raise InvalidArgument("lease_seconds must be 10 to 3600")
        now = utcnow()
        async with self._engine.begin() as conn:
            claimed = await repo.payouts.claim_payouts(
                conn, chain_id, worker_id, now + timedelta(seconds=lease_seconds), now, limit, take_over
            )
            txs = await repo.payouts.payout_txs_of(conn, [p.id for p in claimed])
        return [PayoutJobRecord(p, txs[p.id]) for p in claimed]

    async def _leased(self, conn: AsyncConnection, payout_id: str, worker_id: str, now: datetime) -> PayoutRecord:
        payout = await repo.payouts.get_payout(conn, payout_id, for_update=True)
        if payout is None:
            raise NotFound(f"payout {payout_id[:64]} not found")
        if not payout.leased_to(worker_id, now):
            raise FailedPrecondition(
                f"worker {worker_id!r} does not hold the lease of {payout_id}; claim it first",
                reason=Reason.SWEEP_LEASE_NOT_HELD,
            )
        return payout

    async def record(self, worker_id: str, tx: NewPayoutTx) -> PayoutTxRecord:
        tx_hash = tx_hash_field(tx.tx_hash)
        replaces = tx_hash_field(tx.replaces_tx_hash, "transaction.replaces_tx_hash") if tx.replaces_tx_hash else ""
        if tx.kind not in ("payout", "gas_topup"):
            raise InvalidArgument("transaction.kind must be PAYOUT or GAS_TOPUP")
        if not tx.raw_tx:
            raise InvalidArgument("transaction.raw_tx is required (write-ahead needs the signed bytes)")
        now = utcnow()
        async with self._engine.begin() as conn:
            existing = await repo.payouts.get_payout_tx(conn, tx_hash)
            if existing is not None:
                return existing  # recording twice is a no-op
            payout = await self._leased(conn, tx.payout_id, worker_id, now)
            if payout.state not in rules.SENDABLE_STATES:
                raise FailedPrecondition(
                    f"{payout.kind.value} {payout.id} is {payout.state.value}; nothing may be signed for it"
                )
            token = checksum_address(tx.token_address, "transaction.token_address") if tx.token_address else None
            await repo.payouts.insert_payout_tx(
                conn,
                {
                    "payout_id": payout.id,
                    "payment_id": payout.payment_id if payout.source is PayoutSource.DEPOSIT else None,
                    "merchant_id": payout.merchant_id,
                    "chain_id": payout.chain_id,
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
                await repo.payouts.update_payout_tx(conn, replaces, state="replaced")
            if tx.kind == "payout":
                values: dict = {"tx_hash": tx_hash, "updated_at": now}
                if payout.state is PayoutState.APPROVED:
                    values["state"] = PayoutState.SIGNED.value
                await repo.payouts.update_payout(conn, payout.id, **values)
            if tx.kind == "gas_topup" and payout.payment_id and payout.source is PayoutSource.DEPOSIT:
                # A top-up into a deposit address is never credited to the payment.
                payment = await repo.payments.get_payment(conn, payout.payment_id, for_update=True)
                if payment is not None and await repo.transfers.mark_gas_topup_transfers(conn, payment.id, tx_hash):
                    if await refresh_payment(conn, payment, now):
                        self._on_outbox()
            stored = await repo.payouts.get_payout_tx(conn, tx_hash)
        assert stored is not None
        return stored

    async def update(self, tx_hash: str, state: str, block_number: int, error: str, fee: int | None) -> PayoutTxRecord:
        tx_hash = tx_hash_field(tx_hash)
        if state not in TX_STATES or state == "signed":
            raise InvalidArgument("state must be BROADCAST, MINED, CONFIRMED, FAILED or REPLACED")
        now = utcnow()
        event = False
        async with self._engine.begin() as conn:
            existing = await repo.payouts.get_payout_tx(conn, tx_hash, for_update=True)
            if existing is None:
                raise NotFound(f"payout transaction {tx_hash} is not recorded")
            if existing.state == "confirmed" and state != "confirmed":
                raise FailedPrecondition(
                    f"payout transaction {tx_hash} is confirmed; its state cannot go back to {state}"
                )
            values: dict = {"state": state, "block_number": block_number, "error": error[:2000]}
            if fee is not None:
                values["fee"] = fee
            elif state == "broadcast":
                values["fee"] = None
            await repo.payouts.update_payout_tx(conn, tx_hash, **values)
            if existing.kind == "payout" and state in ("broadcast", "mined"):
                payout = await repo.payouts.get_payout(conn, existing.payout_id, for_update=True)
                if payout is not None and payout.state is PayoutState.SIGNED:
                    await repo.payouts.update_payout(
                        conn, payout.id, state=PayoutState.BROADCAST.value, tx_hash=tx_hash, updated_at=now
                    )
                    await self._changed(conn, payout.id, PayoutState.BROADCAST, now)
                    event = True
            stored = await repo.payouts.get_payout_tx(conn, tx_hash)
        if event:
            self._on_outbox()
        assert stored is not None
        return stored

    async def complete(self, payout_id: str, tx_hash: str, amount_sent: int, fee: int) -> PayoutRecord:
        tx_hash = tx_hash_field(tx_hash)
        now = utcnow()
        async with self._engine.begin() as conn:
            payout = await repo.payouts.get_payout(conn, payout_id, for_update=True)
            if payout is None:
                raise NotFound(f"payout {payout_id[:64]} not found")
            tx = await repo.payouts.get_payout_tx(conn, tx_hash, for_update=True)
            if tx is None or tx.payout_id != payout.id or tx.kind != "payout":
                raise FailedPrecondition(f"{tx_hash} is not a recorded payout transaction of {payout.id}")
            if payout.state is PayoutState.CONFIRMED:
                return payout  # completing twice is a no-op
            if payout.state not in (PayoutState.SIGNED, PayoutState.BROADCAST):
                raise FailedPrecondition(f"{payout.kind.value} {payout.id} is {payout.state.value}; it cannot complete")
            if amount_sent != tx.amount:
                raise InvalidArgument(
                    f"amount_sent {amount_sent} is not what the recorded transaction sends ({tx.amount})"
                )
            if fee < 0:
                raise InvalidArgument("fee must not be negative")
            await repo.payouts.update_payout_tx(conn, tx_hash, state="confirmed", fee=fee)
            if payout.payment_id:
                await self._account_refund(conn, payout, amount_sent, fee, now)
            stored = await self._end(
                conn,
                payout.id,
                PayoutState.CONFIRMED,
                now,
                tx_hash=tx_hash,
                amount_sent=amount_sent,
                fee=fee,
                last_error="",
            )
        self._on_outbox()
        return stored

    async def _account_refund(
        self, conn: AsyncConnection, payout: PayoutRecord, amount_sent: int, fee: int, now: datetime
    ) -> None:
        """A confirmed refund on its payment option's figures; a refund from the deposit
        address counts as dealt with (status.funds_accounted), so what is left is swept."""
        assert payout.payment_id is not None
        payment = await repo.payments.get_payment(conn, payout.payment_id, for_update=True)
        assert payment is not None
        option = payment.option(payout.chain_id, payout.asset)
        assert option is not None
        option.amount_refunded += amount_sent
        if payout.source is PayoutSource.DEPOSIT:
            option.deposit_refunded += amount_sent
            if option.is_native:
                option.deposit_refund_fee += fee
        await refresh_payment(conn, payment, now, touched=True)

    async def fail(self, payout_id: str, worker_id: str, reason: str) -> PayoutRecord:
        self._check_worker(worker_id)
        if not reason:
            raise InvalidArgument("reason is required: say why the payout can never be sent")
        now = utcnow()
        async with self._engine.begin() as conn:
            payout = await self._leased(conn, payout_id, worker_id, now)
            if payout.state not in rules.SENDABLE_STATES:
                raise FailedPrecondition(f"{payout.kind.value} {payout.id} is {payout.state.value}; it cannot fail now")
            txs = (await repo.payouts.payout_txs_of(conn, [payout.id]))[payout.id]
            # A gas top-up counts too: left unsent, it would block the gas wallet's later nonces.
            live = [t.tx_hash for t in txs if t.state in _OPEN_TX]
            if live:
                raise FailedPrecondition(
                    f"{payout.id} has transactions that may still be mined ({', '.join(live)}); settle them first"
                )
            stored = await self._end(conn, payout.id, PayoutState.FAILED, now, failure_reason=reason[:2000])
            if payout.payment_id and payout.source is PayoutSource.DEPOSIT:
                # The hold-back ends: the option's sweep may be claimed again now.
                await repo.sweeps.request_sweep(conn, now, payment_id=payout.payment_id)
        self._on_outbox()
        return stored

    async def release(self, payout_id: str, worker_id: str, error: str, retry_after: int) -> None:
        self._check_worker(worker_id)
        now = utcnow()
        async with self._engine.begin() as conn:
            payout = await self._leased(conn, payout_id, worker_id, now)
            await repo.payouts.update_payout(
                conn,
                payout.id,
                claimed_by=None,
                lease_until=None,
                last_error=error[:2000],
                attempts=payout.attempts + 1,
                due_at=now + timedelta(seconds=max(1, retry_after)),
                updated_at=now,
            )


def _units_worth(payment: PaymentRecord, option: PaymentOptionRecord, worth: Price) -> int:
    """A refund's fiat value in the option's base units at its locked quote."""
    if payment.price is None or option.quote is None:
        raise InvalidArgument(f"payment {payment.id} has no price, so no rate to convert value at; give amount")
    if worth.currency.code != payment.price.currency.code:
        raise InvalidArgument(
            f"value is in {worth.currency.code} but payment {payment.id} is priced in {payment.price.currency.code}"
        )
    units = units_worth(worth, option.quote.rate, option.decimals)
    if units <= 0:
        raise InvalidArgument(
            f"value {worth.amount} {worth.currency.code} is less than one base unit of {option.asset}"
        )
    return units


def _selected(payment: PaymentRecord) -> PaymentOptionRecord:
    return next((o for o in payment.options if o.selected), payment.options[0])
