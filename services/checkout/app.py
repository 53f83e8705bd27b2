"""The checkout: public payment pages over HTTP, stateless, a gRPC client of the
ledger (CheckoutLedgerService) like the other services. Health on /healthz and
/readyz, Prometheus metrics on PAYMESH_METRICS_PORT, JSON logs, graceful SIGTERM
(open live streams get PAYMESH_SHUTDOWN_GRACE_SECONDS to end)."""

from __future__ import annotations

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.checkout.adapters.ledger_client import CheckoutLedger
from services.checkout.settings import CheckoutSettings
from services.checkout.web import CheckoutWeb
from services.common import grpc_client
from services.common.chains import load_chains
from services.common.http_server import HttpServer
from services.common.lifecycle import run_until_stopped
from services.common.logging import configure_logging
from services.common.metrics import start_metrics_server

SERVICE = "paymesh.checkout"


class CheckoutApp:
    def __init__(self, settings: CheckoutSettings) -> None:
        self.settings = settings
        self.port = 0
        self.metrics_port: int | None = None
        self._channel: grpc.aio.Channel | None = None
        self._server: HttpServer | None = None
        self._log = structlog.get_logger("checkout")

    @property
    def url(self) -> str:
        return f"http://{self.settings.http_host}:{self.port}"

    async def start(self) -> CheckoutApp:
        s = self.settings
        configure_logging("checkout", s.log_level)
        chains = load_chains(s.chains_file)
        self._channel = grpc_client.channel(s.ledger_addr)
        ledger = CheckoutLedger(
            self._channel, token=s.checkout_ledger_token.get_secret_value(), timeout=s.ledger_timeout_seconds
        )
        web = CheckoutWeb(
            ledger,
            {c.chain_id: c.name for c in chains},
            refresh_seconds=s.refresh_seconds,
            keepalive_seconds=s.keepalive_seconds,
            requote_per_minute=s.requote_per_minute,
            ready=self._ledger_ready,
            link_per_client=s.link_payments_per_minute_per_client,
            link_per_link=s.link_payments_per_minute_per_link,
        )
        self._server = HttpServer(
            web.app,
            host=s.http_host,
            port=s.http_port,
            grace_seconds=s.shutdown_grace_seconds,
            name="checkout-http",
            proxy_headers=True,
            forwarded_allow_ips=s.forwarded_allow_ips,
        )
        self.port = await self._server.start()
        self.metrics_port = start_metrics_server(s.metrics_port)
        self._log.info("checkout serving", url=self.url, ledger=s.ledger_addr, metrics_port=self.metrics_port)
        return self

    async def _ledger_ready(self) -> bool:
        assert self._channel is not None
        try:
            reply = await health_pb2_grpc.HealthStub(self._channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.aio.AioRpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    async def stop(self) -> None:
        self._log.info("checkout stopping")
        if self._server is not None:
            await self._server.stop()
        if self._channel is not None:
            await self._channel.close()
        self._log.info("checkout stopped")


async def serve() -> None:
    await run_until_stopped(CheckoutApp(CheckoutSettings()))
