"""HTTP transport of webhooks: httpx with connection pooling, timeouts, no
redirects, and the SSRF guard at connect time.

The guard lives in the network backend under httpx's connection pool, so it
judges the address actually connected to: the host is resolved once, every
resolved address is checked against the policy (domain/ssrf.py), and the
socket is opened to a checked IP. The URL is not rewritten, so the Host header
and the TLS SNI/certificate check still use the merchant's host name. A DNS
answer that changes between check and connect (rebinding) cannot slip through,
and a pooled keep-alive connection was checked when it was opened.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpcore
import httpx

from services.notifier.domain.records import FailureKind, SendResult
from services.notifier.domain.ssrf import blocked_reason, parse_ip


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
        last: Exception | None = None
        for address in allowed[:4]:  # a few addresses, as a browser would
            try:
                return await self._inner.connect_tcp(
                    address.split("%", 1)[0], port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None  # noqa: ASYNC109
    ):
        raise BlockedAddress("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class WebhookSender:
    """POSTs signed bodies; a slow or failing receiver only costs its own attempt."""

    def __init__(
        self,
        *,
        allow_private: bool,
        request_timeout: float,
        connect_timeout: float,
        max_connections: int,
        max_response_bytes: int,
        user_agent: str,
    ) -> None:
        self._request_timeout = request_timeout
        self._max_response_bytes = max_response_bytes
        transport = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=30.0,
            ),
            trust_env=False,  # a proxy from the environment would bypass the guard
            retries=0,
        )
        pool = getattr(transport, "_pool", None)
        if not isinstance(pool, httpcore.AsyncConnectionPool) or not hasattr(pool, "_network_backend"):
            raise RuntimeError("unsupported httpx/httpcore version: cannot install the SSRF guard")
        # httpx does not expose httpcore's network_backend; the pool creates every
        # connection through this attribute (httpcore 1.x).
        pool._network_backend = GuardedBackend(allow_private=allow_private, resolve_timeout=connect_timeout)
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(request_timeout, connect=connect_timeout),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": user_agent},
        )

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        status = 0
        error = ""
        failure = FailureKind.NONE
        try:
            async with asyncio.timeout(self._request_timeout):
                async with self._client.stream("POST", url, content=body, headers=dict(headers)) as response:
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
        await self._client.aclose()
