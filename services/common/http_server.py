"""One HTTP server (uvicorn) for an ASGI app inside a service process: bound before
it starts (port 0 picks a free one, `port` tells which), started as a task, stopped
gracefully. The checkout's pages and the ledger's Connect gateway use it."""

from __future__ import annotations

import asyncio
import socket

import uvicorn


class HttpServer:
    def __init__(
        self,
        app,
        *,
        host: str,
        port: int,
        grace_seconds: float,
        name: str,
        proxy_headers: bool = False,
        forwarded_allow_ips: str = "127.0.0.1",
    ) -> None:
        self._app = app
        self._host = host
        self._requested = port
        self._grace = grace_seconds
        self._name = name
        self._proxy = proxy_headers
        self._forwarded = forwarded_allow_ips
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task | None = None
        self.port = 0

    async def start(self) -> int:
        sock = socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._requested))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=max(1, int(self._grace)),
            proxy_headers=self._proxy,
            forwarded_allow_ips=self._forwarded,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name=self._name)
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what made it fail
            await asyncio.sleep(0.01)
        return self.port

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
