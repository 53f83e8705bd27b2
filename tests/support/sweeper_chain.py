"""Sweeper test support: a private stack (anvil with interval mining, NATS,
a ledger database and an in-process ledger), real funding of deposit addresses
on anvil, the chain events that make payments CONFIRMED, and a JSON-RPC proxy
that can refuse broadcasts or the whole RPC (to prove "RPC down" loses nothing).

The stack is private to one test module: its chain state, leases and payments
are never seen by other modules' sweepers, ledgers or listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import httpx
import nats
from eth_account import Account
from eth_utils import keccak
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import merchant_admin_service_pb2_grpc as agrpc
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.sweeper.v1 import sweeper_service_pb2_grpc as swgrpc

from services.ledger.app import LedgerApp
from services.ledger.settings import LedgerSettings
from services.sweeper.app import SweeperApp
from services.sweeper.settings import SweeperSettings
from tests.support.ledger import (
    ADMIN_TOKEN,
    ANVIL_MNEMONIC,
    SERVICE_TOKEN_ENV,
    SERVICE_TOKENS,
    TOKEN_ADDRESS,
    MerchantHandle,
    bearer,
    create_merchant,
    eventually,
    fresh_xpub,
    providers_yaml,
    publish_chain,
    publish_head,
    transfer_event,
)
from tools import devstack

ROOT = Path(__file__).resolve().parents[2]
TOKEN_ARTIFACT = ROOT / "tools" / "contracts" / "TestToken.json"

# anvil's dev accounts of "test test ... junk" (public knowledge). Account 0 is the
# sweeper's default gas wallet; tests pay customers' money from account 1.
ANVIL_KEYS = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
]
GAS_WALLET = Account.from_key(ANVIL_KEYS[0]).address
FUNDER_KEY = ANVIL_KEYS[1]
ETHER = 10**18
TUSD = 10**6


class Chain:
    """Test-side JSON-RPC to anvil: balances, sending, deploying, mining control."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = httpx.AsyncClient(timeout=10.0, trust_env=False)
        self._ids = iter(range(1, 10**12))
        self._send_lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        reply = (
            await self._client.post(
                self.url, json={"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or []}
            )
        ).json()
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    async def balance(self, address: str) -> int:
        return int(await self.rpc("eth_getBalance", [address, "latest"]), 16)

    async def nonce(self, address: str, tag: str = "pending") -> int:
        return int(await self.rpc("eth_getTransactionCount", [address, tag]), 16)

    async def head(self) -> int:
        return int(await self.rpc("eth_blockNumber"), 16)

    async def token_balance(self, token: str, owner: str) -> int:
        data = "0x70a08231" + "00" * 12 + owner[2:].lower()
        return int(await self.rpc("eth_call", [{"to": token, "data": data}, "latest"]), 16)

    async def wait_receipt(self, tx_hash: str, within: float = 30.0) -> dict:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            receipt = await self.rpc("eth_getTransactionReceipt", [tx_hash])
            if receipt and receipt.get("blockNumber"):
                return receipt
            await asyncio.sleep(0.05)
        raise AssertionError(f"no receipt for {tx_hash} within {within}s")

    async def send(self, key: str, to: str | None, value: int = 0, data: bytes = b"", gas: int | None = None) -> dict:
        """Sign with `key`, send, wait for the receipt (one sender at a time per test process)."""
        account = Account.from_key(key)
        async with self._send_lock:
            block = await self.rpc("eth_getBlockByNumber", ["latest", False])
            base = int(block["baseFeePerGas"], 16)
            tx: dict[str, Any] = {
                "chainId": 31337,
                "nonce": await self.nonce(account.address),
                "value": value,
                "data": data,
                "maxFeePerGas": base * 3 + 10**9,
                "maxPriorityFeePerGas": 10**9,
            }
            if to is not None:
                tx["to"] = to
            if gas is None:
                estimate = {"from": account.address, "value": hex(value), "data": "0x" + data.hex()}
                if to is not None:
                    estimate["to"] = to
                gas = int(await self.rpc("eth_estimateGas", [estimate]), 16) * 12 // 10
            tx["gas"] = gas
            signed = Account.sign_transaction(tx, key)
            tx_hash = await self.rpc("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])
        receipt = await self.wait_receipt(tx_hash)
        assert int(receipt["status"], 16) == 1, receipt
        return receipt

    async def send_many(self, key: str, transfers: list[tuple[str, int, bytes, int]]) -> list[dict]:
        """(to, value, data, gas) transactions from one key, all sent at once with
        consecutive nonces, then their receipts (for funding many addresses quickly)."""
        account = Account.from_key(key)
        async with self._send_lock:
            block = await self.rpc("eth_getBlockByNumber", ["latest", False])
            fee = int(block["baseFeePerGas"], 16) * 3 + 10**9
            nonce = await self.nonce(account.address)
            hashes = []
            for i, (to, value, data, gas) in enumerate(transfers):
                signed = Account.sign_transaction(
                    {
                        "chainId": 31337,
                        "nonce": nonce + i,
                        "to": to,
                        "value": value,
                        "data": data,
                        "gas": gas,
                        "maxFeePerGas": fee,
                        "maxPriorityFeePerGas": 10**9,
                    },
                    key,
                )
                hashes.append(await self.rpc("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()]))
        receipts = [await self.wait_receipt(h, within=120) for h in hashes]
        assert all(int(r["status"], 16) == 1 for r in receipts)
        return receipts

    async def send_token(self, key: str, token: str, to: str, amount: int) -> dict:
        data = bytes.fromhex("a9059cbb") + bytes(12) + bytes.fromhex(to[2:]) + amount.to_bytes(32, "big")
        return await self.send(key, token, 0, data)

    async def deploy_token(self, key: str) -> str:
        artifact = json.loads(TOKEN_ARTIFACT.read_text())
        receipt = await self.send(key, None, 0, bytes.fromhex(artifact["bytecode"].removeprefix("0x")))
        return _checksum(receipt["contractAddress"])


def token_transfer_data(to: str, amount: int) -> bytes:
    return bytes.fromhex("a9059cbb") + bytes(12) + bytes.fromhex(to[2:]) + amount.to_bytes(32, "big")


def _checksum(address: str) -> str:
    from eth_utils import to_checksum_address

    return to_checksum_address(address)


class RpcProxy:
    """An HTTP JSON-RPC proxy on 127.0.0.1 in front of anvil. `refuse_sends` answers
    eth_sendRawTransaction with HTTP 503 (the node "is down" exactly when broadcasting);
    `swallow_sends` answers it with the hash but drops the transaction (a node that
    accepts and never propagates: the transaction is stuck); `down` answers everything
    with 503."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.refuse_sends = False
        self.swallow_sends = False
        self.swallowed: list[str] = []
        self.down = False
        self.refused: list[str] = []
        self.sends = 0  # eth_sendRawTransaction requests that reached this proxy
        self._server: asyncio.AbstractServer | None = None
        self._client = httpx.AsyncClient(timeout=10.0, trust_env=False)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> RpcProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        await self._client.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length) if length else b""
                status, payload = await self._answer(body)
                writer.write(
                    f"HTTP/1.1 {status} {'OK' if status == 200 else 'Service Unavailable'}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                    "Connection: keep-alive\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _answer(self, body: bytes) -> tuple[int, bytes]:
        try:
            request = json.loads(body)
            method = request.get("method", "")
        except (ValueError, AttributeError):
            request, method = {}, ""
        if method == "eth_sendRawTransaction":
            self.sends += 1
        if self.swallow_sends and method == "eth_sendRawTransaction":
            tx_hash = "0x" + keccak(hexstr=request["params"][0]).hex()
            self.swallowed.append(tx_hash)
            return 200, json.dumps({"jsonrpc": "2.0", "id": request.get("id"), "result": tx_hash}).encode()
        if self.down or (self.refuse_sends and method == "eth_sendRawTransaction"):
            self.refused.append(method)
            return 503, b'{"error": "proxy: upstream unavailable"}'
        response = await self._client.post(self.upstream, content=body, headers={"Content-Type": "application/json"})
        return response.status_code, response.content


def write_sweeper_chains_file(
    path: Path,
    rpc_url: str,
    *,
    confirmations: int = 2,
    eip1559: bool = True,
    block_time: float = 0.25,
    l1_data_fee: str = "",
    rpc_urls: list[str] | None = None,
) -> Path:
    """anvil's chain for the sweeper; `rpc_urls`: several providers instead of `rpc_url`."""
    providers = providers_yaml(rpc_url, rpc_urls)
    path.write_text(
        f"""chains:
  - chain_id: 31337
    name: anvil
    {providers.rstrip()}
    confirmations: {confirmations}
    block_time_seconds: {block_time}
    eip1559: {"true" if eip1559 else "false"}
    l1_data_fee: "{l1_data_fee}"
    native: {{symbol: ETH, decimals: 18}}
    tokens:
      - {{symbol: TUSD, address: "{TOKEN_ADDRESS}", decimals: 6}}
"""
    )
    return path


@dataclass
class Paid:
    """A payment funded for real on anvil and CONFIRMED in the ledger."""

    payment: pb.Payment
    merchant: MerchantHandle
    treasury: str
    amount: int
    token: str = ""

    @property
    def payment_id(self) -> str:
        return self.payment.payment_id

    @property
    def deposit(self) -> str:
        return self.payment.deposit_address


@dataclass
class SweeperStack:
    """A private stack for one sweeper test module."""

    dir: Path
    anvil: devstack.Anvil
    nats: devstack.Nats
    database_url: str
    chains_file: Path
    ledger: LedgerApp
    channel: grpc.aio.Channel
    chain: Chain
    nc: Any
    block_time: float
    confirmations: int = 2
    sweepers: list[SweeperApp] = field(default_factory=list)

    @property
    def js(self):
        return self.nc.jetstream()

    @property
    def ledger_addr(self) -> str:
        return f"127.0.0.1:{self.ledger.port}"

    # ------------------------------------------------------------------ sweeper

    def settings(self, **overrides: Any) -> SweeperSettings:
        values: dict[str, Any] = {
            "ledger_addr": self.ledger_addr,
            "nats_url": self.nats.url,
            "chains_file": self.chains_file,
            "grpc_port": 0,
            "admin_token": ADMIN_TOKEN,
            **SERVICE_TOKENS,
            "shutdown_grace_seconds": 2.0,
            "sweeper_mnemonic": ANVIL_MNEMONIC,
            "sweeper_interval_seconds": 0.2,
            "sweeper_claim_lease_seconds": 10,
            "sweeper_signer_lease_ttl_seconds": 2.0,
            "sweeper_error_retry_seconds": 2,
            "sweeper_gas_wallet_retry_seconds": 2,
        }
        values.update(overrides)
        return SweeperSettings(**values)

    def env(self, **overrides: str) -> dict[str, str]:
        """Environment of a `python -m services.sweeper` subprocess."""
        env = {
            "PAYMESH_LEDGER_ADDR": self.ledger_addr,
            "PAYMESH_NATS_URL": self.nats.url,
            "PAYMESH_CHAINS_FILE": str(self.chains_file),
            "PAYMESH_ADMIN_TOKEN": ADMIN_TOKEN,
            **SERVICE_TOKEN_ENV,
            "PAYMESH_SWEEPER_MNEMONIC": ANVIL_MNEMONIC,
            "PAYMESH_SWEEPER_INTERVAL_SECONDS": "0.2",
            "PAYMESH_SWEEPER_CLAIM_LEASE_SECONDS": "10",
            "PAYMESH_SWEEPER_SIGNER_LEASE_TTL_SECONDS": "2",
            "PAYMESH_SWEEPER_ERROR_RETRY_SECONDS": "2",
            "PAYMESH_SHUTDOWN_GRACE_SECONDS": "2",
            "PAYMESH_LOG_LEVEL": "INFO",
        }
        env.update(overrides)
        return env

    @contextlib.asynccontextmanager
    async def sweeper(self, **overrides: Any) -> AsyncIterator[SweeperApp]:
        app = SweeperApp(self.settings(**overrides))
        await app.start()
        try:
            yield app
        finally:
            await app.stop()

    def operator(self, app_or_port: SweeperApp | int) -> tuple[swgrpc.SweeperServiceStub, grpc.aio.Channel]:
        port = app_or_port if isinstance(app_or_port, int) else app_or_port.port
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        return swgrpc.SweeperServiceStub(channel), channel

    # ------------------------------------------------------------------ merchants and payments

    async def merchant(
        self, treasury: str | None = "new", xpub: str | None = None, account: int | None = None
    ) -> tuple[MerchantHandle, str]:
        if xpub is None:
            xpub, account = fresh_xpub()
        address = Account.create().address if treasury == "new" else (treasury or "")
        fields: dict[str, Any] = {"derivation_path": f"m/44'/60'/{account}'"}
        if address:
            fields["treasuries"] = [apb.Treasury(chain_id=31337, address=address)]
        return await create_merchant(self.channel, xpub, **fields), address

    async def set_treasury(self, merchant: MerchantHandle, address: str) -> None:
        await agrpc.MerchantAdminServiceStub(self.channel).SetTreasury(
            apb.SetTreasuryRequest(
                merchant_id=merchant.merchant_id, treasury=apb.Treasury(chain_id=31337, address=address)
            ),
            metadata=bearer(ADMIN_TOKEN),
        )

    async def pay(
        self,
        merchant: MerchantHandle,
        treasury: str,
        amount: int,
        *,
        token: bool = False,
        sent: int | None = None,
        confirm: bool = True,
    ) -> Paid:
        """Create a payment of `amount`, send `sent` (default: the amount) for real to its
        deposit address, and tell the ledger a transfer of `amount` happened + a deep head
        (as the listener would)."""
        payment = await merchant.create(
            asset="TUSD" if token else "ETH", amount=str(amount), idempotency_key=secrets.token_hex(8)
        )
        block = await self.fund(payment, amount, token=token, sent=sent)
        paid = Paid(payment, merchant, treasury, amount, TOKEN_ADDRESS if token else "")
        if confirm:
            await publish_head(self.js, max(block + self.confirmations - 1, await self.chain.head()))
            await self.wait_status(
                paid, pb.PAYMENT_STATUS_CONFIRMED, pb.PAYMENT_STATUS_OVERPAID, pb.PAYMENT_STATUS_UNDERPAID
            )
        return paid

    async def fund(self, payment: pb.Payment, amount: int, *, token: bool = False, sent: int | None = None) -> int:
        """Send `sent` (default: `amount`) ETH or TUSD for real to the payment's deposit
        address and tell the ledger a transfer of `amount` happened (as the listener
        would); returns its block."""
        deposit = payment.deposit_address
        if token:
            receipt = await self.chain.send_token(FUNDER_KEY, TOKEN_ADDRESS, deposit, amount if sent is None else sent)
            log_index = int(receipt["logs"][0]["logIndex"], 16)
        else:
            receipt = await self.chain.send(FUNDER_KEY, deposit, amount if sent is None else sent)
            log_index = -1
        block = int(receipt["blockNumber"], 16)
        await publish_chain(
            self.js,
            "transfer",
            transfer_event(
                deposit,
                amount,
                block=block,
                block_hash=receipt["blockHash"],
                tx_hash=receipt["transactionHash"],
                log_index=log_index,
                token=TOKEN_ADDRESS if token else "",
            ),
        )
        return block

    async def wait_status(self, paid: Paid, *statuses: int, within: float = 30.0) -> pb.Payment:
        async def check():
            p = await paid.merchant.get(paid.payment_id)
            return p if p.status in statuses else None

        return await eventually(check, timeout=within, interval=0.1)

    async def wait_swept(self, *paid: Paid, within: float = 60.0) -> list[pb.Payment]:
        return [await self.wait_status(p, pb.PAYMENT_STATUS_SWEPT, within=within) for p in paid]

    # ------------------------------------------------------------------ reading the ledger's database

    async def sweep_row(self, payment_id: str) -> asyncpg.Record:
        conn = await asyncpg.connect(self.database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return await conn.fetchrow(
                # The payment's status and its first option's sweep job (one option here).
                "SELECT p.status, o.amount_swept, o.sweep_fee, o.sweep_dust, o.sweep_tx_hash, o.sweep_due_at, "
                "o.sweep_claimed_by, o.sweep_last_error, o.sweep_attempts "
                "FROM payments p JOIN payment_options o ON o.payment_id = p.id AND o.position = 0 WHERE p.id = $1",
                payment_id,
            )
        finally:
            await conn.close()

    async def sweep_txs(self, payment_id: str) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return await conn.fetch(
                "SELECT kind, state, tx_hash, nonce, from_address, to_address, amount, max_fee_per_gas, "
                "max_priority_fee_per_gas, gas_limit, raw_tx, error, replaces_tx_hash, block_number, fee, "
                "l1_fee_reserve FROM sweep_transactions WHERE payment_id = $1 ORDER BY id",
                payment_id,
            )
        finally:
            await conn.close()

    async def events(self, payment_id: str) -> list[tuple[str, bytes]]:
        """(event type, PaymentEvent payload) of the payment's outbox events, oldest first."""
        conn = await asyncpg.connect(self.database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            rows = await conn.fetch(
                "SELECT event_type, payload FROM outbox WHERE payment_id = $1 ORDER BY id", payment_id
            )
        finally:
            await conn.close()
        return [(r["event_type"], bytes(r["payload"])) for r in rows]

    async def wait_released(self, paid: Paid, needle: str, within: float = 30.0) -> asyncpg.Record:
        async def check():
            row = await self.sweep_row(paid.payment_id)
            return row if row["sweep_last_error"] and needle in row["sweep_last_error"] else None

        return await eventually(check, timeout=within, interval=0.1)


async def start_stack(directory: Path, postgres, *, block_time: float = 0.25, confirmations: int = 2) -> SweeperStack:
    """anvil (interval mining) with the TUSD token deployed at its well-known address and
    given to the funder, a private NATS, a fresh ledger database and an in-process ledger."""
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    anvil = await asyncio.to_thread(
        devstack.start_anvil, block_time=block_time, log_file=directory / "anvil.log", silent=True
    )
    chain = Chain(anvil.http_url)
    nats_server = None
    ledger = None
    try:
        token = await chain.deploy_token(ANVIL_KEYS[0])  # nonce 0 of account 0: the address in chains.yaml
        assert token == TOKEN_ADDRESS, token
        await chain.send_token(ANVIL_KEYS[0], TOKEN_ADDRESS, Account.from_key(FUNDER_KEY).address, 10**9 * TUSD)
        nats_server = await asyncio.to_thread(devstack.start_nats, directory / "nats")
        database_url = await asyncio.to_thread(postgres.create_database, f"sweeper_{secrets.token_hex(4)}")
        chains_file = write_sweeper_chains_file(
            directory / "chains.yaml", anvil.http_url, confirmations=confirmations, block_time=block_time
        )
        # Fixed rates (TUSD 1, ETH 3000 USD), for payments priced in USD with several options.
        rates_file = directory / "rates.yaml"
        rates_file.write_text(
            "rates:\n  - {asset: TUSD, currency: USD, source: fixed}\n"
            '  - {asset: ETH, currency: USD, source: fixed, value: "3000"}\n'
        )
        ledger = LedgerApp(
            LedgerSettings(
                database_url=database_url,
                nats_url=nats_server.url,
                chains_file=chains_file,
                rates_file=rates_file,
                grpc_port=0,
                admin_token=ADMIN_TOKEN,
                **SERVICE_TOKENS,
                expiry_interval_seconds=0.5,
                shutdown_grace_seconds=1.0,
                allow_private_webhooks=True,
            )
        )
        await ledger.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{ledger.port}")
        nc = await nats.connect(nats_server.url)
    except BaseException:
        if ledger is not None:
            await ledger.stop()
        if nats_server is not None:
            nats_server.stop()
        await chain.aclose()
        anvil.stop()
        raise
    return SweeperStack(
        directory, anvil, nats_server, database_url, chains_file, ledger, channel, chain, nc, block_time, confirmations
    )


async def stop_stack(stack: SweeperStack) -> None:
    with contextlib.suppress(Exception):
        await stack.nc.drain()
    await stack.channel.close()
    await stack.ledger.stop()
    await stack.chain.aclose()
    stack.nats.stop()
    stack.anvil.stop()
