"""The notifier's API room without a server: who a caller is (api/callers.py:
admin token, merchant API key, disabled merchant, no credentials) and records
<-> NotifierService messages (api/convert.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from paymesh.notifier.v1 import notifier_service_pb2 as npb

from services.common.errors import PermissionDenied, Unauthenticated
from services.notifier.api.callers import CallerResolver
from services.notifier.api.convert import PB_TO_STATE, STATE_TO_PB, delivery_to_pb
from services.notifier.deliveries import Caller
from services.notifier.domain.records import AttemptRecord, DeliveryRecord, DeliveryState

pytestmark = pytest.mark.unit

ADMIN = "admin-token-for-tests"


class FakeContext:
    def __init__(self, *metadata: tuple[str, str]) -> None:
        self._metadata = metadata

    def invocation_metadata(self):
        return self._metadata


class FakeKeys:
    """ApiKeyAuthenticator: pmk_a is merchant mch_a, pmk_off a disabled mch_off, pmk_ro a
    key of mch_a without the webhooks scope, pmk_old one from a ledger without scopes."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def authenticate(self, api_key: str) -> tuple[str, bool, frozenset[str]]:
        self.asked.append(api_key)
        hooks = frozenset({"API_KEY_SCOPE_WEBHOOKS_MANAGE"})
        known = {
            "pmk_a": ("mch_a", True, hooks),
            "pmk_off": ("mch_off", False, hooks),
            "pmk_ro": ("mch_a", True, frozenset({"API_KEY_SCOPE_PAYMENTS_READ"})),
            "pmk_old": ("mch_a", True, frozenset()),
        }
        if api_key not in known:
            raise Unauthenticated("API key not recognised")
        return known[api_key]


def bearer(token: str) -> FakeContext:
    return FakeContext(("authorization", f"Bearer {token}"))


async def test_the_admin_token_is_the_operator_without_asking_the_ledger():
    keys = FakeKeys()
    caller = await CallerResolver(ADMIN, keys).resolve(bearer(ADMIN))  # type: ignore[arg-type]
    assert caller == Caller(merchant_id=None) and caller.is_operator and keys.asked == []


async def test_anything_else_is_a_merchant_api_key_checked_by_the_ledger():
    keys = FakeKeys()
    resolver = CallerResolver(ADMIN, keys)
    assert await resolver.resolve(bearer("pmk_a")) == Caller(merchant_id="mch_a")  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied, match="disabled"):
        await resolver.resolve(bearer("pmk_off"))  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied, match="webhooks:manage"):
        await resolver.resolve(bearer("pmk_ro"))  # type: ignore[arg-type]
    assert await resolver.resolve(bearer("pmk_old")) == Caller(merchant_id="mch_a")  # type: ignore[arg-type]
    with pytest.raises(Unauthenticated):
        await resolver.resolve(bearer(ADMIN + "x"))  # type: ignore[arg-type]
    assert keys.asked == ["pmk_a", "pmk_off", "pmk_ro", "pmk_old", ADMIN + "x"]


async def test_no_admin_token_set_means_no_operator_and_no_credentials_are_refused():
    keys = FakeKeys()
    with pytest.raises(Unauthenticated):
        await CallerResolver("", keys).resolve(bearer("anything"))  # type: ignore[arg-type]
    with pytest.raises(Unauthenticated, match="missing credentials"):
        await CallerResolver(ADMIN, keys).resolve(FakeContext())  # type: ignore[arg-type]
    assert keys.asked == ["anything"]


def test_every_state_has_its_message_value_and_back():
    assert set(STATE_TO_PB) == set(DeliveryState)
    assert all(PB_TO_STATE[STATE_TO_PB[s]] is s for s in DeliveryState)
    assert npb.DELIVERY_STATE_UNSPECIFIED not in PB_TO_STATE  # "any state" in ListDeliveries


def test_a_delivery_record_becomes_its_message():
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    attempt = AttemptRecord(number=1, started_at=created, duration_ms=-3, status_code=503, error="", outcome="failed")
    record = DeliveryRecord(
        id="d-1",
        event_id="e-1",
        event_type="confirmed",
        merchant_id="mch_a",
        payment_id="pay_1",
        state=DeliveryState.DEAD_LETTERED,
        url="https://hooks.example.com/x",
        endpoint_id="we_1",
        attempt_count=1,
        next_attempt_at=None,
        last_status_code=503,
        last_error="",
        created_at=created,
        attempts=[attempt],
    )
    listed = delivery_to_pb(record)
    assert listed.state == npb.DELIVERY_STATE_DEAD_LETTERED and listed.attempts == []
    assert not listed.HasField("next_attempt_at") and listed.created_at.ToDatetime(tzinfo=UTC) == created
    assert listed.endpoint_id == "we_1"
    assert (listed.delivery_id, listed.event_id, listed.merchant_id, listed.url, listed.last_status_code) == (
        "d-1",
        "e-1",
        "mch_a",
        "https://hooks.example.com/x",
        503,
    )
    (sent,) = delivery_to_pb(record, with_attempts=True).attempts
    assert (sent.number, sent.status_code, sent.duration_ms) == (1, 503, 0)  # a negative duration reads 0
