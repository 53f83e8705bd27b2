"""Intake: payment events taken in from the stream are stored, to be routed.

One transaction per batch inserts the events (notifier_events). The event id is
unique, so an event taken in twice (a redelivered message, a replayed stream) is a
no-op. The caller acks the messages only after take_in returns, so an event is never
lost between the stream and the table. Then the router is told (routing.py), which
makes a delivery per endpoint that wants the event."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.notifier import metrics
from services.notifier.adapters import repository as repo
from services.notifier.domain.records import NewEvent


class EventIntake:
    def __init__(self, engine: AsyncEngine, on_new: Callable[[], None]) -> None:
        self._engine = engine
        self._on_new = on_new

    async def take_in(self, events: Sequence[NewEvent]) -> None:
        """Commit the events (those already taken in are skipped)."""
        async with self._engine.begin() as conn:
            await repo.insert_events(conn, events, datetime.now(UTC))
        metrics.INTAKE.inc(len(events))
        self._on_new()
