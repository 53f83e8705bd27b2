"""JSON-RPC to EVM nodes for the listener: HTTP calls and batches (the shared
services.common.evm_rpc client, with the listener's metrics and eth_getLogs
range errors), and the newHeads subscription over WebSocket (websockets).

Nodes and providers fail in every way: refused connections, timeouts, HTTP 429
and 5xx, JSON-RPC errors, HTML error pages, truncated or wrongly shaped JSON.
Each failure is logged, counted and retried a few times with jittered backoff;
what still fails raises (RpcUnavailable, RpcError, MalformedResponse) to the
caller, whose loop backs off and carries on. Nothing here can crash the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable

import structlog
from websockets.asyncio.client import connect as ws_connect

from services.common import evm_rpc
from services.common.evm_rpc import RpcUnavailable
from services.listener import metrics
from services.listener.domain.chaindata import BlockHeader, MalformedResponse, parse_header
from services.listener.domain.ranges import is_range_error

log = structlog.get_logger("listener.rpc")

__all__ = ["HttpRpc", "MalformedResponse", "RpcError", "RpcUnavailable", "WsHeads"]


class RpcError(evm_rpc.RpcError):
    """The node answered with a JSON-RPC error object."""

    @property
    def is_range_error(self) -> bool:
        """eth_getLogs asked for too much: the caller shrinks the range (no retry)."""
        return self.method == "eth_getLogs" and is_range_error(self.code, self.message)


class HttpRpc(evm_rpc.EvmRpc):
    """The shared JSON-RPC client, counted in the listener's metrics."""

    error_class = RpcError

    def is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, RpcError) and exc.is_range_error:
            return False
        return super().is_transient(exc)

    def error_kind(self, exc: BaseException) -> str:
        if isinstance(exc, RpcError) and exc.is_range_error:
            return "range"
        return super().error_kind(exc)

    def _observe(self, label: str, seconds: float) -> None:
        metrics.RPC_SECONDS.labels(self._labels[0], label).observe(seconds)

    def _count_error(self, label: str, exc: BaseException) -> None:
        metrics.RPC_ERRORS.labels(self._labels[0], label, self.error_kind(exc)).inc()


class WsHeads:
    """eth_subscribe("newHeads") over WebSocket; yields headers until the socket fails.
    With several endpoints (chains.yaml `ws:`), each new stream after a failed one
    goes to the next endpoint."""

    def __init__(
        self, url: str | list[str], *, chain_id: int, open_timeout: float = 5.0, trust_env: bool = False
    ) -> None:
        self.urls = [url] if isinstance(url, str) else list(url)
        self._current = 0
        self.chain_id = chain_id
        self._open_timeout = open_timeout
        self._proxy = True if trust_env else None

    @property
    def url(self) -> str:
        return self.urls[self._current]

    async def stream(self, on_subscribed: Callable[[], None] | None = None) -> AsyncIterator[BlockHeader]:
        try:
            async with contextlib.aclosing(self._stream(on_subscribed)) as headers:  # the socket closes with us
                async for header in headers:
                    yield header
        except Exception:
            self._current = (self._current + 1) % len(self.urls)  # the next stream tries the next endpoint
            raise

    async def _stream(self, on_subscribed: Callable[[], None] | None) -> AsyncIterator[BlockHeader]:
        async with ws_connect(
            self.url,
            open_timeout=self._open_timeout,
            ping_interval=10,
            ping_timeout=10,
            close_timeout=1,
            max_size=8 * 1024 * 1024,
            proxy=self._proxy,
            compression=None,
        ) as ws:
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}))
            async with asyncio.timeout(self._open_timeout):
                while True:
                    try:
                        first = json.loads(await ws.recv())
                    except ValueError:
                        raise MalformedResponse("eth_subscribe: reply is not JSON") from None
                    if isinstance(first, dict) and first.get("id") == 1:
                        break
            subscription = evm_rpc.check_reply(first, "eth_subscribe", 1)
            if not isinstance(subscription, str):
                raise MalformedResponse(f"eth_subscribe: subscription id is not a string: {subscription!r}")
            if on_subscribed is not None:
                on_subscribed()
            async for message in ws:
                try:
                    data = json.loads(message)
                    params = data.get("params") if isinstance(data, dict) else None
                    if not isinstance(params, dict) or params.get("subscription") != subscription:
                        continue
                    header = parse_header(params.get("result"), "newHeads")
                except (ValueError, MalformedResponse) as exc:
                    metrics.RPC_ERRORS.labels(str(self.chain_id), "newHeads", "malformed").inc()
                    log.warning("malformed newHeads message ignored", chain_id=self.chain_id, error=str(exc)[:300])
                    continue
                yield header
