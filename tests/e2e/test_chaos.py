"""Scenario 2: chaos with one process per service. While a stream of payments is
created and paid (tests/support/chaos.py: refunds and payouts too, and every check
of money and events afterwards), each service in turn is killed with SIGKILL and
restarted, and now and then one is frozen with SIGSTOP/SIGCONT.

CI runs a short version; `make chaos` sets PAYMESH_CHAOS_PAYMENTS=1000 and
PAYMESH_CHAOS_KILL_EVERY=3 for the long one. tests/e2e/test_chaos_replicas.py is
the same scenario with two replicas of every service, a NATS cluster and two
RPC providers."""

from __future__ import annotations

import asyncio
import os
import random

import pytest

from tests.support.chaos import hit, payments_under_chaos, sleep_or_stop

PAYMENTS = int(os.environ.get("PAYMESH_CHAOS_PAYMENTS", "24"))
KILL_EVERY = float(os.environ.get("PAYMESH_CHAOS_KILL_EVERY", "4"))
SERVICES = ("ledger", "listener", "sweeper", "notifier")


def one_service_at_a_time(mesh):
    async def chaos(stop: asyncio.Event, log: list[str]) -> None:
        order = list(SERVICES)
        random.Random(7).shuffle(order)
        rng = random.Random(13)
        turn = 0
        # Runs until the payment stream is over and every service was hit at least once.
        while not (stop.is_set() and turn >= len(order) + 1):
            await sleep_or_stop(stop, KILL_EVERY)
            # Now and then freeze instead of kill.
            await hit(mesh, order[turn % len(order)], freeze=turn % 5 == 4, log=log, rng=rng)
            turn += 1

    return chaos


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.timeout(max(600, PAYMENTS * 3))
async def test_chaos(mesh, chain):
    outcome = await payments_under_chaos(
        mesh, chain, one_service_at_a_time(mesh), payments=PAYMENTS, kill_every=KILL_EVERY
    )
    assert {entry.split()[1] for entry in outcome.chaos if entry.startswith("kill")} == set(SERVICES), outcome.chaos
