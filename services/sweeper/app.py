"""The sweeper's composition root: loads the seed and chains.yaml, builds NATS
(signer lease bucket, payment-event wake-ups), the ledger channel, and per chain
the JSON-RPC client, chain gateway, gas wallet, signer lease and chain sweeper;
wires them into the gRPC server, starts and stops them."""

from __future__ import annotations

import asyncio

import grpc
import structlog
from paymesh.sweeper.v1 import sweeper_service_pb2_grpc as pgrpc
from pydantic import ValidationError

from services.common import grpc_client, nats_helpers
from services.common.chains import load_chains
from services.common.evm_rpc import EvmRpc
from services.common.grpc_server import GrpcServer
from services.common.lease import KvLease, LeaseKeeper, effective_ttl, ensure_bucket
from services.common.lifecycle import chain_health_name, close_connections, run_until_stopped
from services.common.logging import configure_logging
from services.common.metrics import start_metrics_server
from services.common.rpc_pool import RpcPool, build_pool, start_pools
from services.sweeper.adapters.chain_rpc import FeeSettings, RpcChainGateway
from services.sweeper.adapters.key_store import KeyStore
from services.sweeper.adapters.ledger_client import LedgerClient
from services.sweeper.api.sweeper_service import SweeperServicer
from services.sweeper.chain_sweeper import ChainSweeper
from services.sweeper.gas_wallet import GasWallet
from services.sweeper.inbound.payment_events import PaymentEventWakeups
from services.sweeper.settings import SweeperSettings

log = structlog.get_logger("sweeper")

SERVICE = "paymesh.sweeper.v1.SweeperService"


class SweeperApp:
    def __init__(self, settings: SweeperSettings) -> None:
        self.settings = settings
        chains = load_chains(settings.chains_file)
        wanted = set(settings.sweeper_chain_ids) or set(chains.ids())
        unknown = wanted - set(chains.ids())
        if unknown:
            raise ValueError(f"PAYMESH_SWEEPER_CHAIN_IDS names chains not in {settings.chains_file}: {sorted(unknown)}")
        self.chains = [c for c in chains if c.chain_id in wanted]
        self.keys = KeyStore(settings.mnemonic(), settings.sweeper_mnemonic_passphrase)
        self.gas_key = self.keys.derive(settings.sweeper_gas_wallet_path)
        self.grpc = GrpcServer(host=settings.grpc_host, port=settings.grpc_port)
        self.sweepers: dict[int, ChainSweeper] = {}
        self.stop_event = asyncio.Event()
        self.nc = None
        self.ledger_channel: grpc.aio.Channel | None = None
        self._rpcs: list[RpcPool] = []
        self._tasks: list[asyncio.Task] = []
        self.wakeups = PaymentEventWakeups(self._wake_chain)
        self.metrics_port: int | None = None

    @property
    def port(self) -> int:
        return self.grpc.port

    @property
    def worker_id(self) -> str:
        return self.settings.sweeper_worker_id

    async def start(self) -> int:
        s = self.settings
        if not s.sweep_ledger_token.get_secret_value():
            log.warning("PAYMESH_SWEEP_LEDGER_TOKEN is empty: the ledger will refuse the sweeper's calls")
        self.nc = await nats_helpers.connect(s.nats_url, f"paymesh-sweeper-{s.sweeper_worker_id}")
        js = self.nc.jetstream()
        lease_kv = await ensure_bucket(
            js,
            s.sweeper_signer_lease_bucket,
            ttl=s.sweeper_signer_lease_ttl_seconds,
            description="sweeper signer leases: one active signer per chain",
            replicas=nats_helpers.replicas_for(self.nc, s.nats_replicas),
        )
        lease_ttl = await effective_ttl(lease_kv, s.sweeper_signer_lease_ttl_seconds, s.sweeper_signer_lease_bucket)
        self.ledger_channel = grpc_client.channel(s.ledger_addr, max_receive_bytes=64 * 1024 * 1024)
        ledger = LedgerClient(self.ledger_channel, s.sweep_ledger_token.get_secret_value(), s.ledger_timeout_seconds)
        fees = FeeSettings(
            base_fee_multiplier_percent=s.sweeper_base_fee_multiplier_percent,
            min_priority_fee=s.sweeper_min_priority_fee_wei,
            legacy_gas_price_percent=s.sweeper_legacy_gas_price_percent,
            max_fee_per_gas=s.sweeper_max_fee_per_gas_wei,
        )
        policy = s.policy()
        for chain in self.chains:
            rpc = build_pool(
                chain,
                lambda url, chain_id=chain.chain_id: EvmRpc(
                    url,
                    chain_id=chain_id,
                    caller="sweeper",
                    timeout=s.sweeper_rpc_timeout_seconds,
                    attempts=1,  # the pool retries, on another endpoint first
                    trust_env=s.sweeper_rpc_trust_env,
                ),
                caller="sweeper",
                attempts=s.sweeper_rpc_attempts,
            )
            self._rpcs.append(rpc)
            keeper = LeaseKeeper(
                KvLease(lease_kv, f"chain-{chain.chain_id}", s.sweeper_worker_id),
                lease_ttl,
                name=f"sweeper signer of chain {chain.chain_id}",
            )
            gateway = RpcChainGateway(chain, rpc, fees)
            config = s.sweep_config(chain.block_time_seconds)
            self.sweepers[chain.chain_id] = ChainSweeper(
                chain=chain,
                gateway=gateway,
                ledger=ledger,
                keys=self.keys,
                gas_wallet=GasWallet(
                    key=self.gas_key, chain_id=chain.chain_id, gateway=gateway, ledger=ledger, config=config
                ),
                keeper=keeper,
                policy=policy,
                config=config,
                on_health=self._health_setter(chain.chain_id),
                payouts=ledger,
            )
        if s.sweeper_wake_on_events:
            # Sweep as soon as the ledger says funds are confirmed, not at the next interval.
            await self.wakeups.subscribe(self.nc)
        probes = await start_pools(s.chains_file, list(self.chains), self._rpcs, self.stop_event)
        self.grpc.add(
            pgrpc.add_SweeperServiceServicer_to_server,
            SweeperServicer(lambda: self.sweepers, ledger, s.admin_token.get_secret_value()),
            SERVICE,
        )
        self._tasks = [
            asyncio.create_task(sweeper.run(self.stop_event), name=f"sweeper-{chain_id}")
            for chain_id, sweeper in self.sweepers.items()
        ]
        self._tasks += probes
        port = await self.grpc.start()
        self.metrics_port = start_metrics_server(s.metrics_port)
        log.info(
            "sweeper serving",
            grpc_port=port,
            metrics_port=self.metrics_port,
            chains=sorted(self.sweepers),
            worker_id=s.sweeper_worker_id,
            gas_wallet=self.gas_key.address,
            gas_wallet_path=self.gas_key.path,
        )
        return port

    def _health_setter(self, chain_id: int):
        name = chain_health_name(SERVICE, chain_id)

        async def set_health(ok: bool) -> None:
            await self.grpc.set_serving(ok, [name])

        return set_health

    def _wake_chain(self, chain_id: int) -> None:
        """Start a round of `chain_id`'s sweeper now (0: of every chain's)."""
        for sweeper_chain, sweeper in self.sweepers.items():
            if not chain_id or sweeper_chain == chain_id:
                sweeper.wake.set()

    async def stop(self) -> None:
        log.info("sweeper stopping")
        await self.wakeups.unsubscribe()
        await self.grpc.stop(self.settings.shutdown_grace_seconds)
        self.stop_event.set()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=self.settings.shutdown_grace_seconds + 15)
            for task in pending:
                task.cancel()
        await close_connections(rpcs=self._rpcs, ledger_channel=self.ledger_channel, nc=self.nc)
        log.info("sweeper stopped")


async def serve() -> None:
    try:
        settings = SweeperSettings()
    except ValidationError as exc:
        configure_logging("sweeper")
        first = exc.errors()[0]
        field = "PAYMESH_" + "_".join(str(p) for p in first["loc"]).upper()
        # input values are left out on purpose: the field may be the seed
        log.error("sweeper cannot start: invalid setting", setting=field, error=first["msg"])
        raise SystemExit(2) from None
    configure_logging("sweeper", settings.log_level)
    try:
        app = SweeperApp(settings)
    except ValueError as exc:  # configuration: say what is wrong, no trace (never the seed)
        log.error("sweeper cannot start", error=str(exc))
        raise SystemExit(2) from None
    await run_until_stopped(app)
