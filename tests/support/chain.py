"""Chain helpers for tests on a real anvil (async, plain JSON-RPC, eth-account
signing: no web3), and a private mesh for listener tests: its own NATS and
anvil, a ledger in-process on its own database, and listeners in-process or as
real processes.

Listener tests never share NATS with the session ledger: two ledgers on one
CHAIN stream would split the durable consumer's messages between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import eth_abi
import grpc
import httpx
import nats
from eth_account import Account
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.listener.v1 import listener_service_pb2 as lpb
from paymesh.listener.v1 import listener_service_pb2_grpc as lgrpc

from services.ledger.app import LedgerApp
from services.ledger.settings import LedgerSettings
from services.listener.app import ListenerApp
from services.listener.settings import ListenerSettings
from tests.support.ledger import (
    ADMIN_TOKEN,
    SERVICE_TOKENS,
    MerchantHandle,
    bearer,
    create_merchant,
    eventually,
    fresh_xpub,
    write_chains_file,
)
from tools import devstack, pay
from tools.pay import DEV_ADDRESSES, DEV_KEYS, TOKEN_ADDRESS, sign, transfer_calldata

CHAIN_ID = 31337
FORWARDER_ARTIFACT = Path(pay.__file__).resolve().parent / "contracts" / "TestForwarder.json"


def calldata(signature: str, *args: Any) -> bytes:
    """ABI calldata of a call of `signature`, e.g. calldata("split(address[],uint256[])", to, amounts)."""
    types = signature[signature.index("(") + 1 : -1].split(",") if not signature.endswith("()") else []
    return function_signature_to_4byte_selector(signature) + eth_abi.encode(types, list(args))


class Chain:
    """An anvil node, driven over JSON-RPC."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = httpx.AsyncClient(timeout=30, trust_env=False)
        self._id = 0
        self._nonces: dict[str, int] = {}
        self._gas_price: int | None = None

    async def aclose(self) -> None:
        await self._client.aclose()

    async def rpc(self, method: str, *params: Any) -> Any:
        self._id += 1
        response = await self._client.post(
            self.url, json={"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)}
        )
        reply = response.json()
        if reply.get("error"):
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    async def block_number(self) -> int:
        return int(await self.rpc("eth_blockNumber"), 16)

    async def block(self, number: int | str = "latest") -> dict[str, Any]:
        return await self.rpc("eth_getBlockByNumber", hex(number) if isinstance(number, int) else number, False)

    async def mine(self, blocks: int = 1) -> int:
        """Mine blocks (with whatever is pending); returns the new head."""
        for _ in range(blocks):
            await self.rpc("evm_mine")
        return await self.block_number()

    async def mine_many(self, blocks: int) -> None:
        await self.rpc("anvil_mine", hex(blocks))

    async def automine(self, on: bool) -> None:
        await self.rpc("evm_setAutomine", on)

    async def snapshot(self) -> str:
        return await self.rpc("evm_snapshot")

    async def revert(self, snapshot_id: str) -> None:
        assert await self.rpc("evm_revert", snapshot_id) is True
        self._nonces.clear()

    async def reorg(self, depth: int, txs: list[tuple[str, int]] = ()) -> None:
        """anvil_reorg: replace the last `depth` blocks; txs are (raw signed tx, block offset)."""
        await self.rpc("anvil_reorg", depth, [[raw, offset] for raw, offset in txs])
        self._nonces.clear()

    async def receipt(self, tx_hash: str, timeout: float = 15.0) -> dict[str, Any]:  # noqa: ASYNC109
        async def check():
            return await self.rpc("eth_getTransactionReceipt", tx_hash)

        return await eventually(check, timeout=timeout)

    async def _nonce(self, sender: str) -> int:
        remote = int(await self.rpc("eth_getTransactionCount", sender, "pending"), 16)
        nonce = max(remote, self._nonces.get(sender, 0))
        self._nonces[sender] = nonce + 1
        return nonce

    async def signed(
        self,
        key_index: int,
        *,
        to: str | None,
        value: int = 0,
        data: str = "0x",
        gas: int = 21_000,
        nonce: int | None = None,
    ) -> tuple[str, str]:
        """(raw tx, tx hash) signed by dev account `key_index`, not sent."""
        if self._gas_price is None:
            self._gas_price = int(await self.rpc("eth_gasPrice"), 16) * 4
        sender = DEV_ADDRESSES[key_index]
        return sign(
            DEV_KEYS[key_index],
            nonce=await self._nonce(sender) if nonce is None else nonce,
            chain_id=CHAIN_ID,
            gas_price=self._gas_price,
            gas=gas,
            to=to,
            value=value,
            data=data,
        )

    async def send_raw(self, raw: str) -> str:
        return await self.rpc("eth_sendRawTransaction", raw)

    async def send_eth(self, to: str, amount: int, *, key_index: int = 1, wait: bool = True) -> str:
        raw, tx_hash = await self.signed(key_index, to=to, value=amount)
        await self.send_raw(raw)
        if wait:
            await self.receipt(tx_hash)
        return tx_hash

    async def send_token(self, to: str, amount: int, *, key_index: int = 0, wait: bool = True) -> str:
        raw, tx_hash = await self.signed(
            key_index, to=TOKEN_ADDRESS, data=transfer_calldata(to, amount), gas=pay.token_gas()
        )
        await self.send_raw(raw)
        if wait:
            receipt = await self.receipt(tx_hash)
            assert int(receipt["status"], 16) == 1, receipt
        return tx_hash

    async def deploy_forwarder(self, key_index: int = 7) -> str:
        """Deploy tools/contracts/TestForwarder.sol (internal transfers); its address."""
        bytecode = json.loads(FORWARDER_ARTIFACT.read_text())["bytecode"]
        raw, tx_hash = await self.signed(key_index, to=None, data=bytecode, gas=2_000_000)
        await self.send_raw(raw)
        receipt = await self.receipt(tx_hash)
        assert int(receipt["status"], 16) == 1, receipt
        return to_checksum_address(receipt["contractAddress"])

    async def call(
        self, contract: str, signature: str, *args: Any, value: int = 0, key_index: int = 7, gas: int = 500_000
    ) -> dict[str, Any]:
        """Send a call of `signature` (e.g. "split(address[],uint256[])") and wait for
        its receipt, whether it succeeded or reverted."""
        data = "0x" + calldata(signature, *args).hex()
        raw, tx_hash = await self.signed(key_index, to=contract, value=value, data=data, gas=gas)
        await self.send_raw(raw)
        return await self.receipt(tx_hash)

    async def deploy_token(self) -> str:
        return await asyncio.to_thread(pay.ensure_test_token, self.url)


# ---------------------------------------------------------------- fault injection


class TcpProxy:
    """A loopback TCP proxy (for a WebSocket that can be cut): `close()` drops
    every connection and stops listening; `open()` listens again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = devstack.free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)


@dataclass
class FaultyRpc:
    """A loopback JSON-RPC proxy in a thread that forwards to `upstream` and
    injects faults into every `every`-th request while `enabled`: a JSON-RPC
    error, an HTTP 500, garbage, a reply without result, a batch with a missing
    reply, a dropped connection, a wrong-typed block."""

    upstream: str
    every: int = 3
    enabled: bool = True
    logs_range_limit: int | None = None  # refuse larger eth_getLogs ranges, as providers do
    refuse_methods: frozenset[str] = frozenset()  # answered "method not found", as nodes without them do
    # Rewrites the node's reply (request, reply) -> reply, e.g. to answer as another node would.
    rewrite: Callable[[Any, Any], Any] | None = None
    # A provider's way of failing, on every request (beside the every-th faults above):
    # "" (none), "rate_limited" (HTTP 429 with Retry-After: retry_after), "frozen" (no
    # answer for hang_seconds), "lagging" (answers as a node `lag` blocks behind: heads,
    # blocks and logs beyond that do not exist yet), "flapping" (down for flap_seconds,
    # up for flap_seconds, ...; down = the connection is dropped).
    mode: str = ""
    retry_after: int = 2
    hang_seconds: float = 30.0
    lag: int = 20
    flap_seconds: float = 1.0
    range_errors: int = 0
    served: int = 0
    injected: dict[str, int] = field(default_factory=dict)
    port: int = 0
    _server: Any = None

    FAULTS = ("rpc_error", "http_500", "garbage", "no_result", "batch_missing", "drop", "wrong_type", "truncated")

    def start(self) -> FaultyRpc:
        import http.server
        import json
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _upstream(self, payload: Any) -> Any:
                request = urllib.request.Request(
                    proxy.upstream, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
                )
                with opener.open(request, timeout=30) as response:
                    return json.loads(response.read())

            def _lagging(self, request: Any) -> Any:
                """Answer as a node `lag` blocks behind the upstream one."""
                head = int(self._upstream({"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber"})["result"], 16)
                top = max(0, head - proxy.lag)

                def one(r: Any) -> Any:
                    method, params = r.get("method"), list(r.get("params") or [])
                    if method == "eth_blockNumber":
                        return {"jsonrpc": "2.0", "id": r.get("id"), "result": hex(top)}
                    if method == "eth_getBlockByNumber" and params:
                        tag = params[0]
                        if tag in ("latest", "pending", "safe", "finalized"):
                            params[0] = hex(top)
                        elif isinstance(tag, str) and tag.startswith("0x") and int(tag, 16) > top:
                            return {"jsonrpc": "2.0", "id": r.get("id"), "result": None}
                    if method == "eth_getLogs" and params and isinstance(params[0], dict):
                        query = dict(params[0])
                        last = query.get("toBlock", "latest")
                        if last == "latest" or int(last, 16) > top:
                            query["toBlock"] = hex(top)
                        params[0] = query
                    return self._upstream({**r, "params": params})

                return [one(r) for r in request] if isinstance(request, list) else one(request)

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                proxy.served += 1
                mode = proxy.mode
                if mode == "flapping":
                    mode = "down" if int(time.monotonic() / proxy.flap_seconds) % 2 == 0 else ""
                if mode == "down":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                if mode == "rate_limited":
                    self.send_response(429)
                    self.send_header("Retry-After", str(proxy.retry_after))
                    self.send_header("Content-Length", "17")
                    self.end_headers()
                    self.wfile.write(b"too many requests")
                    return None
                if mode == "frozen":
                    time.sleep(proxy.hang_seconds)
                    self.close_connection = True
                    return None
                if mode == "lagging":
                    return self._reply(200, json.dumps(self._lagging(json.loads(body))).encode())
                fault = None
                if proxy.enabled and proxy.served % proxy.every == 0:
                    fault = proxy.FAULTS[(proxy.served // proxy.every) % len(proxy.FAULTS)]
                    proxy.injected[fault] = proxy.injected.get(fault, 0) + 1
                request = json.loads(body)
                calls = request if isinstance(request, list) else [request]
                if any(isinstance(r, dict) and r.get("method") in proxy.refuse_methods for r in calls):

                    def missing(r):
                        message = f"the method {r.get('method')} does not exist/is not available"
                        return {"jsonrpc": "2.0", "id": r.get("id"), "error": {"code": -32601, "message": message}}

                    out = [missing(r) for r in calls] if isinstance(request, list) else missing(request)
                    return self._reply(200, json.dumps(out).encode())
                limit = proxy.logs_range_limit
                if limit and isinstance(request, dict) and request.get("method") == "eth_getLogs":
                    query = request["params"][0]
                    first, last = int(query["fromBlock"], 16), int(query["toBlock"], 16)
                    if last - first + 1 > limit:
                        proxy.range_errors += 1
                        message = (
                            f"query returned more than 10000 results. Try with this block range "
                            f"[{hex(first)}, {hex(first + limit - 1)}]."
                        )
                        out = {"jsonrpc": "2.0", "id": request.get("id"), "error": {"code": -32005, "message": message}}
                        return self._reply(200, json.dumps(out).encode())
                if fault == "http_500":
                    return self._reply(500, b"<html>internal error</html>")
                if fault == "garbage":
                    return self._reply(200, b"\x00not json{{")
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                if fault == "rpc_error":

                    def err(r):
                        return {"jsonrpc": "2.0", "id": r.get("id"), "error": {"code": -32603, "message": "injected"}}

                    out = [err(r) for r in request] if isinstance(request, list) else err(request)
                    return self._reply(200, json.dumps(out).encode())
                upstream = urllib.request.Request(
                    proxy.upstream, data=body, headers={"Content-Type": "application/json"}
                )
                with opener.open(upstream, timeout=30) as response:
                    data = response.read()
                if proxy.rewrite is not None:
                    data = json.dumps(proxy.rewrite(request, json.loads(data))).encode()
                if fault == "truncated":
                    return self._reply(200, data[: len(data) // 2])
                if fault in ("no_result", "batch_missing", "wrong_type"):
                    reply = json.loads(data)
                    if isinstance(reply, list):
                        if fault == "batch_missing" or len(reply) < 2:
                            reply = reply[:-1]
                        else:
                            reply[0]["result"] = 12345
                    elif fault == "wrong_type":
                        reply["result"] = {"number": "not hex", "hash": 7}
                    else:
                        reply.pop("result", None)
                    data = json.dumps(reply).encode()
                return self._reply(200, data)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# ---------------------------------------------------------------- the private mesh


def listener_settings(stack: Mesh, chains_file: Path | None = None, **extra: Any) -> ListenerSettings:
    extra.setdefault("replica_id", f"test-{secrets.token_hex(3)}")
    return ListenerSettings(
        nats_url=stack.nats.url,
        chains_file=chains_file or stack.chains_file,
        ledger_addr=f"127.0.0.1:{stack.ledger.port}",
        grpc_port=0,
        admin_token=ADMIN_TOKEN,
        **SERVICE_TOKENS,
        chain_ids=[CHAIN_ID],
        lease_ttl_seconds=extra.pop("lease_ttl_seconds", 3.0),
        poll_interval_seconds=extra.pop("poll_interval_seconds", 0.1),
        shutdown_grace_seconds=0.5,
        **extra,
    )


@dataclass
class Mesh:
    root: Path
    anvil: devstack.Anvil
    nats: devstack.Nats
    database_url: str
    chains_file: Path
    ledger: LedgerApp
    chain: Chain
    nc: Any
    ledger_channel: grpc.aio.Channel
    merchant: MerchantHandle | None = None

    @property
    def js(self):
        return self.nc.jetstream()

    def write_chains(
        self, name: str, rpc_url: str = "", ws_url: str = "", internal_transfers: str = "", **extra: Any
    ) -> Path:
        return write_chains_file(
            self.root / name, rpc_url=rpc_url, ws_url=ws_url, internal_transfers=internal_transfers, **extra
        )

    async def new_merchant(self) -> MerchantHandle:
        xpub, account = fresh_xpub()
        return await create_merchant(self.ledger_channel, xpub, derivation_path=f"m/44'/60'/{account}'")

    @contextlib.asynccontextmanager
    async def listener(self, **extra: Any) -> AsyncIterator[ListenerApp]:
        """A listener in-process (stopped gracefully at the end)."""
        chains_file = extra.pop("chains_file", None)
        app = ListenerApp(listener_settings(self, chains_file, **extra))
        await app.start()
        try:
            yield app
        finally:
            await app.stop()


@contextlib.asynccontextmanager
async def mesh(
    postgres: devstack.Postgres, root: Path, *, database: str, confirmations: int = 2
) -> AsyncIterator[Mesh]:
    """Private NATS + anvil (TUSD deployed) + a ledger on its own database; anvil's
    chain is configured with `confirmations`."""
    root.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - test setup
    nats_server = devstack.start_nats(root / "nats")
    anvil = None
    ledger = None
    chain = None
    nc = None
    channel = None
    try:
        anvil = devstack.start_anvil(log_file=root / "anvil.log", silent=True)
        chain = Chain(anvil.http_url)
        await chain.deploy_token()
        chains_file = write_chains_file(
            root / "chains.yaml", rpc_url=anvil.http_url, ws_url=anvil.ws_url, confirmations=confirmations
        )
        url = postgres.create_database(database)
        ledger = LedgerApp(
            LedgerSettings(
                database_url=url,
                nats_url=nats_server.url,
                chains_file=chains_file,
                grpc_port=0,
                admin_token=ADMIN_TOKEN,
                **SERVICE_TOKENS,
                expiry_interval_seconds=0.5,
                shutdown_grace_seconds=0.5,
                allow_private_webhooks=True,
            )
        )
        await ledger.start()
        nc = await nats.connect(nats_server.url)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{ledger.port}")
        m = Mesh(root, anvil, nats_server, url, chains_file, ledger, chain, nc, channel)
        m.merchant = await m.new_merchant()
        yield m
        ledger = m.ledger  # a test may have restarted it
    finally:
        if channel is not None:
            await channel.close()
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.drain()
        if ledger is not None:
            await ledger.stop()
        if chain is not None:
            await chain.aclose()
        if anvil is not None:
            anvil.stop()
        nats_server.stop()


# ---------------------------------------------------------------- assertions


async def wait_status(
    merchant: MerchantHandle,
    payment_id: str,
    *statuses: int,
    timeout: float = 20.0,  # noqa: ASYNC109
) -> pb.Payment:
    async def check():
        p = await merchant.get(payment_id)
        return p if p.status in statuses else None

    try:
        return await eventually(check, timeout=timeout)
    except AssertionError:
        p = await merchant.get(payment_id)
        raise AssertionError(
            f"payment {payment_id} is {pb.PaymentStatus.Name(p.status)} (received {p.amount_received}, "
            f"confirmed {p.amount_confirmed}, {len(p.transfers)} transfers), "
            f"wanted {[pb.PaymentStatus.Name(s) for s in statuses]}"
        ) from None


def listener_stub(port: int) -> tuple[grpc.aio.Channel, lgrpc.ListenerServiceStub]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return channel, lgrpc.ListenerServiceStub(channel)


async def status(port: int, chain_id: int = CHAIN_ID) -> lpb.ChainStatus:
    channel, stub = listener_stub(port)
    async with channel:
        reply = await stub.GetStatus(lpb.GetStatusRequest(chain_id=chain_id), metadata=bearer(ADMIN_TOKEN), timeout=5)
    return reply.chains[0]


async def deposit_addresses(database_url: str, chain_id: int = CHAIN_ID) -> int:
    """How many deposit addresses the ledger has on the chain (all watched: test
    payments do not expire within the feed's retention)."""
    import asyncpg

    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        return await conn.fetchval("SELECT count(*) FROM deposit_addresses WHERE chain_id = $1", chain_id)
    finally:
        await conn.close()


async def wait_watching_all(port: int, database_url: str, timeout: float = 15.0) -> lpb.ChainStatus:  # noqa: ASYNC109
    """Until the listener leads the chain and watches every deposit address the ledger has."""
    return await wait_watching(port, await deposit_addresses(database_url), timeout)


async def wait_watching(port: int, count: int, timeout: float = 15.0) -> lpb.ChainStatus:  # noqa: ASYNC109
    """Until the listener watches at least `count` addresses and leads the chain."""

    async def check():
        s = await status(port)
        return s if s.watched_addresses >= count and s.leader else None

    return await eventually(check, timeout=timeout)


async def wait_cursor(port: int, block: int, timeout: float = 15.0) -> lpb.ChainStatus:  # noqa: ASYNC109
    async def check():
        s = await status(port)
        return s if s.cursor >= block else None

    return await eventually(check, timeout=timeout)


class TransferTap:
    """Records transfer events published on the CHAIN stream (core NATS subscription)."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self._sub = None

    async def start(self, nc: Any, chain_id: int = CHAIN_ID) -> TransferTap:
        from paymesh.events.v1 import chain_events_pb2 as cpb

        async def on_msg(msg) -> None:
            self.events.append(cpb.TransferObserved.FromString(msg.data))

        self._sub = await nc.subscribe(f"paymesh.chain.{chain_id}.transfer", cb=on_msg)
        return self

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    def to(self, address: str) -> list[Any]:
        return [e for e in self.events if e.to_address.lower() == address.lower()]


_bucket_numbers = itertools.count(1)


def isolated_buckets(prefix: str) -> dict[str, str]:
    """Listener settings for its own KV buckets: a test's listener starts fresh and leads at once."""
    n = next(_bucket_numbers)
    return {"state_bucket": f"{prefix}-state-{n}", "lease_bucket": f"{prefix}-leases-{n}"}


def account(index: int) -> str:
    return DEV_ADDRESSES[index]


def new_address() -> str:
    return Account.create().address


__all__ = ["CHAIN_ID", "Chain", "Callable", "FaultyRpc", "Mesh", "TcpProxy", "TransferTap", "mesh"]
