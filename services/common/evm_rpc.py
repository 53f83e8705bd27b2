"""A small async JSON-RPC client for EVM nodes (httpx + tenacity, no web3.py).

Nodes and providers fail in every way: refused connections, timeouts, HTTP 429
and 5xx, JSON-RPC errors, HTML error pages, truncated or wrongly shaped JSON.
Each failure is logged, counted and retried a few times with jittered backoff
when retrying can help; what still fails raises to the caller:

- `RpcUnavailable`   the node could not be reached or answered with an HTTP error
- `RpcError`         the node answered with a JSON-RPC error object (code, message)
- `MalformedResponse` the answer is not the JSON-RPC shape we asked for

`eth_sendRawTransaction` is retried only when the node could not be reached
(sending the same signed bytes twice is harmless: same hash); a JSON-RPC error
from it (nonce too low, insufficient funds, already known, ...) is the caller's
to interpret and is never retried here.

Quantities are returned as Python ints; hashes and data as 0x-hex strings.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx
import structlog
from prometheus_client import Counter, Histogram
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

log = structlog.get_logger("evm_rpc")

RPC_SECONDS = Histogram(
    "paymesh_evm_rpc_seconds",
    "EVM JSON-RPC round trips of the shared client, by chain, method and caller.",
    ["chain_id", "method", "caller"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RPC_ERRORS = Counter(
    "paymesh_evm_rpc_errors_total",
    "Failed EVM JSON-RPC calls of the shared client, by kind (unavailable, rpc_error, malformed).",
    ["chain_id", "method", "caller", "kind"],
)

# JSON-RPC codes that no retry can fix: unknown method, invalid params.
_PERMANENT_CODES = (-32601, -32602)
# Methods whose JSON-RPC errors are answers, not faults (retrying would not change them).
_NO_RETRY_ON_ERROR = frozenset({"eth_sendRawTransaction", "eth_call", "eth_estimateGas"})


class RpcUnavailable(Exception):
    """The node could not be reached or answered with an HTTP error."""


class MalformedResponse(Exception):
    """The node's answer is not the JSON-RPC shape that was asked for."""


class RpcError(Exception):
    """The node answered with a JSON-RPC error object."""

    def __init__(self, method: str, code: int | None, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: error {code}: {message}")
        self.method = method
        self.code = code
        self.message = message
        self.data = data


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, RpcUnavailable | MalformedResponse):
        return True
    if isinstance(exc, RpcError):
        return exc.method not in _NO_RETRY_ON_ERROR and exc.code not in _PERMANENT_CODES
    return False


def _kind(exc: BaseException) -> str:
    if isinstance(exc, RpcError):
        return "rpc_error"
    if isinstance(exc, MalformedResponse):
        return "malformed"
    return "unavailable"


def _check_reply(reply: Any, method: str, expected_id: int) -> Any:
    if not isinstance(reply, dict):
        raise MalformedResponse(f"{method}: expected a JSON-RPC object, got {type(reply).__name__}")
    error = reply.get("error")
    if error is not None:
        if isinstance(error, dict):
            code = error.get("code")
            raise RpcError(
                method, code if isinstance(code, int) else None, str(error.get("message", ""))[:500], error.get("data")
            )
        raise RpcError(method, None, str(error)[:500])
    if reply.get("id") != expected_id:
        raise MalformedResponse(f"{method}: reply id {reply.get('id')!r} does not match request id {expected_id}")
    if "result" not in reply:
        raise MalformedResponse(f"{method}: reply has neither result nor error")
    return reply["result"]


def quantity(value: Any, what: str) -> int:
    """A JSON-RPC QUANTITY (0x-hex) as int; MalformedResponse otherwise."""
    if isinstance(value, str) and value.startswith(("0x", "0X")):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise MalformedResponse(f"{what}: expected a 0x-hex quantity, got {str(value)[:80]!r}")


def hex_quantity(value: int) -> str:
    return hex(int(value))


class EvmRpc:
    """JSON-RPC over HTTP to one chain's node, with retries of transient failures."""

    def __init__(
        self,
        url: str,
        *,
        chain_id: int,
        caller: str = "",
        timeout: float = 10.0,
        attempts: int = 3,
        trust_env: bool = False,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.chain_id = chain_id
        self._labels = (str(chain_id), caller or "-")
        self._attempts = max(1, attempts)
        self._ids = itertools.count(1)
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            trust_env=trust_env,
            headers={"Content-Type": "application/json"},
        )
        self.last_error: str = ""
        self.last_ok_at: float = 0.0

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    # ------------------------------------------------------------------ transport

    async def _post(self, body: Any, method: str) -> Any:
        started = time.perf_counter()
        try:
            response = await self._client.post(self.url, content=json.dumps(body, separators=(",", ":")))
        except httpx.HTTPError as exc:
            raise RpcUnavailable(f"{method}: {type(exc).__name__}: {exc or 'no answer'}") from None
        finally:
            RPC_SECONDS.labels(*self._labels[:1], method, self._labels[1]).observe(time.perf_counter() - started)
        if response.status_code != 200:
            raise RpcUnavailable(f"{method}: HTTP {response.status_code}: {response.text[:200]!r}")
        try:
            return json.loads(response.content)
        except ValueError:
            raise MalformedResponse(f"{method}: not JSON: {response.content[:120]!r}") from None

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One JSON-RPC call; transient failures are retried `attempts` times in all."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential_jitter(multiplier=0.05, max=1.0, jitter=0.05),
            retry=retry_if_exception(_transient),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                request_id = next(self._ids)
                try:
                    reply = await self._post(
                        {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}, method
                    )
                    result = _check_reply(reply, method, request_id)
                except Exception as exc:
                    self.last_error = str(exc)[:500]
                    RPC_ERRORS.labels(self._labels[0], method, self._labels[1], _kind(exc)).inc()
                    if not (isinstance(exc, RpcError) and method in _NO_RETRY_ON_ERROR):
                        log.warning(
                            "rpc call failed",
                            chain_id=self.chain_id,
                            method=method,
                            attempt=attempt.retry_state.attempt_number,
                            error=self.last_error,
                            will_retry=_transient(exc) and attempt.retry_state.attempt_number < self._attempts,
                        )
                    raise
                self.last_ok_at = time.monotonic()
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ typed helpers

    async def get_chain_id(self) -> int:
        return quantity(await self.call("eth_chainId"), "eth_chainId")

    async def block_number(self) -> int:
        return quantity(await self.call("eth_blockNumber"), "eth_blockNumber")

    async def get_balance(self, address: str, block: str = "latest") -> int:
        return quantity(await self.call("eth_getBalance", [address, block]), "eth_getBalance")

    async def get_transaction_count(self, address: str, block: str = "latest") -> int:
        return quantity(await self.call("eth_getTransactionCount", [address, block]), "eth_getTransactionCount")

    async def get_code(self, address: str, block: str = "latest") -> str:
        code = await self.call("eth_getCode", [address, block])
        if not isinstance(code, str) or not code.startswith("0x"):
            raise MalformedResponse(f"eth_getCode: expected 0x-hex data, got {str(code)[:80]!r}")
        return code

    async def eth_call(self, tx: dict[str, Any], block: str = "latest") -> str:
        data = await self.call("eth_call", [tx, block])
        if not isinstance(data, str) or not data.startswith("0x"):
            raise MalformedResponse(f"eth_call: expected 0x-hex data, got {str(data)[:80]!r}")
        return data

    async def estimate_gas(self, tx: dict[str, Any]) -> int:
        return quantity(await self.call("eth_estimateGas", [tx]), "eth_estimateGas")

    async def gas_price(self) -> int:
        return quantity(await self.call("eth_gasPrice"), "eth_gasPrice")

    async def max_priority_fee(self) -> int:
        return quantity(await self.call("eth_maxPriorityFeePerGas"), "eth_maxPriorityFeePerGas")

    async def fee_history(self, blocks: int, newest: str = "latest", percentiles: Sequence[float] = ()) -> dict:
        """eth_feeHistory with quantities decoded: baseFeePerGas (blocks+1 entries, the
        last one is the next block's), gasUsedRatio, reward (per block, per percentile)."""
        raw = await self.call("eth_feeHistory", [hex_quantity(blocks), newest, list(percentiles)])
        if not isinstance(raw, dict) or not isinstance(raw.get("baseFeePerGas"), list):
            raise MalformedResponse(f"eth_feeHistory: unexpected shape: {str(raw)[:160]!r}")
        rewards = raw.get("reward") or []
        return {
            "oldest_block": quantity(raw.get("oldestBlock", "0x0"), "eth_feeHistory.oldestBlock"),
            "base_fee_per_gas": [quantity(v, "eth_feeHistory.baseFeePerGas") for v in raw["baseFeePerGas"]],
            "gas_used_ratio": [float(v) for v in raw.get("gasUsedRatio") or []],
            "reward": [[quantity(v, "eth_feeHistory.reward") for v in row] for row in rewards if isinstance(row, list)],
        }

    async def get_block(self, block: str | int = "latest", full: bool = False) -> dict | None:
        tag = hex_quantity(block) if isinstance(block, int) else block
        result = await self.call("eth_getBlockByNumber", [tag, full])
        if result is not None and not isinstance(result, dict):
            raise MalformedResponse(f"eth_getBlockByNumber: expected an object, got {type(result).__name__}")
        return result

    async def send_raw_transaction(self, raw: bytes) -> str:
        result = await self.call("eth_sendRawTransaction", ["0x" + raw.hex()])
        if not isinstance(result, str) or not result.startswith("0x"):
            raise MalformedResponse(f"eth_sendRawTransaction: expected a tx hash, got {str(result)[:80]!r}")
        return result.lower()

    async def get_transaction(self, tx_hash: str) -> dict | None:
        result = await self.call("eth_getTransactionByHash", [tx_hash])
        if result is not None and not isinstance(result, dict):
            raise MalformedResponse(f"eth_getTransactionByHash: expected an object, got {type(result).__name__}")
        return result

    async def get_receipt(self, tx_hash: str) -> dict | None:
        result = await self.call("eth_getTransactionReceipt", [tx_hash])
        if result is not None and not isinstance(result, dict):
            raise MalformedResponse(f"eth_getTransactionReceipt: expected an object, got {type(result).__name__}")
        return result
