"""The sweeper's view of one chain, on top of the shared JSON-RPC client: fees,
balances, nonces, ERC-20 calls, broadcasting with the node's answer classified."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass

from eth_utils import keccak, to_checksum_address

from services.common.chains import ChainConfig
from services.common.evm_rpc import EvmRpc, MalformedResponse, RpcError
from services.sweeper.domain.fees import FeeQuote, ceil_div, quote_eip1559, quote_legacy
from services.sweeper.domain.send_errors import SendOutcome, classify_send_error

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
_BALANCE_OF = bytes.fromhex("70a08231")
_TRANSFER = bytes.fromhex("a9059cbb")


class FeeCapExceeded(Exception):
    """The market fee is above the operator's cap (PAYMESH_SWEEPER_MAX_FEE_PER_GAS_WEI)."""


class L1FeeUnavailable(Exception):
    """chains.yaml says the chain charges an L1 data fee, and the chain cannot tell how much."""


# OP stack: the GasPriceOracle predeploy, asked for the L1 fee of a transaction of
# L1_FEE_PROBE_BYTES incompressible bytes. Every sweep transaction is smaller (a
# native transfer ~110 bytes, an ERC-20 transfer ~180), and incompressible bytes are
# the worst case under both fee formulas (Ecotone counts bytes, Fjord estimates the
# compressed size), so the answer bounds what any sweep pays at this L1 price. The
# headroom covers the L1 price rising before the transaction is included.
OP_GAS_PRICE_ORACLE = "0x420000000000000000000000000000000000000F"
L1_FEE_PROBE_BYTES = 256
L1_FEE_HEADROOM_PERCENT = 150
_GET_L1_FEE = keccak(text="getL1Fee(bytes)")[:4]
_PROBE = b"".join(keccak(i.to_bytes(32, "big")) for i in range(L1_FEE_PROBE_BYTES // 32))
_GET_L1_FEE_CALL = "0x" + (_GET_L1_FEE + (32).to_bytes(32, "big") + len(_PROBE).to_bytes(32, "big") + _PROBE).hex()


def _return_data(data: object) -> bytes:
    """An eth_call result (0x-hex) as bytes; empty when the node returned nothing usable."""
    if not isinstance(data, str) or not data.startswith("0x"):
        return b""
    try:
        return bytes.fromhex(data[2:])
    except ValueError:
        raise MalformedResponse(f"eth_call returned no hex: {data[:80]!r}") from None


def _word_address(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address[2:])


def encode_transfer(to: str, amount: int) -> bytes:
    """Calldata of ERC-20 transfer(to, amount)."""
    return _TRANSFER + _word_address(to) + amount.to_bytes(32, "big")


@dataclass(frozen=True)
class FeeSettings:
    base_fee_multiplier_percent: int = 200
    min_priority_fee: int = 0
    legacy_gas_price_percent: int = 110
    max_fee_per_gas: int = 0  # 0: no cap
    history_blocks: int = 10


class _Cached:
    """One value shared by the chain's concurrent sweeps for a short while (head, fees)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._value = None
        self._at = -1e9
        self._lock = asyncio.Lock()

    async def get(self, load, fresh: bool = False):
        if not fresh and time.monotonic() - self._at < self.ttl:
            return self._value
        async with self._lock:
            if not fresh and time.monotonic() - self._at < self.ttl:
                return self._value
            value = await load()
            self._value, self._at = value, time.monotonic()
            return value


class ChainGateway:
    def __init__(self, config: ChainConfig, rpc: EvmRpc, fees: FeeSettings, cache_seconds: float | None = None) -> None:
        self.config = config
        self.rpc = rpc
        self.fees = fees
        ttl = min(0.5, config.block_time_seconds / 4) if cache_seconds is None else cache_seconds
        self._head = _Cached(ttl)
        self._base_fee = _Cached(ttl)
        self._quote = _Cached(ttl)

    @property
    def chain_id(self) -> int:
        return self.config.chain_id

    async def head(self, fresh: bool = False) -> int:
        return await self._head.get(self.rpc.block_number, fresh)

    async def next_base_fee(self) -> int:
        """The next block's base fee (0 on legacy chains)."""
        if not self.config.eip1559:
            return 0

        async def load() -> int:
            history = await self.rpc.fee_history(1, "latest", [])
            return history["base_fee_per_gas"][-1]

        return await self._base_fee.get(load)

    async def fee_quote(self) -> FeeQuote:
        quote = await self._quote.get(self._fee_quote)
        if self.fees.max_fee_per_gas and quote.max_fee_per_gas > self.fees.max_fee_per_gas:
            raise FeeCapExceeded(
                f"fees on chain {self.chain_id} are {quote.max_fee_per_gas} wei per gas, above the cap of "
                f"{self.fees.max_fee_per_gas} (PAYMESH_SWEEPER_MAX_FEE_PER_GAS_WEI); waiting for cheaper gas"
            )
        return quote

    async def _fee_quote(self) -> FeeQuote:
        if self.config.eip1559:
            history = await self.rpc.fee_history(self.fees.history_blocks, "latest", [50])
            rewards = [row[0] for row in history["reward"] if row]
            quote = quote_eip1559(
                history["base_fee_per_gas"][-1],
                rewards,
                base_fee_multiplier_percent=self.fees.base_fee_multiplier_percent,
                min_priority_fee=self.fees.min_priority_fee,
            )
        else:
            quote = quote_legacy(await self.rpc.gas_price(), multiplier_percent=self.fees.legacy_gas_price_percent)
        if self.config.l1_data_fee == "op_stack":
            quote = dataclasses.replace(quote, l1_fee=await self._op_l1_fee_reserve())
        return quote

    async def _op_l1_fee_reserve(self) -> int:
        """An upper bound of the L1 data fee of any sweep transaction right now, with headroom."""
        where = f"chain {self.chain_id} (chains.yaml l1_data_fee: op_stack)"
        try:
            data = await self.rpc.eth_call({"to": OP_GAS_PRICE_ORACLE, "data": _GET_L1_FEE_CALL})
        except RpcError as exc:
            if exc.code != 3 and "revert" not in exc.message.lower():
                raise  # the node's trouble (rate limit, unknown block, ...): the normal error retry
            raise L1FeeUnavailable(
                f"{where}: the GasPriceOracle at {OP_GAS_PRICE_ORACLE} reverted getL1Fee: {exc}; is this an "
                "OP-stack chain?"
            ) from None
        raw = _return_data(data)
        if len(raw) != 32:
            raise L1FeeUnavailable(
                f"{where}: no GasPriceOracle answers at {OP_GAS_PRICE_ORACLE} (got {len(raw)} bytes); is this an "
                "OP-stack chain? Set l1_data_fee to '' for chains without an L1 data fee"
            )
        return ceil_div(int.from_bytes(raw, "big") * L1_FEE_HEADROOM_PERCENT, 100)

    async def balance(self, address: str, block: str = "latest") -> int:
        return await self.rpc.get_balance(address, block)

    async def nonce(self, address: str, block: str = "latest") -> int:
        return await self.rpc.get_transaction_count(address, block)

    async def is_contract(self, address: str) -> bool:
        return (await self.rpc.get_code(address)) not in ("0x", "0x0")

    async def token_balance(self, token: str, owner: str) -> int:
        data = await self.rpc.eth_call({"to": token, "data": "0x" + (_BALANCE_OF + _word_address(owner)).hex()})
        raw = _return_data(data)
        if len(raw) < 32:
            raise MalformedResponse(f"balanceOf of {token}: expected 32 bytes, got {len(raw)} (is it an ERC-20?)")
        return int.from_bytes(raw[:32], "big")

    async def estimate_gas(self, sender: str, to: str, data: bytes = b"", value: int = 0) -> int:
        return await self.rpc.estimate_gas({"from": sender, "to": to, "data": "0x" + data.hex(), "value": hex(value)})

    async def send(self, raw_tx: bytes) -> tuple[SendOutcome, str]:
        """Broadcast; the node's answer classified. RpcUnavailable propagates (state unknown)."""
        try:
            await self.rpc.send_raw_transaction(raw_tx)
        except RpcError as exc:
            return classify_send_error(exc.message), exc.message
        return SendOutcome.ACCEPTED, ""

    async def known(self, tx_hash: str) -> bool:
        return (await self.rpc.get_transaction(tx_hash)) is not None

    async def receipt(self, tx_hash: str) -> dict | None:
        receipt = await self.rpc.get_receipt(tx_hash)
        if receipt is None or not receipt.get("blockNumber"):
            return None
        return receipt


def fee_paid(receipt: dict, gas_price: int) -> int:
    """What a mined transaction paid the network, in wei, per its receipt: gasUsed x
    effectiveGasPrice (`gas_price`, the transaction's own, where a pre-London node
    leaves it out), plus l1Fee where the receipt has one (OP-stack chains charge the
    L1 data fee on top of gas, out of the sender's balance)."""
    try:
        used = int(receipt["gasUsed"], 16)
        price = int(receipt["effectiveGasPrice"], 16) if receipt.get("effectiveGasPrice") else gas_price
        l1_fee = int(receipt["l1Fee"], 16) if receipt.get("l1Fee") else 0
    except (KeyError, TypeError, ValueError):
        raise MalformedResponse(
            f"receipt of {receipt.get('transactionHash')} has no usable gasUsed / effectiveGasPrice / l1Fee"
        ) from None
    return used * price + l1_fee


def transferred(receipt: dict, token: str, sender: str, recipient: str) -> int:
    """The amount of `token` a mined receipt's Transfer logs moved from sender to recipient."""
    total = 0
    for entry in receipt.get("logs") or []:
        try:
            if to_checksum_address(entry["address"]) != to_checksum_address(token):
                continue
            topics = [t.lower() for t in entry.get("topics") or []]
            if len(topics) != 3 or topics[0] != TRANSFER_TOPIC:
                continue
            src = to_checksum_address("0x" + topics[1][-40:])
            dst = to_checksum_address("0x" + topics[2][-40:])
            if src == to_checksum_address(sender) and dst == to_checksum_address(recipient):
                total += int(entry.get("data") or "0x0", 16)
        except (KeyError, ValueError, TypeError):
            continue
    return total
