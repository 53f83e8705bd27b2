"""The shared JSON-RPC client (services.common.evm_rpc) as the sweeper uses it:
errors that are answers are raised at once, faults are retried, batches work,
and failures are counted under the caller's label."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from services.common.evm_rpc import RPC_ERRORS, EvmRpc, RpcError
from tests.unit.test_listener_rpc import ok, scripted


def client(transport) -> EvmRpc:
    return EvmRpc(
        "http://node", chain_id=7, caller="unit", attempts=3, max_batch=2, client=httpx.AsyncClient(transport=transport)
    )


def error(code, message):
    return lambda body: (
        200,
        json.dumps({"jsonrpc": "2.0", "id": body["id"], "error": {"code": code, "message": message}}).encode(),
    )


def errors_counted(method: str, kind: str) -> float:
    return RPC_ERRORS.labels("7", method, "unit", kind)._value.get()


def test_an_answer_is_not_retried_and_a_fault_is():
    before = errors_counted("eth_sendRawTransaction", "rpc_error")
    transport, seen = scripted(error(-32000, "nonce too low"))
    with pytest.raises(RpcError) as info:
        asyncio.run(client(transport).send_raw_transaction(b"\x01"))
    assert info.value.message == "nonce too low" and len(seen) == 1
    assert errors_counted("eth_sendRawTransaction", "rpc_error") == before + 1

    transport, seen = scripted(error(-32603, "internal"), (502, b"bad gateway"), lambda b: ok(b, "0x2a"))
    rpc = client(transport)
    assert asyncio.run(rpc.block_number()) == 42
    assert len(seen) == 3 and rpc.last_error == ""


def test_batches_keep_order_across_requests():
    def echo(body):  # each reply is the request's parameter; a batch answered in reverse order
        if isinstance(body, list):
            return 200, json.dumps(
                [{"jsonrpc": "2.0", "id": b["id"], "result": b["params"][0]} for b in reversed(body)]
            ).encode()
        return 200, json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": body["params"][0]}).encode()

    transport, seen = scripted(echo, echo)
    results = asyncio.run(client(transport).batch("eth_getBalance", [["0xa"], ["0xb"], ["0xc"]]))
    assert results == ["0xa", "0xb", "0xc"]
    assert [len(b) if isinstance(b, list) else 1 for b in seen] == [2, 1]
