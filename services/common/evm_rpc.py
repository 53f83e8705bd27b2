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
`batch` sends one method with many parameter lists as JSON-RPC batches (and
falls back to single calls for nodes that refuse batches). A service adapts
the client by subclassing: its own metrics (`_observe`, `_count_error`), error
class (`error_class`) and what counts as transient (`is_transient`).
"""

from __future__ import annotations

import abc
import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import httpx
import structlog
from prometheus_client import Counter, Histogram
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from services.common.errors import MalformedResponse

log = structlog.get_logger("evm_rpc")
T = TypeVar("T")

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
    """The node could not be reached or answered with an HTTP error (`status`, 0 when
    no answer came; `retry_after`: the seconds a 429 or 503 asked us to wait)."""

    def __init__(self, message: str, status: int = 0, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the delta-seconds form; an HTTP date is ignored)."""
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


class RpcError(Exception):
    """The node answered with a JSON-RPC error object."""

    def __init__(self, method: str, code: int | None, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: error {code}: {message}")
        self.method = method
        self.code = code
        self.message = message
        self.data = data


def check_reply(reply: Any, method: str, expected_id: int, error_class: type[RpcError] = RpcError) -> Any:
    if not isinstance(reply, dict):
        raise MalformedResponse(f"{method}: expected a JSON-RPC object, got {type(reply).__name__}")
    error = reply.get("error")
    if error is not None:
        if isinstance(error, dict):
            code = error.get("code")
            raise error_class(
                method, code if isinstance(code, int) else None, str(error.get("message", ""))[:500], error.get("data")
            )
        raise error_class(method, None, str(error)[:500])
    if reply.get("id") != expected_id:
        raise MalformedResponse(f"{method}: reply id {reply.get('id')!r} does not match request id {expected_id}")
    if "result" not in reply:
        raise MalformedResponse(f"{method}: reply has neither result nor error")
    return reply["result"]


class _BatchRefused(Exception):
    """The node answered a batch with a single error object: it does not do batches."""


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


class RpcMethods(abc.ABC):
    """The typed JSON-RPC methods, over `call` (one node: EvmRpc; several: RpcPool)."""

    @abc.abstractmethod
    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One JSON-RPC call: the result, or RpcUnavailable / RpcError / MalformedResponse."""

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


class EvmRpc(RpcMethods):
    """JSON-RPC over HTTP to one chain's node, with retries of transient failures."""

    error_class: type[RpcError] = RpcError  # what a JSON-RPC error object raises

    def __init__(
        self,
        url: str,
        *,
        chain_id: int,
        caller: str = "",
        timeout: float = 10.0,
        attempts: int = 3,
        max_batch: int = 100,
        trust_env: bool = False,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.chain_id = chain_id
        self._labels = (str(chain_id), caller or "-")
        self._attempts = max(1, attempts)
        self.max_batch = max(1, max_batch)
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
        self._failures_in_row = 0
        self.batching = True  # off once the node refuses a batch

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    # ------------------------------------------------------------------ what subclasses adapt

    def is_transient(self, exc: BaseException) -> bool:
        """Whether another attempt can succeed."""
        if isinstance(exc, RpcUnavailable | MalformedResponse):
            return True
        if isinstance(exc, RpcError):
            return exc.method not in _NO_RETRY_ON_ERROR and exc.code not in _PERMANENT_CODES
        return False

    def error_kind(self, exc: BaseException) -> str:
        if isinstance(exc, RpcError):
            return "rpc_error"
        if isinstance(exc, MalformedResponse):
            return "malformed"
        return "unavailable"

    def _observe(self, label: str, seconds: float) -> None:
        RPC_SECONDS.labels(self._labels[0], label, self._labels[1]).observe(seconds)

    def _count_error(self, label: str, exc: BaseException) -> None:
        RPC_ERRORS.labels(self._labels[0], label, self._labels[1], self.error_kind(exc)).inc()

    # ------------------------------------------------------------------ transport

    async def _post(self, body: Any, label: str) -> Any:
        started = time.perf_counter()
        try:
            response = await self._client.post(self.url, content=json.dumps(body, separators=(",", ":")))
        except httpx.HTTPError as exc:
            raise RpcUnavailable(f"{label}: {type(exc).__name__}: {exc or 'no answer'}") from None
        finally:
            self._observe(label, time.perf_counter() - started)
        if response.status_code != 200:
            raise RpcUnavailable(
                f"{label}: HTTP {response.status_code}: {response.text[:200]!r}",
                status=response.status_code,
                retry_after=_retry_after(response.headers.get("retry-after")),
            )
        try:
            return json.loads(response.content)
        except ValueError:
            raise MalformedResponse(f"{label}: not JSON: {response.content[:120]!r}") from None

    async def _retrying(self, label: str, once: Callable[[], Awaitable[T]]) -> T:
        """Run `once` until it succeeds, fails for good, or `attempts` are used up."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential_jitter(multiplier=0.05, max=1.0, jitter=0.05),
            retry=retry_if_exception(self.is_transient),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                try:
                    result = await once()
                except Exception as exc:
                    self._failed(label, exc, attempt.retry_state.attempt_number)
                    raise
                self.last_ok_at = time.monotonic()
                self.last_error = ""
                if self._failures_in_row:
                    log.info("rpc calls succeed again", chain_id=self.chain_id, after_failures=self._failures_in_row)
                    self._failures_in_row = 0
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _failed(self, label: str, exc: Exception, attempt: int) -> None:
        self.last_error = str(exc)[:500]
        self._count_error(label, exc)
        if isinstance(exc, RpcError) and exc.method in _NO_RETRY_ON_ERROR:
            return  # an answer (nonce too low, revert, ...) for the caller, not a fault
        # Every failure is counted; a long outage logs its first few and then every 100th.
        self._failures_in_row += 1
        n = self._failures_in_row
        (log.warning if n <= 3 or n % 100 == 0 else log.debug)(
            "rpc call failed",
            chain_id=self.chain_id,
            method=label,
            attempt=attempt,
            error=self.last_error,
            will_retry=self.is_transient(exc) and attempt < self._attempts,
            failures_in_row=n,
        )

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One JSON-RPC call; transient failures are retried `attempts` times in all."""

        async def once() -> Any:
            request_id = next(self._ids)
            reply = await self._post(
                {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}, method
            )
            return check_reply(reply, method, request_id, self.error_class)

        return await self._retrying(method, once)

    async def batch(self, method: str, params_list: Sequence[Sequence[Any]]) -> list[Any]:
        """The same method with many parameter lists, `max_batch` per HTTP request
        (requests sent concurrently); results in order."""
        chunks = [params_list[i : i + self.max_batch] for i in range(0, len(params_list), self.max_batch)]
        parts = await asyncio.gather(*(self._batch_once(method, chunk) for chunk in chunks))
        return [r for part in parts for r in part]

    async def _batch_once(self, method: str, params_list: Sequence[Sequence[Any]]) -> list[Any]:
        if not params_list:
            return []
        if len(params_list) == 1 or not self.batching:
            return list(await asyncio.gather(*(self.call(method, p) for p in params_list)))
        label = f"batch:{method}"

        async def once() -> list[Any]:
            ids = [next(self._ids) for _ in params_list]
            body = [
                {"jsonrpc": "2.0", "id": i, "method": method, "params": list(p)}
                for i, p in zip(ids, params_list, strict=True)
            ]
            reply = await self._post(body, label)
            if isinstance(reply, dict) and isinstance(reply.get("error"), dict):
                raise _BatchRefused(str(reply["error"].get("message", ""))[:200])
            if isinstance(reply, dict):
                raise MalformedResponse(f"{label}: expected a list of replies, got one object")
            if not isinstance(reply, list):
                raise MalformedResponse(f"{label}: expected a list of replies, got {type(reply).__name__}")
            by_id = {r.get("id"): r for r in reply if isinstance(r, dict)}
            out = []
            for i in ids:
                if i not in by_id:
                    raise MalformedResponse(f"{label}: no reply for request id {i} ({len(reply)} replies)")
                out.append(check_reply(by_id[i], method, i, self.error_class))
            return out

        try:
            return await self._retrying(label, once)
        except _BatchRefused as exc:
            log.warning(
                "the node refuses JSON-RPC batches; sending calls one by one", chain_id=self.chain_id, error=str(exc)
            )
            self.batching = False
            return await self._batch_once(method, params_list)
