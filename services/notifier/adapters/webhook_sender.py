"""The webhook sender: the notifier's outbound HTTP. It POSTs signed bodies to
merchants' webhook URLs with httpx (a connection pool per endpoint, timeouts,
no redirects, no proxies) behind the SSRF guard at connect time.

The guard lives in the network backend under httpx's connection pool, so it
judges the address actually connected to: the host is resolved once, every
resolved address is checked against the policy (services/common/ssrf.py), and the
socket is opened to a checked IP. The URL is not rewritten, so the Host header
and the TLS SNI/certificate check still use the merchant's host name. A DNS
answer that changes between check and connect (rebinding) cannot slip through,
and a pooled keep-alive connection was checked when it was opened.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import sys
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpcore
import httpx

from services.common.ssrf import blocked_reason, parse_ip
from services.notifier.domain.records import FailureKind, SendResult

try:
    import sniffio  # noqa: F401
except ImportError:
    # httpcore tries `import sniffio` on every request; without the package that
    # is a full module search each time (~6 % of a delivery's CPU). Remember the miss.
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]


def _root_cause(exc: BaseException) -> str:
    """The innermost OS error's text ('Connection refused'), not a wrapper's."""
    best = str(exc)
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, OSError) and current.errno is not None:
            best = os.strerror(current.errno)
        current = current.__cause__ or current.__context__
        seen += 1
    return best


class BlockedAddress(httpcore.ConnectError):
    """The webhook host resolves only to addresses the SSRF policy refuses."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, *, allow_private: bool, resolve_timeout: float) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private
        self._resolve_timeout = resolve_timeout

    async def _resolve(self, host: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._resolve_timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        seen: list[str] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            if sockaddr[0] not in seen:
                seen.append(sockaddr[0])
        return seen

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolve(host, port)
        allowed: list[str] = []
        refused: list[str] = []
        for address in addresses:
            reason = blocked_reason(parse_ip(address), self._allow_private)
            if reason is None:
                allowed.append(address)
            else:
                refused.append(f"{address} ({reason})")
        if not allowed:
            hint = "" if any("metadata" in r for r in refused) else "; PAYMESH_ALLOW_PRIVATE_WEBHOOKS=true allows it"
            where = refused[0] if addresses == [host] else f"{host} resolves to {', '.join(refused)}"
            raise BlockedAddress(f"refused by the SSRF policy: {where}{hint}")
        failures: list[str] = []
        for address in allowed[:4]:  # a few addresses, as a browser would
            try:
                return await self._inner.connect_tcp(
                    address.split("%", 1)[0],
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectTimeout:
                failures.append(f"{address} port {port}: connect timed out")
            except httpcore.ConnectError as exc:
                failures.append(f"{address} port {port}: {_root_cause(exc)}")
        raise httpcore.ConnectError("; ".join(failures))

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Any = None,  # noqa: ASYNC109
    ):
        raise BlockedAddress("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@dataclass
class _Pool:
    client: httpx.AsyncClient
    in_flight: int = 0
    last_used: float = 0.0


class WebhookSender:
    """POSTs signed bodies; a slow or failing receiver only costs its own attempt.

    Each endpoint gets its own small connection pool (as many connections as
    its concurrency): endpoints cannot starve one another of connections, and
    httpcore's per-request pool scan (it polls every pooled connection) stays
    cheap. Pools idle for a while, or beyond `max_pools`, are closed.
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        request_timeout: float,
        connect_timeout: float,
        connections_per_endpoint: int,
        max_response_bytes: int,
        user_agent: str,
        max_pools: int = 2000,
        pool_idle_seconds: float = 120.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._request_timeout = request_timeout
        self._connect_timeout = connect_timeout
        self._max_response_bytes = max_response_bytes
        self._per_pool = connections_per_endpoint
        self._user_agent = user_agent
        self._max_pools = max_pools
        self._idle = pool_idle_seconds
        self._backend = GuardedBackend(allow_private=allow_private, resolve_timeout=connect_timeout)
        # Certificates are verified against the URL's host name (system/certifi CAs
        # unless a context is given); loaded once, shared by every pool.
        self._ssl = ssl_context or httpx.create_ssl_context(trust_env=False)
        self._pools: OrderedDict[str, _Pool] = OrderedDict()
        self._closing: set[asyncio.Task] = set()
        self._last_sweep = time.monotonic()
        self._urls: dict[str, httpx.URL] = {}  # parsed once per webhook URL

    def _new_client(self) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(
            verify=self._ssl,
            limits=httpx.Limits(
                max_connections=self._per_pool,
                max_keepalive_connections=self._per_pool,
                keepalive_expiry=30.0,
            ),
            trust_env=False,  # a proxy from the environment would bypass the guard
            retries=0,
        )
        pool = getattr(transport, "_pool", None)
        if not isinstance(pool, httpcore.AsyncConnectionPool) or not hasattr(pool, "_network_backend"):
            raise RuntimeError("unsupported httpx/httpcore version: cannot install the SSRF guard")
        # httpx does not expose httpcore's network_backend; the pool opens every
        # connection through this attribute (httpcore 1.x).
        pool._network_backend = self._backend
        return httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(self._request_timeout, connect=self._connect_timeout),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": self._user_agent},
        )

    def _pool(self, key: str) -> _Pool:
        now = time.monotonic()
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(self._new_client())
        else:
            self._pools.move_to_end(key)
        pool.last_used = now
        if len(self._pools) > self._max_pools or now - self._last_sweep > self._idle / 4:
            self._last_sweep = now
            self._evict(now)
        return pool

    def _evict(self, now: float) -> None:
        for key, pool in list(self._pools.items()):
            too_many = len(self._pools) > self._max_pools
            if not too_many and now - pool.last_used < self._idle:
                break  # ordered by last use: the rest are fresher
            if pool.in_flight:
                continue
            del self._pools[key]
            task = asyncio.get_running_loop().create_task(pool.client.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def send(self, url: str, body: bytes, headers: Mapping[str, str], key: str = "") -> SendResult:
        """POST `body` to `url` through `key`'s (the endpoint's) connection pool."""
        pool = self._pool(key)
        parsed = self._urls.get(url)
        if parsed is None:
            try:
                parsed = httpx.URL(url)
            except httpx.InvalidURL as exc:
                return SendResult(
                    started_at=datetime.now(UTC),
                    duration_ms=0,
                    status_code=0,
                    error=f"webhook URL is not usable: {exc}",
                    failure=FailureKind.INVALID_URL,
                    url=url,
                )
            if len(self._urls) > 10_000:
                self._urls.clear()
            self._urls[url] = parsed
        pool.in_flight += 1
        try:
            return await self._send(pool.client, parsed, url, body, headers)
        finally:
            pool.in_flight -= 1
            pool.last_used = time.monotonic()

    async def _send(
        self, client: httpx.AsyncClient, parsed: httpx.URL, url: str, body: bytes, headers: Mapping[str, str]
    ) -> SendResult:
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        status = 0
        error = ""
        failure = FailureKind.NONE
        try:
            async with asyncio.timeout(self._request_timeout):
                async with client.stream("POST", parsed, content=body, headers=dict(headers)) as response:
                    status = response.status_code
                    await self._drain(response)
        except TimeoutError:
            if not status:
                failure, error = FailureKind.TIMEOUT, f"timed out after {self._request_timeout:g}s"
        except httpx.TimeoutException as exc:
            if not status:
                failure = FailureKind.TIMEOUT
                error = f"timed out ({type(exc).__name__}) after at most {self._request_timeout:g}s"
        except httpx.ConnectError as exc:
            if isinstance(exc.__cause__, BlockedAddress):
                failure, error = FailureKind.BLOCKED, str(exc)
            else:
                failure, error = FailureKind.NETWORK, f"connection failed: {exc or type(exc).__name__}"
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            failure, error = FailureKind.INVALID_URL, f"webhook URL is not usable: {exc}"
        except httpx.HTTPError as exc:
            if not status:
                failure, error = FailureKind.NETWORK, f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - anything else the stack raises is a failed attempt
            if not status:
                failure, error = FailureKind.NETWORK, f"{type(exc).__name__}: {exc}"
        duration_ms = int((time.perf_counter() - t0) * 1000)
        if failure is FailureKind.NONE and not 200 <= status < 300:
            failure = FailureKind.HTTP_STATUS
        return SendResult(
            started_at=started_at,
            duration_ms=duration_ms,
            status_code=status,
            error=error[:1000],
            failure=failure,
            url=url,
        )

    async def _drain(self, response: httpx.Response) -> None:
        """Read (and drop) the body up to a limit, so the connection can be reused."""
        read = 0
        async for chunk in response.aiter_raw():
            read += len(chunk)
            if read > self._max_response_bytes:
                break

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        await asyncio.gather(*(p.client.aclose() for p in pools), return_exceptions=True)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
