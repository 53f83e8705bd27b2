"""Intake: payment events taken in from the stream are stored and, where it costs no
call, routed at once.

One transaction per batch inserts the events (notifier_events; the event id is
unique, so an event taken in twice — a redelivered message, a replayed stream — is a
no-op) and, for the merchants whose endpoints the ledger client has cached, their
deliveries with the events marked routed (routing.py's rule, domain/routing.py). The
rest are routed by the router, which asks the ledger: the intake never waits for it.
The caller acks the messages only after take_in returns, so an event is never lost
between the stream and the table. Routing in the intake saves the router's hop and
transaction in the common case (bench_notifier: steady-state latency)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.notifier import metrics
from services.notifier.adapters import repository as repo
from services.notifier.adapters.ledger_client import TargetSource
from services.notifier.domain.records import NewEvent
from services.notifier.domain.routing import plan


class EventIntake:
    def __init__(
        self,
        engine: AsyncEngine,
        targets: TargetSource,
        on_unrouted: Callable[[], None],
        on_routed: Callable[[], None],
    ) -> None:
        self._engine = engine
        self._targets = targets
        self._on_unrouted = on_unrouted
        self._on_routed = on_routed

    async def take_in(self, events: Sequence[NewEvent]) -> None:
        """Commit the events (those already taken in are skipped), routed where the
        merchant's endpoints are cached."""
        now = datetime.now(UTC)
        cached = {m: self._targets.cached_endpoints(m) for m in {e.merchant_id for e in events}}
        todo = plan(
            ((e.event_id, e.event_type, e.merchant_id) for e in events),
            {m: endpoints for m, endpoints in cached.items() if endpoints is not None},
        )
        async with self._engine.begin() as conn:
            await repo.insert_events(conn, events, now)
            # Held events are left to the router as inserted (due now), not pushed back.
            await repo.route_events(conn, todo.routes, todo.routed, [], now, now)
        metrics.INTAKE.inc(len(events))
        if todo.routes:
            self._on_routed()
        if todo.held:
            self._on_unrouted()
