"""services.common.nats_helpers.JetStreamPublisher on a real NATS JetStream:
acks and duplicates per message, a clear error for a subject no stream takes,
and nothing left pending when the connection refuses a write (the failure that
makes nats.py's own publish_async block for good)."""

from __future__ import annotations

import secrets

import nats
import pytest
import pytest_asyncio
from nats.errors import OutboundBufferLimitError
from nats.js.api import StreamConfig
from nats.js.errors import NoStreamResponseError

from services.common.nats_helpers import JetStreamPublisher

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def nc(nats_server):
    connection = await nats.connect(nats_server.url)
    try:
        yield connection
    finally:
        await connection.drain()


async def new_stream(nc) -> str:
    name = f"PUB{secrets.token_hex(3).upper()}"
    await nc.jetstream().add_stream(StreamConfig(name=name, subjects=[f"{name.lower()}.>"]))
    return name


async def test_acks_duplicates_and_order(nc):
    name = await new_stream(nc)
    publisher = JetStreamPublisher(nc)
    items = [(f"{name.lower()}.{i}", str(i).encode(), f"id-{i}") for i in range(500)]
    assert await publisher.publish_many(name, items) == [False] * 500
    again = await publisher.publish_many(name, items[:10] + [(f"{name.lower()}.x", b"x", "id-new")])
    assert again == [True] * 10 + [False]
    js = nc.jetstream()
    assert (await js.stream_info(name)).state.messages == 501
    first, last = await js.get_msg(name, 1), await js.get_msg(name, 500)
    assert (first.data, last.data) == (b"0", b"499")
    assert publisher._pending == {}


async def test_no_stream_for_the_subject_is_a_clear_error(nc):
    publisher = JetStreamPublisher(nc)
    with pytest.raises(NoStreamResponseError):
        await publisher.publish_many("NOSUCH", [("nobody.listens.here", b"x", "id-1")], timeout=5)
    assert publisher._pending == {}


async def test_a_refused_write_leaves_nothing_pending(nc):
    name = await new_stream(nc)
    publisher = JetStreamPublisher(nc)
    real_publish = nc.publish
    calls = 0

    async def refusing(*args, **kwargs):  # what nats.py raises when its reconnect buffer is full
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OutboundBufferLimitError
        return await real_publish(*args, **kwargs)

    items = [(f"{name.lower()}.{i}", b"x", f"r-{i}") for i in range(5)]
    nc.publish = refusing
    try:
        for _ in range(5):
            calls = 0
            with pytest.raises(OutboundBufferLimitError):
                await publisher.publish_many(name, items)
            assert publisher._pending == {}
    finally:
        nc.publish = real_publish
    # The first two of each try had reached the stream; the rest go now.
    assert await publisher.publish_many(name, items) == [True, True, False, False, False]
