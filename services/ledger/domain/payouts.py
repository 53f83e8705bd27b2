"""Refunds and payouts: the rules, pure.

A refund gives money back for one payment option; a payout sends money from the
merchant's payout wallet. Both are one record (PayoutRecord, kind "refund" or
"payout") that the sweeper sends exactly once, and both go through the same states:

    requested --approve--> approved --sign+record--> signed --node accepted--> broadcast
        --confirmations--> confirmed
    awaiting_claim --the customer enters the address--> requested or approved
    awaiting_claim / requested / approved --cancel--> cancelled
    approved / signed / broadcast --never sendable--> failed   (nothing left the source)

Where the money comes from (`choose_source`): a refund of funds still at the
payment's deposit address (confirmed, not yet swept or refunded) is paid from that
address, and the option's sweep waits for it; anything else is paid from the
merchant's payout wallet, the key at `<merchant derivation path>/1/0` of the
operator's seed (`payout_wallet_path`: the internal chain of the merchant's
account, index 0, which deposit addresses, on the external chain /0/i, never use).

The amounts are integers in base units of the asset refunded or paid out; fiat
amounts are not taken (yet).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from services.common.errors import FailedPrecondition, InvalidArgument, Reason

ZERO_ADDRESS = "0x" + "0" * 40
MAX_MEMO = 500
MAX_BATCH = 500
DAILY_WINDOW = timedelta(hours=24)


class PayoutState(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    SIGNED = "signed"
    BROADCAST = "broadcast"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    AWAITING_CLAIM = "awaiting_claim"  # a claim link's refund: the customer has not given the address yet


# Not yet ended: counted against limits and a refund's refundable amount; a deposit
# refund in one of these holds its option's sweep back.
ACTIVE_STATES = frozenset({PayoutState.REQUESTED, PayoutState.APPROVED, PayoutState.SIGNED, PayoutState.BROADCAST})
CANCELLABLE_STATES = frozenset({PayoutState.AWAITING_CLAIM, PayoutState.REQUESTED, PayoutState.APPROVED})
# The sweeper may claim it: approved (to sign) or signed / broadcast (to resume).
SENDABLE_STATES = frozenset({PayoutState.APPROVED, PayoutState.SIGNED, PayoutState.BROADCAST})


class PayoutKind(StrEnum):
    REFUND = "refund"
    PAYOUT = "payout"


class PayoutSource(StrEnum):
    DEPOSIT = "deposit"
    PAYOUT_WALLET = "payout_wallet"


class RefundMode(StrEnum):
    AMOUNT = "amount"
    ALL_RECEIVED = "all_received"
    EXCESS = "excess"


def new_payout_id(kind: PayoutKind) -> str:
    return ("rf_" if kind is PayoutKind.REFUND else "po_") + uuid.uuid4().hex


def payout_wallet_path(account_path: str) -> str:
    """The full path of a merchant's payout wallet key under the operator's seed."""
    return f"{account_path}/1/0"


def event_type(kind: PayoutKind, state: PayoutState) -> str:
    """The outbox event of a refund or payout reaching `state` (the NATS subject's last
    token, e.g. refund_confirmed); "signed" has none (broadcast follows at once)."""
    name = {
        PayoutState.REQUESTED: "created",
        PayoutState.APPROVED: "approved",
        PayoutState.BROADCAST: "broadcast",
        PayoutState.CONFIRMED: "confirmed",
        PayoutState.FAILED: "failed",
        PayoutState.CANCELLED: "cancelled",
    }[state]
    return f"{kind.value}_{name}"


# ------------------------------------------------------------------ policy


@dataclass(frozen=True)
class AssetLimits:
    """A merchant's payout rules for one asset on one chain (base units; None: none)."""

    chain_id: int
    asset: str
    approval_above: int | None = None
    daily_limit: int | None = None


@dataclass(frozen=True)
class PayoutPolicy:
    limits: tuple[AssetLimits, ...] = ()

    def for_asset(self, chain_id: int, asset: str) -> AssetLimits:
        found = next((a for a in self.limits if (a.chain_id, a.asset) == (chain_id, asset)), None)
        return found or AssetLimits(chain_id, asset)

    def to_json(self) -> dict[str, Any]:
        return {
            "limits": [
                {
                    "chain_id": a.chain_id,
                    "asset": a.asset,
                    "approval_above": None if a.approval_above is None else str(a.approval_above),
                    "daily_limit": None if a.daily_limit is None else str(a.daily_limit),
                }
                for a in self.limits
            ]
        }

    @classmethod
    def from_json(cls, value: Any) -> PayoutPolicy:
        if isinstance(value, str):
            value = json.loads(value)
        limits = []
        for a in (value or {}).get("limits", []):
            limits.append(
                AssetLimits(
                    chain_id=int(a["chain_id"]),
                    asset=a["asset"],
                    approval_above=None if a.get("approval_above") is None else int(a["approval_above"]),
                    daily_limit=None if a.get("daily_limit") is None else int(a["daily_limit"]),
                )
            )
        return cls(tuple(limits))


def check_policy_unique(limits: list[AssetLimits]) -> None:
    seen: set[tuple[int, str]] = set()
    for a in limits:
        if (a.chain_id, a.asset) in seen:
            raise InvalidArgument(f"limits name {a.asset} on chain {a.chain_id} twice; give each asset once")
        seen.add((a.chain_id, a.asset))


def needs_approval(limits: AssetLimits, amount: int) -> bool:
    return limits.approval_above is not None and amount > limits.approval_above


def check_daily_limit(limits: AssetLimits, *, used: int, amount: int) -> None:
    """`used`: what the merchant's refunds and payouts of the asset created in the last
    24 hours add up to (cancelled and failed ones left out)."""
    if limits.daily_limit is None:
        return
    if used + amount > limits.daily_limit:
        left = max(0, limits.daily_limit - used)
        raise FailedPrecondition(
            f"over the daily limit: {limits.asset} on chain {limits.chain_id} allows {limits.daily_limit} base units "
            f"per 24 hours; {used} are already used, so at most {left} more can be sent now "
            "(the operator sets it with MerchantAdminService.SetPayoutPolicy)",
            reason=Reason.PAYOUT_DAILY_LIMIT,
        )


# ------------------------------------------------------------------ amounts and destinations


def destination_problem(destination: str, *, source_address: str, token_address: str | None) -> str:
    """Why money must not go to `destination` ("" when it may). All checksummed."""
    d = destination.lower()
    if d == ZERO_ADDRESS:
        return "destination is the zero address: funds sent there are lost"
    if d == source_address.lower():
        return f"destination {destination} is the address the money leaves from"
    if token_address and d == token_address.lower():
        return f"destination {destination} is the token contract itself: tokens sent there are usually lost"
    return ""


@dataclass(frozen=True)
class RefundableFunds:
    """What a payment option can still give back (base units)."""

    confirmed: int  # the option's confirmed funds
    amount_due: int
    refunding: int  # refunds of the option not cancelled or failed (active + confirmed)


def refund_amount(mode: RefundMode, amount: int | None, funds: RefundableFunds) -> int:
    """The amount a refund gives back, or InvalidArgument saying why it cannot."""
    left = funds.confirmed - funds.refunding
    if mode is RefundMode.AMOUNT:
        assert amount is not None
        wanted = amount
    elif mode is RefundMode.ALL_RECEIVED:
        wanted = left
    else:
        excess = funds.confirmed - funds.amount_due
        wanted = excess - funds.refunding
        if excess <= 0:
            raise FailedPrecondition(
                f"the option has no excess to refund: it received {funds.confirmed} confirmed base units for "
                f"{funds.amount_due} due",
                reason=Reason.REFUND_NOTHING_TO_REFUND,
            )
    if wanted <= 0 or left <= 0:
        raise FailedPrecondition(
            f"nothing left to refund: the option received {funds.confirmed} confirmed base units and refunds of "
            f"{funds.refunding} are already made or under way",
            reason=Reason.REFUND_NOTHING_TO_REFUND,
        )
    if wanted > left:
        raise InvalidArgument(
            f"amount {wanted} is more than can be refunded: the option received {funds.confirmed} confirmed base "
            f"units and refunds of {funds.refunding} are already made or under way, so at most {left}",
            reason=Reason.REFUND_TOO_LARGE,
        )
    return wanted


def choose_source(*, at_deposit: int, amount: int, sweep_busy: bool) -> PayoutSource:
    """A refund is paid from the deposit address when the option's funds still there
    (confirmed, not swept, not refunded or being refunded from it) cover it and no sweep
    of the option is leased or in flight; else from the payout wallet."""
    if not sweep_busy and at_deposit >= amount:
        return PayoutSource.DEPOSIT
    return PayoutSource.PAYOUT_WALLET


# ------------------------------------------------------------------ the record


@dataclass
class PayoutRecord:
    id: str
    merchant_id: str
    kind: PayoutKind
    payment_id: str | None
    batch_id: str
    chain_id: int
    asset: str
    token_address: str | None
    decimals: int
    amount: int
    fee_from_amount: bool
    destination: str
    source: PayoutSource
    source_address: str
    source_path: str
    state: PayoutState
    memo: str
    created_at: datetime
    updated_at: datetime
    amount_sent: int | None = None
    fee: int | None = None
    failure_reason: str = ""
    last_error: str = ""
    tx_hash: str = ""
    approval_required: bool = False
    approved_by: str = ""
    completed_at: datetime | None = None
    attempts: int = 0
    claimed_by: str | None = None  # the sweeper holding its lease, until lease_until
    lease_until: datetime | None = None
    request_fingerprint: str = ""
    claim_token: str = ""
    created_by_key: str = ""  # the API key that asked for it ("" for the operator or before scoped keys)

    @property
    def is_native(self) -> bool:
        return self.token_address is None

    def leased_to(self, worker_id: str, now: datetime) -> bool:
        """`worker_id` holds the payout's lease at `now`."""
        return self.claimed_by == worker_id and self.lease_until is not None and self.lease_until >= now

    @classmethod
    def from_row(cls, row: Any) -> PayoutRecord:
        r = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
        return cls(
            id=r["id"],
            merchant_id=r["merchant_id"],
            kind=PayoutKind(r["kind"]),
            payment_id=r["payment_id"],
            batch_id=r["batch_id"],
            chain_id=r["chain_id"],
            asset=r["asset"],
            token_address=r["token_address"],
            decimals=r["decimals"],
            amount=int(r["amount"]),
            fee_from_amount=r["fee_from_amount"],
            destination=r["destination"],
            source=PayoutSource(r["source"]),
            source_address=r["source_address"],
            source_path=r["source_path"],
            state=PayoutState(r["state"]),
            memo=r["memo"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            amount_sent=None if r["amount_sent"] is None else int(r["amount_sent"]),
            fee=None if r["fee"] is None else int(r["fee"]),
            failure_reason=r["failure_reason"],
            last_error=r["last_error"],
            tx_hash=r["tx_hash"],
            approval_required=r["approval_required"],
            approved_by=r["approved_by"],
            completed_at=r["completed_at"],
            attempts=r["attempts"],
            claimed_by=r["claimed_by"],
            lease_until=r["lease_until"],
            request_fingerprint=r["request_fingerprint"],
            claim_token=r["claim_token"] or "",
            created_by_key=r["created_by_key"],
        )


@dataclass
class PayoutTxRecord:
    """A payout transaction as recorded (write-ahead)."""

    payout_id: str
    payment_id: str | None
    merchant_id: str
    chain_id: int
    kind: str  # payout | gas_topup
    state: str
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
    block_number: int
    error: str
    replaces_tx_hash: str
    fee: int | None
    l1_fee_reserve: int
    created_at: datetime
    updated_at: datetime

    @property
    def is_open(self) -> bool:
        return self.state in ("signed", "broadcast", "mined")

    @classmethod
    def from_row(cls, row: Any) -> PayoutTxRecord:
        r = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
        return cls(
            payout_id=r["payout_id"],
            payment_id=r["payment_id"],
            merchant_id=r["merchant_id"],
            chain_id=r["chain_id"],
            kind=r["kind"],
            state=r["state"],
            tx_hash=r["tx_hash"],
            raw_tx=bytes(r["raw_tx"]),
            nonce=r["nonce"],
            from_address=r["from_address"],
            to_address=r["to_address"],
            amount=int(r["amount"]),
            token_address=r["token_address"],
            gas_limit=r["gas_limit"],
            max_fee_per_gas=int(r["max_fee_per_gas"]),
            max_priority_fee_per_gas=None
            if r["max_priority_fee_per_gas"] is None
            else int(r["max_priority_fee_per_gas"]),
            block_number=r["block_number"],
            error=r["error"],
            replaces_tx_hash=r["replaces_tx_hash"],
            fee=None if r["fee"] is None else int(r["fee"]),
            l1_fee_reserve=int(r["l1_fee_reserve"]),
            created_at=r["created_at"],
            updated_at=r["updated_at"],
        )


@dataclass
class PayoutEventRecord:
    """A refund or payout event about to be written to the outbox; `payment` is the
    refunded payment (a PaymentRecord) for a refund, None for a payout."""

    event_id: str
    event_type: str
    payout: PayoutRecord
    payment: Any
    created_at: datetime
