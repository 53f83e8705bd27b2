"""The settler's state machine on a simulated chain (tests/unit/sweeper_fakes.py):
every way a group of same-nonce transactions can end, typed (Mined | Reorged |
Failed), and the ledger told each state before the settler acts on it."""

from __future__ import annotations

import pytest

from services.sweeper.domain.model import TxState
from services.sweeper.domain.recovery import TxGroup
from services.sweeper.domain.releases import ReleaseCategory
from services.sweeper.domain.send_errors import SendOutcome
from services.sweeper.domain.settlement import Failed, Mined, Reorged
from services.sweeper.releases import ReleasePayment
from tests.unit.sweeper_fakes import ETHER, TOKEN, harness, job

pytestmark = pytest.mark.unit

INSUFFICIENT = (SendOutcome.INSUFFICIENT_FUNDS, "insufficient funds for gas * price + value")


async def recorded_native_sweep(h):
    """A native sweep of the whole deposit, signed and recorded (not broadcast): the group to settle."""
    h.chain.balances[h.deposit] = h.job.amount
    strategy = h.native()
    tx = await h.journal.record(await strategy.sign())
    return strategy, tx


def states(h, tx_hash: str) -> list[TxState]:
    return [state for hash_, state, *_ in h.ledger.updates if hash_ == tx_hash]


async def test_mined_deep_enough_is_mined():
    h = harness(confirmations=3)
    strategy, tx = await recorded_native_sweep(h)
    outcome = await h.settler.settle(TxGroup.of(tx), strategy)
    assert isinstance(outcome, Mined) and outcome.tx is tx
    block = int(outcome.receipt["blockNumber"], 16)
    # Its block and 2 on top: returned at that head, not one block earlier.
    assert h.chain.height == block + 2
    assert states(h, tx.tx_hash) == [TxState.BROADCAST, TxState.MINED]
    assert tx.state is TxState.MINED and tx.block_number == block and tx.fee == 21_000 * 30
    assert h.chain.sent == [tx.tx_hash]  # the recorded bytes, once


async def test_mined_then_gone_at_depth_is_reorged_then_settled_again():
    h = harness(confirmations=3)
    strategy, tx = await recorded_native_sweep(h)
    group = TxGroup.of(tx)
    await h.journal.broadcast(tx)
    await h.clock.sleep(1.0)  # mined in the next block
    first_block = int((await h.chain.receipt(tx.tx_hash))["blockNumber"], 16)
    h.chain.at_height(first_block + 2, lambda: h.chain.orphan(tx.tx_hash))  # gone just as it got deep enough

    found = await h.settler.check_mined(group, strategy, deadline=h.clock() + 60, depth=3)
    assert found == Reorged(tx)
    assert tx.state is TxState.BROADCAST  # open again, in the ledger first
    assert states(h, tx.tx_hash) == [TxState.BROADCAST, TxState.MINED, TxState.BROADCAST]

    outcome = await h.settler.settle(group, strategy)  # the node mines it again
    assert isinstance(outcome, Mined) and outcome.tx is tx
    block = int(outcome.receipt["blockNumber"], 16)
    assert block > first_block and tx.block_number == block
    assert states(h, tx.tx_hash)[-1] is TxState.MINED
    assert h.ledger.state_of(tx.tx_hash) is TxState.MINED


async def test_reverted_is_failed_with_the_reason():
    h = harness()
    strategy, tx = await recorded_native_sweep(h)
    h.chain.reverting.add(tx.tx_hash)
    outcome = await h.settler.settle(TxGroup.of(tx), strategy)
    assert isinstance(outcome, Failed) and outcome.receipt is not None
    block = int(outcome.receipt["blockNumber"], 16)
    assert outcome.reason == f"transaction {tx.tx_hash} reverted in block {block}"
    assert h.ledger.state_of(tx.tx_hash) is TxState.FAILED
    assert h.ledger.recorded[tx.tx_hash].error == outcome.reason


async def test_a_token_transfer_that_moved_another_amount_is_failed():
    h = harness(the_job=job(5_000_000, token=True))
    strategy = h.token()
    h.chain.balances[h.deposit] = ETHER  # gas is paid for: no top-up
    h.chain.token_balances[(TOKEN, h.deposit)] = h.job.amount
    h.chain.transfer_shortfall = 7  # a fee-on-transfer token
    tx = await h.journal.record(await strategy.sign())
    outcome = await h.settler.settle(TxGroup.of(tx), strategy)
    assert isinstance(outcome, Failed) and outcome.receipt is not None
    assert outcome.reason == (
        f"token transfer {tx.tx_hash} succeeded but moved 4999993 instead of 5000000 (non-standard token?)"
    )
    assert h.ledger.state_of(tx.tx_hash) is TxState.FAILED


async def test_nonce_used_elsewhere_is_failed_and_nothing_is_sent():
    h = harness()
    strategy, tx = await recorded_native_sweep(h)
    h.chain.use_nonce_elsewhere(h.deposit, tx.nonce)  # e.g. someone with the key sent something else
    outcome = await h.settler.settle(TxGroup.of(tx), strategy)
    assert isinstance(outcome, Failed) and outcome.receipt is None
    assert outcome.reason == (
        f"nonce too low: nonce {tx.nonce} of {h.deposit} was used by a transaction the sweeper did not record"
    )
    assert h.ledger.state_of(tx.tx_hash) is TxState.FAILED and h.chain.sent == []


async def test_replacement_refused_for_insufficient_funds_keeps_the_original_live():
    h = harness(auto_mine=False, stuck_after=30.0)
    strategy, original = await recorded_native_sweep(h)
    h.chain.at_height(110, lambda: h.chain.answers.append(INSUFFICIENT))  # for the replacement's broadcast
    h.chain.at_height(140, lambda: h.chain.include(original.tx_hash))  # the original gets mined after all
    outcome = await h.settler.settle(TxGroup.of(original), strategy)
    assert isinstance(outcome, Mined) and outcome.tx is original
    (replacement,) = [t for t in h.ledger.recorded.values() if t.replaces_tx_hash == original.tx_hash]
    assert replacement.state is TxState.FAILED
    assert replacement.error == f"replacement refused: {INSUFFICIENT[1]}"
    # The ledger saw the original REPLACED, then live again, then mined.
    assert states(h, original.tx_hash) == [TxState.BROADCAST, TxState.BROADCAST, TxState.MINED]
    assert h.ledger.state_of(original.tx_hash) is TxState.MINED


async def test_replacement_lost_and_refused_on_rebroadcast_brings_the_original_back():
    h = harness(auto_mine=False, stuck_after=30.0)
    strategy, original = await recorded_native_sweep(h)

    def node_loses_the_replacement():
        (replacement_hash,) = h.chain.mempool  # it took the original's place
        h.chain.drop(replacement_hash)
        h.chain.answers.append(INSUFFICIENT)  # sending it again: the node says no
        h.chain.auto_mine = True  # whatever the node takes from now on is mined

    h.chain.at_height(135, node_loses_the_replacement)
    outcome = await h.settler.settle(TxGroup.of(original), strategy)
    assert isinstance(outcome, Mined) and outcome.tx is original
    (replacement,) = [t for t in h.ledger.recorded.values() if t.replaces_tx_hash == original.tx_hash]
    assert replacement.state is TxState.FAILED and replacement.error == f"insufficient funds: {INSUFFICIENT[1]}"
    assert states(h, replacement.tx_hash)[-1] is TxState.FAILED
    assert states(h, original.tx_hash)[-2:] == [TxState.BROADCAST, TxState.MINED]


async def test_settle_timeout_releases_and_the_transaction_stays_recorded():
    h = harness(auto_mine=False, stuck_after=10_000.0, settle_timeout=60.0)
    strategy, tx = await recorded_native_sweep(h)
    with pytest.raises(ReleasePayment) as raised:
        await h.settler.settle(TxGroup.of(tx), strategy)
    release = raised.value.release
    assert release.reason == (
        f"transaction {tx.tx_hash} (nonce {tx.nonce}) is still not confirmed after 60 s; it stays recorded and "
        "the sweep resumes later"
    )
    assert (release.retry_after, release.category, release.hand_back) == (30, ReleaseCategory.ERROR, True)
    assert h.ledger.state_of(tx.tx_hash) is TxState.BROADCAST  # a later claim resumes it


async def test_mined_but_not_deep_at_the_timeout_releases():
    h = harness(confirmations=3, settle_timeout=60.0)
    strategy, tx = await recorded_native_sweep(h)
    h.chain.at_height(102, h.chain.freeze)  # mined in 101; the chain stalls one block later
    with pytest.raises(ReleasePayment) as raised:
        await h.settler.settle(TxGroup.of(tx), strategy)
    assert raised.value.release.reason == (
        f"transaction {tx.tx_hash} is mined in block 101 but has fewer than 3 confirmations yet (its block is "
        "the first); the sweep resumes later"
    )
    assert h.ledger.state_of(tx.tx_hash) is TxState.MINED


async def test_a_replica_without_the_signer_lease_never_replaces():
    h = harness(auto_mine=False, stuck_after=5.0, settle_timeout=60.0)
    strategy, tx = await recorded_native_sweep(h)
    h.keeper.held = False  # lease lost after the sweep was recorded
    with pytest.raises(ReleasePayment):
        await h.settler.settle(TxGroup.of(tx), strategy)
    assert list(h.ledger.recorded) == [tx.tx_hash]  # stuck for a minute, and nothing new signed


async def test_underpriced_on_broadcast_is_replaced_at_once():
    h = harness(stuck_after=10_000.0)
    strategy, original = await recorded_native_sweep(h)
    h.chain.answers.append((SendOutcome.UNDERPRICED, "max fee per gas less than block base fee"))
    outcome = await h.settler.settle(TxGroup.of(original), strategy)
    assert isinstance(outcome, Mined) and outcome.tx.replaces_tx_hash == original.tx_hash
    assert outcome.tx.max_fee_per_gas * 10_000 >= original.max_fee_per_gas * 11_250
    assert h.ledger.state_of(original.tx_hash) is TxState.REPLACED
