"""Pure parts of the listener: parsing node replies, matching, event ids, the
reorg walk-back, range sizing and the late-address bookkeeping."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.listener.domain.addresses import BadAddress, WatchedSet, address_bytes, checksum
from services.listener.domain.backfill import LateAddresses
from services.listener.domain.chaindata import (
    TRANSFER_TOPIC,
    MalformedResponse,
    parse_block,
    parse_header,
    parse_receipt,
    parse_transfer_log,
    quantity,
)
from services.listener.domain.events import Head, Reorg, Transfer, subject
from services.listener.domain.matching import in_chain_order, match_logs, native_transfer
from services.listener.domain.ranges import AdaptiveRange, is_range_error, merge_ranges, split_range, suggested_range
from services.listener.domain.reorg import BlockHistory, find_common_ancestor

A = "0x" + "11" * 20
B = "0x" + "22" * 20
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
H = ["0x" + f"{i:064x}" for i in range(100)]


def h(tag: str, n: int) -> str:
    return "0x" + (tag * 2 + f"{n:062x}")[:64]


def block(n: int, txs=(), parent: str | None = None, tag: str = "a") -> dict:
    return {
        "number": hex(n),
        "hash": h(tag, n),
        "parentHash": parent or h(tag, n - 1),
        "timestamp": hex(1_700_000_000 + n),
        "transactions": list(txs),
    }


def tx(to: str | None, value: int, i: int = 0, sender: str = B) -> dict:
    return {"hash": h("f", i), "transactionIndex": hex(i), "from": sender, "to": to, "value": hex(value)}


def log(
    to: str,
    amount: int,
    *,
    token: str = TOKEN,
    n: int = 5,
    index: int = 0,
    removed: bool = False,
    topics: list[str] | None = None,
) -> dict:
    return {
        "address": token,
        "blockNumber": hex(n),
        "blockHash": h("a", n),
        "transactionHash": h("e", index),
        "transactionIndex": hex(index),
        "logIndex": hex(index),
        "removed": removed,
        "data": "0x" + f"{amount:064x}",
        "topics": topics or [TRANSFER_TOPIC, "0x" + "0" * 24 + B[2:], "0x" + "0" * 24 + to[2:]],
    }


# ---------------------------------------------------------------- addresses


def test_addresses_are_20_bytes_any_case():
    assert address_bytes(A.upper().replace("0X", "0x")) == bytes.fromhex("11" * 20)
    assert checksum(address_bytes(TOKEN.lower())) == TOKEN
    for bad in ("", "0x1234", "11" * 21, "0x" + "zz" * 20, None, 42):
        with pytest.raises(BadAddress):
            address_bytes(bad)  # type: ignore[arg-type]


def test_watched_set():
    watched = WatchedSet()
    assert watched.add(address_bytes(A)) and not watched.add(address_bytes(A))
    assert len(watched) == 1
    assert watched.contains_hex(A) and watched.contains_hex(A.upper().replace("0X", "0x"))
    assert not watched.contains_hex(B) and not watched.contains_hex("0xnothex" + "0" * 34)
    assert not watched.contains_hex(None)
    with pytest.raises(BadAddress):
        watched.add(b"short")


# ---------------------------------------------------------------- node replies


def test_quantity_and_header_validation():
    assert quantity("0x0", "x") == 0 and quantity("0x1f", "x") == 31
    for bad in ("1f", "0x", "0xzz", 31, None):
        with pytest.raises(MalformedResponse):
            quantity(bad, "x")
    header = parse_header(block(7))
    assert header.number == 7 and header.parent_hash == h("a", 6)
    for broken in ({}, [], {"number": "0x7"}, {**block(7), "hash": "0x12"}, {**block(7), "number": 7}):
        with pytest.raises(MalformedResponse):
            parse_header(broken)


def test_block_candidates_are_watched_value_transfers():
    watched = WatchedSet()
    watched.add(address_bytes(A))
    raw = block(5, [tx(A, 10, 0), tx(B, 10, 1), tx(A, 0, 2), tx(None, 10, 3), tx(A.lower(), 7, 4), h("c", 1)])
    parsed = parse_block(raw, watched.contains_hex)
    assert [(c.tx_index, c.value) for c in parsed.candidates] == [(0, 10), (4, 7)]
    assert parsed.tx_count == 6
    transfer = native_transfer(31337, parsed.header, parsed.candidates[0])
    assert transfer.log_index == -1 and transfer.token_address == ""
    assert transfer.to_address == checksum(address_bytes(A))
    with pytest.raises(MalformedResponse):
        parse_block({**raw, "transactions": "nope"}, watched.contains_hex)
    with pytest.raises(MalformedResponse):
        parse_block(block(5, [{**tx(A, 1, 0), "value": "lots"}]), watched.contains_hex)


def test_receipts():
    assert parse_receipt({"transactionHash": H[1], "blockHash": H[2], "status": "0x1"}).succeeded
    assert not parse_receipt({"transactionHash": H[1], "blockHash": H[2], "status": "0x0"}).succeeded
    assert parse_receipt({"transactionHash": H[1], "blockHash": H[2]}).succeeded  # pre-Byzantium
    with pytest.raises(MalformedResponse):
        parse_receipt({"blockHash": H[2]})


def test_transfer_logs():
    parsed = parse_transfer_log(log(A, 500))
    assert parsed is not None and parsed.amount == 500 and parsed.to_address == address_bytes(A)
    erc721 = log(A, 1, topics=[TRANSFER_TOPIC, "0x" + "0" * 64, "0x" + "0" * 24 + A[2:], "0x" + "0" * 63 + "1"])
    assert parse_transfer_log(erc721) is None
    assert parse_transfer_log({**log(A, 1), "data": "0x"}) is None
    with pytest.raises(MalformedResponse):
        parse_transfer_log({**log(A, 1), "blockHash": "0xbad"})


def test_match_logs_keeps_watched_configured_tokens_only():
    watched = WatchedSet()
    watched.add(address_bytes(A))
    tokens = frozenset({address_bytes(TOKEN)})
    raws = [
        log(A, 5, index=1),
        log(B, 5, index=2),  # not watched
        log(A, 0, index=3),  # zero value: spam
        log(A, 5, index=4, removed=True),
        log(A, 5, index=5, token="0x" + "33" * 20),  # another token
        {"topics": [TRANSFER_TOPIC]},  # anything not a 3-topic Transfer is skipped unparsed
    ]
    assert [m.log_index for m in match_logs(raws, watched, tokens)] == [1]
    with pytest.raises(MalformedResponse):
        match_logs({"not": "a list"}, watched, tokens)
    with pytest.raises(MalformedResponse):
        match_logs(["string"], watched, tokens)


# ---------------------------------------------------------------- events


def test_event_ids_and_subjects_follow_the_contract():
    t = Transfer(31337, 5, H[5], 1, H[9], 0, -1, A, B, "", 10)
    assert t.msg_id == f"transfer:31337:{H[9]}:-1:{H[5]}"
    assert Head(31337, 5, H[5], H[4], 1).msg_id == f"head:31337:5:{H[5]}"
    assert Reorg(31337, 3, H[3], (H[4],), 6, H[6]).msg_id == f"reorg:31337:{H[3]}:{H[6]}"
    assert subject(1, "head") == "paymesh.chain.1.head"
    later = Transfer(31337, 5, H[5], 1, H[8], 1, 0, A, B, TOKEN, 10)
    earlier = Transfer(31337, 5, H[5], 1, H[7], 1, -1, A, B, "", 10)
    assert in_chain_order([later, earlier, t]) == [t, earlier, later]


# ---------------------------------------------------------------- reorgs


def test_history_keeps_the_last_blocks_contiguously():
    history = BlockHistory(3, [(n, H[n]) for n in range(1, 6)])
    assert history.items() == [(3, H[3]), (4, H[4]), (5, H[5])]
    assert history.truncate_after(3) == [H[4], H[5]] and history.highest == 3
    history.append(7, H[7])  # a gap starts over
    assert history.items() == [(7, H[7])]


def canonical(chain: dict[int, str]):
    async def fetch(numbers):
        return {n: chain[n] for n in numbers if n in chain}

    return fetch


def run(coro):
    return asyncio.run(coro)


def test_walk_back_finds_the_common_ancestor():
    history = BlockHistory(10, [(n, h("a", n)) for n in range(10, 20)])
    chain = {n: h("a", n) if n <= 16 else h("b", n) for n in range(0, 25)}
    found = run(find_common_ancestor(history, canonical(chain)))
    assert (found.number, found.hash) == (16, h("a", 16))
    assert found.orphaned == (h("a", 17), h("a", 18), h("a", 19)) and not found.beyond_history
    same = run(find_common_ancestor(history, canonical({n: h("a", n) for n in range(25)})))
    assert same.number == 19 and same.orphaned == ()


def test_walk_back_when_the_chain_got_shorter_or_deeper_than_history():
    history = BlockHistory(5, [(n, h("a", n)) for n in range(10, 15)])
    shorter = run(find_common_ancestor(history, canonical({n: h("a", n) for n in range(0, 12)})))
    assert shorter.number == 11 and shorter.orphaned == (h("a", 12), h("a", 13), h("a", 14))
    deep = run(find_common_ancestor(history, canonical({n: h("c", n) for n in range(0, 20)})))
    assert deep.beyond_history and deep.number == 9 and deep.hash == h("c", 9) and len(deep.orphaned) == 5


@settings(max_examples=200, deadline=None)
@given(top=st.integers(5, 200), depth=st.integers(1, 64), fork=st.integers(0, 80), extra=st.integers(-5, 5))
def test_walk_back_property(top, depth, fork, extra):
    """Whatever the fork point, the ancestor is the highest shared block in the
    history (or below it), and exactly the stored blocks above it are orphaned."""
    low = max(0, top - depth + 1)
    history = BlockHistory(depth, [(n, h("a", n)) for n in range(low, top + 1)])
    fork_at = top - fork  # last shared block
    new_top = max(top + extra, 0)
    chain = {n: h("a", n) if n <= fork_at else h("b", n) for n in range(0, new_top + 1)}
    found = run(find_common_ancestor(history, canonical(chain), chunk=7))
    shared = [n for n in range(low, top + 1) if chain.get(n) == h("a", n)]
    if shared:
        assert found.number == max(shared) and not found.beyond_history
        assert found.orphaned == tuple(h("a", n) for n in range(found.number + 1, top + 1))
    else:
        assert found.beyond_history and found.number == max(low - 1, 0)


# ---------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    "code,message",
    [
        (-32005, "limit exceeded"),
        (-32602, "query returned more than 10000 results. Try with this block range [0x1, 0x2f]."),
        (-32000, "block range is too wide"),
        (-32000, "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range"),
        (-32600, "eth_getLogs is limited to a 10,000 range"),
        (-32000, "query timeout exceeded"),
    ],
)
def test_provider_range_errors_are_recognised(code, message):
    assert is_range_error(code, message)


def test_other_errors_are_not_range_errors():
    assert not is_range_error(-32603, "internal error")
    assert not is_range_error(-32000, "header not found")


def test_adaptive_range():
    r = AdaptiveRange(1000, minimum=10, maximum=4000)
    assert r.shrink("too many") == 500
    assert r.shrink("more than 10000 results. Try with this block range [0x10, 0x4f].") == 64
    assert suggested_range("nothing here") is None
    for _ in range(10):
        r.shrink("too many")
    assert r.size == 10 and r.at_minimum
    assert r.observe(blocks=10, results=5, seconds=0.01) == 10  # the provider's limit: stay below it
    r = AdaptiveRange(1000, minimum=10, maximum=4000, probe_after=3)
    assert r.observe(blocks=1000, results=5, seconds=0.01) == 2000
    assert r.observe(blocks=5, results=5, seconds=0.01) == 2000  # a short call proves nothing
    assert r.observe(blocks=2000, results=50_000, seconds=0.01) == 2000  # expensive: stay
    assert r.shrink("too many", asked=2000) == 1000
    for _ in range(2):
        assert r.observe(blocks=1000, results=0, seconds=0.01) == 1000
    assert r.observe(blocks=1000, results=0, seconds=0.01) == 2000  # probing past the old limit again
    for _ in range(10):
        r.observe(blocks=r.size, results=0, seconds=0.01)
    assert r.size == 4000
    with pytest.raises(ValueError):
        AdaptiveRange(10, minimum=5, maximum=1)


def test_merge_and_split_ranges():
    assert merge_ranges([(5, 9), (1, 3), (4, 4), (20, 25), (22, 30), (8, 7)]) == [(1, 9), (20, 30)]
    assert split_range(1, 10, 4) == [(1, 4), (5, 8), (9, 10)]
    assert split_range(5, 5, 100) == [(5, 5)]


# ---------------------------------------------------------------- late addresses


def test_late_addresses_use_the_saved_mark():
    late = LateAddresses(margin_seconds=60)
    late.add(from_block=10, created_at=1000.0, covered_mark=2000.0)  # long before the mark: covered
    late.add(from_block=30, created_at=1990.0, covered_mark=2000.0)  # within the margin: backfill
    late.add(from_block=25, created_at=2500.0, covered_mark=2000.0)
    assert len(late) == 2
    assert late.high_water() == pytest.approx(1990.0 - 1e-3)
    backfill_id, first, oldest = late.take(scanned_through=40)
    assert (first, oldest) == (25, 1990.0) and len(late) == 0
    assert late.high_water() == pytest.approx(1990.0 - 1e-3)  # still in flight
    late.done(backfill_id)
    assert late.high_water() == 2500.0


def test_late_addresses_ahead_of_the_scan_need_no_backfill():
    late = LateAddresses(margin_seconds=0)
    late.add(from_block=50, created_at=1.0, covered_mark=None)
    assert late.take(scanned_through=49) is None
    assert late.take(scanned_through=60) is None  # taken already


def test_standby_forgets_what_the_leader_covered():
    late = LateAddresses(margin_seconds=10)
    late.add(1, 100.0, None)
    late.add(3, 200.0, None)
    late.forget_covered(150.0)
    assert len(late) == 1 and late.high_water() == pytest.approx(200.0 - 1e-3)
    late.add(2, 300.0, None)
    assert late.take(5)[1:] == (2, 200.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=20, max_size=20), max_size=3000), st.lists(st.binary(min_size=20, max_size=20)))
def test_the_packed_watched_set_answers_as_a_set_does(added, probes):
    WatchedSet.MIN_REPACK = 16  # repack often: every path is exercised
    try:
        watched, plain = WatchedSet(), set()
        for address in added:
            assert watched.add(address) == (address not in plain)
            plain.add(address)
        assert len(watched) == len(plain)
        for address in [*added, *probes]:
            assert (address in watched) == (address in plain)
            assert watched.contains_hex("0x" + address.hex()) == (address in plain)
        # A value straddling two packed entries is not a member.
        if len(added) >= 2:
            straddle = added[0][10:] + added[1][:10]
            assert (straddle in watched) == (straddle in plain)
    finally:
        WatchedSet.MIN_REPACK = 4096
