"""datetime <-> google.protobuf.Timestamp, the same way in every service.

Exact integer arithmetic (no float): what Timestamp.FromDatetime computes, at a
fraction of its cost on the hot paths that build payment events. Datetimes are
timezone-aware UTC on our side; an unset Timestamp (0 s, 0 ns) reads as None
where a field is optional.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_timestamp(value: datetime | None) -> Timestamp | None:
    """The Timestamp of an aware datetime (a naive one is taken as local time, as
    datetime.astimezone does); None stays None (the field is left unset)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.astimezone(UTC)
    delta = value - _EPOCH
    return Timestamp(seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1_000)


def from_timestamp(value: Timestamp) -> datetime:
    """The aware UTC datetime of a Timestamp (request_check has refused any outside 0001..9999)."""
    return value.ToDatetime(tzinfo=UTC)


def optional_datetime(value: Timestamp) -> datetime | None:
    """None for an unset Timestamp (seconds and nanos 0), else its datetime."""
    if not value.seconds and not value.nanos:
        return None
    return from_timestamp(value)
