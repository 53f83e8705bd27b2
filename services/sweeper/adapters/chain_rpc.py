"""The sweeper's gateway to one chain, on top of the shared JSON-RPC client
(services/common/evm_rpc.py): the head, fees (EIP-1559 or legacy, plus the OP-stack
L1 data fee reserve from the GasPriceOracle predeploy), balances, nonces, code,
ERC-20 balances, gas estimates, broadcasting with the node's answer classified
(domain/send_errors.py), transactions and receipts.

It implements ports.ChainGateway. RpcUnavailable, RpcError and MalformedResponse
propagate unchanged; FeeCapExceeded and L1FeeUnavailable are its own refusals.
The head, the next base fee and the fee quote are cached for a quarter block (at
most 0.5 s) and shared by the chain's concurrent sweeps, so a round of sweeps
does not ask the node the same thing once per payment.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass

from eth_utils import keccak

from services.common.chains import ChainConfig
from services.common.evm_rpc import EvmRpc, MalformedResponse, RpcError
from services.sweeper.domain.erc20 import encode_balance_of
from services.sweeper.domain.fees import FeeQuote, ceil_div, quote_eip1559, quote_legacy
from services.sweeper.domain.send_errors import SendOutcome, classify_send_error


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


class RpcChainGateway:
    """ports.ChainGateway over JSON-RPC (one per chain)."""

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

    async def served_chain_id(self) -> int:
        """The chain id the RPC endpoint serves (eth_chainId)."""
        return await self.rpc.get_chain_id()

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
        data = await self.rpc.eth_call({"to": token, "data": "0x" + encode_balance_of(owner).hex()})
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
