"""Helpers for tests that drive the ledger through its public interfaces."""

from __future__ import annotations

import asyncio
import functools
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from bip_utils import Bip39SeedGenerator, Bip44, Bip44Coins
from google.protobuf.timestamp_pb2 import Timestamp
from paymesh.events.v1 import chain_events_pb2 as cpb
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import merchant_admin_service_pb2_grpc as agrpc
from paymesh.ledger.v1 import payment_service_pb2 as spb
from paymesh.ledger.v1 import payment_service_pb2_grpc as sgrpc

ADMIN_TOKEN = "test-admin-token-0123456789"
# One token per internal service of the ledger, each shared with its one caller.
ADDRESS_FEED_TOKEN = "test-address-feed-token-0123456789"
SWEEP_LEDGER_TOKEN = "test-sweep-ledger-token-0123456789"
MERCHANT_DIRECTORY_TOKEN = "test-merchant-directory-token-0123456789"
CHECKOUT_LEDGER_TOKEN = "test-checkout-ledger-token-0123456789"
SERVICE_TOKENS = {
    "address_feed_token": ADDRESS_FEED_TOKEN,
    "sweep_ledger_token": SWEEP_LEDGER_TOKEN,
    "merchant_directory_token": MERCHANT_DIRECTORY_TOKEN,
    "checkout_ledger_token": CHECKOUT_LEDGER_TOKEN,
}
SERVICE_TOKEN_ENV = {f"PAYMESH_{name.upper()}": value for name, value in SERVICE_TOKENS.items()}
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
TOKEN_ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@functools.lru_cache(maxsize=4)
def _coin_node(mnemonic: str):
    seed = Bip39SeedGenerator(mnemonic).Generate()
    return Bip44.FromSeed(seed, Bip44Coins.ETHEREUM).Purpose().Coin()


def account_xpub(account: int, mnemonic: str = ANVIL_MNEMONIC) -> str:
    """xpub of m/44'/60'/<account>' of the mnemonic (each test merchant gets its own)."""
    return _coin_node(mnemonic).Account(account).PublicKey().ToExtended()


_next_account = itertools.count(100)


def fresh_xpub() -> tuple[str, int]:
    account = next(_next_account)
    return account_xpub(account), account


def providers_yaml(rpc_url: str, rpc_urls: list[str] | None) -> str:
    """A chain's providers in chains.yaml (keys indented 4): `rpc:` with each of
    `rpc_urls` when given, else `rpc_url:`; ends with a newline."""
    if rpc_urls:
        return "rpc:\n" + "".join(f"      - {{url: {u}}}\n" for u in rpc_urls)
    return f"rpc_url: {rpc_url}\n"


def write_chains_file(
    path: Path,
    rpc_url: str = "http://127.0.0.1:9",
    ws_url: str = "",
    confirmations: int = 2,
    internal_transfers: str = "",
    rpc_urls: list[str] | None = None,
    max_head_lag_blocks: int = 5,
    confirmation_agreement: bool = False,
) -> Path:
    """chains.yaml with anvil (31337) and a second chain; `rpc_urls`: several providers."""
    providers = providers_yaml(rpc_url, rpc_urls)
    path.write_text(
        f"""chains:
  - chain_id: 31337
    name: anvil
    {providers}    ws_url: "{ws_url}"
    max_head_lag_blocks: {max_head_lag_blocks}
    confirmation_agreement: {"true" if confirmation_agreement else "false"}
    confirmations: {confirmations}
    internal_transfers: "{internal_transfers}"
    block_time_seconds: 1
    native: {{symbol: ETH, decimals: 18}}
    tokens:
      - {{symbol: TUSD, address: "{TOKEN_ADDRESS}", decimals: 6}}
  - chain_id: 8453
    name: second
    rpc_url: http://127.0.0.1:9
    confirmations: 5
    block_time_seconds: 2
    native: {{symbol: ETH, decimals: 18}}
"""
    )
    return path


_blocks = itertools.count(1_000, 10)


def next_block() -> int:
    """Block numbers for tests that share the session ledger: always increasing, so
    one test's heads never make another test's transfers look deep already."""
    return next(_blocks)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class MerchantHandle:
    merchant_id: str
    api_key: str
    xpub: str
    webhook_secret: str
    payments: sgrpc.PaymentServiceStub

    @property
    def auth(self) -> tuple[tuple[str, str], ...]:
        return bearer(self.api_key)

    async def create(self, **fields: Any) -> spb.Payment:
        fields.setdefault("chain_id", 31337)
        fields.setdefault("asset", "ETH")
        fields.setdefault("amount", "1000")
        reply = await self.payments.CreatePayment(spb.CreatePaymentRequest(**fields), metadata=self.auth)
        return reply.payment

    async def get(self, payment_id: str) -> spb.Payment:
        return (
            await self.payments.GetPayment(spb.GetPaymentRequest(payment_id=payment_id), metadata=self.auth)
        ).payment


async def create_merchant(channel: grpc.aio.Channel, xpub: str, **fields: Any) -> MerchantHandle:
    admin = agrpc.MerchantAdminServiceStub(channel)
    reply = await admin.CreateMerchant(
        apb.CreateMerchantRequest(name=fields.pop("name", f"shop-{secrets.token_hex(3)}"), xpub=xpub, **fields),
        metadata=bearer(ADMIN_TOKEN),
    )
    return MerchantHandle(
        merchant_id=reply.merchant.merchant_id,
        api_key=reply.api_key,
        xpub=xpub,
        webhook_secret=reply.webhook_secret,
        payments=sgrpc.PaymentServiceStub(channel),
    )


def timestamp(value: datetime | float) -> Timestamp:
    out = Timestamp()
    if isinstance(value, (int, float)):
        out.FromDatetime(datetime.fromtimestamp(value, tz=UTC))
    else:
        out.FromDatetime(value)
    return out


def random_hash() -> str:
    return "0x" + secrets.token_hex(32)


def transfer_event(
    to: str,
    amount: int,
    *,
    block: int,
    block_hash: str | None = None,
    tx_hash: str | None = None,
    log_index: int = -1,
    token: str = "",
    block_time: datetime | None = None,
    chain_id: int = 31337,
) -> cpb.TransferObserved:
    return cpb.TransferObserved(
        chain_id=chain_id,
        block_number=block,
        block_hash=block_hash or random_hash(),
        block_timestamp=timestamp(block_time or datetime.now(UTC)),
        tx_hash=tx_hash or random_hash(),
        log_index=log_index,
        from_address="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        to_address=to,
        token_address=token,
        amount=str(amount),
    )


async def publish_chain(js, kind: str, message, msg_id: str | None = None) -> None:
    subject = f"paymesh.chain.{message.chain_id}.{kind}"
    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
    await js.publish(subject, message.SerializeToString(), headers=headers, stream="CHAIN")


async def publish_head(js, number: int, block_hash: str | None = None, chain_id: int = 31337) -> None:
    await publish_chain(
        js,
        "head",
        cpb.HeadObserved(
            chain_id=chain_id,
            number=number,
            hash=block_hash or random_hash(),
            parent_hash=random_hash(),
            timestamp=timestamp(time.time()),
        ),
    )


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll `check` until it returns a truthy value (bounded in time)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")
