"""Webhook test support: a tiny HTTP/1.1 receiver on loopback (asyncio, no
framework), and helpers to run the notifier against the test ledger.

The receiver records every request (headers, raw body, time, status answered)
and answers according to a behaviour: `ok()`, `failing(n)` (n failures per
event, then 200), `always(status)`, `hang()`, `slow(seconds)`. It speaks
keep-alive, so the notifier's connection pool is exercised as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from paymesh.notifier.v1 import notifier_service_pb2 as npb
from paymesh.notifier.v1 import notifier_service_pb2_grpc as ngrpc

from tests.support.ledger import ADMIN_TOKEN, SERVICE_TOKENS, bearer, eventually

EVENT_ID = "paymesh-event-id"
SIGNATURE = "paymesh-signature"


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # time.time() when the body was read
    status: int = 0  # what the receiver answered (0: no answer, e.g. hung)

    @property
    def event_id(self) -> str:
        return self.headers.get(EVENT_ID, "")

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


Behaviour = Callable[[Received], Awaitable[int]]


def ok(status: int = 200) -> Behaviour:
    async def answer(_: Received) -> int:
        return status

    return answer


always = ok


def failing(times: int, status: int = 500) -> Behaviour:
    """Answer `status` to the first `times` requests of each event, then 200."""
    seen: dict[str, int] = defaultdict(int)

    async def answer(request: Received) -> int:
        seen[request.event_id] += 1
        return status if seen[request.event_id] <= times else 200

    return answer


def hang() -> Behaviour:
    """Never answer (until the client gives up)."""

    async def answer(_: Received) -> int:
        await asyncio.sleep(3600)
        return 200

    return answer


def slow(seconds: float, status: int = 200) -> Behaviour:
    async def answer(_: Received) -> int:
        await asyncio.sleep(seconds)
        return status

    return answer


_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    302: "Found",
    400: "Bad Request",
    404: "Not Found",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class WebhookReceiver:
    """HTTP/1.1 server on 127.0.0.1 that records requests; `async with` starts/stops it."""

    def __init__(self, behaviour: Behaviour | None = None, *, port: int = 0, path: str = "/hooks/paymesh") -> None:
        self.behaviour = behaviour or ok()
        self.requests: list[Received] = []
        self.path = path
        self._port = port
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.Task] = set()
        self.changed = asyncio.Event()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}{self.path}"

    async def start(self) -> WebhookReceiver:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self._port, reuse_address=True, backlog=1024
        )
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._conns):
                task.cancel()
            if self._conns:
                await asyncio.wait(list(self._conns), timeout=2)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)
            self._server = None

    async def __aenter__(self) -> WebhookReceiver:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------- queries

    def for_event(self, event_id: str) -> list[Received]:
        return [r for r in self.requests if r.event_id == event_id]

    def succeeded(self) -> list[Received]:
        return [r for r in self.requests if 200 <= r.status < 300]

    def event_ids(self, *, answered_ok: bool = False) -> set[str]:
        return {r.event_id for r in (self.succeeded() if answered_ok else self.requests)}

    async def wait_for(self, check: Callable[[], Any], within: float = 15.0) -> Any:
        async def probe() -> Any:
            return check()

        return await eventually(probe, timeout=within, interval=0.02)

    # ---------------------------------------------------------------- HTTP

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, target, _version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    raw = await reader.readline()
                    if raw in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = raw.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                request = Received(method=method, path=target, headers=headers, body=body, at=time.time())
                self.requests.append(request)
                self.changed.set()
                status = await self.behaviour(request)
                request.status = status
                payload = b"ok"
                head = (
                    f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
                    f"Content-Type: text/plain\r\nContent-Length: {len(payload)}\r\n"
                )
                if 300 <= status < 400:
                    head += "Location: http://127.0.0.1:9/elsewhere\r\n"
                writer.write((head + "\r\n").encode("latin-1") + payload)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            return
        except asyncio.CancelledError:
            return
        finally:
            self._conns.discard(task)
            writer.close()


# -------------------------------------------------------------------- the notifier in tests


def notifier_settings(database_url: str, nats_url: str, ledger_port: int, **overrides: Any):
    """Settings for a notifier in tests: fast retries, short timeouts, loopback allowed,
    its own durable that starts at new events (so it does not replay the session's)."""
    from services.notifier.settings import NotifierSettings

    values: dict[str, Any] = dict(
        database_url=database_url,
        nats_url=nats_url,
        ledger_addr=f"127.0.0.1:{ledger_port}",
        grpc_port=0,
        admin_token=ADMIN_TOKEN,
        **SERVICE_TOKENS,
        notifier_durable=f"notifier-{secrets.token_hex(4)}",
        notifier_deliver_policy="new",
        retry_schedule="200ms,200ms,200ms",
        retry_jitter=0.0,
        request_timeout_seconds=2.0,
        connect_timeout_seconds=1.0,
        lease_seconds=5.0,
        allow_private_webhooks=True,
        target_cache_seconds=0.2,
        auth_cache_seconds=0.2,
        poll_interval_seconds=0.05,
        shutdown_grace_seconds=1.0,
    )
    values.update(overrides)
    return NotifierSettings(**values)


@contextlib.asynccontextmanager
async def running_notifier(postgres, nats_url: str, ledger_port: int, **overrides: Any) -> AsyncIterator[Any]:
    """A notifier in this process on its own fresh database; stopped (and its
    durable consumer deleted) on exit."""
    import nats

    from services.notifier.app import NotifierApp

    url = postgres.create_database(f"notifier_{secrets.token_hex(4)}")
    settings = notifier_settings(url, nats_url, ledger_port, **overrides)
    app = NotifierApp(settings)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
        nc = await nats.connect(servers=nats_url.split(","))
        try:
            with contextlib.suppress(Exception):
                await nc.jetstream().delete_consumer("PAYMENTS", settings.notifier_durable)
        finally:
            await nc.close()


class NotifierClient:
    """NotifierService stub with the caller's credentials bound."""

    def __init__(self, channel: grpc.aio.Channel, token: str) -> None:
        self.stub = ngrpc.NotifierServiceStub(channel)
        self.metadata = bearer(token)

    async def list(self, **fields: Any) -> npb.ListDeliveriesResponse:
        return await self.stub.ListDeliveries(npb.ListDeliveriesRequest(**fields), metadata=self.metadata)

    async def get(self, delivery_id: str) -> npb.Delivery:
        reply = await self.stub.GetDelivery(npb.GetDeliveryRequest(delivery_id=delivery_id), metadata=self.metadata)
        return reply.delivery

    async def redeliver(self, **target: str) -> int:
        reply = await self.stub.Redeliver(npb.RedeliverRequest(**target), metadata=self.metadata)
        return reply.deliveries_queued

    async def send_test(self, merchant_id: str = "") -> npb.Delivery:
        reply = await self.stub.SendTestEvent(npb.SendTestEventRequest(merchant_id=merchant_id), metadata=self.metadata)
        return reply.delivery

    async def by_event(self, event_id: str) -> npb.Delivery | None:
        reply = await self.list(event_id=event_id)
        return reply.deliveries[0] if reply.deliveries else None

    async def wait_state(self, event_id: str, state: int, within: float = 15.0) -> npb.Delivery:
        async def check() -> npb.Delivery | None:
            found = await self.by_event(event_id)
            return found if found is not None and found.state == state else None

        found = await eventually(check, timeout=within)
        return await self.get(found.delivery_id)
