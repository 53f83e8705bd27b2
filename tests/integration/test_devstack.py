"""The local-stack launcher starts real, working servers that survive restarts and crashes."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.js.api import StorageType

from tools import devstack
from tools.devstack import Anvil, Nats, Postgres

# anvil's first dev account for the default mnemonic "test test ... junk".
ANVIL_ACCOUNT_0 = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"


async def _nats_connect(url: str) -> nats.NATS:
    # One bounded attempt: a test must fail, not hang, when the server is down.
    return await nats.connect(url, connect_timeout=5, allow_reconnect=False)


async def test_postgres_accepts_queries_and_creates_databases(postgres: Postgres) -> None:
    conn = await asyncpg.connect(postgres.url, timeout=10)
    try:
        assert await conn.fetchval("SELECT 1 + 1") == 2
        assert (await conn.fetchval("SHOW server_version")).startswith("16.")
        assert await conn.fetchval("SHOW max_connections") == "300"
        assert await conn.fetchval("SHOW fsync") == "off"  # the fixture runs with fast=True
    finally:
        await conn.close()

    url = postgres.create_database("devstack_check")
    assert url == f"postgresql://postgres@127.0.0.1:{postgres.port}/devstack_check"
    assert postgres.create_database("devstack_check") == url  # idempotent
    conn = await asyncpg.connect(url, timeout=10)
    try:
        assert await conn.fetchval("SELECT current_database()") == "devstack_check"
    finally:
        await conn.close()
    postgres.drop_database("devstack_check")
    assert not postgres.database_exists("devstack_check")


async def test_postgres_recovers_committed_data_after_kill(
    postgres_factory: Callable[[], Postgres],
) -> None:
    server = postgres_factory()
    conn = await asyncpg.connect(server.url, timeout=10)
    await conn.execute("CREATE TABLE money (id int PRIMARY KEY, amount NUMERIC(78, 0))")
    await conn.execute("INSERT INTO money VALUES (1, $1)", Decimal(10**30))
    port, old_pid = server.port, server.pid

    server.kill()  # SIGKILL, mid-connection: a crash, no shutdown checkpoint
    conn.terminate()
    assert server.pid is None
    server.start()
    assert server.port == port and server.pid not in (None, old_pid)

    conn = await asyncpg.connect(server.url, timeout=10)
    try:
        assert await conn.fetchval("SELECT amount FROM money WHERE id = 1") == Decimal(10**30)
    finally:
        await conn.close()

    # A crash leaves postmaster.pid behind; its PID may later belong to another process
    # (here PID 1, always alive), which Postgres itself would refuse to start over.
    server.kill()
    pid_file = server.data_dir / "postmaster.pid"
    lines = pid_file.read_text().splitlines()
    pid_file.write_text("\n".join(["1", *lines[1:]]) + "\n")
    server.start()
    conn = await asyncpg.connect(server.url, timeout=10)
    try:
        assert await conn.fetchval("SELECT count(*) FROM money") == 1
    finally:
        await conn.close()


async def test_nats_jetstream_publish_and_get(nats_server: Nats) -> None:
    nc = await _nats_connect(nats_server.url)
    try:
        js = nc.jetstream(timeout=5)
        await js.add_stream(name="DEVSTACK", subjects=["devstack.>"], storage=StorageType.FILE)
        ack = await js.publish("devstack.check", b"hello")
        msg = await js.get_msg("DEVSTACK", ack.seq)
        assert (msg.subject, msg.data) == ("devstack.check", b"hello")
        await js.delete_stream("DEVSTACK")
    finally:
        await nc.close()


async def test_nats_keeps_jetstream_data_across_restart(
    nats_factory: Callable[[], Nats],
) -> None:
    server = nats_factory()
    nc = await _nats_connect(server.url)
    try:
        js = nc.jetstream(timeout=5)
        await js.add_stream(name="RESTART", subjects=["restart.>"], storage=StorageType.FILE)
        ack = await js.publish("restart.check", b"kept", headers={"Nats-Msg-Id": "m-1"})
    finally:
        await nc.close()

    port = server.port
    server.stop()
    assert server.pid is None
    server.start()
    assert server.port == port

    nc = await _nats_connect(server.url)
    try:
        js = nc.jetstream(timeout=5)
        msg = await js.get_msg("RESTART", ack.seq)
        assert msg.data == b"kept"
        # The dedup window survives too: a republish after a restart is a no-op.
        again = await js.publish("restart.check", b"kept", headers={"Nats-Msg-Id": "m-1"})
        assert again.duplicate and again.seq == ack.seq
        assert (await js.stream_info("RESTART")).state.messages == 1
    finally:
        await nc.close()


def test_anvil_answers_json_rpc(anvil: Anvil) -> None:
    assert devstack.rpc_call(anvil.http_url, "eth_chainId") == hex(31337)
    assert anvil.ws_url == f"ws://127.0.0.1:{anvil.port}"
    assert devstack.rpc_call(anvil.http_url, "eth_accounts")[0].lower() == ANVIL_ACCOUNT_0

    before = int(devstack.rpc_call(anvil.http_url, "eth_blockNumber"), 16)
    devstack.rpc_call(anvil.http_url, "evm_mine")
    assert int(devstack.rpc_call(anvil.http_url, "eth_blockNumber"), 16) == before + 1


def test_up_writes_stack_env_and_stops_everything(
    stack_dir: Path, anvil: Anvil, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Postgres and NATS are started by up(); anvil is "already running elsewhere".
    for name in ("PAYMESH_DATABASE_URL", "PAYMESH_NATS_URL", "PAYMESH_ANVIL_WS_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("PAYMESH_PG_PORT", "PAYMESH_ANVIL_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PAYMESH_NATS_PORT", str(devstack.free_port()))  # not 4222: a make run here may hold it
    monkeypatch.setenv("PAYMESH_ANVIL_RPC_URL", anvil.http_url)

    with devstack.postgres_scratch_dir(stack_dir / "up") as data_dir:
        stack = devstack.up(data_dir)
        try:
            assert stack.anvil is None and stack.postgres and stack.nats
            written = dict(line.split("=", 1) for line in (data_dir / "stack.env").read_text().splitlines())
            assert written == stack.env
            assert stack.env["PAYMESH_DATABASE_URL"] == (
                f"postgresql+asyncpg://postgres@127.0.0.1:{stack.postgres.port}/paymesh"
            )
            assert stack.postgres.database_exists("paymesh")
            assert stack.env["PAYMESH_NATS_URL"] == stack.nats.url
            assert stack.env["PAYMESH_ANVIL_RPC_URL"] == anvil.http_url
            assert stack.env["PAYMESH_ANVIL_WS_URL"] == anvil.ws_url
            pids = [stack.postgres.pid, stack.nats.pid]
        finally:
            stack.stop()

        assert not (data_dir / "stack.env").exists()
        for pid in pids:
            assert pid is not None and not Path(f"/proc/{pid}").exists()

        # A second up() reuses the cluster (and its database) from the first.
        stack = devstack.up(data_dir)
        try:
            assert stack.postgres is not None and stack.postgres.database_exists("paymesh")
        finally:
            stack.stop()
    assert anvil.running  # up()/stop() never touch what they did not start


def test_up_keeps_anvils_port_across_restarts_and_says_when_it_cannot(
    stack_dir: Path, postgres: Postgres, nats_server: Nats, monkeypatch: pytest.MonkeyPatch
) -> None:
    """anvil's port is the same on every start (tools.pay commands and wallets keep
    working); taken by another program, anvil gets a free one and a message says so."""
    import socket

    monkeypatch.setenv("PAYMESH_DATABASE_URL", postgres.url)
    monkeypatch.setenv("PAYMESH_NATS_URL", nats_server.url)
    for name in ("PAYMESH_ANVIL_RPC_URL", "PAYMESH_ANVIL_WS_URL", "PAYMESH_ANVIL_PORT"):
        monkeypatch.delenv(name, raising=False)
    usual = devstack.free_port()  # stands in for 8545, which another checkout here may hold
    monkeypatch.setitem(devstack.STABLE_PORTS, "anvil", ("PAYMESH_ANVIL_PORT", usual))
    data_dir = stack_dir / "stable-anvil"
    messages: list[str] = []

    urls = []
    for _ in range(2):
        stack = devstack.up(data_dir, log=messages.append)
        try:
            urls.append(stack.env["PAYMESH_ANVIL_RPC_URL"])
            assert devstack.rpc_call(urls[-1], "eth_chainId") == hex(31337)
        finally:
            stack.stop()
    assert urls == [f"http://127.0.0.1:{usual}"] * 2 and messages == []

    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # our own connections linger in TIME_WAIT
        holder.bind(("127.0.0.1", usual))
        holder.listen()
        stack = devstack.up(data_dir, log=messages.append)
        try:
            assert stack.anvil is not None and stack.anvil.port != usual
            assert messages == [
                f"devstack: port {usual} on 127.0.0.1 is in use, so anvil listens on "
                f"{stack.anvil.port} this time (set PAYMESH_ANVIL_PORT to choose its port)"
            ]
        finally:
            stack.stop()

        # Asked for by name, a taken port is an error that names the variable, and nothing starts.
        monkeypatch.setenv("PAYMESH_ANVIL_PORT", str(usual))
        with pytest.raises(RuntimeError, match=f"PAYMESH_ANVIL_PORT={usual}, but port {usual} on 127.0.0.1 is in use"):
            devstack.up(data_dir, log=messages.append)


def test_postgres_as_root_in_a_private_directory(tmp_path: Path) -> None:
    """A root user's checkout in a private directory (root's home, mode 0700): the
    unprivileged Postgres user cannot enter it, yet Postgres starts, keeps its data
    across a restart and stops - its binaries and cluster live where it can reach them."""
    import os
    import shutil
    import stat

    if os.geteuid() != 0:
        pytest.skip("only root runs Postgres as another user (PG_SYSTEM_USER); this machine's user is not root")
    home = tmp_path / "root-home"
    home.mkdir(mode=0o700)
    home.chmod(0o700)
    # The checkout's venv lives in the private directory too: pgserver's binaries with it,
    # laid out as the wheel installs them (the binaries find ../../../pgserver.libs).
    installed = devstack._pg_bin_dir().parent
    install = home / "venv" / "pgserver" / "pginstall"
    shutil.copytree(installed, install, symlinks=True, ignore=shutil.ignore_patterns("include"))
    if (installed.parent.parent / "pgserver.libs").is_dir():
        shutil.copytree(installed.parent.parent / "pgserver.libs", home / "venv" / "pgserver.libs", symlinks=True)
    data_dir = home / "checkout" / ".data" / "postgres"
    pg = None
    old = os.environ.get("PAYMESH_PG_BIN_DIR")
    os.environ["PAYMESH_PG_BIN_DIR"] = str(install / "bin")
    try:
        pg = devstack.start_postgres(data_dir, fast=True)
        assert data_dir.is_symlink() and pg.data_dir == data_dir.resolve()
        assert pg.data_dir.parent == devstack.RELOCATION_ROOT and pg._bin_dir.parents[3] == devstack.RELOCATION_ROOT
        assert stat.S_IMODE(pg.data_dir.stat().st_mode) == 0o700
        pg.psql("CREATE TABLE kept (x int)")
        pg.psql("INSERT INTO kept VALUES (42)")
        pg.stop()
        pg = devstack.start_postgres(data_dir, fast=True)  # the same checkout: the same cluster
        assert pg.psql("SELECT x FROM kept") == "42"
        pg.stop()
        assert pg.pid is None
    finally:
        if old is None:
            os.environ.pop("PAYMESH_PG_BIN_DIR", None)
        else:
            os.environ["PAYMESH_PG_BIN_DIR"] = old
        if pg is not None:
            pg.stop()
            for path in (pg.data_dir, pg._bin_dir.parents[2]):
                if path.parent == devstack.RELOCATION_ROOT:
                    shutil.rmtree(path, ignore_errors=True)
