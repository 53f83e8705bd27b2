"""The notifier's composition root: builds the engine, NATS, the ledger client,
the webhook sender, the use cases (intake, routing, dispatch, deliveries, retention),
the inbound consumer and the gRPC servicer, wires them, and runs the background
loops (intake consumer, router, scheduler, result writer, retention, health watch).
The only module that knows every other one."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import structlog
from paymesh.notifier.v1 import notifier_service_pb2_grpc as ngrpc

from services.common import grpc_client, nats_helpers
from services.common.connect_gateway import start_gateway
from services.common.db import signing_key
from services.common.grpc_server import GrpcServer
from services.common.http_server import HttpServer
from services.common.lifecycle import (
    close_connections,
    postgres_and_nats_ok,
    run_until_stopped,
    stop_tasks,
    watch_health,
)
from services.common.logging import configure_logging
from services.common.metrics import start_metrics_server
from services.common.page_tokens import PageTokens
from services.notifier.adapters.db import create_engine, migrate_async
from services.notifier.adapters.ledger_client import LedgerClient
from services.notifier.adapters.models import SIGNING_KEYS
from services.notifier.adapters.webhook_sender import WebhookSender
from services.notifier.api.callers import CallerResolver
from services.notifier.api.notifier_service import NotifierServicer
from services.notifier.deliveries import Deliveries
from services.notifier.dispatch import Dispatcher, ResultWriter
from services.notifier.inbound.payment_events import PaymentEventConsumer, ensure_consumer, sample_payment_json
from services.notifier.intake import EventIntake
from services.notifier.retention import RetentionPruner
from services.notifier.routing import EventRouter
from services.notifier.settings import NotifierSettings

log = structlog.get_logger("notifier")

SERVICE_NAME = "paymesh.notifier.v1.NotifierService"


class NotifierApp:
    def __init__(self, settings: NotifierSettings) -> None:
        self.settings = settings
        self.engine = create_engine(settings.database_url, settings.db_pool_size)
        self.stop_event = asyncio.Event()
        self.grpc = GrpcServer(host=settings.grpc_host, port=settings.grpc_port)
        self.nc = None
        self.ledger_channel: grpc.aio.Channel | None = None
        self.sender: WebhookSender | None = None
        self.writer: ResultWriter | None = None
        self.dispatcher: Dispatcher | None = None
        self.metrics_port: int | None = None
        self.http: HttpServer | None = None
        self.http_port: int | None = None  # NotifierService over HTTP/JSON (Connect), once started
        self._self_channel: grpc.aio.Channel | None = None
        self._intake_task: asyncio.Task | None = None
        self._tasks: list[asyncio.Task] = []

    @property
    def port(self) -> int:
        return self.grpc.port

    async def start(self) -> int:
        s = self.settings
        if s.migrate_on_start:
            await migrate_async(s.database_url)
        self.nc = await nats_helpers.connect(s.nats_url, "paymesh-notifier")
        js = self.nc.jetstream()
        replicas = nats_helpers.replicas_for(self.nc, s.nats_replicas)
        await nats_helpers.ensure_stream(js, nats_helpers.PAYMENTS_STREAM, replicas)
        await nats_helpers.ensure_stream(js, nats_helpers.DLQ_STREAM, replicas)
        await ensure_consumer(js, s.notifier_durable, s.notifier_deliver_policy, s.consumer_ack_wait_seconds)

        self.ledger_channel = grpc_client.channel(s.ledger_addr)
        ledger = LedgerClient(
            self.ledger_channel,
            s.merchant_directory_token.get_secret_value(),
            timeout=s.ledger_timeout_seconds,
            target_ttl=s.target_cache_seconds,
            auth_ttl=s.auth_cache_seconds,
        )
        self.sender = WebhookSender(
            allow_private=s.allow_private_webhooks,
            request_timeout=s.request_timeout_seconds,
            connect_timeout=s.connect_timeout_seconds,
            connections_per_endpoint=s.per_endpoint_concurrency,
            max_response_bytes=s.max_response_bytes,
            user_agent=s.user_agent,
        )
        self.writer = ResultWriter(self.engine)
        self.writer.start()
        self.dispatcher = Dispatcher(
            self.engine,
            ledger,
            self.sender,
            self.writer,
            schedule=s.schedule,
            jitter=s.retry_jitter,
            per_endpoint=s.per_endpoint_concurrency,
            max_concurrency=s.max_concurrency,
            claim_batch=s.claim_batch,
            poll_interval=s.poll_interval_seconds,
            lease_seconds=s.lease_seconds,
            request_timeout=s.request_timeout_seconds,
        )
        deliveries = Deliveries(
            self.engine,
            self.dispatcher,
            ledger,
            s.lease_seconds,
            PageTokens(await signing_key(self.engine, SIGNING_KEYS, "page_tokens")),
            sample_payment=sample_payment_json,
        )
        self.grpc.add(
            ngrpc.add_NotifierServiceServicer_to_server,
            NotifierServicer(deliveries, CallerResolver(s.admin_token.get_secret_value(), ledger)),
            SERVICE_NAME,
        )
        router = EventRouter(self.engine, ledger, self.dispatcher.poke)
        consumer = PaymentEventConsumer(EventIntake(self.engine, ledger, router.poke, self.dispatcher.poke))
        self._intake_task = asyncio.create_task(
            nats_helpers.run_pull_consumer(
                js,
                stream=nats_helpers.PAYMENTS_STREAM.name,
                durable=s.notifier_durable,
                handler=consumer.handle,
                stop=self.stop_event,
                batch=s.consumer_batch,
                fetch_timeout=s.consumer_fetch_wait_seconds,
            ),
            name="intake",
        )
        self._tasks = [
            asyncio.create_task(router.run(self.stop_event), name="routing"),
            asyncio.create_task(self.dispatcher.run(self.stop_event), name="scheduler"),
            asyncio.create_task(RetentionPruner(self.engine, s.retention_days).run(self.stop_event), name="retention"),
            asyncio.create_task(watch_health(self.grpc, self._dependencies_ok, self.stop_event), name="health"),
        ]
        port = await self.grpc.start()
        if s.connect_enabled:
            # NotifierService over HTTP/JSON, forwarded to this gRPC server (one path for every call).
            self.http, self._self_channel = await start_gateway(
                (SERVICE_NAME,),
                grpc_host=s.grpc_host,
                grpc_port=port,
                host=s.connect_host,
                port=s.connect_port,
                grace_seconds=s.shutdown_grace_seconds,
                name="notifier-connect",
            )
            self.http_port = self.http.port
        self.metrics_port = start_metrics_server(s.metrics_port)
        log.info(
            "notifier serving",
            grpc_port=port,
            http_port=self.http_port,
            metrics_port=self.metrics_port,
            durable=s.notifier_durable,
            ledger=s.ledger_addr,
            allow_private_webhooks=s.allow_private_webhooks,
            retry_schedule=s.retry_schedule,
        )
        return port

    async def _dependencies_ok(self) -> bool:
        return await postgres_and_nats_ok(self.engine, self.nc)

    async def stop(self) -> None:
        """Drain: NOT_SERVING, stop taking in and claiming, let attempts in flight
        finish (grace), record them, then close connections."""
        log.info("notifier stopping")
        grace = self.settings.shutdown_grace_seconds
        self.stop_event.set()
        drain = self.dispatcher.drain(grace) if self.dispatcher is not None else asyncio.sleep(0)
        # RPCs in flight (SendTestEvent) and attempts in flight finish together.
        if self.http is not None:
            await self.http.stop()
        await asyncio.gather(self.grpc.stop(grace), drain)
        if self._self_channel is not None:
            await self._self_channel.close()
        if self._intake_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._intake_task, timeout=5)
        await stop_tasks(self._tasks)
        if self.writer is not None:
            await self.writer.close()
        if self.sender is not None:
            await self.sender.aclose()
        await close_connections(ledger_channel=self.ledger_channel, nc=self.nc)
        await self.engine.dispose()
        log.info("notifier stopped")


async def serve() -> None:
    settings = NotifierSettings()
    configure_logging("notifier", settings.log_level)
    app = NotifierApp(settings)
    await run_until_stopped(app)
