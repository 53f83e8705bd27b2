"""`make run`: the local stack (Postgres, NATS, anvil) plus every paymesh service,
a demo merchant, and ready-to-paste grpcurl commands. Ctrl-C stops it all.

Everything lives under .data/ (PAYMESH_DATA_DIR, or --data) and survives
restarts (the anvil chain too). Point PAYMESH_DATABASE_URL / PAYMESH_NATS_URL /
PAYMESH_ANVIL_RPC_URL at existing servers to use them instead of starting local ones.

The addresses stay the same from run to run: ledger 127.0.0.1:50051, listener
:50052, sweeper :50053, notifier :50054, and the checkout's pages on http://127.0.0.1:8080
(PAYMESH_LEDGER_PORT, PAYMESH_LISTENER_PORT, PAYMESH_SWEEPER_PORT, PAYMESH_NOTIFIER_PORT,
PAYMESH_CHECKOUT_PORT move them), anvil :8545 and NATS :4222
(PAYMESH_ANVIL_PORT, PAYMESH_NATS_PORT; tools/devstack.py).

PAYMESH_REPLICAS=2 runs two of each of the ledger, the listener, the sweeper and the
notifier (the second at its port + 100: ledger 50151, ...); the services reach each
other round-robin over every replica. With PAYMESH_DEVSTACK_NATS_NODES=3 NATS is a
3-node JetStream cluster too.

Guarantees: one mesh per data directory - a second `make run` on it says which
process runs it and exits 1, touching nothing (mesh.lock, held for the mesh's whole
life); a service port that is taken stops the start before anything runs, naming
the port and the variable that moves it; every failure ends in a message, not a
traceback, with nothing left running. While the mesh serves, .data/mesh.json tells
the tools beside it (tools.pay, the ledger's admin CLI, the DLQ CLI) where it is
(services/common/local_mesh.py); it is removed when the mesh stops.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import secrets
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import merchant_admin_service_pb2_grpc as agrpc

from services.common import local_mesh
from tools import devstack, price_feed
from tools.services import REPO_ROOT, ServiceProcess

# The demo's keys come from anvil's well-known dev mnemonic: never use it for real funds.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEMO_ACCOUNT = 1  # deposit addresses at m/44'/60'/1'/0/i (not anvil's funded dev accounts)
DEMO_TREASURY = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"  # anvil dev account 9
SERVICES = (("ledger", 50051), ("listener", 50052), ("sweeper", 50053), ("notifier", 50054), ("checkout", 8080))
CONNECT_PORT = 8081  # the ledger's merchant API over HTTP/JSON (PAYMESH_CONNECT_PORT)
NOTIFIER_CONNECT_PORT = 8084  # NotifierService over HTTP/JSON (PAYMESH_NOTIFIER_CONNECT_PORT here)
# Services that run as several replicas with PAYMESH_REPLICAS (the checkout keeps its one page port).
REPLICATED = ("ledger", "listener", "sweeper", "notifier")
REPLICA_PORT_STEP = 100  # replica n listens at the service's port + 100 * (n - 1)


def service_of(process: str) -> str:
    """The service a process runs: "ledger-2" (the ledger's second replica) -> "ledger"."""
    return process.split("-", 1)[0]


def replica_number(process: str) -> int:
    """1 for "ledger", 2 for "ledger-2"."""
    _, _, number = process.partition("-")
    return int(number) if number else 1


def load_env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def dev_secrets(data: Path) -> dict[str, str]:
    """Tokens generated once per .data/ and kept, so restarts keep working (one
    missing from an older .data/ is added)."""
    path = data / "secrets.env"
    values = load_env_file(path)
    wanted = {
        "PAYMESH_ADMIN_TOKEN": lambda: "adm_" + secrets.token_urlsafe(24),
        "PAYMESH_ADDRESS_FEED_TOKEN": lambda: "feed_" + secrets.token_urlsafe(24),
        "PAYMESH_SWEEP_LEDGER_TOKEN": lambda: "swl_" + secrets.token_urlsafe(24),
        "PAYMESH_MERCHANT_DIRECTORY_TOKEN": lambda: "dir_" + secrets.token_urlsafe(24),
        "PAYMESH_CHECKOUT_LEDGER_TOKEN": lambda: "chk_" + secrets.token_urlsafe(24),
        "PAYMESH_SWEEPER_MNEMONIC": lambda: DEV_MNEMONIC,
    }
    missing = {name: make() for name, make in wanted.items() if name not in values}
    values.pop("PAYMESH_INTERNAL_TOKEN", None)  # from before the internal API was split per caller
    if missing or not path.exists():
        values.update(missing)
        path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        path.chmod(0o600)
    return values


def demo_xpub() -> str:
    from bip_utils import Bip39SeedGenerator, Bip44, Bip44Coins

    seed = Bip39SeedGenerator(DEV_MNEMONIC).Generate()
    return Bip44.FromSeed(seed, Bip44Coins.ETHEREUM).Purpose().Coin().Account(DEMO_ACCOUNT).PublicKey().ToExtended()


def ensure_demo_merchant(data: Path, ledger_port: int, admin_token: str) -> dict:
    path = data / "demo_merchant.json"
    if path.exists():
        return json.loads(path.read_text())
    with grpc.insecure_channel(f"127.0.0.1:{ledger_port}") as channel:
        reply = agrpc.MerchantAdminServiceStub(channel).CreateMerchant(
            apb.CreateMerchantRequest(
                name="Demo shop",
                xpub=demo_xpub(),
                derivation_path=f"m/44'/60'/{DEMO_ACCOUNT}'",
                treasuries=[apb.Treasury(chain_id=31337, address=DEMO_TREASURY)],
            ),
            metadata=(("authorization", f"Bearer {admin_token}"),),
            timeout=30,
        )
    demo = {"merchant_id": reply.merchant.merchant_id, "api_key": reply.api_key, "webhook_secret": reply.webhook_secret}
    local_mesh.save_demo(data, demo)
    return demo


def demo_checkout(ledger_port: int, api_key: str) -> str:
    """A new demo payment (19.99 USD, payable in ETH or TUSD) and the URL of its
    checkout page; a payment of 0.01 ETH when the rates are not up yet."""
    from paymesh.ledger.v1 import payment_pb2 as pb
    from paymesh.ledger.v1 import payment_service_pb2 as spb
    from paymesh.ledger.v1 import payment_service_pb2_grpc as sgrpc

    priced = spb.CreatePaymentRequest(
        price=pb.Money(currency="USD", amount="19.99"),
        options=[spb.AcceptedAsset(chain_id=31337, asset="ETH"), spb.AcceptedAsset(chain_id=31337, asset="TUSD")],
        description="Demo order: 1 paymesh mug",
        merchant_order_id=f"demo-{secrets.token_hex(3)}",
        return_url="http://127.0.0.1/thanks",
    )
    plain = spb.CreatePaymentRequest(chain_id=31337, asset="ETH", amount=str(10**16), description="Demo order")
    with grpc.insecure_channel(f"127.0.0.1:{ledger_port}") as channel:
        stub = sgrpc.PaymentServiceStub(channel)
        auth = (("authorization", f"Bearer {api_key}"),)
        try:
            reply = stub.CreatePayment(priced, metadata=auth, timeout=30)
        except grpc.RpcError:
            reply = stub.CreatePayment(plain, metadata=auth, timeout=30)
    return reply.payment.checkout_url


def ensure_test_token(rpc_url: str) -> str:
    """Deploy the TUSD test token on a fresh anvil (tools/pay.py knows how)."""
    try:
        from tools import pay
    except ImportError:
        return "no test token tooling yet"
    return pay.ensure_test_token(rpc_url)


def banner(
    ports: dict[str, int], demo: dict, env: dict[str, str], data: Path | None = None, checkout_url: str = ""
) -> str:
    ledger = f"127.0.0.1:{ports['ledger']}"
    # The tools find this mesh through its data directory: say which, unless it is the usual one.
    data_export = (
        [f"export PAYMESH_DATA_DIR={data}"]
        if data is not None and data.resolve() != local_mesh.DEFAULT_DATA_DIR
        else []
    )
    lines = [
        "",
        "paymesh is running. Services: " + ", ".join(f"{n} 127.0.0.1:{p}" for n, p in ports.items()),
        f"The merchant API over HTTP/JSON (Connect): http://127.0.0.1:{env.get('PAYMESH_CONNECT_PORT', CONNECT_PORT)}"
        f" (ledger), http://127.0.0.1:{env.get('PAYMESH_NOTIFIER_CONNECT_PORT', NOTIFIER_CONNECT_PORT)} (notifier)",
        f"Chain: anvil {env['PAYMESH_ANVIL_RPC_URL']} (chain id 31337).  Logs: {(data or Path('.data')) / 'logs'}/",
        f"Events: NATS {env['PAYMESH_NATS_URL']} (examples/nats_subscriber.py --nats {env['PAYMESH_NATS_URL']}; "
        "dead letters: .venv/bin/python -m services.common.dlq list)",
        "",
        *([f"A demo payment's checkout page: {checkout_url}", ""] if checkout_url else []),
        "# In another terminal:",
        f"export PATH={REPO_ROOT / '.venv' / 'bin'}:$PATH  # grpcurl",
        f"export PAYMESH_API_KEY={demo['api_key']}",
        f"export PAYMESH_ADMIN_TOKEN={env['PAYMESH_ADMIN_TOKEN']}",
        *data_export,
        "",
        "# what the ledger serves (reflection)",
        f"grpcurl -plaintext {ledger} list",
        "# create a payment of 0.01 ETH",
        'grpcurl -plaintext -H "authorization: Bearer $PAYMESH_API_KEY" '
        '-d \'{"chain_id": 31337, "asset": "ETH", "amount": "10000000000000000", '
        '"idempotency_key": "demo-1"}\' '
        f"{ledger} paymesh.ledger.v1.PaymentService/CreatePayment",
        "# the same over HTTP/JSON",
        'curl -H "Content-Type: application/json" -H "Authorization: Bearer $PAYMESH_API_KEY" '
        '-d \'{"chainId": "31337", "asset": "ETH", "amount": "10000000000000000", "idempotencyKey": "demo-2"}\' '
        f"http://127.0.0.1:{env.get('PAYMESH_CONNECT_PORT', CONNECT_PORT)}"
        "/paymesh.ledger.v1.PaymentService/CreatePayment",
        "# read it back (use the payment_id printed above)",
        'grpcurl -plaintext -H "authorization: Bearer $PAYMESH_API_KEY" '
        '-d \'{"payment_id": "PAYMENT_ID"}\' '
        f"{ledger} paymesh.ledger.v1.PaymentService/GetPayment",
        "# list merchants as the operator",
        'grpcurl -plaintext -H "authorization: Bearer $PAYMESH_ADMIN_TOKEN" '
        f"{ledger} paymesh.ledger.v1.MerchantAdminService/ListMerchants",
    ]
    if ports.get("listener"):
        lines += [
            "# pay it from an anvil dev account (it finds this mesh by itself), then watch it reach CONFIRMED",
            f"{REPO_ROOT / '.venv' / 'bin' / 'python'} -m tools.pay --payment-id PAYMENT_ID",
            'grpcurl -plaintext -H "authorization: Bearer $PAYMESH_API_KEY" '
            '-d \'{"payment_id": "PAYMENT_ID"}\' '
            f"{ledger} paymesh.ledger.v1.PaymentService/WatchPayment",
        ]
    lines += ["", "Ctrl-C stops everything.", ""]
    return "\n".join(lines)


@dataclass
class LocalMesh:
    """The local stack plus every service as its own OS process. `make run` and
    the end-to-end tests both use this, so the tests run what users run."""

    data: Path
    stack: devstack.Stack
    env: dict[str, str]
    ports: dict[str, int]
    procs: dict[str, ServiceProcess] = field(default_factory=dict)
    demo: dict = field(default_factory=dict)
    # Each process's Prometheus port, when the mesh was started with metrics=True.
    metrics_ports: dict[str, int] = field(default_factory=dict)

    def addr(self, name: str) -> str:
        """The gRPC address of one process ("ledger", or a replica: "ledger-2")."""
        return f"127.0.0.1:{self.ports[name]}"

    def replicas(self, service: str) -> list[str]:
        """The process names of a service's replicas, first to last."""
        return [name for name in self.ports if service_of(name) == service]

    def target(self, service: str) -> str:
        """A gRPC target naming every replica of `service` (grpc_client.channel balances over them)."""
        addresses = [self.addr(name) for name in self.replicas(service)]
        return addresses[0] if len(addresses) == 1 else "ipv4:" + ",".join(addresses)

    def start_service(self, name: str, extra_env: dict[str, str] | None = None, wait: bool = True) -> ServiceProcess:
        proc = self.procs.get(name)
        if proc is None:
            service, number = service_of(name), replica_number(name)
            services = {service_of(n) for n in self.ports}
            env = {**self.env, **{f"PAYMESH_{n.upper()}_ADDR": self.target(n) for n in services}}
            if service != "sweeper":
                env.pop("PAYMESH_SWEEPER_MNEMONIC", None)  # the seed goes to the sweeper alone
            if service == "notifier" and "PAYMESH_NOTIFIER_CONNECT_PORT" in env:
                env["PAYMESH_CONNECT_PORT"] = env["PAYMESH_NOTIFIER_CONNECT_PORT"]
            if number > 1:
                env["PAYMESH_CONNECT_PORT"] = "0"  # HTTP/JSON: the first replica's port is the one shown
                if "PAYMESH_SWEEPER_WORKER_ID" in env:
                    env["PAYMESH_SWEEPER_WORKER_ID"] += f"-{number}"  # each replica its own stable id
            if name in self.metrics_ports:
                env["PAYMESH_METRICS_PORT"] = str(self.metrics_ports[name])
            proc = self.procs[name] = ServiceProcess(
                f"services.{service}", env, self.data / "logs" / f"{name}.log", self.ports[name]
            )
        proc.start(extra_env=extra_env, wait=wait)
        return proc

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            try:
                proc.terminate(timeout=20)
            except Exception:  # noqa: BLE001 - make sure the rest still stops
                proc.kill()
        self.stack.stop()


def available_services() -> list[tuple[str, int]]:
    return [(n, p) for n, p in SERVICES if (REPO_ROOT / "services" / n / "__main__.py").exists()]


def service_ports(ports: dict[str, int] | None = None, only: tuple[str, ...] | None = None) -> dict[str, int]:
    """Each service's gRPC port: `ports`, else PAYMESH_<SERVICE>_PORT, else its usual one."""
    chosen: dict[str, int] = {}
    for name, default_port in available_services():
        if only is not None and name not in only:
            continue
        chosen[name] = (ports or {}).get(name) or devstack._env_port(f"PAYMESH_{name.upper()}_PORT") or default_port
    return chosen


def with_replicas(ports: dict[str, int], replicas: int, *, free: bool) -> dict[str, int]:
    """`ports` plus replicas 2..n of each REPLICATED service, right after its first
    (start order): at the service's port + 100 * (n - 1), or a free port when `free`."""
    if not 1 <= replicas <= 9:
        raise ValueError(f"PAYMESH_REPLICAS={replicas} is not 1 to 9")
    chosen: dict[str, int] = {}
    for name, port in ports.items():
        chosen[name] = port
        if name in REPLICATED:
            for number in range(2, replicas + 1):
                step = REPLICA_PORT_STEP * (number - 1)
                chosen[f"{name}-{number}"] = devstack.free_port() if free else port + step
    return chosen


def check_ports_free(ports: dict[str, int]) -> None:
    """Refuse, before anything starts, service ports that are taken or shared."""
    by_port: dict[int, str] = {}
    for name, port in ports.items():
        variable = f"PAYMESH_{service_of(name).upper()}_PORT"
        if port in by_port:
            raise RuntimeError(f"{by_port[port]} and {name} are both set to port {port}: give {variable} another port")
        by_port[port] = name
        if devstack.port_in_use(port):
            raise RuntimeError(
                f"port {port} on 127.0.0.1, where the {name} listens, is in use by another program. "
                f"Free it, or move the {name}: {variable}=<port> make run "
                f"(the ports are set by {', '.join(f'PAYMESH_{n.upper()}_PORT' for n in ports)})"
            )


def start_mesh(
    data: Path,
    *,
    ports: dict[str, int] | None = None,
    extra_env: dict[str, str] | None = None,
    log=print,
    only: tuple[str, ...] | None = None,
    replicas: int = 1,
    metrics: bool = False,
) -> LocalMesh:
    """Start Postgres, NATS and anvil (unless the environment names existing
    ones), deploy the test token, then every service (`replicas` of each REPLICATED
    one; each process with its own /metrics port when `metrics`), and the demo merchant."""
    chosen = with_replicas(service_ports(ports, only), replicas, free=bool(ports))
    check_ports_free(chosen)
    connect_port = devstack._env_port("PAYMESH_CONNECT_PORT") or (devstack.free_port() if ports else CONNECT_PORT)
    notifier_connect_port = devstack._env_port("PAYMESH_NOTIFIER_CONNECT_PORT") or (
        devstack.free_port() if ports else NOTIFIER_CONNECT_PORT
    )
    for port, who, variable in (
        (connect_port, "the ledger", "PAYMESH_CONNECT_PORT"),
        (notifier_connect_port, "the notifier", "PAYMESH_NOTIFIER_CONNECT_PORT"),
    ):
        if devstack.port_in_use(port):
            raise RuntimeError(
                f"port {port} on 127.0.0.1, where {who} serves HTTP/JSON, is in use by another program. "
                f"Free it, or move it: {variable}=<port> make run"
            )
    log("starting Postgres, NATS and anvil under", data)
    stack = devstack.up(data, log=lambda message: log(message))
    mesh = LocalMesh(data=data, stack=stack, env={}, ports={})
    if metrics:
        mesh.metrics_ports = {name: devstack.free_port() for name in chosen}
    try:
        env = {
            **stack.env,
            **dev_secrets(data),
            "PAYMESH_CHAINS_FILE": str(REPO_ROOT / "chains.yaml"),
            "PAYMESH_RATES_FILE": str(REPO_ROOT / "rates.yaml"),
            "PAYMESH_ALLOW_PRIVATE_WEBHOOKS": "true",  # local development: webhooks to localhost
            "PAYMESH_LOG_LEVEL": os.environ.get("PAYMESH_LOG_LEVEL", "INFO"),
            # One sweeper here, so a stable id: restarted, it takes its own leases
            # back at once (Kubernetes uses the pod name the same way).
            "PAYMESH_SWEEPER_WORKER_ID": f"sweeper-{socket.gethostname()}-{data.name}",
            # The ledger's merchant API over HTTP/JSON (Connect): a stable port here, a free one in tests.
            "PAYMESH_CONNECT_PORT": str(connect_port),
            "PAYMESH_NOTIFIER_CONNECT_PORT": str(notifier_connect_port),
        }
        if stack.postgres is not None:
            # The notifier gets its own database: only the ledger holds payment state.
            env["PAYMESH_NOTIFIER_DATABASE_URL"] = stack.postgres.create_database("paymesh_notifier")
        elif os.environ.get("PAYMESH_NOTIFIER_DATABASE_URL"):
            env["PAYMESH_NOTIFIER_DATABASE_URL"] = os.environ["PAYMESH_NOTIFIER_DATABASE_URL"]
        if "checkout" in chosen:
            # Payments name their page on the local checkout; return URLs may be http:// here.
            env["PAYMESH_CHECKOUT_BASE_URL"] = f"http://127.0.0.1:{chosen['checkout']}"
            env["PAYMESH_ALLOW_HTTP_RETURN_URLS"] = "true"
        env.update(extra_env or {})
        mesh.env = env
        log("test token:", ensure_test_token(env["PAYMESH_ANVIL_RPC_URL"]))
        # rates.yaml's ETH/USD and TUSD/USD: stand-in Chainlink feeds on anvil (tools/price_feed.py).
        log("price feeds:", price_feed.ensure_price_feeds(env["PAYMESH_ANVIL_RPC_URL"]))
        mesh.ports.update(chosen)
        for name in mesh.ports:
            log(f"starting {name} on {mesh.addr(name)}")
            mesh.start_service(name)
            if name == "ledger":
                mesh.demo = ensure_demo_merchant(data, mesh.ports["ledger"], env["PAYMESH_ADMIN_TOKEN"])
        return mesh
    except BaseException:
        mesh.stop()
        raise


def take_lock(data: Path) -> int:
    """Lock the data directory for this process's life (the fd), or explain who holds it."""
    fd = os.open(data / local_mesh.LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except ValueError:
            holder = {}
        os.close(fd)
        pid = holder.get("pid", "?")
        raise AlreadyRunning(
            f"paymesh is already running (pid {pid}, started at {holder.get('started_at', '?')}) with the data in "
            f"{data}; stop it with Ctrl-C in its terminal or kill {pid}"
        ) from None
    record = {
        "pid": os.getpid(),
        "pid_start": local_mesh.process_start(os.getpid()),
        "started_at": datetime.now(UTC).astimezone().isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    return fd


class AlreadyRunning(RuntimeError):
    pass


def mesh_state(mesh: LocalMesh, lock_record: dict) -> dict:
    return {
        **lock_record,
        "data_dir": str(mesh.data),
        "services": {name: mesh.addr(name) for name in mesh.ports},
        "ledger": mesh.addr("ledger") if "ledger" in mesh.ports else "",
        "anvil_rpc_url": mesh.env.get("PAYMESH_ANVIL_RPC_URL", ""),
        "nats_url": mesh.env.get("PAYMESH_NATS_URL", ""),
        "demo_merchant_id": mesh.demo.get("merchant_id", ""),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="state directory (default: PAYMESH_DATA_DIR or .data)")
    parser.add_argument("--exit-after-start", action="store_true", help="start, print, stop (for tests)")
    args = parser.parse_args(argv)
    data: Path = (args.data or local_mesh.data_dir()).resolve()
    try:
        data.mkdir(parents=True, exist_ok=True)
        lock = take_lock(data)
    except (OSError, RuntimeError) as exc:
        print(f"make run: {exc}", file=sys.stderr, flush=True)
        return 1
    lock_record = json.loads(os.pread(lock, 4096, 0))
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    try:
        replicas = os.environ.get("PAYMESH_REPLICAS", "1").strip() or "1"
        if not replicas.isdigit():
            raise ValueError(f"PAYMESH_REPLICAS={replicas!r} is not a number of replicas (1 to 9)")
        mesh = start_mesh(data, log=lambda *a: print(*a, flush=True), replicas=int(replicas))
    except (RuntimeError, ValueError, OSError, grpc.RpcError) as exc:
        # Written for people (start_mesh stopped whatever it had started); a traceback would bury it.
        detail = f"{exc.code().name}: {exc.details()}" if isinstance(exc, grpc.RpcError) else str(exc)
        print(f"make run: error: {detail}", file=sys.stderr, flush=True)
        return 1
    try:
        local_mesh.write_state(data, mesh_state(mesh, lock_record))
        checkout_url = demo_checkout(mesh.ports["ledger"], mesh.demo["api_key"]) if "checkout" in mesh.ports else ""
        text = banner(mesh.ports, mesh.demo, mesh.env, data, checkout_url)
        (data / "demo.txt").write_text(text)
        print(text, flush=True)
        if not args.exit_after_start:
            while not stop.wait(1.0):
                for proc in mesh.procs.values():
                    if proc.proc is not None and proc.proc.poll() is not None:
                        print(f"{proc.module} exited ({proc.proc.returncode}); see {proc.log_path}", file=sys.stderr)
                        stop.set()
        return 0
    finally:
        print("stopping...", flush=True)
        local_mesh.remove_state(data)
        mesh.stop()
        print("stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
