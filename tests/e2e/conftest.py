"""End-to-end harness: the whole mesh as separate OS processes — the same code
path as `make run` (tools/run_mesh.LocalMesh) — on its own Postgres, NATS and
anvil (1 block per 0.5 s), driven only through public interfaces: gRPC,
grpcurl, NATS subscriptions, a loopback webhook receiver and anvil JSON-RPC."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.chain import Chain
from tests.support.ledger import ADMIN_TOKEN, SERVICE_TOKEN_ENV
from tools import devstack
from tools.run_mesh import SERVICES, LocalMesh, start_mesh

ROOT = Path(__file__).resolve().parents[2]

# Short timers so scenarios finish in seconds, not the production defaults.
FAST_ENV = {
    "PAYMESH_EXPIRY_INTERVAL_SECONDS": "0.5",
    "PAYMESH_CONSUMER_ACK_WAIT_SECONDS": "5",
    "PAYMESH_SHUTDOWN_GRACE_SECONDS": "2",
    "PAYMESH_RETRY_SCHEDULE": "1s,2s,4s,8s",
    "PAYMESH_LEASE_TTL_SECONDS": "3",
    # Notice an unreachable node within seconds (defaults: 10 s x 3 attempts).
    "PAYMESH_RPC_TIMEOUT_SECONDS": "2",
    "PAYMESH_RPC_ATTEMPTS": "2",
    "PAYMESH_WS_POLL_INTERVAL_SECONDS": "1",
    # Not anvil's account 0: tests mint and send the test token from it.
    "PAYMESH_SWEEPER_GAS_WALLET_PATH": "m/44'/60'/0'/0/5",
    "PAYMESH_LOG_LEVEL": "INFO",
    "PAYMESH_ADMIN_TOKEN": ADMIN_TOKEN,
    **SERVICE_TOKEN_ENV,
}


@contextlib.contextmanager
def clean_environment(**overrides: str) -> Iterator[None]:
    """devstack.up() reads PAYMESH_* from the environment: make sure only ours count."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("PAYMESH_")}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith("PAYMESH_")]:
            del os.environ[key]
        os.environ.update(saved)


@contextlib.contextmanager
def local_mesh(
    stack_dir: Path,
    *,
    block_time: str = "0.5",
    confirmations: int | None = None,
    replicas: int = 1,
    nats_nodes: int = 1,
    metrics: bool = False,
    anvil_port: int | None = None,
    **env: str,
) -> Iterator[LocalMesh]:
    """A whole mesh in its own folder; `confirmations` overrides chains.yaml's depth;
    `replicas` of each service, a NATS cluster of `nats_nodes`, a /metrics port per
    process with `metrics`; `anvil_port` when the caller must know it beforehand."""
    with devstack.postgres_scratch_dir(stack_dir / f"e2e-{devstack.free_port()}") as data:
        extra = {**FAST_ENV, **env}
        if confirmations is not None:
            chains = (ROOT / "chains.yaml").read_text().replace("confirmations: 2", f"confirmations: {confirmations}")
            (data / "chains.yaml").write_text(chains)
            extra["PAYMESH_CHAINS_FILE"] = str(data / "chains.yaml")
        # Free ports, not anvil's and NATS's usual 8545 / 4222: a `make run` may want those.
        with clean_environment(
            PAYMESH_ANVIL_BLOCK_TIME=block_time,
            PAYMESH_ANVIL_PORT=str(anvil_port or devstack.free_port()),
            PAYMESH_NATS_PORT=str(devstack.free_port()),
            PAYMESH_DEVSTACK_NATS_NODES=str(nats_nodes),
        ):
            local = start_mesh(
                data,
                ports={name: devstack.free_port() for name, _ in SERVICES},
                extra_env=extra,
                log=lambda *a: None,
                replicas=replicas,
                metrics=metrics,
            )
        try:
            yield local
        finally:
            local.stop()
            # The data directory goes with the scratch dir: keep the services' logs
            # where pytest keeps its temp dirs (its last three runs), for a failure's story.
            shutil.copytree(data / "logs", stack_dir / f"mesh-logs-{data.name}", dirs_exist_ok=True)


@pytest.fixture(scope="module")
def mesh(stack_dir: Path) -> Iterator[LocalMesh]:
    with local_mesh(stack_dir) as local:
        yield local


@pytest_asyncio.fixture(loop_scope="session")
async def chain(mesh: LocalMesh):
    node = Chain(mesh.env["PAYMESH_ANVIL_RPC_URL"])
    try:
        yield node
    finally:
        await node.aclose()
