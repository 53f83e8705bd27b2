"""Page tokens are signed and bound to the listing and the caller they were issued to."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.errors import InvalidArgument
from services.common.page_tokens import BAD_TOKEN, OTHER_FILTERS, PageTokens, _b64, filter_fingerprint, page_size

TOKENS = PageTokens(b"k" * 32)


@given(
    st.datetimes(timezones=st.just(UTC)),
    st.one_of(st.text(st.characters(exclude_characters="\x00"), min_size=1, max_size=40), st.integers(0, 2**63 - 1)),
)
def test_round_trip(when, row_id):
    token = TOKENS.issue("ListPayments|mer_1", when, row_id, "f1")
    assert TOKENS.read("ListPayments|mer_1", token, type(row_id), "f1") == (when, row_id)


def test_empty_token_is_the_first_page():
    assert TOKENS.read("ListPayments|mer_1", "", str) is None


def test_a_token_of_another_rpc_caller_or_key_is_refused():
    token = TOKENS.issue("ListMerchants|operator", datetime.now(UTC), "mer_1")
    for scope in ("ListPayments|mer_1", "ListMerchants|mer_1", "ListDeliveries|operator"):
        with pytest.raises(InvalidArgument) as err:
            TOKENS.read(scope, token, str)
        assert err.value.message == BAD_TOKEN
    with pytest.raises(InvalidArgument, match="not one this API returned"):
        PageTokens(b"o" * 32).read("ListMerchants|operator", token, str)


def test_forged_and_edited_tokens_are_refused():
    now = datetime.now(UTC)
    genuine = TOKENS.issue("ListPayments|mer_1", now, "pay_1")
    body, sig = genuine.split(".")
    # The unsigned form the API used to accept.
    old_style = base64.urlsafe_b64encode(json.dumps({"t": now.isoformat(), "i": "pay_1"}).encode()).decode()
    edited = base64.urlsafe_b64encode(json.dumps({"t": now.isoformat(), "i": "pay_2", "f": ""}).encode())
    for bad in (
        old_style,
        f"{edited.decode().rstrip('=')}.{sig}",
        body,
        f"{body}.",
        f"{body}.{sig}x",
        "!!.!!",
        "x" * 600,
        f"{body}.{sig}.{sig}",
    ):
        with pytest.raises(InvalidArgument, match="page_token"):
            TOKENS.read("ListPayments|mer_1", bad, str)


def test_wrong_cursor_type_is_refused():
    token = TOKENS.issue("ListSweepTransactions|internal", datetime.now(UTC), str(uuid.uuid4()))
    with pytest.raises(InvalidArgument, match="page_token"):
        TOKENS.read("ListSweepTransactions|internal", token, int)


def test_other_filters_are_named():
    fp = filter_fingerprint("mch_1", None)
    token = TOKENS.issue("ListDeliveries|operator", datetime.now(UTC), "d1", fp)
    with pytest.raises(InvalidArgument) as err:
        TOKENS.read("ListDeliveries|operator", token, str, filter_fingerprint("mch_2", None))
    assert err.value.message == OTHER_FILTERS


def test_page_size():
    assert page_size(0) == 50 and page_size(1) == 1 and page_size(500) == 500
    for bad in (501, -1):
        with pytest.raises(InvalidArgument, match="page_size must be 1 to 500"):
            page_size(bad)


@pytest.mark.parametrize(
    "forged",
    [
        {"t": "2024-01-01T00:00:00+00:00", "i": "pay_\x00", "f": ""},
        {"t": "2024-01-01T00:00:00+00:00", "i": 2**63, "f": ""},
        {"t": "2024-01-01T00:00:00+00:00", "i": -(2**63) - 1, "f": ""},
        {"t": "2024-01-01T00:00:00+00:00", "i": True, "f": ""},
        {"t": "0001-01-01T00:00:00+14:00", "i": "x", "f": ""},
        {"t": "9999-12-31T23:59:59-14:00", "i": 5, "f": ""},
        {"t": "2024-01-01T00:00:00", "i": "x", "f": ""},
        {"t": 5, "i": "x", "f": ""},
        {"t": "2024-01-01T00:00:00+00:00", "i": "x" * 200, "f": ""},
        ["t", "i"],
    ],
)
def test_even_a_correctly_signed_token_with_junk_is_refused(forged):
    """Defence in depth: were the key ever leaked, a token still cannot carry into a
    query what the database refuses (NUL, beyond BIGINT, outside 0001..9999 in UTC)."""
    payload = json.dumps(forged).encode()
    token = f"{_b64(payload)}.{_b64(TOKENS._sign('s', payload))}"
    with pytest.raises(InvalidArgument, match="page_token is not one this API returned"):
        TOKENS.read("s", token, str)
    with pytest.raises(InvalidArgument, match="page_token is not one this API returned"):
        TOKENS.read("s", token, int)
