"""One payment's sweep wired on the fakes (payment_sweep, transfer strategies, gas
wallet, journal, settler): the native coin leaves exactly zero, a token sweep tops
up gas first, a recorded transaction is resumed with the same bytes (never signed
again), and the gas wallet's one nonce cursor hands out each nonce once."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from services.sweeper.domain.model import TxKind, TxState
from services.sweeper.domain.send_errors import SendOutcome
from tests.unit.sweeper_fakes import ETHER, TOKEN, TREASURY, harness, job

pytestmark = pytest.mark.unit


async def test_native_sweep_leaves_exactly_zero_and_completes():
    h = harness(job(ETHER + 12_345))
    h.chain.balances[h.deposit] = ETHER + 12_345
    await h.sweep.run()
    ((key, tx_hash, amount, fee),) = h.ledger.completed
    assert key == h.job.key and fee == 21_000 * 30
    assert amount + fee == ETHER + 12_345  # the value reached the treasury, the rest paid the gas
    assert h.chain.balances[h.deposit] == 0 and h.chain.balances[TREASURY] == amount
    assert [(t.kind, t.state) for t in h.job.transactions] == [(TxKind.SWEEP, TxState.CONFIRMED)]
    assert h.job.transactions[0].tx_hash == tx_hash


async def test_token_sweep_tops_up_gas_then_transfers():
    h = harness(job(25_000_000, token=True))
    h.chain.token_balances[(TOKEN, h.deposit)] = 25_000_000
    h.chain.balances[h.gas_wallet.address] = ETHER
    await h.sweep.run()
    topup, sweep = h.job.transactions
    assert (topup.kind, topup.state, topup.to_address) == (TxKind.GAS_TOPUP, TxState.CONFIRMED, h.deposit)
    assert topup.amount == 55_000 * 30  # the transfer's gas limit (estimate + 10 %) at the market fee
    assert (sweep.kind, sweep.state, sweep.amount) == (TxKind.SWEEP, TxState.CONFIRMED, 25_000_000)
    assert h.chain.token_balances[(TOKEN, TREASURY)] == 25_000_000 and h.chain.token_balances[(TOKEN, h.deposit)] == 0
    ((_, tx_hash, amount, _fee),) = h.ledger.completed
    assert (tx_hash, amount) == (sweep.tx_hash, 25_000_000)


async def test_a_recorded_sweep_is_resumed_with_the_same_bytes():
    """A crash after RecordSweepTransaction, before the broadcast: the next claim carries the
    recorded transaction; the sweep sends those bytes and signs nothing new."""
    first = harness(job(2 * ETHER))
    first.chain.balances[first.deposit] = 2 * ETHER
    recorded = await first.journal.record(await first.native().sign())

    again = harness(job(2 * ETHER, transactions=[dataclasses.replace(recorded)]))
    again.chain.balances[again.deposit] = 2 * ETHER
    await again.sweep.run()
    assert again.chain.sent == [recorded.tx_hash]
    assert list(again.ledger.recorded) == [recorded.tx_hash]  # nothing else signed
    assert again.ledger.completed[0][1] == recorded.tx_hash


async def test_a_recorded_sweep_that_can_never_be_mined_is_signed_again():
    first = harness(job(ETHER))
    first.chain.balances[first.deposit] = ETHER
    recorded = await first.journal.record(await first.native().sign())

    again = harness(job(ETHER, transactions=[dataclasses.replace(recorded)]))
    again.chain.balances[again.deposit] = ETHER
    again.chain.use_nonce_elsewhere(again.deposit, recorded.nonce)  # a transaction nobody recorded took it
    await again.sweep.run()
    old, new = again.job.transactions
    assert (old.tx_hash, old.state) == (recorded.tx_hash, TxState.FAILED) and "nonce too low" in old.error
    assert new.state is TxState.CONFIRMED and new.nonce == old.nonce + 1
    assert again.chain.sent == [new.tx_hash]  # the dead one was never sent


async def test_concurrent_top_ups_get_one_nonce_each():
    h = harness()
    h.chain.auto_mine = False
    h.chain.balances[h.gas_wallet.address] = ETHER
    deposits = ["0x" + f"{i:040x}" for i in range(1, 4)]
    sent = await asyncio.gather(*(h.gas_wallet.send_top_up(d, 1_000, h.journal) for d in deposits))
    assert sorted(t.nonce for t in sent) == [0, 1, 2]
    assert {t.to_address for t in sent} == set(deposits)


async def test_a_gas_wallet_nonce_used_elsewhere_fails_that_top_up_and_signs_again():
    h = harness()
    h.chain.auto_mine = False
    h.chain.balances[h.gas_wallet.address] = ETHER
    node_send = h.chain.send

    async def operator_sends_first(raw_tx: bytes) -> tuple[SendOutcome, str]:
        h.chain.use_nonce_elsewhere(h.gas_wallet.address, 0)  # the operator's own transaction got there first
        h.chain.send = node_send
        return await node_send(raw_tx)

    h.chain.send = operator_sends_first
    sent = await h.gas_wallet.send_top_up(h.deposit, 1_000, h.journal)
    failed, ok = h.job.transactions
    assert failed.state is TxState.FAILED and "nonce too low: nonce 0 of the gas wallet" in failed.error
    assert ok is sent and ok.nonce == 1 and ok.state is TxState.BROADCAST and h.chain.sent == [ok.tx_hash]
