"""JetStream helpers: idempotent provisioning, publish with Nats-Msg-Id, and a
pull-consumer loop that acks only after the handler has committed.

Streams (the contract in ARCHITECTURE.md):
- CHAIN     paymesh.chain.<chain_id>.{transfer,head,reorg}   (listener -> ledger)
- PAYMENTS  paymesh.payments.<merchant_id>.<event>            (ledger outbox -> anyone)
- DLQ       paymesh.dlq.<durable>                              (messages a consumer gave up on)
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import ParamSpec, TypeVar

import nats
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, PubAck, StorageType, StreamConfig
from nats.js.errors import APIError, BadRequestError, NoStreamResponseError, NotFoundError, ServiceUnavailableError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from services.common.failpoints import failpoint
from services.common.metrics import NATS_BATCH_SIZE, NATS_MESSAGES, NATS_PUBLISHED

log = structlog.get_logger("nats")

DAY = 24 * 3600.0

CHAIN_STREAM = StreamConfig(
    name="CHAIN",
    description="Chain events from the listener: transfers into watched addresses, heads, reorgs.",
    subjects=["paymesh.chain.>"],
    storage=StorageType.FILE,
    max_age=7 * DAY,
    duplicate_window=3600.0,
)
PAYMENTS_STREAM = StreamConfig(
    name="PAYMENTS",
    description="Payment events from the ledger's outbox, for the notifier and any other subscriber.",
    subjects=["paymesh.payments.>"],
    storage=StorageType.FILE,
    max_age=30 * DAY,
    duplicate_window=3600.0,
)
DLQ_STREAM = StreamConfig(
    name="DLQ",
    description="Messages a consumer could not process, kept for operators to inspect and replay.",
    subjects=["paymesh.dlq.>"],
    storage=StorageType.FILE,
    max_age=30 * DAY,
)


def chain_subject(chain_id: int, kind: str) -> str:
    return f"paymesh.chain.{chain_id}.{kind}"


def payment_subject(merchant_id: str, event: str) -> str:
    return f"paymesh.payments.{merchant_id}.{event}"


def server_urls(url: str) -> list[str]:
    """PAYMESH_NATS_URL as nats.py wants it: one URL, or several separated by commas
    (the nodes of a cluster; the client reconnects to another one when its node goes)."""
    urls = [u.strip() for u in url.split(",") if u.strip()]
    if not urls:
        raise ValueError("PAYMESH_NATS_URL is empty; give nats://host:4222 or several, comma-separated")
    return urls


def replicas_for(nc: NatsClient, wanted: int) -> int:
    """Stream and bucket replicas: `wanted` (PAYMESH_NATS_REPLICAS) when set, else 3 on a
    cluster of three or more nodes (what the server reports: its cluster's client URLs)
    and 1 on a single node."""
    if wanted > 0:
        return wanted
    info = getattr(nc, "_server_info", None) or {}
    nodes = len(set(info.get("connect_urls") or [])) if info.get("cluster") else 1
    return 3 if nodes >= 3 else 1


async def connect(url: str, name: str) -> NatsClient:
    """Connect (to any of the comma-separated URLs), retrying forever in the background
    once connected the first time, and to another node of a cluster when one goes."""

    async def on_disconnect() -> None:
        log.warning("nats disconnected", url=url)

    async def on_reconnect() -> None:
        log.info("nats reconnected", url=url)

    async def on_error(exc: Exception) -> None:
        log.warning("nats error", error=str(exc))

    return await nats.connect(
        servers=server_urls(url),
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        allow_reconnect=True,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        error_cb=on_error,
    )


# While a JetStream cluster elects a leader (a node just died or came back: a few
# seconds; 2-6 s in tests/e2e/test_chaos_replicas.py) its API answers nothing or
# "unavailable". Setting up streams, consumers and buckets then waits for it
# rather than failing a service's start; 60 s, then the error stands.
SETUP_RETRY_SECONDS = 60.0
_ELECTING = (NatsTimeoutError, NoRespondersError, ServiceUnavailableError)
P = ParamSpec("P")
R = TypeVar("R")


def retry_while_electing(setup: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Retry a JetStream setup call (streams, consumers, KV buckets) while the
    cluster has no leader, for up to SETUP_RETRY_SECONDS."""

    @functools.wraps(setup)
    async def retried(*args: P.args, **kwargs: P.kwargs) -> R:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_ELECTING),
            stop=stop_after_delay(SETUP_RETRY_SECONDS),
            wait=wait_exponential(multiplier=0.2, max=2.0),
            before_sleep=lambda state: log.warning(
                "jetstream not answering; retrying",
                call=setup.__name__,
                error=repr(state.outcome.exception() if state.outcome else None),
            ),
            reraise=True,
        ):
            with attempt:
                return await setup(*args, **kwargs)
        raise AssertionError("unreachable: tenacity reraises")

    return retried


@retry_while_electing
async def ensure_stream(js: JetStreamContext, config: StreamConfig, replicas: int = 1) -> None:
    """Create the stream, or update it to this config (with `replicas`); safe to call
    from every process."""
    name = config.name
    assert name is not None  # every StreamConfig here has one
    config = dataclasses.replace(config, num_replicas=replicas)
    try:
        await js.stream_info(name)
    except NotFoundError:
        try:
            await js.add_stream(config)
            return
        except BadRequestError:
            pass  # created concurrently by another process
    await js.update_stream(config)


async def ensure_streams(js: JetStreamContext, replicas: int = 1) -> None:
    for config in (CHAIN_STREAM, PAYMENTS_STREAM, DLQ_STREAM):
        await ensure_stream(js, config, replicas)


@retry_while_electing
async def ensure_pull_consumer(
    js: JetStreamContext,
    stream: str,
    durable: str,
    filter_subject: str,
    *,
    ack_wait: float = 30.0,
    max_deliver: int = 50,
    max_ack_pending: int = 10_000,
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL,
) -> None:
    """Create or update a durable pull consumer (explicit acks; by default from the stream's start)."""
    config = ConsumerConfig(
        durable_name=durable,
        deliver_policy=deliver_policy,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=max_deliver,
        max_ack_pending=max_ack_pending,
        filter_subject=filter_subject,
    )
    await js.add_consumer(stream, config)


async def publish(js: JetStreamContext, subject: str, payload: bytes, msg_id: str, stream: str) -> bool:
    """Publish with a dedup id; True when JetStream already had that id (a replay)."""
    ack = await js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id}, stream=stream)
    NATS_PUBLISHED.labels(stream, str(bool(ack.duplicate)).lower()).inc()
    return bool(ack.duplicate)


class JetStreamPublisher:
    """Publishes to JetStream pipelined: every message carries a reply subject on
    one inbox subscription, and JetStream's acks resolve the futures of
    `publish_many`. No round trip, task or inbox per message (js.publish costs
    all three), and every future is this object's own: whatever fails (NATS gone,
    buffer full, timeout, cancellation) the pending ones are dropped, so nothing
    leaks. nats.py's own publish_async leaks a slot of its 4,000-message window
    each time the socket write fails, and then blocks for good.
    """

    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc
        self._prefix = ""
        self._pending: dict[str, asyncio.Future[PubAck]] = {}
        self._tokens = itertools.count()

    async def _subscribe(self) -> None:
        if not self._prefix:
            prefix = self._nc.new_inbox()
            await self._nc.subscribe(f"{prefix}.*", cb=self._on_reply)
            self._prefix = prefix

    async def _on_reply(self, msg: Msg) -> None:
        future = self._pending.pop(msg.subject.rpartition(".")[2], None)
        if future is None or future.done():
            return  # an ack after its publish_many gave up: the retry's ids make it harmless
        if msg.headers and msg.headers.get("Status") == "503":
            future.set_exception(NoStreamResponseError())
            return
        try:
            reply = json.loads(msg.data)
        except ValueError:
            future.set_exception(APIError(description=f"JetStream ack is not JSON: {msg.data[:80]!r}"))
            return
        if "error" in reply:
            future.set_exception(APIError.from_error(reply["error"]))
        else:
            future.set_result(PubAck.from_response(reply))

    async def publish_many(
        self, stream: str, items: Sequence[tuple[str, bytes, str]], *, timeout: float = 10.0
    ) -> list[bool]:
        """Publish (subject, payload, msg_id) items to `stream`; every one must be
        acked within `timeout`, else this raises and the caller retries (the
        message ids make the retry harmless). Returns which were duplicates."""
        loop = asyncio.get_running_loop()
        tokens: list[str] = []
        try:
            async with asyncio.timeout(timeout):
                await self._subscribe()
                futures = []
                for subject, payload, msg_id in items:
                    token = str(next(self._tokens))
                    future: asyncio.Future[PubAck] = loop.create_future()
                    self._pending[token] = future
                    tokens.append(token)
                    futures.append(future)
                    await self._nc.publish(
                        subject,
                        payload,
                        reply=f"{self._prefix}.{token}",
                        headers={"Nats-Msg-Id": msg_id, "Nats-Expected-Stream": stream},
                    )
                acks = await asyncio.gather(*futures)
        finally:
            for token in tokens:
                if token in self._pending:
                    future = self._pending.pop(token)
                    if not future.done():
                        future.cancel()
        for ack in acks:
            NATS_PUBLISHED.labels(stream, str(bool(ack.duplicate)).lower()).inc()
        return [bool(a.duplicate) for a in acks]


class Outcome(Enum):
    """What the consumer loop does with a message after the handler ran."""

    ACK = "ack"  # effect committed (or a harmless duplicate)
    RETRY = "nak"  # transient failure: redeliver later
    DEAD = "term"  # can never succeed: copy to DLQ, then stop redelivering


@dataclass
class Handled:
    outcome: Outcome
    reason: str = ""


BatchHandler = Callable[[list[Msg]], Awaitable[list[Handled]]]


async def dead_letter(js: JetStreamContext, durable: str, msg: Msg, reason: str) -> None:
    headers = {
        "Paymesh-Original-Subject": msg.subject,
        "Paymesh-Error": reason[:512],
        "Nats-Msg-Id": f"dlq:{durable}:{msg.metadata.stream}:{msg.metadata.sequence.stream}",
    }
    await js.publish(f"paymesh.dlq.{durable}", msg.data, headers=headers, stream=DLQ_STREAM.name)


async def run_pull_consumer(
    js: JetStreamContext,
    *,
    stream: str,
    durable: str,
    handler: BatchHandler,
    stop: asyncio.Event,
    batch: int = 256,
    fetch_timeout: float = 0.5,
    retry_delay: float = 1.0,
    max_deliver: int = 50,
) -> None:
    """Fetch batches and hand them to `handler`; ack each message only after the
    handler returned (i.e. after its DB commit). A message is dead-lettered when
    the handler says DEAD, or when it keeps failing up to max_deliver."""
    sub = await js.pull_subscribe_bind(durable=durable, stream=stream)
    batch_size = NATS_BATCH_SIZE.labels(durable)
    try:
        while not stop.is_set():
            try:
                msgs = await _fetch_ready(sub, batch, fetch_timeout)
            except Exception as exc:  # noqa: BLE001 - connection trouble: wait and retry
                log.warning("fetch failed", durable=durable, error=repr(exc))
                await asyncio.sleep(retry_delay)
                continue
            if not msgs:
                continue
            batch_size.observe(len(msgs))
            try:
                results = await handler(msgs)
            except Exception:  # noqa: BLE001 - leave the batch unacked; it is redelivered
                log.exception("batch handler failed; batch will be redelivered", durable=durable)
                for msg in msgs:
                    await _nak(msg, retry_delay)
                NATS_MESSAGES.labels(durable, "nak").inc(len(msgs))
                await asyncio.sleep(retry_delay)
                continue
            failpoint(f"{durable}.after_handle_before_ack")
            for msg, result in zip(msgs, results, strict=True):
                await _settle(js, durable, msg, result, retry_delay, max_deliver)
    finally:
        try:
            await sub.unsubscribe()
        except Exception:  # noqa: BLE001 - connection may already be closed
            pass


async def _fetch_ready(sub, batch: int, wait: float) -> list[Msg]:
    """Wait up to `wait` for one message, then take what else is ready at once.
    (A plain fetch(batch) keeps waiting for the batch to fill once the first
    message arrived, which adds up to `wait` of latency when traffic is light.)"""
    try:
        msgs = await sub.fetch(batch=1, timeout=wait)
    except (NatsTimeoutError, TimeoutError):
        return []  # idle (nats.py raises either kind)
    if msgs and batch > 1:
        try:
            msgs += await sub.fetch(batch=batch - 1, timeout=0.005)
        except (NatsTimeoutError, TimeoutError):
            pass
    return msgs


async def _nak(msg: Msg, delay: float) -> None:
    try:
        await msg.nak(delay=delay)
    except Exception:  # noqa: BLE001 - if the nak is lost, ack_wait redelivers anyway
        pass


async def _settle(js, durable: str, msg: Msg, result: Handled, delay: float, max_deliver: int) -> None:
    outcome = result.outcome
    if outcome is Outcome.RETRY and msg.metadata.num_delivered >= max_deliver:
        outcome = Outcome.DEAD
    if outcome is Outcome.ACK:
        await msg.ack()
    elif outcome is Outcome.RETRY:
        await _nak(msg, delay)
    else:
        log.error("dead-lettering message", durable=durable, subject=msg.subject, reason=result.reason)
        await dead_letter(js, durable, msg, result.reason)
        await msg.term()
    NATS_MESSAGES.labels(durable, outcome.value).inc()
