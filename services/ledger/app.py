"""The ledger's composition root: builds the engine and the hot pool, NATS, the
adapters, use cases and gRPC servicers, wires them, and runs the background loops
(chain consumer, outbox relay, expiry, health watch). The only module that knows
every other one."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import structlog
from paymesh.events.v1 import event_service_pb2_grpc as egrpc
from paymesh.ledger.v1 import address_feed_service_pb2_grpc as fgrpc
from paymesh.ledger.v1 import api_key_service_pb2_grpc as kgrpc
from paymesh.ledger.v1 import audit_service_pb2_grpc as augrpc
from paymesh.ledger.v1 import checkout_ledger_service_pb2_grpc as cgrpc
from paymesh.ledger.v1 import merchant_admin_service_pb2_grpc as agrpc
from paymesh.ledger.v1 import merchant_directory_service_pb2_grpc as dgrpc
from paymesh.ledger.v1 import payment_link_service_pb2_grpc as lgrpc
from paymesh.ledger.v1 import payment_service_pb2_grpc as sgrpc
from paymesh.ledger.v1 import payout_ledger_service_pb2_grpc as plgrpc
from paymesh.ledger.v1 import payout_service_pb2_grpc as pogrpc
from paymesh.ledger.v1 import sweep_ledger_service_pb2_grpc as swgrpc
from paymesh.ledger.v1 import webhook_endpoint_service_pb2_grpc as wegrpc

from services.common import nats_helpers
from services.common.chains import load_chains
from services.common.connect_gateway import start_gateway
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
from services.ledger.adapters import repository as repo
from services.ledger.adapters.chain_balances import ChainBalances
from services.ledger.adapters.create_batch import CreatePaymentBatcher
from services.ledger.adapters.db import create_engine, create_hot_pool, migrate_async
from services.ledger.adapters.payment_event_publisher import PaymentEventPublisher
from services.ledger.adapters.payment_event_subscriber import PaymentEventSubscriber
from services.ledger.api.address_feed_service import AddressFeedServicer
from services.ledger.api.api_key_service import ApiKeyServicer
from services.ledger.api.audit_service import AuditServicer
from services.ledger.api.checkout_ledger_service import CheckoutLedgerServicer
from services.ledger.api.convert import WEBHOOK_EVENT_TYPES, set_checkout_base_url
from services.ledger.api.event_service import EventServicer
from services.ledger.api.merchant_admin_service import MerchantAdminServicer
from services.ledger.api.merchant_directory_service import MerchantDirectoryServicer
from services.ledger.api.payment_link_service import PaymentLinkServicer
from services.ledger.api.payment_service import PaymentServicer
from services.ledger.api.payout_ledger_service import PayoutLedgerServicer
from services.ledger.api.payout_service import PayoutServicer
from services.ledger.api.sweep_ledger_service import SweepLedgerServicer
from services.ledger.api.webhook_endpoint_service import WebhookEndpointServicer
from services.ledger.api_keys import ApiKeysService
from services.ledger.audit import AuditLogService
from services.ledger.authentication import Authenticator
from services.ledger.chain_events import ChainEventApplier, HeadCache
from services.ledger.checkout import CheckoutService
from services.ledger.config_changes import ConfigChangesService
from services.ledger.events import EventsService
from services.ledger.expiry import Expirer
from services.ledger.inbound.chain_consumer import LEDGER_DURABLE, ChainConsumer
from services.ledger.index_allocation import IndexAllocator
from services.ledger.merchants import MerchantsService
from services.ledger.outbox import OutboxRelay
from services.ledger.payment_links import PaymentLinksService
from services.ledger.payments import PaymentsService, RateBook
from services.ledger.payouts import PayoutsService
from services.ledger.rate_refresher import start_rates
from services.ledger.settings import LedgerSettings
from services.ledger.sweeps import SweepService
from services.ledger.watched_address_feed import WatchedAddressFeed
from services.ledger.webhook_endpoints import WebhookEndpointsService

log = structlog.get_logger("ledger")

SERVICES = (
    "paymesh.ledger.v1.PaymentService",
    "paymesh.ledger.v1.MerchantAdminService",
    "paymesh.ledger.v1.AddressFeedService",
    "paymesh.ledger.v1.SweepLedgerService",
    "paymesh.ledger.v1.MerchantDirectoryService",
    "paymesh.ledger.v1.CheckoutLedgerService",
    "paymesh.ledger.v1.PaymentLinkService",
    "paymesh.events.v1.EventService",
    "paymesh.ledger.v1.PayoutService",
    "paymesh.ledger.v1.PayoutLedgerService",
    "paymesh.ledger.v1.ApiKeyService",
    "paymesh.ledger.v1.AuditService",
    "paymesh.ledger.v1.WebhookEndpointService",
)
# The services a merchant's key calls, also served over HTTP/JSON (Connect).
MERCHANT_SERVICES = (
    "paymesh.ledger.v1.PaymentService",
    "paymesh.ledger.v1.PaymentLinkService",
    "paymesh.ledger.v1.PayoutService",
    "paymesh.ledger.v1.ApiKeyService",
    "paymesh.ledger.v1.AuditService",
    "paymesh.ledger.v1.WebhookEndpointService",
    "paymesh.events.v1.EventService",
)


class LedgerApp:
    def __init__(self, settings: LedgerSettings) -> None:
        self.settings = settings
        self.chains = load_chains(settings.chains_file)
        self.engine = create_engine(settings.database_url, settings.db_pool_size)
        self.stop_event = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.grpc = GrpcServer(host=settings.grpc_host, port=settings.grpc_port)
        self.nc = None
        self.hot_pool = None
        self.metrics_port: int | None = None
        self.rates: RateBook | None = None  # set in start() from rates.yaml (rate_refresher.start_rates)

    @property
    def port(self) -> int:
        return self.grpc.port

    balances: ChainBalances | None = None
    http: HttpServer | None = None
    http_port: int | None = None  # the HTTP/JSON (Connect) listener's port, once started
    _self_channel: grpc.aio.Channel | None = None

    async def start(self) -> int:
        s = self.settings
        if s.migrate_on_start:
            await migrate_async(s.database_url)
        self.hot_pool = await create_hot_pool(s.database_url, s.db_pool_size)
        self.nc = await nats_helpers.connect(s.nats_url, "paymesh-ledger")
        js = self.nc.jetstream()
        await nats_helpers.ensure_streams(js, nats_helpers.replicas_for(self.nc, s.nats_replicas))
        await nats_helpers.ensure_pull_consumer(
            js,
            nats_helpers.CHAIN_STREAM.name,
            LEDGER_DURABLE,
            "paymesh.chain.>",
            ack_wait=s.consumer_ack_wait_seconds,
        )

        self.rates, rate_tasks = await start_rates(s, self.chains, self.nc, self.stop_event)
        relay = OutboxRelay(
            self.engine,
            self.hot_pool,
            PaymentEventPublisher(self.nc).publish,
            batch=s.relay_batch,
            idle=s.relay_idle_seconds,
            linger=s.relay_linger_seconds,
            retention=timedelta(days=s.outbox_retention_days),
        )
        heads = HeadCache()
        tokens = PageTokens(await repo.signing_keys.page_token_key(self.engine))
        auth = Authenticator(self.engine, s.api_key_cache_seconds)
        allocator = IndexAllocator(self.hot_pool, s.address_reservation)
        inserter = CreatePaymentBatcher(self.hot_pool, max_batch=s.create_batch)
        payments = PaymentsService(
            self.engine,
            inserter,
            self.chains,
            allocator,
            heads,
            relay.poke,
            tokens,
            rates=self.rates,
            default_watch=timedelta(days=s.watch_retention_days),
            allow_http_return_urls=s.allow_http_return_urls,
        )
        set_checkout_base_url(s.checkout_base_url)
        links = PaymentLinksService(self.engine, self.chains, payments, allow_http_return_urls=s.allow_http_return_urls)
        merchants = MerchantsService(
            self.engine,
            self.chains,
            auth,
            allocator,
            tokens,
            allow_private_webhooks=s.allow_private_webhooks,
            change_delay=timedelta(seconds=s.config_change_delay_seconds),
        )
        changes = ConfigChangesService(self.engine, merchants, relay.poke, interval=s.config_change_interval_seconds)
        endpoints = WebhookEndpointsService(
            self.engine, known_types=WEBHOOK_EVENT_TYPES, allow_private_webhooks=s.allow_private_webhooks
        )
        sweeps = SweepService(self.engine, relay.poke, tokens)
        self.balances = ChainBalances(self.chains)
        payouts = PayoutsService(self.engine, self.chains, relay.poke, tokens, self.balances)
        applier = ChainEventApplier(self.engine, self.chains, heads, relay.poke)
        await applier.load_heads()
        feed = WatchedAddressFeed(self.engine, payments.address_added)
        subscriber = PaymentEventSubscriber(self.nc)

        known_chain = lambda chain_id: self.chains.get(chain_id) is not None  # noqa: E731
        servicers = [
            (sgrpc.add_PaymentServiceServicer_to_server, PaymentServicer(payments, auth, subscriber.subscribe)),
            (
                agrpc.add_MerchantAdminServiceServicer_to_server,
                MerchantAdminServicer(merchants, payments, s.admin_token.get_secret_value(), payouts),
            ),
            (
                fgrpc.add_AddressFeedServiceServicer_to_server,
                AddressFeedServicer(feed, s.address_feed_token.get_secret_value(), known_chain),
            ),
            (
                swgrpc.add_SweepLedgerServiceServicer_to_server,
                SweepLedgerServicer(sweeps, s.sweep_ledger_token.get_secret_value(), known_chain),
            ),
            (
                dgrpc.add_MerchantDirectoryServiceServicer_to_server,
                MerchantDirectoryServicer(merchants, auth, s.merchant_directory_token.get_secret_value(), endpoints),
            ),
            (
                cgrpc.add_CheckoutLedgerServiceServicer_to_server,
                CheckoutLedgerServicer(
                    CheckoutService(self.engine, payments, heads),
                    links,
                    s.checkout_ledger_token.get_secret_value(),
                    subscriber.subscribe,
                    payouts,
                ),
            ),
            (lgrpc.add_PaymentLinkServiceServicer_to_server, PaymentLinkServicer(links, auth)),
            (egrpc.add_EventServiceServicer_to_server, EventServicer(EventsService(self.engine, tokens), auth)),
            (pogrpc.add_PayoutServiceServicer_to_server, PayoutServicer(payouts, auth)),
            (
                plgrpc.add_PayoutLedgerServiceServicer_to_server,
                PayoutLedgerServicer(payouts, s.sweep_ledger_token.get_secret_value(), known_chain),
            ),
            (
                kgrpc.add_ApiKeyServiceServicer_to_server,
                ApiKeyServicer(ApiKeysService(self.engine, auth), auth, s.admin_token.get_secret_value()),
            ),
            (
                augrpc.add_AuditServiceServicer_to_server,
                AuditServicer(AuditLogService(self.engine, tokens), changes, auth, s.admin_token.get_secret_value()),
            ),
            (
                wegrpc.add_WebhookEndpointServiceServicer_to_server,
                WebhookEndpointServicer(endpoints, auth, s.admin_token.get_secret_value()),
            ),
        ]
        for (register, servicer), name in zip(servicers, SERVICES, strict=True):
            self.grpc.add(register, servicer, name)
        consumer = ChainConsumer(applier)
        self._tasks = [
            asyncio.create_task(relay.run(self.stop_event), name="outbox-relay"),
            asyncio.create_task(changes.run(self.stop_event), name="config-changes"),
            asyncio.create_task(
                Expirer(self.engine, relay.poke, interval=s.expiry_interval_seconds).run(self.stop_event), name="expiry"
            ),
            asyncio.create_task(
                nats_helpers.run_pull_consumer(
                    js,
                    stream=nats_helpers.CHAIN_STREAM.name,
                    durable=LEDGER_DURABLE,
                    handler=consumer.handle,
                    stop=self.stop_event,
                    batch=s.consumer_batch,
                ),
                name="chain-consumer",
            ),
            asyncio.create_task(watch_health(self.grpc, self._dependencies_ok, self.stop_event), name="health"),
            *rate_tasks,
        ]
        port = await self.grpc.start()
        if s.connect_enabled:
            # The merchant API over HTTP/JSON, forwarded to this gRPC server (one path for every call).
            self.http, self._self_channel = await start_gateway(
                MERCHANT_SERVICES,
                grpc_host=s.grpc_host,
                grpc_port=port,
                host=s.connect_host,
                port=s.connect_port,
                grace_seconds=s.shutdown_grace_seconds,
                name="ledger-connect",
            )
            self.http_port = self.http.port
        self.metrics_port = start_metrics_server(s.metrics_port)
        log.info(
            "ledger serving",
            grpc_port=port,
            http_port=self.http_port,
            metrics_port=self.metrics_port,
            chains=self.chains.ids(),
        )
        return port

    async def _dependencies_ok(self) -> bool:
        return await postgres_and_nats_ok(self.engine, self.nc)

    async def stop(self) -> None:
        log.info("ledger stopping")
        if self.http is not None:
            await self.http.stop()
        await self.grpc.stop(self.settings.shutdown_grace_seconds)
        if self._self_channel is not None:
            await self._self_channel.close()
        self.stop_event.set()
        await stop_tasks(self._tasks)
        await close_connections(nc=self.nc)
        if self.balances is not None:
            await self.balances.aclose()
        if self.hot_pool is not None:
            await self.hot_pool.close()
        await self.engine.dispose()
        log.info("ledger stopped")


async def serve() -> None:
    settings = LedgerSettings()
    configure_logging("ledger", settings.log_level)
    app = LedgerApp(settings)
    await run_until_stopped(app)
