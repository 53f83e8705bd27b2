"""Amounts are integers in base units (wei, token units), carried as decimal strings.

Never a float: parsing accepts only plain ASCII digits, in canonical form (no
leading zeros), so one amount has one spelling.
"""

from __future__ import annotations

from services.common.errors import InvalidArgument

MAX_UINT256 = 2**256 - 1
MAX_DIGITS = len(str(MAX_UINT256))  # 78


def parse_amount(text: str, *, field: str = "amount", allow_zero: bool = False) -> int:
    """Parse a decimal string of base units; raise InvalidArgument naming the field."""
    if not isinstance(text, str) or text == "":
        raise InvalidArgument(f'{field} is required: a decimal string of base units, e.g. "1000000"')
    if not text.isascii() or not text.isdigit():
        raise InvalidArgument(
            f"{field} must be a whole number of base units written with digits only "
            f"(no sign, decimal point, exponent or spaces); got {text[:40]!r}"
        )
    if len(text) > MAX_DIGITS:
        raise InvalidArgument(f"{field} has {len(text)} digits; the largest EVM amount (2^256-1) has {MAX_DIGITS}")
    if len(text) > 1 and text[0] == "0":
        raise InvalidArgument(f"{field} must not start with a zero; write {text.lstrip('0') or '0'!r}")
    value = int(text)
    if value > MAX_UINT256:
        raise InvalidArgument(f"{field} is above 2^256-1, the largest EVM amount")
    if value == 0 and not allow_zero:
        raise InvalidArgument(f"{field} must be greater than zero")
    return value


def format_amount(value: int) -> str:
    return str(int(value))
