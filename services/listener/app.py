"""The listener's composition root: builds NATS (stream, KV buckets), the
ledger channel, and per chain the RPC clients, head follower, range reader,
scanner, address subscription and lease keeper; wires them into one
ChainLeadership per chain and the gRPC server; keeps the health service in step
with each chain's RPC. The only module that knows every other one."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import structlog
from paymesh.listener.v1 import listener_service_pb2_grpc as lgrpc

from services.common import grpc_client, nats_helpers
from services.common.chains import ChainConfig, load_chains
from services.common.grpc_server import GrpcServer
from services.common.lease import KvLease, LeaseKeeper, effective_ttl, ensure_bucket
from services.common.lifecycle import chain_health_name, close_connections, run_until_stopped
from services.common.logging import configure_logging
from services.common.metrics import start_metrics_server
from services.common.rpc_pool import RpcPool, build_pool, start_pools
from services.listener.adapters import state_store
from services.listener.adapters.address_subscription import AddressSubscription
from services.listener.adapters.chain_rpc import HttpRpc, WsHeads
from services.listener.adapters.event_publisher import ChainEventPublisher
from services.listener.adapters.heads import HeadFollower
from services.listener.adapters.range_reader import RangeReader, ReadConfig
from services.listener.api.listener_service import ListenerServicer
from services.listener.domain.addresses import WatchedSet
from services.listener.domain.backfill import LateAddresses
from services.listener.leadership import ChainLeadership
from services.listener.scanner import ChainScanner, ScanConfig
from services.listener.settings import ListenerSettings

log = structlog.get_logger("listener")

SERVICE = "paymesh.listener.v1.ListenerService"


class ConfigError(ValueError):
    """The settings or chains.yaml do not make a working listener; the message says why."""


def watched_chains(settings: ListenerSettings) -> list[ChainConfig]:
    """The chains this listener follows, after checking the settings against chains.yaml."""
    chains = load_chains(settings.chains_file)
    if settings.history_blocks <= chains.max_confirmations:
        raise ConfigError(
            f"PAYMESH_HISTORY_BLOCKS ({settings.history_blocks}) must exceed the deepest confirmation depth in "
            f"{settings.chains_file} ({chains.max_confirmations})"
        )
    wanted = set(settings.chain_ids) or set(chains.ids())
    unknown = wanted - set(chains.ids())
    if unknown:
        raise ConfigError(f"PAYMESH_CHAIN_IDS names chains not in {settings.chains_file}: {sorted(unknown)}")
    return [c for c in chains if c.chain_id in wanted]


class ListenerApp:
    def __init__(self, settings: ListenerSettings) -> None:
        self.settings = settings
        self.chains = watched_chains(settings)
        self.grpc = GrpcServer(host=settings.grpc_host, port=settings.grpc_port)
        self.leaderships: dict[int, ChainLeadership] = {}
        self.nc = None
        self.ledger_channel: grpc.aio.Channel | None = None
        self._tasks: list[asyncio.Task] = []
        self._rpcs: list[RpcPool] = []
        self._probe_stop = asyncio.Event()
        self.metrics_port: int | None = None

    @property
    def port(self) -> int:
        return self.grpc.port

    async def start(self) -> int:
        s = self.settings
        self.nc = await nats_helpers.connect(s.nats_url, f"paymesh-listener-{s.replica_id}")
        js = self.nc.jetstream()
        replicas = nats_helpers.replicas_for(self.nc, s.nats_replicas)
        await nats_helpers.ensure_streams(js, replicas)
        state_kv = await ensure_bucket(
            js, s.state_bucket, description="listener cursors and recent block hashes", replicas=replicas
        )
        lease_kv = await ensure_bucket(
            js,
            s.lease_bucket,
            ttl=s.lease_ttl_seconds,
            description="listener leader leases per chain",
            replicas=replicas,
        )
        # Holders must renew within the bucket's TTL (a bucket made earlier keeps its own).
        lease_ttl = await effective_ttl(lease_kv, s.lease_ttl_seconds, s.lease_bucket)
        self.ledger_channel = grpc_client.channel(s.ledger_addr, max_receive_bytes=64 * 1024 * 1024)
        publisher = ChainEventPublisher(nats_helpers.JetStreamPublisher(self.nc))
        token = s.address_feed_token.get_secret_value()
        for chain in self.chains:
            rpc = build_pool(
                chain,
                lambda url, chain_id=chain.chain_id: HttpRpc(
                    url,
                    chain_id=chain_id,
                    timeout=s.rpc_timeout_seconds,
                    attempts=1,  # the pool retries, on another endpoint first
                    max_batch=s.block_batch,
                    trust_env=s.rpc_trust_env,
                    caller="listener",
                ),
                caller="listener",
                attempts=s.rpc_attempts,
            )
            self._rpcs.append(rpc)
            ws_urls = [w.url for w in chain.ws]
            ws = WsHeads(ws_urls, chain_id=chain.chain_id, trust_env=s.rpc_trust_env) if ws_urls else None
            poll = s.poll_interval_seconds or min(max(chain.block_time_seconds / 2, 0.05), 5.0)
            follower = HeadFollower(
                chain.chain_id,
                rpc,
                ws,
                poll_interval=poll,
                ws_poll_interval=max(s.ws_poll_interval_seconds, poll),
                backoff_max=s.ws_backoff_max_seconds,
            )
            keeper = LeaseKeeper(
                KvLease(lease_kv, f"chain-{chain.chain_id}", s.replica_id),
                lease_ttl,
                name=f"listener leader of chain {chain.chain_id}",
            )
            watched = WatchedSet()  # one set per chain, shared by the scanner and its reader
            reader = RangeReader(
                chain,
                rpc,
                watched,
                ReadConfig(
                    block_batch=s.block_batch,
                    block_concurrency=s.block_concurrency,
                    logs_range_initial=s.logs_range_initial,
                    logs_range_min=s.logs_range_min,
                    logs_range_max=max(s.logs_range_max, s.logs_range_min),
                ),
            )
            scanner = ChainScanner(
                chain,
                reader,
                follower,
                publisher,
                state_store.StateStore(state_kv, chain.chain_id, s.replica_id),
                watched,
                LateAddresses(s.address_margin_seconds),
                ScanConfig(
                    history_blocks=s.history_blocks,
                    lag_blocks=s.lag_for(chain.chain_id),
                    start_block=s.start_block,
                    max_step_blocks=s.max_step_blocks,
                    max_backfill_blocks=s.max_backfill_blocks,
                    idle_wait_seconds=max(poll, 0.5),
                ),
                leading=lambda keeper=keeper: keeper.held,
            )
            subscription = AddressSubscription(
                self.ledger_channel, token, chain.chain_id, scanner.add_addresses, scanner.snapshot_loaded
            )
            self.leaderships[chain.chain_id] = ChainLeadership(
                chain, rpc, follower, scanner, subscription, keeper, max_rescan_blocks=s.max_rescan_blocks
            )

        probes = await start_pools(s.chains_file, self.chains, self._rpcs, self._probe_stop)
        self.grpc.add(
            lgrpc.add_ListenerServiceServicer_to_server,
            ListenerServicer(self.leaderships, s.admin_token.get_secret_value()),
            SERVICE,
        )
        port = await self.grpc.start()
        self._tasks = [asyncio.create_task(c.run(), name=f"chain-{cid}") for cid, c in self.leaderships.items()]
        self._tasks += probes
        self._tasks.append(asyncio.create_task(self._watch_health(), name="health"))
        self.metrics_port = start_metrics_server(s.metrics_port)
        log.info(
            "listener serving",
            grpc_port=port,
            metrics_port=self.metrics_port,
            replica=s.replica_id,
            chains=[c.chain_id for c in self.chains],
            ledger=s.ledger_addr,
        )
        return port

    async def _watch_health(self) -> None:
        """Per chain: NOT_SERVING while its RPC is unreachable. Overall: NOT_SERVING
        while NATS is down or any chain is unhealthy."""
        state: dict[str, bool] = {}
        while True:
            nats_ok = self.nc is not None and self.nc.is_connected
            chains_ok = True
            for chain_id, leadership in self.leaderships.items():
                ok = leadership.healthy
                chains_ok = chains_ok and ok
                await self._set(state, chain_health_name(SERVICE, chain_id), ok)
            overall = nats_ok and chains_ok
            await self._set(state, "", overall)
            await self._set(state, SERVICE, overall)
            await asyncio.sleep(0.5)

    async def _set(self, state: dict[str, bool], name: str, ok: bool) -> None:
        if state.get(name) is ok:
            return
        if name in state:
            log.warning("health changed", service=name or "(overall)", serving=ok)
        state[name] = ok
        await self.grpc.set_serving(ok, [name])

    async def stop(self) -> None:
        log.info("listener stopping")
        await self.grpc.health.enter_graceful_shutdown()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=5)
        await self.grpc.stop(self.settings.shutdown_grace_seconds)
        await close_connections(rpcs=self._rpcs, ledger_channel=self.ledger_channel, nc=self.nc)
        log.info("listener stopped")


async def serve(settings: ListenerSettings) -> None:
    configure_logging("listener", settings.log_level)
    app = ListenerApp(settings)
    await run_until_stopped(app)
