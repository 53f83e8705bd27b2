"""Fiat prices, exchange rates and the amounts due they produce. Pure and exact.

A **price** is an ISO 4217 currency and a decimal amount written with at most the
currency's minor units ("19.99" USD, "1500" JPY). A **rate** says how many units
of the currency one whole unit of an asset is worth ("3120.55" USD per ETH). The
amount due in the asset's base units (wei, token units) is

    amount_due = ceil(price × 10^decimals / rate)

computed with integers (each exact decimal as its integer ratio, never a float), so at
the quoted rate the customer pays at least the price and less than the price
plus one base unit's worth. Rounding rules, stated once:

- amounts due round **up** to the asset's smallest unit (the merchant is never paid short);
- the fiat value of received base units rounds **down** to the currency's minor
  unit (a report never claims more than arrived);
- a refund given as a fiat value gives back floor(value × 10^decimals / rate) base units
  at the option's locked rate (`units_worth`: never more than the stated value);
- an underpayment tolerance of `bps` basis points accepts confirmed funds of at
  least ceil(amount_due × (10,000 − bps) / 10,000) base units.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal
from fractions import Fraction

import iso4217

MAX_PRICE_DIGITS = 18  # before the decimal point: a quadrillion in any currency is not a price
MAX_TOLERANCE_BPS = 10_000
_DECIMAL = re.compile(r"(0|[1-9][0-9]*)(?:\.([0-9]+))?")
# Decimal arithmetic rounds to the context's precision (28 digits by default); every
# operation here runs in this context, wide enough for any uint256 at any scale.
EXACT = Context(prec=200)


class PricingError(ValueError):
    """Input that is not a price, a currency or a rate; the message says why."""


@dataclass(frozen=True)
class Currency:
    code: str
    minor_units: int  # ISO 4217 exponent: 2 for USD and EUR, 0 for JPY, 3 for BHD


@dataclass(frozen=True)
class Price:
    currency: Currency
    amount: Decimal  # exact, at most `currency.minor_units` decimals

    def __str__(self) -> str:
        return f"{format_decimal(self.amount, self.currency.minor_units)} {self.currency.code}"


@dataclass(frozen=True)
class Rate:
    """What one unit of an asset is worth in a currency, as a source stated it."""

    asset: str  # the asset's symbol, as in chains.yaml ("ETH", "USDC"): one rate for that symbol on every chain
    currency: str  # ISO 4217 code
    value: Decimal  # currency units per whole unit of the asset (> 0, exact)
    source: str  # who said so, for the quote a payment stores ("chainlink 1:0x5f4e...", "coinbase", "fixed")
    observed_at: datetime  # when the source says the rate held (a feed's updatedAt; a ticker's answer time)


def currency(code: str) -> Currency:
    """The ISO 4217 currency with this code (upper case, as written in the standard)."""
    if not re.fullmatch(r"[A-Z]{3}", code or ""):
        raise PricingError(
            f"currency must be an ISO 4217 code of three capital letters, such as USD; got {code[:16]!r}"
        )
    try:
        found = iso4217.Currency(code)
    except ValueError:
        raise PricingError(f"currency {code} is not an ISO 4217 currency code") from None
    if found.exponent is None:
        raise PricingError(f"currency {code} ({found.currency_name}) has no minor unit; it cannot price a payment")
    return Currency(code, found.exponent)


def parse_price(currency_code: str, amount: str) -> Price:
    """A price from its currency code and a plain decimal string; strict: no sign,
    exponent, spaces, leading zeros or more decimals than the currency has."""
    cur = currency(currency_code)
    match = _DECIMAL.fullmatch(amount or "")
    if match is None:
        raise PricingError(
            f'price amount must be a plain decimal number such as "19.99" '
            f"(digits, at most one point; no sign, exponent, spaces or leading zeros); got {amount[:40]!r}"
        )
    whole, fraction = match.group(1), match.group(2) or ""
    if len(whole) > MAX_PRICE_DIGITS:
        raise PricingError(f"price amount has {len(whole)} digits before the point; at most {MAX_PRICE_DIGITS}")
    if len(fraction) > cur.minor_units:
        allowed = f"{cur.minor_units} decimals" if cur.minor_units else "no decimals"
        raise PricingError(f"price amount {amount!r} has {len(fraction)} decimals; {cur.code} has {allowed}")
    value = Decimal(amount)
    if value <= 0:
        raise PricingError("price amount must be greater than zero")
    return Price(cur, value)


def parse_rate(text: str) -> Decimal:
    """A rate as sources write it (a plain positive decimal string)."""
    match = _DECIMAL.fullmatch(text or "")
    if match is None or len(match.group(1)) > 30 or len(match.group(2) or "") > 36:
        raise PricingError(f"rate must be a plain positive decimal number; got {str(text)[:40]!r}")
    value = Decimal(text)
    if value <= 0:
        raise PricingError(f"rate must be greater than zero; got {text!r}")
    return value


def amount_due(price: Price, rate: Decimal, decimals: int) -> int:
    """Base units of an asset with `decimals` worth at least `price` at `rate`
    (currency units per whole asset unit), rounded up to one base unit."""
    if rate <= 0:
        raise PricingError("rate must be greater than zero")
    # price x 10^decimals / rate as one integer fraction (each Decimal is exactly n/d;
    # integers, not Fraction objects: this runs for every option of every CreatePayment).
    price_n, price_d = price.amount.as_integer_ratio()
    rate_n, rate_d = rate.as_integer_ratio()
    numerator, denominator = price_n * 10**decimals * rate_d, price_d * rate_n
    return -(-numerator // denominator)


def units_worth(value: Price, rate: Decimal, decimals: int) -> int:
    """Base units of an asset with `decimals` worth at most `value` at `rate`, rounded
    down to one base unit (a refund of a fiat value never gives back more)."""
    if rate <= 0:
        raise PricingError("rate must be greater than zero")
    value_n, value_d = value.amount.as_integer_ratio()
    rate_n, rate_d = rate.as_integer_ratio()
    return value_n * 10**decimals * rate_d // (value_d * rate_n)


def fiat_value(units: int, decimals: int, rate: Decimal, minor_units: int) -> Decimal:
    """What `units` base units are worth at `rate`, rounded down to the minor unit."""
    rate_n, rate_d = rate.as_integer_ratio()
    return scaled(units * rate_n * 10**minor_units // (10**decimals * rate_d), minor_units)


def minimum_accepted(due: int, tolerance_bps: int) -> int:
    """The least confirmed amount that completes a payment of `due` base units
    with an underpayment tolerance of `tolerance_bps` basis points."""
    if not 0 <= tolerance_bps <= MAX_TOLERANCE_BPS:
        raise PricingError(f"tolerance must be 0 to {MAX_TOLERANCE_BPS} basis points; got {tolerance_bps}")
    scaled = due * (MAX_TOLERANCE_BPS - tolerance_bps)
    return -(-scaled // MAX_TOLERANCE_BPS)


def scaled(units: int, places: int) -> Decimal:
    """units × 10^-places, exactly."""
    return Decimal(units).scaleb(-places, EXACT)


def format_decimal(value: Decimal, places: int) -> str:
    """A decimal written with exactly `places` decimals (no exponent)."""
    return f"{value.quantize(Decimal(1).scaleb(-places, EXACT), context=EXACT):f}"


def deviation_bps(price: Decimal, reference: Decimal) -> int:
    """How far `price` is from `reference`, in basis points of the reference, rounded up."""
    if reference <= 0:
        raise PricingError("reference must be greater than zero")
    exact = abs(Fraction(price) - Fraction(reference)) * MAX_TOLERANCE_BPS / Fraction(reference)
    return -(-exact.numerator // exact.denominator)
