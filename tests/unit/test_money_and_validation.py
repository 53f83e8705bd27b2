"""Amount parsing, input validation, page tokens, HD derivation (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from bip_utils import Bip39SeedGenerator, Bip44, Bip44Changes, Bip44Coins
from eth_utils import to_checksum_address
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from services.common.errors import InvalidArgument, NotFound
from services.common.money import MAX_UINT256, parse_amount
from services.ledger.api.convert import ts
from services.ledger.domain import hd
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
    ok = validate_new_payment(
        chains,
        chain_id=31337,
        asset="tusd",
        amount="5",
        expires_in=None,
        expires_at=None,
        merchant_order_id="",
        metadata={},
        idempotency_key="",
        now=now,
    )
    assert ok.asset.symbol == "TUSD" and ok.expires_at == now + timedelta(hours=1) and ok.idempotency_key is None
    with pytest.raises(NotFound, match="not configured"):
        validate_new_payment(
            chains,
            chain_id=1,
            asset="ETH",
            amount="5",
            expires_in=None,
            expires_at=None,
            merchant_order_id="",
            metadata={},
            idempotency_key="",
            now=now,
        )
    with pytest.raises(InvalidArgument, match="not both"):
        validate_new_payment(
            chains,
            chain_id=31337,
            asset="ETH",
            amount="5",
            expires_in=timedelta(hours=1),
            expires_at=now + timedelta(hours=1),
            merchant_order_id="",
            metadata={},
            idempotency_key="",
            now=now,
        )


def test_metadata_limits():
    validate_metadata({"a": "b" * 512})
    with pytest.raises(InvalidArgument, match="at most 8192"):
        validate_metadata({f"key{i:02}": "é" * 200 for i in range(30)})
    with pytest.raises(InvalidArgument):
        validate_metadata({"": "x"})


def test_webhook_url_shape():
    for good in [
        "https://shop.example/hooks",
        "http://shop.example:8080/h?x=1",
        "https://xn--bcher-kva.example/",
        "https://bücher.example/",
        "https://[2606:4700::1111]/hook",
        "https://1.1.1.1:443/",
    ]:
        assert validate_webhook_url(good, allow_private=False) == good
    for bad in ["ftp://x", "not a url", "https://user:pw@x.example/", "/relative"]:
        with pytest.raises(InvalidArgument):
            validate_webhook_url(bad, allow_private=False)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://exa mple.com/", "space or control character (U+0020)"),
        ("https://example.com/\r\nX-Injected: 1", "control character (U+000D)"),
        ("https://example.com/\x00", "control character (U+0000)"),
        ("https://example.com:99999/", "port is not a number from 1 to 65535"),
        ("https://example.com:0/", "port is not a number from 1 to 65535"),
        ("https://example.com:http/", "port is not a number"),
        ("https://exa_mple.com/", "not a valid host name"),
        ("https://-bad.example/", "not a valid host name"),
        ("https://" + "a" * 64 + ".example/", "not a valid host name"),
        ("https:///path", "absolute http"),
        ("https://example.com/#frag", "#fragment"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("http://[fd00:ec2::254]/", "cloud metadata address"),
        ("http://[::ffff:169.254.169.254]/", "cloud metadata address"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata service"),
        ("http://127.0.0.1:8080/", "loopback address"),
        ("http://10.0.0.5/", "private address"),
        ("http://localhost/", "this machine"),
        ("http://app.localhost/", "this machine"),
        ("https://x.example/" + "a" * 2100, "longer than 2048"),
    ],
)
def test_webhook_urls_that_can_never_be_delivered_are_refused(url, reason):
    with pytest.raises(InvalidArgument) as err:
        validate_webhook_url(url, allow_private=False)
    assert reason in err.value.message


def test_private_webhooks_when_the_operator_allows_them_but_never_metadata():
    for url in ["http://127.0.0.1:8080/", "http://localhost/", "http://10.0.0.5/", "http://[::1]:9/"]:
        assert validate_webhook_url(url, allow_private=True) == url
    for url in ["http://169.254.169.254/", "http://metadata.google.internal/"]:
        with pytest.raises(InvalidArgument, match="metadata"):
            validate_webhook_url(url, allow_private=True)


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
