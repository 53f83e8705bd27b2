"""Internal transfers from call traces (services/listener/domain/traces.py), on
trace results recorded from anvil (fixtures/internal_traces.json) and on shapes
other nodes return."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from services.listener.domain.addresses import WatchedSet, address_bytes
from services.listener.domain.chaindata import BlockHeader, MalformedResponse
from services.listener.domain.events import Transfer
from services.listener.domain.matching import in_chain_order, internal_transfer
from services.listener.domain.traces import (
    TraceOfAnotherBlock,
    internal_log_index,
    match_call_traces,
    match_parity_traces,
)

RECORDED = json.loads((Path(__file__).parent / "fixtures" / "internal_traces.json").read_text())
A, B, UNDONE, BOMBED, FAILED = RECORDED["watched"]
FORWARDER = RECORDED["forwarder"]


def watched(*addresses: str) -> WatchedSet:
    w = WatchedSet()
    for a in addresses:
        w.add(address_bytes(a))
    return w


ALL = watched(*RECORDED["watched"])


def both(name: str, is_watched=ALL.contains_hex) -> tuple[list, list]:
    """The block's internal transfers by each trace format."""
    blk = RECORDED["blocks"][name]
    return (
        match_call_traces(blk["debug_traceBlockByHash"], blk["tx_count"], is_watched),
        match_parity_traces(blk["trace_block"], blk["block_hash"], blk["tx_count"], is_watched),
    )


def summary(found) -> list[tuple]:
    return [(t.tx_hash, t.tx_index, t.ordinal, "0x" + t.to_address.hex(), t.value) for t in found]


def test_a_split_pays_both_addresses_and_skips_the_failed_send():
    blk = RECORDED["blocks"]["split"]
    call, parity = both("split")
    assert (
        summary(call)
        == summary(parity)
        == [
            (blk["tx_hash"], 0, 0, A, 5000),
            (blk["tx_hash"], 0, 1, B, 7000),  # the failed send in between took no effect: not counted
        ]
    )
    assert call[0].from_address == address_bytes(FORWARDER)
    assert [t.log_index for t in call] == [-2, -3]


def test_value_undone_by_a_reverting_caller_or_a_failed_transaction_is_never_found():
    for name in ("nested", "failed"):
        call, parity = both(name)
        assert call == parity == [], name


def test_a_self_destruct_into_a_watched_address_is_found():
    blk = RECORDED["blocks"]["selfdestruct"]
    call, parity = both("selfdestruct")
    assert summary(call) == summary(parity) == [(blk["tx_hash"], 0, 0, BOMBED, 11_000)]
    assert call[0].from_address == parity[0].from_address != address_bytes(FORWARDER)  # the created contract


def test_unwatched_recipients_are_not_found():
    call, parity = both("split", watched(B).contains_hex)
    assert [t.value for t in call] == [t.value for t in parity] == [7000]


def test_the_top_call_is_never_an_internal_transfer():
    """A transaction's own value is matched from the block body (log index -1)."""
    call, parity = both("split", watched(FORWARDER).contains_hex)
    assert call == parity == []


def test_log_indexes_never_collide_with_logs_or_the_native_transfer():
    assert internal_log_index(0) == -2 and internal_log_index(40) == -42


def test_internal_transfers_order_after_the_transaction_own_value_and_before_its_logs():
    header = BlockHeader(7, "0x" + "ab" * 32, "0x" + "cd" * 32, 1)
    call, _ = both("split")
    internal = [internal_transfer(31337, header, t) for t in reversed(call)]
    own = Transfer(31337, 7, header.hash, 1, call[0].tx_hash, 0, -1, "0x", "0x", "", 1)
    log = Transfer(31337, 7, header.hash, 1, call[0].tx_hash, 0, 0, "0x", "0x", "0xT", 1)
    assert [t.log_index for t in in_chain_order([log, *internal, own])] == [-1, -2, -3, 0]


def test_call_traces_without_tx_hashes_leave_them_for_the_caller():
    blk = copy.deepcopy(RECORDED["blocks"]["split"])
    for entry in blk["debug_traceBlockByHash"]:
        entry.pop("txHash")
    (first, _second) = match_call_traces(blk["debug_traceBlockByHash"], blk["tx_count"], ALL.contains_hex)
    assert first.tx_hash == "" and first.tx_index == 0


def test_parity_reward_traces_are_skipped_and_hex_positions_accepted():
    blk = copy.deepcopy(RECORDED["blocks"]["split"])
    traces = blk["trace_block"]
    for t in traces:
        t["transactionPosition"] = hex(t["transactionPosition"])
    traces.append(
        {
            "action": {"author": A, "rewardType": "block", "value": "0x1bc16d674ec80000"},
            "blockHash": blk["block_hash"],
            "blockNumber": 1,
            "result": None,
            "subtraces": 0,
            "traceAddress": [],
            "transactionHash": None,
            "transactionPosition": None,
            "type": "reward",
        }
    )
    assert [t.value for t in match_parity_traces(traces, blk["block_hash"], 1, ALL.contains_hex)] == [5000, 7000]


def test_a_trace_of_another_block_is_a_reorg_while_reading():
    blk = RECORDED["blocks"]["split"]
    with pytest.raises(TraceOfAnotherBlock):
        match_parity_traces(blk["trace_block"], "0x" + "00" * 32, 1, ALL.contains_hex)


@pytest.mark.parametrize(
    "broken, message",
    [
        (lambda r: {"not": "a list"}, "expected a list"),
        (lambda r: r + r, "2 traces for a block of 1 transactions"),
        (lambda r: [{"txHash": r[0]["txHash"], "error": "execution timeout"}], "could not trace"),
        (
            lambda r: [{**r[0], "result": {**r[0]["result"], "calls": [{**r[0]["result"]["calls"][0], "value": 5}]}}],
            "value",
        ),
        (lambda r: [{**r[0], "result": {**r[0]["result"], "calls": "nope"}}], "calls: expected a list"),
    ],
)
def test_malformed_call_traces_are_refused_with_where(broken, message):
    blk = RECORDED["blocks"]["split"]
    with pytest.raises(MalformedResponse, match=message):
        match_call_traces(broken(copy.deepcopy(blk["debug_traceBlockByHash"])), blk["tx_count"], ALL.contains_hex)


@pytest.mark.parametrize(
    "broken, message",
    [
        (lambda r: "nope", "expected a list"),
        (lambda r: [{**t, "traceAddress": 3} for t in r], "traceAddress"),
        (lambda r: [{**t, "traceAddress": ["x"]} for t in r], "traceAddress"),
        (lambda r: [], "top-level traces for 0 transactions"),
        (lambda r: r[1:], "top-level traces for 0 transactions"),
        (lambda r: [r[0], {**r[1], "action": {**r[1]["action"], "value": "lots"}}], "action.value"),
        (lambda r: [{k: v for k, v in t.items() if k != "blockHash"} for t in r], "blockHash"),
    ],
)
def test_malformed_parity_traces_are_refused_with_where(broken, message):
    blk = RECORDED["blocks"]["split"]
    with pytest.raises(MalformedResponse, match=message):
        match_parity_traces(broken(copy.deepcopy(blk["trace_block"])), blk["block_hash"], 1, ALL.contains_hex)


# ---------------------------------------------------------------- the same names from both formats

H = "0x" + "ab" * 32
TX = "0x" + "cd" * 32
SENDER, WALLET = "0x" + "aa" * 20, "0x" + "bb" * 20
ECRECOVER, IDENTITY = "0x" + "00" * 19 + "01", "0x" + "00" * 19 + "04"


def _parity(path, kind, action, error=None):
    trace = {
        "action": action,
        "blockHash": H,
        "blockNumber": 9,
        "result": {},
        "subtraces": 0,
        "traceAddress": path,
        "transactionHash": TX,
        "transactionPosition": 0,
        "type": kind,
    }
    if error:
        trace["error"] = error
    return trace


def _call(frm, to, value, callType="call"):  # noqa: N803 - the node's field name
    return {"from": frm, "to": to, "value": hex(value), "callType": callType, "gas": "0x0", "input": "0x"}


def test_precompile_calls_listed_by_one_format_only_do_not_shift_the_names():
    """callTracer lists calls to precompiles (a Safe checks signatures with ecrecover
    first; a call may even send value to one); trace_block does not."""
    call_trace = [
        {
            "txHash": TX,
            "result": {
                "type": "CALL",
                "from": SENDER,
                "to": WALLET,
                "value": "0x0",
                "calls": [
                    {"type": "STATICCALL", "from": WALLET, "to": ECRECOVER},
                    {"type": "CALL", "from": WALLET, "to": IDENTITY, "value": "0x5"},
                    {"type": "CALL", "from": WALLET, "to": A, "value": "0x64"},
                ],
            },
        }
    ]
    parity = [_parity([], "call", _call(SENDER, WALLET, 0)), _parity([0], "call", _call(WALLET, A, 100))]
    via_call = match_call_traces(call_trace, 1, ALL.contains_hex)
    via_parity = match_parity_traces(parity, H, 1, ALL.contains_hex)
    assert summary(via_call) == summary(via_parity) == [(TX, 0, 0, A, 100)]


def test_a_self_destruct_listed_before_its_earlier_siblings_keeps_its_name():
    """Some nodes list a `suicide` trace right after its parent, though its
    traceAddress makes it the last child: order comes from traceAddress."""
    call_trace = [
        {
            "txHash": TX,
            "result": {
                "type": "CALL",
                "from": SENDER,
                "to": WALLET,
                "value": "0x0",
                "calls": [
                    {"type": "CALL", "from": WALLET, "to": A, "value": "0x1"},
                    {"type": "SELFDESTRUCT", "from": WALLET, "to": B, "value": "0x2"},
                ],
            },
        }
    ]
    parity = [
        _parity([], "call", _call(SENDER, WALLET, 0)),
        _parity([1], "suicide", {"address": WALLET, "refundAddress": B, "balance": "0x2"}),
        _parity([0], "call", _call(WALLET, A, 1)),
    ]
    via_call = match_call_traces(call_trace, 1, ALL.contains_hex)
    via_parity = match_parity_traces(parity, H, 1, ALL.contains_hex)
    assert summary(via_call) == summary(via_parity) == [(TX, 0, 0, A, 1), (TX, 0, 1, B, 2)]


def test_reverted_frames_listed_by_one_format_only_do_not_shift_the_names():
    call_trace = [
        {
            "txHash": TX,
            "result": {
                "type": "CALL",
                "from": SENDER,
                "to": WALLET,
                "value": "0x0",
                "calls": [
                    {
                        "type": "CALL",
                        "from": WALLET,
                        "to": B,
                        "value": "0x9",
                        "error": "insufficient balance for transfer",
                    },
                    {"type": "CALL", "from": WALLET, "to": A, "value": "0x3"},
                ],
            },
        }
    ]
    parity = [_parity([], "call", _call(SENDER, WALLET, 0)), _parity([0], "call", _call(WALLET, A, 3))]
    assert (
        summary(match_call_traces(call_trace, 1, ALL.contains_hex))
        == summary(match_parity_traces(parity, H, 1, ALL.contains_hex))
        == [(TX, 0, 0, A, 3)]
    )
