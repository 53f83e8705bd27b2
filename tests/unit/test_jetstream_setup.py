"""JetStream setup at a service's start waits out a cluster's leader election
(no responders, timeouts, "unavailable") instead of failing the start, and
fails at once on anything else."""

from __future__ import annotations

import pytest
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import BadRequestError

from services.common.nats_helpers import retry_while_electing

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]


async def test_setup_is_retried_while_the_cluster_elects_a_leader():
    calls: list[int] = []

    @retry_while_electing
    async def create_stream(name: str) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise NoRespondersError()
        if len(calls) == 2:
            raise NatsTimeoutError()
        return f"created {name}"

    assert await create_stream("CHAIN") == "created CHAIN"
    assert len(calls) == 3


async def test_any_other_error_fails_the_setup_at_once():
    calls: list[int] = []

    @retry_while_electing
    async def create_stream() -> None:
        calls.append(1)
        raise BadRequestError()

    with pytest.raises(BadRequestError):
        await create_stream()
    assert len(calls) == 1
