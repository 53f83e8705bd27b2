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
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int
    last_error: str
    created_at: datetime
    attempts: list[AttemptRecord] = field(default_factory=list)


@dataclass(frozen=True)
class NewDelivery:
    """One payment event taken in from the stream."""

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
    payment_id: str
    body: bytes
    attempt_number: int  # number of the attempt being made (1-based, over the delivery's life)
    cycle_attempts: int  # attempts in the current retry cycle, this one included
    lease_token: str
    event_created_at: datetime | None


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: str
    active: bool


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
