"""The listener's JSON-RPC client against a scripted transport: retries what can
get better, raises what cannot, never returns a malformed answer; and the
protobuf encoding of its events."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from paymesh.events.v1 import chain_events_pb2 as cpb

from services.listener.adapters.chain_rpc import HttpRpc, RpcError, RpcUnavailable
from services.listener.adapters.event_publisher import encode
from services.listener.domain.chaindata import MalformedResponse
from services.listener.domain.events import Head, Reorg, Transfer

H = "0x" + "ab" * 32


def scripted(*replies):
    """A transport answering each request with the next reply: a callable of the
    request body, or (status, bytes)."""
    seen: list = []
    queue = list(replies)

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        reply = queue.pop(0) if queue else queue_default(body)
        if callable(reply):
            reply = reply(body)
        status, content = reply
        if isinstance(content, Exception):
            raise content
        return httpx.Response(status, content=content)

    def queue_default(body):
        return ok(body)

    return httpx.MockTransport(handle), seen


def ok(body, result="0x10"):
    if isinstance(body, list):
        return 200, json.dumps([{"jsonrpc": "2.0", "id": b["id"], "result": result} for b in body]).encode()
    return 200, json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": result}).encode()


def client(transport, attempts=3) -> HttpRpc:
    return HttpRpc(
        "http://node", chain_id=1, attempts=attempts, max_batch=2, client=httpx.AsyncClient(transport=transport)
    )


def run(coro):
    return asyncio.run(coro)


def test_transient_failures_are_retried_then_succeed():
    transport, seen = scripted(
        (500, b"<html>oops</html>"),
        (200, b"not json"),
        ok,
    )
    rpc = client(transport)
    assert run(rpc.call("eth_blockNumber")) == "0x10"
    assert len(seen) == 3 and rpc.last_error == ""


@pytest.mark.parametrize(
    "reply,error",
    [
        ((200, b"\x00garbage"), MalformedResponse),
        ((200, b'{"jsonrpc": "2.0", "id": 999, "result": "0x1"}'), MalformedResponse),  # wrong id
        ((200, b'{"jsonrpc": "2.0", "id": 1}'), MalformedResponse),  # neither result nor error
        ((200, b"[]"), MalformedResponse),
        ((503, b"busy"), RpcUnavailable),
        ((200, httpx.ConnectError("refused")), RpcUnavailable),
    ],
)
def test_what_keeps_failing_raises_after_the_attempts(reply, error):
    transport, seen = scripted(reply, reply, reply)
    rpc = client(transport)
    with pytest.raises(error):
        run(rpc.call("eth_blockNumber"))
    assert len(seen) == 3 and rpc.last_error


def test_json_rpc_errors():
    def err(code, message):
        return lambda body: (
            200,
            json.dumps({"jsonrpc": "2.0", "id": body["id"], "error": {"code": code, "message": message}}).encode(),
        )

    transport, seen = scripted(err(-32603, "internal"), ok)
    assert run(client(transport).call("eth_blockNumber")) == "0x10"  # retried
    transport, seen = scripted(err(-32601, "no such method"))
    with pytest.raises(RpcError) as info:
        run(client(transport).call("eth_getBlockReceipts", ["0x1"]))
    assert info.value.code == -32601 and len(seen) == 1  # not retried
    transport, seen = scripted(err(-32005, "query returned more than 10000 results"))
    with pytest.raises(RpcError) as info:
        run(client(transport).call("eth_getLogs", [{}]))
    assert info.value.is_range_error and len(seen) == 1  # the caller shrinks the range


def test_batches_are_split_and_checked():
    transport, seen = scripted()
    rpc = client(transport)
    assert run(rpc.batch("eth_getBlockByNumber", [["0x1", False], ["0x2", False], ["0x3", False]])) == ["0x10"] * 3
    assert [len(b) if isinstance(b, list) else 1 for b in seen] == [2, 1]  # max_batch=2; a single one goes alone

    def missing(body):  # one reply short
        status, content = ok(body)
        return status, json.dumps(json.loads(content)[:-1]).encode()

    transport, seen = scripted(missing, missing, missing)
    with pytest.raises(MalformedResponse):
        run(client(transport).batch("eth_getBlockByNumber", [["0x1", False], ["0x2", False]]))

    def refused(body):  # some providers answer a batch with one error object
        error = {"code": -32600, "message": "batch requests are not supported"}
        return 200, json.dumps({"jsonrpc": "2.0", "id": None, "error": error}).encode()

    transport, seen = scripted(refused)
    rpc = client(transport)
    assert run(rpc.batch("m", [[1], [2]])) == ["0x10", "0x10"]  # then one by one
    assert not rpc.batching and [isinstance(b, list) for b in seen] == [True, False, False]


def test_events_encode_to_the_contract():
    t = cpb.TransferObserved.FromString(encode(Transfer(1, 5, H, 1700000000, H, 0, -1, "0xA", "0xB", "", 10**30)))
    assert t.amount == str(10**30) and t.log_index == -1 and t.block_timestamp.seconds == 1700000000
    h = cpb.HeadObserved.FromString(encode(Head(1, 5, H, H, 7)))
    assert (h.number, h.hash, h.timestamp.seconds) == (5, H, 7)
    r = cpb.ReorgObserved.FromString(encode(Reorg(1, 3, H, (H, H), 6, H)))
    assert list(r.orphaned_block_hashes) == [H, H] and r.new_head_number == 6
