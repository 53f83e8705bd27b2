"""Following a chain's head: newHeads over WebSocket when configured, HTTP
polling of the latest block otherwise and whenever the socket is down; the
socket is reconnected with exponential backoff. Consumers read `latest` and
wait on `changed`."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import time

import structlog

from services.listener import metrics
from services.listener.adapters.chain_rpc import HttpRpc, WsHeads
from services.listener.domain.chaindata import BlockHeader, parse_header

log = structlog.get_logger("listener.heads")


class Mode(enum.Enum):
    WEBSOCKET = "websocket"
    HTTP_POLLING = "http_polling"
    DISCONNECTED = "disconnected"
    STANDBY = "standby"


def set_mode_metric(chain_id: int, mode: Mode) -> None:
    for m in Mode:
        metrics.MODE.labels(str(chain_id), m.value).set(1 if m is mode else 0)


class HeadFollower:
    def __init__(
        self,
        chain_id: int,
        http: HttpRpc,
        ws: WsHeads | None,
        *,
        poll_interval: float,
        ws_poll_interval: float,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.chain_id = chain_id
        self._http = http
        self._ws = ws
        self._poll_interval = poll_interval
        self._ws_poll_interval = ws_poll_interval
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self.latest: BlockHeader | None = None
        self.latest_at: float = 0.0  # wall clock of the last new head
        self.changed = asyncio.Event()
        self.ws_up = False
        self.http_ok = True
        self.last_error = ""
        self._poke = asyncio.Event()

    @property
    def mode(self) -> Mode:
        if self.ws_up:
            return Mode.WEBSOCKET
        return Mode.HTTP_POLLING if self.http_ok else Mode.DISCONNECTED

    @property
    def reachable(self) -> bool:
        return self.ws_up or self.http_ok

    def observe(self, header: BlockHeader, *, polled: bool = False) -> None:
        """A head from any source: keep it if it is new (higher, or another block at
        the same height, as after a reorg). A lower head (the chain was rewound)
        is believed only from a poll, and only when the current one is not fresh
        (a poll answered after a newer newHeads message is merely late)."""
        current = self.latest
        if current is not None:
            if header.hash == current.hash:
                return
            if header.number < current.number and not (polled and time.time() - self.latest_at > 1.0):
                return
        self.latest = header
        self.latest_at = time.time()
        metrics.HEAD.labels(str(self.chain_id)).set(header.number)
        self.changed.set()

    async def poll_once(self) -> BlockHeader | None:
        try:
            header = parse_header(await self._http.call("eth_getBlockByNumber", ["latest", False]), "latest")
        except Exception as exc:  # noqa: BLE001 - logged by the RPC client; reported in status
            self.last_error = str(exc)[:500]
            if self.http_ok:
                log.warning("chain unreachable over HTTP", chain_id=self.chain_id, error=self.last_error)
            self.http_ok = False
            return None
        if not self.http_ok:
            log.info("chain reachable over HTTP again", chain_id=self.chain_id)
        self.http_ok = True
        if self.ws_up or self._ws is None:
            self.last_error = ""
        self.observe(header, polled=True)
        return header

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._poll_loop(), name=f"poll-{self.chain_id}")]
        if self._ws is not None:
            tasks.append(asyncio.create_task(self._ws_loop(), name=f"ws-{self.chain_id}"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.ws_up = False

    async def _poll_loop(self) -> None:
        while True:
            await self.poll_once()
            set_mode_metric(self.chain_id, self.mode)
            # With a live socket, polling is only a safety net for a silent subscription.
            interval = self._ws_poll_interval if self.ws_up else self._poll_interval
            self._poke.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), timeout=interval)

    async def _ws_loop(self) -> None:
        assert self._ws is not None
        delay = self._backoff_initial
        while True:

            def subscribed() -> None:
                nonlocal delay
                self.ws_up = True
                if self.http_ok:
                    self.last_error = ""
                delay = self._backoff_initial
                set_mode_metric(self.chain_id, self.mode)
                log.info("following heads over websocket", chain_id=self.chain_id, url=self._ws.url)

            try:
                async for header in self._ws.stream(subscribed):
                    self.observe(header)
                error = "subscription closed by the node"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any socket failure: poll and reconnect
                error = f"{type(exc).__name__}: {exc}"[:500]
            was_up, self.ws_up = self.ws_up, False
            self.last_error = error
            metrics.RECONNECTS.labels(str(self.chain_id), "websocket").inc()
            set_mode_metric(self.chain_id, self.mode)
            self._poke.set()  # poll right away, then at the polling cadence
            log.warning(
                "websocket down; polling over HTTP and reconnecting",
                chain_id=self.chain_id,
                error=error,
                was_connected=was_up,
                retry_in=round(delay, 2),
            )
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, self._backoff_max)
