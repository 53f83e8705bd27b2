"""Pure rules of the notifier: retry schedule, signatures (and the merchants'
verification helper), the SSRF address policy, payload shape, page tokens."""

from __future__ import annotations

import ipaddress
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.ssrf import blocked_reason, classify, parse_ip
from services.notifier.domain.backoff import (
    DEFAULT_SCHEDULE,
    after_attempt,
    max_attempts,
    parse_schedule,
    retry_delay,
    total_span,
)
from services.notifier.domain.payload import build_body
from services.notifier.domain.records import DeliveryState
from services.notifier.domain.signing import compute_signature, signature_header
from services.notifier.settings import NotifierSettings
from services.notifier.verify import WebhookVerificationError, verify, verify_signature

# ------------------------------------------------------------------ schedule


def test_default_schedule_spans_about_a_day_and_grows():
    schedule = parse_schedule(DEFAULT_SCHEDULE)
    assert 20 * 3600 <= total_span(schedule) <= 30 * 3600
    assert all(b >= a for a, b in zip(schedule, schedule[1:], strict=False))
    assert max_attempts(schedule) == len(schedule) + 1


def test_parse_schedule_units_and_errors():
    assert parse_schedule("500ms, 5s,2m,1h,1d,7") == (0.5, 5.0, 120.0, 3600.0, 86400.0, 7.0)
    assert parse_schedule("") == ()
    for bad in ("5x", "1s,,2s", "-1s", "0s", "soon"):
        with pytest.raises(ValueError):
            parse_schedule(bad)
    with pytest.raises(ValueError, match="retry_schedule|duration"):
        NotifierSettings(retry_schedule="5s,later")


def test_retry_delay_follows_schedule_then_gives_up():
    schedule = (1.0, 10.0, 100.0)
    assert [retry_delay(n, schedule) for n in (1, 2, 3, 4)] == [1.0, 10.0, 100.0, None]
    with pytest.raises(ValueError):
        retry_delay(0, schedule)


def test_jitter_stays_within_bounds_and_spreads():
    rng = random.Random(7)
    delays = [retry_delay(2, (1.0, 100.0), 0.2, rng) for _ in range(500)]
    assert all(80.0 <= d <= 120.0 for d in delays)
    assert max(delays) - min(delays) > 20  # not in lockstep


def test_after_attempt_states():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert after_attempt(True, 3, (1.0,), now) == (DeliveryState.SUCCEEDED, None)
    assert after_attempt(False, 1, (5.0, 7.0), now) == (DeliveryState.PENDING, now + timedelta(seconds=5))
    assert after_attempt(False, 2, (5.0, 7.0), now) == (DeliveryState.PENDING, now + timedelta(seconds=7))
    assert after_attempt(False, 3, (5.0, 7.0), now) == (DeliveryState.DEAD_LETTERED, None)
    assert after_attempt(False, 1, (), now) == (DeliveryState.DEAD_LETTERED, None)


def test_lease_must_outlast_an_attempt():
    with pytest.raises(ValueError, match="lease_seconds"):
        NotifierSettings(request_timeout_seconds=10, lease_seconds=11)


# ------------------------------------------------------------------ signatures


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    # Reference value computed independently (openssl dgst -sha256 -hmac whsec_test).
    import hashlib
    import hmac

    body = b'{"id":"e1"}'
    expected = hmac.new(b"whsec_test", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert compute_signature("whsec_test", 1700000000, body) == expected
    assert signature_header("whsec_test", 1700000000, body) == f"t=1700000000,v1={expected}"


@given(body=st.binary(max_size=2048), secret=st.text(min_size=1, max_size=64), ts=st.integers(0, 2**40))
def test_helper_accepts_what_the_notifier_signs(body, secret, ts):
    header = signature_header(secret, ts, body)
    assert verify_signature(body, header, secret, tolerance=10, now=ts + 5) == ts


def test_helper_rejects_tampering_staleness_and_garbage():
    body = json.dumps({"id": "e1", "type": "payment.created"}).encode()
    header = signature_header("whsec_a", 1000, body)
    assert verify(body, header, "whsec_a", now=1000)["id"] == "e1"
    assert verify(body.decode(), header, "whsec_a", now=1000)["type"] == "payment.created"
    cases = [
        (body + b" ", header, "whsec_a", 1000),  # altered body
        (body, header, "whsec_b", 1000),  # wrong secret
        (body, header, "whsec_a", 1000 + 301),  # too old for the default 300 s
        (body, header, "whsec_a", 1000 - 301),  # from the future
        (body, "", "whsec_a", 1000),
        (body, "v1=abc", "whsec_a", 1000),  # no timestamp
        (body, "t=1000", "whsec_a", 1000),  # no signature
        (body, "t=soon,v1=abc", "whsec_a", 1000),
        (body, header, "", 1000),  # no secret configured
    ]
    for payload, hdr, secret, now in cases:
        with pytest.raises(WebhookVerificationError):
            verify(payload, hdr, secret, now=now)


def test_helper_accepts_any_of_several_signatures_and_tolerance_zero():
    body = b'{"id":"e","type":"payment.test"}'
    good = signature_header("new", 50, body).split(",")[1]
    header = f"t=50,v1={'0' * 64},{good}"
    assert verify(body, header, "new", now=10**9, tolerance=0)["id"] == "e"


def test_helper_refuses_signed_non_event():
    body = b"[1,2]"
    with pytest.raises(WebhookVerificationError, match="not a paymesh event"):
        verify(body, signature_header("s", 1, body), "s", now=1)


# ------------------------------------------------------------------ SSRF


@pytest.mark.parametrize(
    ("address", "category"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "cgnat"),
        ("100.127.255.254", "cgnat"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("192.0.2.10", "reserved"),
        ("198.18.0.1", "reserved"),
        ("2001:db8::1", "reserved"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "metadata"),
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ],
)
def test_non_public_addresses_are_classified(address, category):
    ip = ipaddress.ip_address(address)
    assert classify(ip) == category
    assert blocked_reason(ip, allow_private=False) == category
    expected_when_allowed = "metadata" if category == "metadata" else None
    assert blocked_reason(ip, allow_private=True) == expected_when_allowed


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "172.32.0.1", "100.128.0.1", "11.0.0.1"]
)
def test_public_addresses_are_allowed(address):
    assert blocked_reason(ipaddress.ip_address(address), allow_private=False) is None


def test_parse_ip_drops_zone_id():
    assert parse_ip("fe80::1%eth0") == ipaddress.ip_address("fe80::1")


# ------------------------------------------------------------------ payload and paging


def test_body_shape():
    body = build_body(
        event_id="e-1",
        event_type="confirmed",
        created_at="2026-01-01T00:00:00Z",
        merchant_id="mch_1",
        payment={"payment_id": "pay_1", "amount_due": "10000000000000000000000"},
        previous_status="PAYMENT_STATUS_DETECTED",
    )
    event = json.loads(body)
    assert event == {
        "id": "e-1",
        "type": "payment.confirmed",
        "created_at": "2026-01-01T00:00:00Z",
        "merchant_id": "mch_1",
        "data": {
            "payment": {"payment_id": "pay_1", "amount_due": "10000000000000000000000"},
            "previous_status": "PAYMENT_STATUS_DETECTED",
        },
    }
    assert b" " not in body  # compact: the signed bytes are exactly what is sent
