"""JSON-RPC to EVM nodes: HTTP calls and batches (httpx), and the newHeads
subscription over WebSocket (websockets).

Nodes and providers fail in every way: refused connections, timeouts, HTTP 429
and 5xx, JSON-RPC errors, HTML error pages, truncated or wrongly shaped JSON.
Each failure is logged, counted and retried a few times with jittered backoff;
what still fails raises (RpcUnavailable, RpcError, MalformedResponse) to the
caller, whose loop backs off and carries on. Nothing here can crash the process.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from websockets.asyncio.client import connect as ws_connect

from services.listener import metrics
from services.listener.domain.chaindata import BlockHeader, MalformedResponse, parse_header
from services.listener.domain.ranges import is_range_error

log = structlog.get_logger("listener.rpc")


class RpcUnavailable(Exception):
    """The node could not be reached or answered with an HTTP error."""


class RpcError(Exception):
    """The node answered with a JSON-RPC error object."""

    def __init__(self, method: str, code: int | None, message: str) -> None:
        super().__init__(f"{method}: error {code}: {message}")
        self.method = method
        self.code = code
        self.message = message

    @property
    def is_range_error(self) -> bool:
        return self.method == "eth_getLogs" and is_range_error(self.code, self.message)


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, RpcUnavailable | MalformedResponse):
        return True
    if isinstance(exc, RpcError):
        # Wrong parameters or an unknown method will not get better; ranges are
        # the caller's to shrink.
        return exc.code not in (-32601, -32602) and not exc.is_range_error
    return False


def _kind(exc: BaseException) -> str:
    if isinstance(exc, RpcError):
        return "range" if exc.is_range_error else "rpc_error"
    if isinstance(exc, MalformedResponse):
        return "malformed"
    return "unavailable"


def _check_reply(reply: Any, method: str, expected_id: int) -> Any:
    if not isinstance(reply, dict):
        raise MalformedResponse(f"{method}: expected a JSON-RPC object, got {type(reply).__name__}")
    error = reply.get("error")
    if error is not None:
        if isinstance(error, dict):
            code = error.get("code")
            raise RpcError(method, code if isinstance(code, int) else None, str(error.get("message", ""))[:500])
        raise RpcError(method, None, str(error)[:500])
    if reply.get("id") != expected_id:
        raise MalformedResponse(f"{method}: reply id {reply.get('id')!r} does not match request id {expected_id}")
    if "result" not in reply:
        raise MalformedResponse(f"{method}: reply has neither result nor error")
    return reply["result"]


class HttpRpc:
    """JSON-RPC over HTTP for one chain, with retries."""

    def __init__(
        self,
        url: str,
        *,
        chain_id: int,
        timeout: float = 10.0,
        attempts: int = 3,
        max_batch: int = 100,
        trust_env: bool = False,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.chain_id = chain_id
        self._label = str(chain_id)
        self._attempts = max(1, attempts)
        self.max_batch = max(1, max_batch)
        self._ids = itertools.count(1)
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            trust_env=trust_env,
            headers={"Content-Type": "application/json"},
        )
        self.last_error: str = ""
        self.last_ok_at: float = 0.0
        self._failures_in_row = 0
        self.batching = True  # off once the node refuses a batch

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def _post(self, body: Any, label: str) -> Any:
        started = time.perf_counter()
        try:
            response = await self._client.post(self.url, content=json.dumps(body, separators=(",", ":")))
        except httpx.HTTPError as exc:
            raise RpcUnavailable(f"{label}: {type(exc).__name__}: {exc}") from None
        finally:
            metrics.RPC_SECONDS.labels(self._label, label).observe(time.perf_counter() - started)
        if response.status_code != 200:
            raise RpcUnavailable(f"{label}: HTTP {response.status_code}: {response.text[:200]!r}")
        try:
            return json.loads(response.content)
        except ValueError:
            raise MalformedResponse(f"{label}: not JSON: {response.content[:120]!r}") from None

    async def _retrying(self, label: str, attempt_fn):
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential_jitter(multiplier=0.05, max=1.0, jitter=0.05),
            retry=retry_if_exception(_transient),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                try:
                    result = await attempt_fn()
                except Exception as exc:
                    self.last_error = str(exc)[:500]
                    self._failures_in_row += 1
                    metrics.RPC_ERRORS.labels(self._label, label, _kind(exc)).inc()
                    # Every failure is counted; a long outage logs its first few and then every 100th.
                    n = self._failures_in_row
                    (log.warning if n <= 3 or n % 100 == 0 else log.debug)(
                        "rpc call failed",
                        chain_id=self.chain_id,
                        method=label,
                        attempt=attempt.retry_state.attempt_number,
                        error=self.last_error,
                        will_retry=_transient(exc) and attempt.retry_state.attempt_number < self._attempts,
                        failures_in_row=n,
                    )
                    raise
                self.last_ok_at = time.monotonic()
                self.last_error = ""
                if self._failures_in_row:
                    log.info("rpc calls succeed again", chain_id=self.chain_id, after_failures=self._failures_in_row)
                    self._failures_in_row = 0
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        async def once() -> Any:
            request_id = next(self._ids)
            reply = await self._post({"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)},
                                     method)
            return _check_reply(reply, method, request_id)

        return await self._retrying(method, once)

    async def batch(self, method: str, params_list: Sequence[Sequence[Any]]) -> list[Any]:
        """The same method with many parameter lists, `max_batch` per HTTP request
        (requests sent concurrently); results in order."""
        chunks = [params_list[i : i + self.max_batch] for i in range(0, len(params_list), self.max_batch)]
        parts = await asyncio.gather(*(self._batch_once(method, chunk) for chunk in chunks))
        return [r for part in parts for r in part]

    async def _batch_once(self, method: str, params_list: Sequence[Sequence[Any]]) -> list[Any]:
        if not params_list:
            return []
        if len(params_list) == 1 or not self.batching:
            return list(await asyncio.gather(*(self.call(method, p) for p in params_list)))
        label = f"batch:{method}"

        async def once() -> list[Any]:
            ids = [next(self._ids) for _ in params_list]
            body = [
                {"jsonrpc": "2.0", "id": i, "method": method, "params": list(p)}
                for i, p in zip(ids, params_list, strict=True)
            ]
            reply = await self._post(body, label)
            if isinstance(reply, dict) and isinstance(reply.get("error"), dict):
                raise _BatchRefused(str(reply["error"].get("message", ""))[:200])
            if isinstance(reply, dict):
                raise MalformedResponse(f"{label}: expected a list of replies, got one object")
            if not isinstance(reply, list):
                raise MalformedResponse(f"{label}: expected a list of replies, got {type(reply).__name__}")
            by_id = {r.get("id"): r for r in reply if isinstance(r, dict)}
            out = []
            for i in ids:
                if i not in by_id:
                    raise MalformedResponse(f"{label}: no reply for request id {i} ({len(reply)} replies)")
                out.append(_check_reply(by_id[i], method, i))
            return out

        try:
            return await self._retrying(label, once)
        except _BatchRefused as exc:
            log.warning("the node refuses JSON-RPC batches; sending calls one by one", chain_id=self.chain_id,
                        error=str(exc))
            self.batching = False
            return await self._batch_once(method, params_list)


class _BatchRefused(Exception):
    """The node answered a batch with a single error object: it does not do batches."""


class WsHeads:
    """eth_subscribe("newHeads") over WebSocket; yields headers until the socket fails."""

    def __init__(self, url: str, *, chain_id: int, open_timeout: float = 5.0, trust_env: bool = False) -> None:
        self.url = url
        self.chain_id = chain_id
        self._open_timeout = open_timeout
        self._proxy = True if trust_env else None

    async def stream(self, on_subscribed: Callable[[], None] | None = None) -> AsyncIterator[BlockHeader]:
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
            subscription = _check_reply(first, "eth_subscribe", 1)
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
