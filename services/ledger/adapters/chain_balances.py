"""What an address holds on a chain (native coin and ERC-20 `balanceOf`), read from
the chain's node for PayoutService.GetPayoutWallet: never on a payment's path, one
JSON-RPC client per chain, bounded by a timeout; a node that does not answer is
UNAVAILABLE naming the chain."""

from __future__ import annotations

import asyncio

from services.common.chains import Chains
from services.common.errors import Unavailable
from services.common.evm_rpc import EvmRpc, MalformedResponse, RpcError, RpcUnavailable

TIMEOUT_SECONDS = 5.0
_BALANCE_OF = "0x70a08231"  # balanceOf(address)


class ChainBalances:
    def __init__(self, chains: Chains) -> None:
        self._chains = chains
        self._rpcs: dict[int, EvmRpc] = {}

    def _rpc(self, chain_id: int) -> EvmRpc:
        if chain_id not in self._rpcs:
            chain = self._chains.get(chain_id)
            assert chain is not None  # the use case checked it
            self._rpcs[chain_id] = EvmRpc(
                chain.rpc_url, chain_id=chain_id, caller="ledger-balances", timeout=TIMEOUT_SECONDS, attempts=2
            )
        return self._rpcs[chain_id]

    async def __call__(self, chain_id: int, address: str, assets: list[tuple[str, str | None]]) -> dict[str, int]:
        rpc = self._rpc(chain_id)

        async def one(token: str | None) -> int:
            if token is None:
                return await rpc.get_balance(address)
            data = _BALANCE_OF + address[2:].lower().rjust(64, "0")
            result = await rpc.eth_call({"to": token, "data": data})
            return int(result, 16) if result not in ("0x", "") else 0

        try:
            async with asyncio.timeout(TIMEOUT_SECONDS * 2):
                values = await asyncio.gather(*(one(token) for _symbol, token in assets))
        except (TimeoutError, RpcUnavailable, RpcError, MalformedResponse, ValueError) as exc:
            raise Unavailable(f"the node of chain {chain_id} did not answer the balance query: {exc}") from None
        return {symbol: value for (symbol, _token), value in zip(assets, values, strict=True)}

    async def aclose(self) -> None:
        for rpc in self._rpcs.values():
            await rpc.aclose()
