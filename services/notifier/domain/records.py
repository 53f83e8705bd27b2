"""Plain records the notifier's layers pass around (no ORM objects, no protobuf)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class DeliveryState(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    DEAD_LETTERED = "dead_lettered"
    SKIPPED = "skipped"


class AttemptOutcome(StrEnum):
    IN_PROGRESS = "in_progress"  # written when the attempt is claimed (write-ahead)
    SUCCEEDED = "succeeded"  # 2xx
    FAILED = "failed"  # non-2xx, network error, timeout, refused by policy
    INTERRUPTED = "interrupted"  # the notifier stopped during the attempt; result unknown


class FailureKind(StrEnum):
    """Why an attempt failed (metrics label and log field)."""

    NONE = "none"
    HTTP_STATUS = "http_status"
    TIMEOUT = "timeout"
    NETWORK = "network"
    BLOCKED = "blocked"  # SSRF policy
    INVALID_URL = "invalid_url"


@dataclass(frozen=True)
class AttemptRecord:
    number: int
    started_at: datetime
    duration_ms: int
    status_code: int
    error: str
    outcome: str
    url: str = ""
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class DeliveryRecord:
    id: str
    event_id: str
    event_type: str
    merchant_id: str
    payment_id: str
    state: DeliveryState
    url: str
    endpoint_id: str
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int
    last_error: str
    created_at: datetime
    attempts: list[AttemptRecord] = field(default_factory=list)


@dataclass(frozen=True)
class NewEvent:
    """One payment event taken in from the stream (or a test event), before it is
    routed to the merchant's endpoints."""

    event_id: str
    event_type: str
    merchant_id: str
    payment_id: str
    body: bytes
    event_created_at: datetime | None


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery leased to this process for one attempt."""

    id: str
    event_id: str
    event_type: str
    merchant_id: str
    endpoint_id: str
    payment_id: str
    body: bytes
    attempt_number: int  # number of the attempt being made (1-based, over the delivery's life)
    cycle_attempts: int  # attempts in the current retry cycle, this one included
    lease_token: str
    event_created_at: datetime | None

    @property
    def endpoint_key(self) -> str:
        """What concurrency, claims and connection pools are counted by: one endpoint."""
        return endpoint_key(self.merchant_id, self.endpoint_id)


def endpoint_key(merchant_id: str, endpoint_id: str) -> str:
    return f"{merchant_id}/{endpoint_id}"


PRIMARY_ENDPOINT = "primary"  # the operator's webhook (MerchantAdminService.SetWebhook)


@dataclass(frozen=True)
class Endpoint:
    """One of a merchant's webhook endpoints, as the ledger reports it."""

    endpoint_id: str
    url: str
    event_types: tuple[str, ...]  # webhook types or families ("payment.*"); empty: every type
    enabled: bool
    secrets: tuple[str, ...]  # newest first; two during a roll's overlap


@dataclass(frozen=True)
class MerchantEndpoints:
    """Where a merchant's webhooks go: whether it is active, and its endpoints."""

    active: bool
    endpoints: tuple[Endpoint, ...]

    def get(self, endpoint_id: str) -> Endpoint | None:
        return next((e for e in self.endpoints if e.endpoint_id == endpoint_id), None)


@dataclass(frozen=True)
class SendResult:
    """What one HTTP attempt gave."""

    started_at: datetime
    duration_ms: int
    status_code: int  # 0 when no response came
    error: str  # empty on a response
    failure: FailureKind
    url: str

    @property
    def ok(self) -> bool:
        return self.failure is FailureKind.NONE and 200 <= self.status_code < 300


@dataclass(frozen=True)
class ListFilter:
    merchant_id: str | None = None
    payment_id: str | None = None
    event_id: str | None = None
    state: DeliveryState | None = None
    endpoint_id: str | None = None


@dataclass(frozen=True)
class AttemptDone:
    """A finished HTTP attempt and what it means for the delivery."""

    delivery_id: str
    lease_token: str
    number: int
    started_at: datetime
    duration_ms: int
    status_code: int
    error: str
    succeeded: bool
    url: str
    state: DeliveryState  # pending (retry), succeeded or dead_lettered
    next_attempt_at: datetime | None
    finished_at: datetime
    failure: str = "none"  # FailureKind value, for metrics only


@dataclass(frozen=True)
class AttemptVoid:
    """A claimed attempt that was not made: the merchant has no usable target
    (state skipped), or it is handed back (state pending: ledger unreachable,
    shutting down). The attempt row and counters are rolled back."""

    delivery_id: str
    lease_token: str
    number: int
    state: DeliveryState
    next_attempt_at: datetime | None
    reason: str
    finished_at: datetime
