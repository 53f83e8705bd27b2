"""Payment policy: how tolerant a merchant is and how long a payment waits. Pure.

A merchant has a policy (all fields optional); a payment may override any field
(`merge`: a field the payment sets replaces the merchant's). When the payment is
created, the merged policy and the ledger's defaults give the **policy in force**
(`in_force`), stored on the payment like `confirmations_required`, so the status
derivation stays a pure function of the transfers and what the payment stores:

- underpayment tolerance (basis points of the amount due, 0 to 10,000): confirmed
  funds of at least pricing.minimum_accepted(due, bps) make the payment CONFIRMED;
- confirmations: the deepest of the chain's minimum (chains.yaml), the policy's
  override for the chain, and the deepest confirmation tier the payment's price
  reaches (tiers compare prices in the same currency only; a payment priced in
  base units reaches no tier);
- watch after expiry: funds are still watched for (and make the payment
  PAID_AFTER_EXPIRY) until expires_at + this, 0 to 90 days.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from services.ledger.domain.pricing import MAX_TOLERANCE_BPS, Price, PricingError, parse_price

MAX_WATCH_AFTER_EXPIRY = timedelta(days=90)
MAX_CONFIRMATIONS = 10_000  # a week of 60 s blocks; more is a typo, not a policy
MAX_TIERS = 16


class PolicyError(ValueError):
    """A policy that cannot be applied; the message names the field and why."""


@dataclass(frozen=True)
class ConfirmationTier:
    min_price: Price
    confirmations: int


@dataclass(frozen=True)
class Policy:
    """A policy as a merchant or a payment gives it: None / empty means "not set"."""

    tolerance_bps: int | None = None
    confirmations: Mapping[int, int] = field(default_factory=dict)  # chain id -> depth
    tiers: tuple[ConfirmationTier, ...] = ()
    watch_after_expiry: timedelta | None = None

    def is_empty(self) -> bool:
        return self == Policy()

    def to_json(self) -> dict[str, Any]:
        """For storage (the merchant's JSONB column); exact decimals as strings."""
        out: dict[str, Any] = {}
        if self.tolerance_bps is not None:
            out["tolerance_bps"] = self.tolerance_bps
        if self.confirmations:
            out["confirmations"] = {str(k): v for k, v in sorted(self.confirmations.items())}
        if self.tiers:
            out["tiers"] = [
                {
                    "currency": t.min_price.currency.code,
                    "min_price": str(t.min_price.amount),
                    "confirmations": t.confirmations,
                }
                for t in self.tiers
            ]
        if self.watch_after_expiry is not None:
            out["watch_after_expiry_seconds"] = int(self.watch_after_expiry.total_seconds())
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Policy:
        if not data:
            return cls()
        watch = data.get("watch_after_expiry_seconds")
        return cls(
            tolerance_bps=data.get("tolerance_bps"),
            confirmations={int(k): int(v) for k, v in (data.get("confirmations") or {}).items()},
            tiers=tuple(
                ConfirmationTier(parse_price(t["currency"], t["min_price"]), int(t["confirmations"]))
                for t in data.get("tiers") or ()
            ),
            watch_after_expiry=None if watch is None else timedelta(seconds=watch),
        )


@dataclass(frozen=True)
class PolicyInForce:
    """What a payment stores at creation."""

    tolerance_bps: int
    confirmations: int
    watch_after_expiry: timedelta


def tier(currency: str, min_price: str, confirmations: int, where: str) -> ConfirmationTier:
    """A confirmation tier from its wire fields."""
    try:
        price = parse_price(currency, min_price)
    except PricingError as err:
        raise PolicyError(f"{where}.min_price: {err}") from None
    return ConfirmationTier(price, confirmations)


def check_policy(policy: Policy, chain_minimums: Mapping[int, int], *, where: str = "policy") -> Policy:
    """The policy, if every field can be applied: a tolerance of at most 100 %, depths on
    configured chains and never below their minimum, tiers of at least one block,
    a watch window of 0 to 90 days. `chain_minimums`: chain id -> chains.yaml depth."""
    if policy.tolerance_bps is not None and not 0 <= policy.tolerance_bps <= MAX_TOLERANCE_BPS:
        raise PolicyError(
            f"{where}.underpayment_tolerance_bps is {policy.tolerance_bps}; it is in basis points of the amount "
            f"due, 0 to {MAX_TOLERANCE_BPS} (100 %), e.g. 50 for 0.5 %"
        )
    for chain_id, depth in policy.confirmations.items():
        minimum = chain_minimums.get(chain_id)
        if minimum is None:
            raise PolicyError(
                f"{where}.confirmations: chain {chain_id} is not configured; "
                f"configured chains: {sorted(chain_minimums)}"
            )
        if depth < minimum:
            raise PolicyError(
                f"{where}.confirmations: {depth} on chain {chain_id} is below the chain's minimum of {minimum} "
                "(chains.yaml); a policy can only wait longer"
            )
        if depth > MAX_CONFIRMATIONS:
            raise PolicyError(f"{where}.confirmations: {depth} on chain {chain_id} is more than {MAX_CONFIRMATIONS}")
    if len(policy.tiers) > MAX_TIERS:
        raise PolicyError(f"{where}.confirmation_tiers has {len(policy.tiers)} tiers; at most {MAX_TIERS}")
    for i, t in enumerate(policy.tiers):
        if not 1 <= t.confirmations <= MAX_CONFIRMATIONS:
            raise PolicyError(
                f"{where}.confirmation_tiers[{i}].confirmations must be 1 to {MAX_CONFIRMATIONS}; got {t.confirmations}"
            )
    watch = policy.watch_after_expiry
    if watch is not None and not timedelta(0) <= watch <= MAX_WATCH_AFTER_EXPIRY:
        raise PolicyError(f"{where}.watch_after_expiry must be 0 to 90 days; got {int(watch.total_seconds())} s")
    return policy


def merge(merchant: Policy, payment: Policy) -> Policy:
    """The payment's fields over the merchant's: per-chain depths merge chain by
    chain, a non-empty tier list replaces the merchant's."""
    return Policy(
        tolerance_bps=payment.tolerance_bps if payment.tolerance_bps is not None else merchant.tolerance_bps,
        confirmations={**merchant.confirmations, **payment.confirmations},
        tiers=payment.tiers or merchant.tiers,
        watch_after_expiry=(
            payment.watch_after_expiry if payment.watch_after_expiry is not None else merchant.watch_after_expiry
        ),
    )


def in_force(
    policy: Policy, *, chain_id: int, chain_minimum: int, price: Price | None, default_watch: timedelta
) -> PolicyInForce:
    """The policy a new payment on `chain_id` (priced at `price`, or in base units) stores."""
    depth = max(chain_minimum, policy.confirmations.get(chain_id, 0))
    if price is not None:
        for t in policy.tiers:
            if t.min_price.currency == price.currency and price.amount >= t.min_price.amount:
                depth = max(depth, t.confirmations)
    return PolicyInForce(
        tolerance_bps=policy.tolerance_bps or 0,
        confirmations=depth,
        watch_after_expiry=policy.watch_after_expiry if policy.watch_after_expiry is not None else default_watch,
    )
