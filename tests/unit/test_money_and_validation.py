"""Amount parsing, input validation, page tokens, HD derivation (pure)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from bip_utils import Bip39SeedGenerator, Bip44, Bip44Changes, Bip44Coins
from eth_utils import to_checksum_address
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from services.common.errors import InvalidArgument, NotFound
from services.common.money import MAX_UINT256, parse_amount
from services.ledger.convert import ts
from services.ledger.domain import hd, paging
from services.ledger.domain.validation import (
    checksum_address,
    validate_metadata,
    validate_new_payment,
    validate_webhook_url,
)
from tests.support.ledger import ANVIL_MNEMONIC


@given(st.integers(1, MAX_UINT256))
def test_amount_round_trips_exactly(value):
    assert parse_amount(str(value)) == value


@given(st.text(max_size=30))
def test_amount_parser_accepts_only_plain_digits(text):
    try:
        value = parse_amount(text)
    except InvalidArgument as exc:
        assert exc.message
        return
    assert text.isascii() and text.isdigit() and value > 0


@pytest.mark.parametrize("text", ["1.0", "1e3", "-5", "+5", " 5", "5 ", "0x10", "١٢", "½", str(2**256), "NaN", "inf"])
def test_amount_rejects(text):
    with pytest.raises(InvalidArgument):
        parse_amount(text)


def _chains(tmp_path):
    from services.common.chains import load_chains
    from tests.support.ledger import write_chains_file

    return load_chains(write_chains_file(tmp_path / "chains.yaml"))


def test_new_payment_validation(tmp_path):
    chains = _chains(tmp_path)
    now = datetime.now(UTC)
    ok = validate_new_payment(chains, chain_id=31337, asset="tusd", amount="5", expires_in=None, expires_at=None,
                              merchant_order_id="", metadata={}, idempotency_key="", now=now)
    assert ok.asset.symbol == "TUSD" and ok.expires_at == now + timedelta(hours=1) and ok.idempotency_key is None
    with pytest.raises(NotFound, match="not configured"):
        validate_new_payment(chains, chain_id=1, asset="ETH", amount="5", expires_in=None, expires_at=None,
                             merchant_order_id="", metadata={}, idempotency_key="", now=now)
    with pytest.raises(InvalidArgument, match="not both"):
        validate_new_payment(chains, chain_id=31337, asset="ETH", amount="5", expires_in=timedelta(hours=1),
                             expires_at=now + timedelta(hours=1), merchant_order_id="", metadata={},
                             idempotency_key="", now=now)


def test_metadata_limits():
    validate_metadata({"a": "b" * 512})
    with pytest.raises(InvalidArgument, match="at most 8192"):
        validate_metadata({f"key{i:02}": "é" * 200 for i in range(30)})
    with pytest.raises(InvalidArgument):
        validate_metadata({"": "x"})


def test_webhook_url_shape():
    assert validate_webhook_url("https://shop.example/hooks") == "https://shop.example/hooks"
    for bad in ["ftp://x", "not a url", "https://user:pw@x.example/", "/relative"]:
        with pytest.raises(InvalidArgument):
            validate_webhook_url(bad)


@given(st.datetimes(timezones=st.just(UTC)),
       st.one_of(st.text(st.characters(exclude_characters="\x00"), min_size=1, max_size=40),
                 st.integers(-(2**63), 2**63 - 1)))
def test_page_tokens_round_trip(when, row_id):
    assert paging.decode_token(paging.encode_token(when, row_id)) == (when, row_id)


@pytest.mark.parametrize("forged", [
    {"t": "2024-01-01T00:00:00+00:00", "i": "pay_\x00"}, {"t": "2024-01-01T00:00:00+00:00", "i": 2**63},
    {"t": "2024-01-01T00:00:00+00:00", "i": -(2**63) - 1}, {"t": "2024-01-01T00:00:00+00:00", "i": True},
    {"t": "0001-01-01T00:00:00+14:00", "i": "x"}, {"t": "9999-12-31T23:59:59-14:00", "i": 5},
    {"t": "2024-01-01T00:00:00", "i": "x"}, {"t": 5, "i": "x"}, ["t", "i"],
])
def test_forged_page_tokens_are_refused(forged):
    token = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode()
    with pytest.raises(InvalidArgument, match="page_token is not one this API returned"):
        paging.decode_token(token)


def test_hd_derivation_matches_bip44_for_many_indexes():
    seed = Bip39SeedGenerator(ANVIL_MNEMONIC).Generate()
    account = Bip44.FromSeed(seed, Bip44Coins.ETHEREUM).Purpose().Coin().Account(3)
    deriver = hd.AddressDeriver(account.PublicKey().ToExtended())
    external = account.Change(Bip44Changes.CHAIN_EXT)
    for index in [0, 1, 2, 19, 20, 255, 1000, 65_535, 2**31 - 1]:
        assert deriver.address(index) == external.AddressIndex(index).PublicKey().ToAddress()


def test_private_keys_and_garbage_are_refused_as_xpub():
    seed = Bip39SeedGenerator(ANVIL_MNEMONIC).Generate()
    xprv = Bip44.FromSeed(seed, Bip44Coins.ETHEREUM).Purpose().Coin().Account(0).PrivateKey().ToExtended()
    with pytest.raises(InvalidArgument, match="PRIVATE"):
        hd.parse_xpub(xprv)
    xpub = Bip44.FromSeed(seed, Bip44Coins.ETHEREUM).Purpose().Coin().Account(0).PublicKey().ToExtended()
    corrupted = xpub[:-1] + ("A" if xpub[-1] != "A" else "B")
    for bad in ["", "xpub123", "hello", corrupted, "x" * 500]:
        with pytest.raises(InvalidArgument):
            hd.parse_xpub(bad)
    assert hd.validate_derivation_path("") == "m/44'/60'/0'"
    with pytest.raises(InvalidArgument):
        hd.validate_derivation_path("m/44'/60'/x")


@given(st.binary(min_size=20, max_size=20), st.lists(st.booleans(), min_size=40, max_size=40))
def test_checksum_address_accepts_one_case_or_the_right_checksum(raw, upper):
    lower = "0x" + raw.hex()
    right = to_checksum_address(lower)
    for accepted in (lower, "0x" + raw.hex().upper(), right, raw.hex()):
        assert checksum_address(accepted, "to") == right
    mixed = "0x" + "".join(c.upper() if u else c for c, u in zip(raw.hex(), upper, strict=True))
    digits = mixed[2:]
    if digits in (digits.lower(), digits.upper()) or mixed == right:
        assert checksum_address(mixed, "to") == right
    else:
        with pytest.raises(InvalidArgument, match="wrong EIP-55 checksum"):
            checksum_address(mixed, "to")


@pytest.mark.parametrize(
    "bad", ["", "0x", "0x" + "g" * 40, "0x" + "a" * 39, "0x" + "a" * 41, " 0x" + "a" * 40, "0x" + "a" * 40 + "\n"]
)
def test_checksum_address_refuses_what_is_not_an_address(bad):
    with pytest.raises(InvalidArgument, match="not an EVM address"):
        checksum_address(bad, "treasury.address")


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31)), st.integers(-12, 12))
def test_timestamps_are_exact(when, offset_hours):
    aware = when.replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=offset_hours)))
    expected = Timestamp()
    expected.FromDatetime(aware.astimezone(UTC))
    assert ts(aware) == expected
