"""The delivery use cases behind NotifierService: list, get, redeliver, send a
test event.

A caller is either the operator (admin token: every merchant) or one merchant
(its API key: only its own deliveries). Another merchant's delivery is
NOT_FOUND, exactly like one that does not exist. Plain records in and out; the
servicer (api/notifier_service.py) converts them from and to protobuf.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.common.page_tokens import PageTokens, filter_fingerprint, page_size
from services.notifier.adapters import repository as repo
from services.notifier.adapters.ledger_client import TargetSource
from services.notifier.dispatch import Dispatcher
from services.notifier.domain.payload import TEST_EVENT_TYPE, build_body
from services.notifier.domain.records import PRIMARY_ENDPOINT, DeliveryRecord, DeliveryState, ListFilter, NewEvent

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Caller:
    """Who is calling: a merchant, or the operator (merchant_id None)."""

    merchant_id: str | None

    @property
    def is_operator(self) -> bool:
        return self.merchant_id is None


def parse_uuid(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument(f"{field} is required")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidArgument(f"{field} must be a UUID as returned by this API; got {value[:80]!r}") from None


def parse_ref(value: str, field: str) -> str:
    if not _ID.match(value):
        raise InvalidArgument(f"{field} must be 1 to 64 letters, digits, '_' or '-'; got {value[:80]!r}")
    return value


# The `data.payment` of a test event for a merchant, in the JSON shape events carry
# (inbound/payment_events.py:sample_payment_json: the wire format lives there).
SamplePayment = Callable[[str], dict[str, Any]]


class Deliveries:
    """What a caller may see and do with deliveries."""

    def __init__(
        self,
        engine: AsyncEngine,
        dispatcher: Dispatcher,
        targets: TargetSource,
        lease_seconds: float,
        tokens: PageTokens,
        sample_payment: SamplePayment,
    ) -> None:
        self._engine = engine
        self._tokens = tokens
        self._dispatcher = dispatcher
        self._targets = targets
        self._lease = timedelta(seconds=lease_seconds)
        self._sample_payment = sample_payment

    async def list(
        self,
        caller: Caller,
        *,
        merchant_id: str,
        payment_id: str,
        event_id: str,
        state: DeliveryState | None,
        size: int,
        token: str,
        endpoint_id: str = "",
    ) -> tuple[list[DeliveryRecord], str]:
        """A page of deliveries, newest first, and the token of the next page ("" at the end)."""
        if caller.is_operator:
            scope = parse_ref(merchant_id, "merchant_id") if merchant_id else None
        else:
            scope = caller.merchant_id  # a merchant's own deliveries, whatever it asked
        flt = ListFilter(
            merchant_id=scope,
            payment_id=parse_ref(payment_id, "payment_id") if payment_id else None,
            event_id=parse_uuid(event_id, "event_id") if event_id else None,
            state=state,
            endpoint_id=parse_ref(endpoint_id, "endpoint_id") if endpoint_id else None,
        )
        limit = page_size(size)
        issued_to = f"ListDeliveries|{caller.merchant_id or 'operator'}"
        fingerprint = filter_fingerprint(flt.merchant_id, flt.payment_id, flt.event_id, flt.state, flt.endpoint_id)
        after = self._tokens.read(issued_to, token, str, fingerprint)
        async with self._engine.connect() as conn:
            rows = await repo.list_deliveries(conn, flt, limit + 1, after)
        next_token = ""
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_token = self._tokens.issue(issued_to, last.created_at, last.id, fingerprint)
        return rows, next_token

    async def get(self, caller: Caller, delivery_id: str) -> DeliveryRecord:
        """One delivery with its attempts; NotFound if it is not the caller's to see."""
        delivery_id = parse_uuid(delivery_id, "delivery_id")
        async with self._engine.connect() as conn:
            found = await repo.get_delivery(conn, delivery_id)
        if found is None or (not caller.is_operator and found.merchant_id != caller.merchant_id):
            raise NotFound(f"delivery {delivery_id} not found")
        return found

    async def redeliver(
        self, caller: Caller, *, delivery_id: str | None, merchant_id: str | None, endpoint_id: str | None = None
    ) -> int:
        """Queue one delivery, or every dead letter of a merchant or of one endpoint,
        again now (a fresh retry cycle); how many were queued."""
        now = datetime.now(UTC)
        if delivery_id is not None:
            await self.get(caller, delivery_id)  # existence and ownership
            async with self._engine.begin() as conn:
                queued = await repo.redeliver_one(conn, parse_uuid(delivery_id, "delivery_id"), now)
            count = 1 if queued else 0
        elif merchant_id is not None:
            merchant_id = parse_ref(merchant_id, "merchant_id")
            if not caller.is_operator and merchant_id != caller.merchant_id:
                raise PermissionDenied("a merchant API key can redeliver only its own merchant's deliveries")
            async with self._engine.begin() as conn:
                count = await repo.redeliver_dead_letters(conn, merchant_id, now)
        elif endpoint_id is not None:
            endpoint_id = parse_ref(endpoint_id, "endpoint_id")
            if caller.is_operator and endpoint_id == PRIMARY_ENDPOINT:
                raise InvalidArgument('every merchant has an endpoint "primary": give merchant_id instead')
            async with self._engine.begin() as conn:
                count = await repo.redeliver_dead_letters(conn, caller.merchant_id, now, endpoint_id)
        else:
            raise InvalidArgument(
                "name what to redeliver: delivery_id, merchant_id for all its dead letters, or endpoint_id for one "
                "endpoint's"
            )
        if count:
            self._dispatcher.poke()
        return count

    async def send_test_event(self, caller: Caller, merchant_id: str, endpoint_id: str = "") -> DeliveryRecord:
        """Make a test event's first attempt to one endpoint ("primary" unless named)
        now, and return its delivery as recorded."""
        if caller.is_operator:
            if not merchant_id:
                raise InvalidArgument("merchant_id is required with the admin token")
            merchant_id = parse_ref(merchant_id, "merchant_id")
        else:
            merchant_id = caller.merchant_id or ""
        endpoint_id = parse_ref(endpoint_id, "endpoint_id") if endpoint_id else PRIMARY_ENDPOINT
        merchant = await self._targets.endpoints(merchant_id)  # NotFound for an unknown merchant
        if not merchant.active:
            raise FailedPrecondition(f"merchant {merchant_id} is disabled; enable it first")
        target = merchant.get(endpoint_id)
        if target is None or not target.url:
            if endpoint_id == PRIMARY_ENDPOINT:
                raise FailedPrecondition(f"merchant {merchant_id} has no webhook URL; set one with SetWebhook first")
            raise NotFound(f"webhook endpoint {endpoint_id} not found")
        if not target.enabled:
            raise FailedPrecondition(f"webhook endpoint {endpoint_id} is disabled; enable it first")
        now = datetime.now(UTC)
        event_id = str(uuid.uuid4())
        body = build_body(
            event_id=event_id,
            event_type=TEST_EVENT_TYPE,
            created_at=now.isoformat().replace("+00:00", "Z"),
            merchant_id=merchant_id,
            payment=self._sample_payment(merchant_id),
        )
        new = NewEvent(
            event_id=event_id,
            event_type=TEST_EVENT_TYPE,
            merchant_id=merchant_id,
            payment_id="",
            body=body,
            event_created_at=now,
        )
        async with self._engine.begin() as conn:
            claimed = await repo.insert_claimed(conn, new, endpoint_id, now=now, lease_until=now + self._lease)
        await self._dispatcher.deliver_now(claimed)
        async with self._engine.connect() as conn:
            found = await repo.get_delivery(conn, claimed.id)
        assert found is not None
        return found
