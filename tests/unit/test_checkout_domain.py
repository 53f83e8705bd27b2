"""The checkout's pure parts: EIP-681 URIs, amounts shown to people, the language
chosen from Accept-Language, and the per-client rate limit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.checkout.domain.amounts import format_units
from services.checkout.domain.i18n import TEXTS, choose_language, text
from services.checkout.domain.payment_uri import payment_uri
from services.checkout.domain.rate_limit import WindowLimit

pytestmark = pytest.mark.unit

DEPOSIT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def test_eip681_native_and_erc20():
    assert payment_uri(chain_id=8453, deposit_address=DEPOSIT, amount=10**16, token_address=None) == (
        f"ethereum:{DEPOSIT}@8453?value=10000000000000000"
    )
    assert payment_uri(chain_id=1, deposit_address=DEPOSIT, amount=25_000_000, token_address=TOKEN) == (
        f"ethereum:{TOKEN}@1/transfer?address={DEPOSIT}&uint256=25000000"
    )


@pytest.mark.parametrize(
    "fields",
    [
        dict(deposit_address="0x123"),
        dict(deposit_address=DEPOSIT + "&x=1"),
        dict(token_address="javascript:alert(1)"),
        dict(chain_id=0),
        dict(amount=-1),
    ],
)
def test_eip681_refuses_what_is_not_an_address_or_an_amount(fields):
    values = dict(chain_id=1, deposit_address=DEPOSIT, amount=1, token_address=None) | fields
    with pytest.raises(ValueError):
        payment_uri(**values)


@pytest.mark.parametrize(
    ("units", "decimals", "shown"),
    [(10**16, 18, "0.01"), (0, 18, "0"), (25_000_000, 6, "25"), (1, 18, "0.000000000000000001"), (1234, 0, "1234")],
)
def test_format_units(units, decimals, shown):
    assert format_units(units, decimals) == shown


@given(st.integers(0, 2**256 - 1), st.integers(0, 36))
def test_format_units_is_exact(units, decimals):
    shown = format_units(units, decimals)
    whole, _, fraction = shown.partition(".")
    assert int(whole) * 10**decimals + int((fraction or "0").ljust(decimals, "0") or "0") == units
    assert not fraction.endswith("0")


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("", "en"),
        ("de-CH, de;q=0.9, en;q=0.8", "de"),
        ("fr-FR, fr;q=0.9", "en"),
        ("fr, de;q=0.5, en;q=0.4", "de"),
        ("en;q=0.2, de;q=0.7", "de"),
        ("de;q=0", "en"),
        ("de;q=abc, en", "en"),
        ("*", "en"),
        ("x" * 5000, "en"),
    ],
)
def test_language_from_accept_language(header, language):
    assert choose_language(header) == language


def test_every_language_has_every_text():
    for words in TEXTS.values():
        assert set(words) == set(TEXTS["en"])
    assert text("de", "status_pending") == "Warte auf Ihre Zahlung"
    assert text("xx", "status_pending") == "Waiting for your payment"


def test_window_limit_counts_per_key_and_says_how_long_to_wait():
    limit = WindowLimit(2, 60.0, max_keys=2)
    assert limit.take("a", 0.0) == 0 and limit.take("a", 1.0) == 0
    assert limit.take("a", 2.0) == 58  # whole seconds until the window ends
    assert limit.take("b", 2.0) == 0  # another client is not held back
    assert limit.take("a", 60.0) == 0  # a new window
    limit.take("c", 61.0)  # a third key: the oldest is forgotten, memory stays bounded
    assert len(limit._windows) == 2
