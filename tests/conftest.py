"""Shared fixtures: real Postgres, NATS JetStream and anvil on random 127.0.0.1 ports.

The shared servers are session-scoped and lazy: a test session that only asks for
`postgres` never starts anvil. They are stopped at session end, also after failures.
Tests that kill or restart a server should not do it to a shared one (later tests would
inherit the damage): they take a private server from `postgres_factory` / `nats_factory`
/ `anvil_factory`, stopped when the test ends.

Nothing here reads PAYMESH_* URLs: tests never touch a server that happens to run on
this machine.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# tools/ is not an installed package; make `import tools` work without PYTHONPATH.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools import devstack  # noqa: E402
from tools.devstack import Anvil, Nats, Postgres  # noqa: E402

# Tiers by folder (pytest -m unit|integration|e2e|deploy): `make check` runs the
# unit tier, `make test` everything.
TIERS = {"unit": "unit", "integration": "integration", "e2e": "e2e", "deploy": "deploy"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(REPO_ROOT / "tests").parts
        tier = TIERS.get(parts[0]) if len(parts) > 1 else None
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session directory for component data and logs (kept by pytest for post-mortems)."""
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def postgres(stack_dir: Path) -> Iterator[Postgres]:
    """Shared Postgres 16 (fsync off); create a database per test module with
    `postgres.create_database(name)`."""
    with devstack.postgres_scratch_dir(stack_dir / "postgres") as data_dir:
        server = devstack.start_postgres(data_dir, fast=True)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def nats_server(stack_dir: Path) -> Iterator[Nats]:
    """Shared nats-server with JetStream (file storage)."""
    server = devstack.start_nats(stack_dir / "nats")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def anvil(stack_dir: Path) -> Iterator[Anvil]:
    """Shared anvil, chain id 31337, automine (a block per transaction)."""
    node = devstack.start_anvil(log_file=stack_dir / "anvil" / "anvil.log")
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def postgres_factory(stack_dir: Path) -> Iterator[Callable[[], Postgres]]:
    """Start private Postgres servers (fast, new cluster each) for one test."""
    servers: list[Postgres] = []
    with contextlib.ExitStack() as dirs:

        def start() -> Postgres:
            name = f"postgres-private-{devstack.free_port()}"
            data_dir = dirs.enter_context(devstack.postgres_scratch_dir(stack_dir / name))
            server = devstack.start_postgres(data_dir, fast=True)
            servers.append(server)
            return server

        try:
            yield start
        finally:
            for server in servers:
                server.stop()


@pytest.fixture
def nats_factory(stack_dir: Path) -> Iterator[Callable[[], Nats]]:
    """Start private nats-servers (JetStream, fresh store each) for one test."""
    servers: list[Nats] = []

    def start() -> Nats:
        server = devstack.start_nats(stack_dir / f"nats-private-{devstack.free_port()}")
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def anvil_factory(stack_dir: Path) -> Iterator[Callable[..., Anvil]]:
    """Start private anvil nodes for one test; keyword arguments go to start_anvil()."""
    nodes: list[Anvil] = []

    def start(**kwargs: object) -> Anvil:
        port = devstack.free_port()
        kwargs.setdefault("log_file", stack_dir / f"anvil-private-{port}" / "anvil.log")
        node = devstack.start_anvil(port=port, **kwargs)  # type: ignore[arg-type]
        nodes.append(node)
        return node

    try:
        yield start
    finally:
        for node in nodes:
            node.stop()
