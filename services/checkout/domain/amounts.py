"""Base units shown to a person: exact decimals, never a float. Pure."""

from __future__ import annotations


def format_units(units: int, decimals: int) -> str:
    """`units` base units of an asset with `decimals` as a plain decimal string with no
    trailing zeros (10**16 wei with 18 decimals -> "0.01"); exact for any integer."""
    if units < 0:
        raise ValueError("amounts are never negative")
    whole, fraction = divmod(units, 10**decimals)
    if decimals == 0 or fraction == 0:
        return str(whole)
    return f"{whole}.{str(fraction).rjust(decimals, '0').rstrip('0')}"
