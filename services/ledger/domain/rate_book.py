"""The rates the ledger quotes, in memory: what each configured pair last read, and
the rules that decide whether it may be quoted now. Pure: the refresher fetches and
shares (services/ledger/rate_refresher.py), this only decides.

Guarantees of `RateBook.rate(asset, currency, now)`:

- it never touches the network: it reads what the refresher (or the shared KV
  bucket) last put here;
- it returns a rate only if that rate is at most the pair's max age old at `now`
  (the rate's own `observed_at`, checked on every call, so a rate that goes stale
  between two refreshes is refused);
- a fixed pair with a guard is quoted at its fixed value only while the guard's
  price is itself fresh and within `max_deviation_bps` of the fixed value;
- otherwise it raises, with a message naming the pair: `Unavailable` (no fresh
  rate; the source's last error is in the message), `FailedPrecondition` with
  reason `ASSET_DEPEGGED` (the guard says the peg broke) or `RATE_NOT_CONFIGURED`
  (rates.yaml has no source for the pair; the message lists those it has).

A reading replaces the one held only if its rate is at least as recent
(`observed_at`), so a late or replayed update never moves a quote back in time.

`encode_reading` / `decode_reading` are the JSON form replicas share through the
`ledger-rates` KV bucket: rates as decimal strings, times as ISO 8601 UTC.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.common.errors import FailedPrecondition, Reason, Unavailable
from services.ledger.domain.pricing import PricingError, Rate, deviation_bps, parse_rate

DEFAULT_LOCK_WINDOW = timedelta(seconds=900)  # how long a quote is honoured (Coinbase Commerce's 15 minutes)
DEFAULT_REFRESH = timedelta(seconds=10)  # how often the refresher fetches every pair


@dataclass(frozen=True)
class PairRule:
    """What rates.yaml says of one pair, as the book needs it."""

    asset: str  # as written in rates.yaml (the chains.yaml symbol)
    currency: str  # ISO 4217
    source: str  # who is asked ("chainlink 31337:0x5FbD...", "coinbase", "kraken", "fixed")
    max_age: timedelta | None  # None: never stale (an unguarded fixed rate)
    fixed_value: Decimal | None = None  # set for a fixed pair
    guard_source: str = ""  # a guarded fixed pair: who prices the asset to check the peg
    guard_max_age: timedelta | None = None
    max_deviation_bps: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        return pair_key(self.asset, self.currency)

    @property
    def label(self) -> str:
        return f"{self.asset}/{self.currency}"

    @property
    def fixed(self) -> bool:
        return self.fixed_value is not None

    @property
    def guarded(self) -> bool:
        return bool(self.guard_source)

    def quoted_source(self) -> str:
        """The source a quote of this pair names."""
        return f"fixed (guarded by {self.guard_source})" if self.guarded else self.source


@dataclass(frozen=True)
class PairReading:
    """What the refresher last learnt of a pair: the latest good rate (a fixed pair's
    is its guard's price) and the last fetch's error ("" when it succeeded)."""

    rate: Rate | None = None
    error: str = ""
    error_at: datetime | None = None


def pair_key(asset: str, currency: str) -> tuple[str, str]:
    """Symbols are matched without regard to case, as chains.yaml matches them."""
    return asset.strip().upper(), currency.strip().upper()


def _age(rate: Rate, now: datetime) -> float:
    return (now - rate.observed_at).total_seconds()


class RateBook:
    """The latest usable rate of every configured pair, in memory."""

    def __init__(self, rules: list[PairRule], lock_window: timedelta = DEFAULT_LOCK_WINDOW) -> None:
        self.lock_window = lock_window
        self._rules: dict[tuple[str, str], PairRule] = {}
        for rule in rules:
            if rule.key in self._rules:
                raise ValueError(f"pair {rule.label} appears twice")
            self._rules[rule.key] = rule
        self._readings: dict[tuple[str, str], PairReading] = {k: PairReading() for k in self._rules}

    # ------------------------------------------------------------------ what the payments code calls

    def rate(self, asset: str, currency: str, now: datetime) -> Rate:
        """The rate to quote now, or raise (see the module docstring):
        Unavailable when the pair has no rate younger than its max age (the message
        names the pair and the source's last error, if any); FailedPrecondition with
        reason ASSET_DEPEGGED when a guarded fixed pair's guard is more than
        max_deviation_bps from the fixed value; FailedPrecondition with reason
        RATE_NOT_CONFIGURED when rates.yaml has no source for the pair."""
        rule = self._rules.get(pair_key(asset, currency))
        if rule is None:
            configured = ", ".join(f"{a}/{c}" for a, c in self.pairs()) or "none"
            raise FailedPrecondition(
                f"no rate source is configured for {asset}/{currency}, so it cannot be priced in {currency} "
                f"(rates.yaml configures: {configured})",
                reason=Reason.RATE_NOT_CONFIGURED,
            )
        reading = self._readings[rule.key]
        if rule.fixed_value is not None and not rule.guarded:
            return Rate(rule.asset, rule.currency, rule.fixed_value, rule.source, now)
        max_age = rule.guard_max_age if rule.guarded else rule.max_age
        source = rule.guard_source if rule.guarded else rule.source
        held = reading.rate
        if held is None or (max_age is not None and _age(held, now) > max_age.total_seconds()):
            raise Unavailable(self._unavailable(rule, reading, source, max_age, now), reason=Reason.RATE_UNAVAILABLE)
        if rule.fixed_value is None:
            return held
        deviation = deviation_bps(held.value, rule.fixed_value)
        if rule.max_deviation_bps is not None and deviation > rule.max_deviation_bps:
            raise FailedPrecondition(
                f"{rule.asset} looks depegged: {rule.label} is fixed at {rule.fixed_value:f} but its guard "
                f"({rule.guard_source}) prices {rule.asset} at {held.value:f} {rule.currency}, {deviation} bps away "
                f"(more than the {rule.max_deviation_bps} bps allowed); new {rule.asset} payments priced in "
                f"{rule.currency} are refused until the guard is back within range",
                reason=Reason.ASSET_DEPEGGED,
            )
        return Rate(rule.asset, rule.currency, rule.fixed_value, rule.quoted_source(), held.observed_at)

    def _unavailable(
        self, rule: PairRule, reading: PairReading, source: str, max_age: timedelta | None, now: datetime
    ) -> str:
        what = f"no usable {rule.label} rate: "
        if rule.fixed_value is not None:
            what += f"it is fixed at {rule.fixed_value:f}, but its depeg guard has no fresh price: "
        limit = f"{max_age.total_seconds():.0f} s" if max_age is not None else "none"
        held = reading.rate
        stale = (
            f"the latest, {held.value:f} from {held.source}, was observed {_age(held, now):.0f} s ago, "
            f"more than its max age of {limit}"
            if held is not None
            else ""
        )
        if reading.error:
            return what + reading.error + (f" ({stale})" if stale else "")
        if stale:
            return what + stale
        return what + f"{source}: no rate fetched yet (is the rate refresher running?)"

    def pairs(self) -> list[tuple[str, str]]:
        """(asset, currency) of every configured pair, as rates.yaml writes them."""
        return [(r.asset, r.currency) for r in self._rules.values()]

    def currencies_for(self, asset: str) -> list[str]:
        """The currencies `asset` can be priced in (configured, whether usable now or not)."""
        wanted = asset.strip().upper()
        return [r.currency for r in self._rules.values() if r.key[0] == wanted]

    # ------------------------------------------------------------------ what the refresher calls

    def rules(self) -> list[PairRule]:
        return list(self._rules.values())

    def rule(self, asset: str, currency: str) -> PairRule | None:
        return self._rules.get(pair_key(asset, currency))

    def reading(self, asset: str, currency: str) -> PairReading | None:
        return self._readings.get(pair_key(asset, currency))

    def apply(self, asset: str, currency: str, reading: PairReading) -> bool:
        """Take a reading of a configured pair; False (ignored) for a pair not
        configured here. The held rate is replaced only by one at least as recent;
        the error always follows the reading."""
        key = pair_key(asset, currency)
        held = self._readings.get(key)
        if held is None:
            return False
        rate = reading.rate
        if rate is not None and held.rate is not None and rate.observed_at < held.rate.observed_at:
            rate = held.rate
        if rate is None:
            rate = held.rate
        self._readings[key] = replace(reading, rate=rate)
        return True

    def age_seconds(self, asset: str, currency: str, now: datetime) -> float | None:
        """Age of the rate (a guarded fixed pair: of its guard's price) the book holds;
        0 for an unguarded fixed pair, None when it holds none."""
        rule = self._rules.get(pair_key(asset, currency))
        if rule is None:
            return None
        if rule.fixed and not rule.guarded:
            return 0.0
        held = self._readings[rule.key].rate
        return None if held is None else _age(held, now)


# ---------------------------------------------------------------------- the shared form (KV values)


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _rate_json(rate: Rate) -> dict[str, Any]:
    return {"value": f"{rate.value:f}", "source": rate.source, "observed_at": _time(rate.observed_at)}


def encode_reading(rule: PairRule, reading: PairReading, writer: str = "") -> bytes:
    """The KV value of a pair: JSON with the rate as a decimal string, its source and
    observed_at, the last error, who wrote it, and for a guarded fixed pair the
    guard's price and deviation."""
    body: dict[str, Any] = {
        "writer": writer,
        "asset": rule.asset,
        "currency": rule.currency,
        "source": rule.quoted_source(),
        "rate": None if reading.rate is None else _rate_json(reading.rate),
        "error": reading.error,
        "error_at": None if reading.error_at is None else _time(reading.error_at),
    }
    if rule.fixed_value is not None:
        # A fixed pair's reading is its guard's price; the rate is the fixed value,
        # as of when the guard last confirmed the peg.
        guard = reading.rate
        body["guard"] = body["rate"]
        body["rate"] = (
            None
            if guard is None
            else _rate_json(Rate(rule.asset, rule.currency, rule.fixed_value, rule.quoted_source(), guard.observed_at))
        )
        body["guard_deviation_bps"] = None if guard is None else deviation_bps(guard.value, rule.fixed_value)
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


class ReadingFormatError(ValueError):
    """A KV value that is not a reading this code wrote."""


def _parse_time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise ReadingFormatError(f"{what} is not a time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ReadingFormatError(f"{what} is not an ISO 8601 time: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise ReadingFormatError(f"{what} has no time zone")
    return parsed


def decode_writer(data: bytes) -> str:
    """Who wrote a KV value ("" if unknown)."""
    try:
        body = json.loads(data)
    except ValueError:
        return ""
    writer = body.get("writer") if isinstance(body, dict) else ""
    return writer if isinstance(writer, str) else ""


def decode_reading(data: bytes) -> tuple[str, str, PairReading]:
    """(asset, currency, reading) from a KV value; ReadingFormatError if malformed.
    The rate is parsed exactly (a decimal string, never a float); for a fixed pair
    the reading is its guard's price."""
    try:
        body = json.loads(data)
    except ValueError:
        raise ReadingFormatError("not JSON") from None
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("asset"), str)
        or not isinstance(body.get("currency"), str)
    ):
        raise ReadingFormatError("no asset and currency")
    asset, currency = body["asset"], body["currency"]
    rate = None
    raw = body["guard"] if "guard" in body else body.get("rate")  # a fixed pair's reading is its guard's price
    if raw is not None:
        if not isinstance(raw, dict) or not isinstance(raw.get("source"), str):
            raise ReadingFormatError("rate is not an object with a source")
        text = raw.get("value")
        if not isinstance(text, str):
            raise ReadingFormatError("rate value is not a decimal string")
        try:
            value = parse_rate(text)
        except PricingError as err:
            raise ReadingFormatError(f"rate value: {err}") from None
        rate = Rate(asset, currency, value, raw["source"], _parse_time(raw.get("observed_at"), "rate observed_at"))
    error = body.get("error") or ""
    if not isinstance(error, str):
        raise ReadingFormatError("error is not a string")
    error_at = None if body.get("error_at") is None else _parse_time(body["error_at"], "error_at")
    return asset, currency, PairReading(rate, error, error_at)
