"""Sweep jobs keyed by (payment, chain, asset): one payment with an ETH job and a
TUSD job on one chain, on one deposit address, swept by the chain sweeper on the
fakes. Each job is swept, recorded, completed and released on its own: each
completes with its own figures, releasing one leaves the other alone, and the
write-ahead resume of one never rebroadcasts (or completes with) the other's
transaction. Jobs that share the deposit key sign one after the other, the
native coin first."""

from __future__ import annotations

import asyncio

import pytest

from services.common.errors import Unavailable
from services.sweeper.domain.model import RecordedTx, SweepJobKey, TxKind, TxState
from services.sweeper.domain.policy import SweepPolicy
from services.sweeper.transfer_strategies import Transfer
from tests.unit.sweeper_fakes import (
    CHAIN_ID,
    DEPOSIT_PATH,
    ETHER,
    LOG,
    TOKEN,
    TREASURY,
    FakeClockChainSweeper,
    chain_config,
    harness,
    job,
    keys,
)

pytestmark = pytest.mark.unit

PAYMENT = "pay_two_assets"
TOKENS = 25_000_000


def two_jobs(eth: int = ETHER, tusd: int = TOKENS):
    """The harness of the payment's ETH job, and its TUSD job on the same address."""
    eth_job = job(eth, payment_id=PAYMENT)
    tusd_job = job(tusd, token=True, payment_id=PAYMENT)
    h = harness(eth_job)
    h.chain.balances[h.deposit] = eth
    h.chain.token_balances[(TOKEN, h.deposit)] = tusd
    h.chain.balances[h.gas_wallet.address] = ETHER
    h.ledger.jobs = [eth_job, tusd_job]
    sweeper = FakeClockChainSweeper(
        h.clock,
        chain=chain_config(),
        gateway=h.chain,
        ledger=h.ledger,
        keys=keys(),
        gas_wallet=h.gas_wallet,
        keeper=h.keeper,
        policy=SweepPolicy(),
        config=h.config,
    )
    return h, eth_job, tusd_job, sweeper


async def rounds(sweeper, n: int = 3) -> list[list[SweepJobKey]]:
    """Run `n` rounds, each until its sweeps end; the job keys each round started."""
    started = []
    for _ in range(n):
        await sweeper.round()
        started.append(list(sweeper.in_flight))
        await asyncio.gather(*sweeper.in_flight.values())
    return started


def txs_of(h, key: SweepJobKey) -> list[RecordedTx]:
    return [t for t in h.ledger.recorded.values() if (t.payment_id, t.chain_id, t.asset) == tuple(vars(key).values())]


def test_the_job_key_names_payment_chain_and_asset():
    eth_job, tusd_job = job(payment_id=PAYMENT), job(token=True, payment_id=PAYMENT)
    assert eth_job.key == SweepJobKey(PAYMENT, CHAIN_ID, "ETH") and tusd_job.key == SweepJobKey(
        PAYMENT, CHAIN_ID, "TUSD"
    )
    assert eth_job.key != tusd_job.key and str(tusd_job.key) == f"{PAYMENT}/{CHAIN_ID}/TUSD"


def test_a_job_keeps_only_its_own_transactions():
    def tx(asset: str, nonce: int) -> RecordedTx:
        return RecordedTx(
            payment_id=PAYMENT,
            chain_id=CHAIN_ID,
            kind=TxKind.SWEEP,
            state=TxState.SIGNED,
            tx_hash=f"0x{nonce:064x}",
            raw_tx=b"\x02",
            nonce=nonce,
            from_address="0x" + "1" * 40,
            to_address=TREASURY,
            amount=1,
            token_address="",
            gas_limit=21_000,
            max_fee_per_gas=1,
            max_priority_fee_per_gas=1,
            asset=asset,
        )

    mixed = [tx("ETH", 0), tx("TUSD", 1), tx("", 2)]  # "": a ledger with one job per payment
    assert [t.nonce for t in job(payment_id=PAYMENT, transactions=mixed).transactions] == [0, 2]
    assert [t.nonce for t in job(token=True, payment_id=PAYMENT, transactions=mixed).transactions] == [1, 2]


async def test_both_jobs_of_one_payment_are_swept_and_each_completes_with_its_own_figures():
    h, eth_job, tusd_job, sweeper = two_jobs()
    started = await rounds(sweeper)
    # One deposit key signs for both: one job at a time, the native coin first.
    assert started == [[eth_job.key], [tusd_job.key], []]
    eth_sweep, *others = txs_of(h, eth_job.key)
    assert others == [] and (eth_sweep.kind, eth_sweep.state, eth_sweep.token_address) == (
        TxKind.SWEEP,
        TxState.CONFIRMED,
        "",
    )
    topup, token_sweep = txs_of(h, tusd_job.key)  # the top-up is the TUSD job's, though it moves ETH
    assert (topup.kind, topup.state, topup.to_address) == (TxKind.GAS_TOPUP, TxState.CONFIRMED, h.deposit)
    assert (token_sweep.kind, token_sweep.state, token_sweep.amount) == (TxKind.SWEEP, TxState.CONFIRMED, TOKENS)
    eth_fee = 21_000 * 30
    assert sorted(h.ledger.completed) == sorted(
        [
            (eth_job.key, eth_sweep.tx_hash, ETHER - eth_fee, eth_fee),
            (tusd_job.key, token_sweep.tx_hash, TOKENS, 21_000 * token_sweep.max_fee_per_gas),
        ]
    )
    assert h.chain.balances[TREASURY] == ETHER - eth_fee  # the payment's ETH, none of it spent on TUSD's gas
    assert h.chain.token_balances[(TOKEN, TREASURY)] == TOKENS and h.chain.token_balances[(TOKEN, h.deposit)] == 0
    assert h.ledger.released == [] and sweeper.in_flight == {}


async def test_releasing_one_job_leaves_the_other_alone():
    h, eth_job, tusd_job, sweeper = two_jobs(eth=1_000)  # the ETH is dust
    h.chain.balances[h.deposit] = 1_000
    await rounds(sweeper)
    ((key, reason, retry_after),) = h.ledger.released
    assert key == eth_job.key and reason.startswith("dust: 1000 base units of ETH") and retry_after == 6 * 3600
    ((completed, tx_hash, amount, _fee),) = h.ledger.completed
    assert completed == tusd_job.key and amount == TOKENS
    assert tx_hash == txs_of(h, tusd_job.key)[-1].tx_hash
    assert txs_of(h, eth_job.key) == []  # nothing signed for the dust


async def test_a_job_held_back_without_the_ledger_does_not_hold_back_the_other():
    h, eth_job, tusd_job, sweeper = two_jobs()
    record = h.ledger.record

    async def ledger_down_for_eth(worker_id, key, tx):
        if key == eth_job.key:
            raise Unavailable("ledger (recording transaction 0x..): unavailable")
        return await record(worker_id, key, tx)

    h.ledger.record = ledger_down_for_eth
    started = await rounds(sweeper)
    assert started[0] == [eth_job.key] and list(sweeper._not_before) == [eth_job.key]
    assert started[1] == [tusd_job.key]  # the held-back ETH job does not make TUSD wait
    assert [c[0] for c in h.ledger.completed] == [tusd_job.key] and h.ledger.released == []


async def test_the_write_ahead_resume_of_one_job_never_rebroadcasts_the_others_transaction():
    """A replica crashed after recording the ETH job's sweep, before broadcasting it.
    The next one resumes the ETH job with exactly those bytes; the TUSD job of the same
    payment (whose claim carries every transaction of the payment) neither rebroadcasts
    nor completes with it, and signs its own."""
    h, eth_job, tusd_job, sweeper = two_jobs()
    crashed = await h.journal.record(await h.native().sign())  # h's journal is the ETH job's
    assert crashed.asset == "ETH" and h.chain.sent == []
    await rounds(sweeper)
    topup, token_sweep = txs_of(h, tusd_job.key)
    assert h.chain.sent == [crashed.tx_hash, topup.tx_hash, token_sweep.tx_hash]  # each once, the ETH one resumed
    assert [t.tx_hash for t in txs_of(h, eth_job.key)] == [crashed.tx_hash]  # nothing new signed for ETH
    completed = {c[0]: c[1] for c in h.ledger.completed}
    assert completed == {eth_job.key: crashed.tx_hash, tusd_job.key: token_sweep.tx_hash}


async def test_a_recorded_token_sweep_is_resumed_first_and_by_its_own_job_only():
    """The other way round: a replica crashed after recording the TUSD job's top-up (mined)
    and its token sweep (not broadcast). The TUSD job goes first (its recorded nonce must
    not be taken by a new ETH sweep) and sends those bytes; the ETH job then signs its own
    sweep and never touches the TUSD transactions."""
    h, eth_job, tusd_job, sweeper = two_jobs()
    h.chain.balances[h.deposit] = 0  # the payment's ETH arrives after the crash
    crashed_sweep = sweeper._payment_sweep(tusd_job, LOG)
    strategy = crashed_sweep._strategy(
        Transfer(
            chain_id=CHAIN_ID,
            key=keys().derive(DEPOSIT_PATH),
            symbol="TUSD",
            token_address=TOKEN,
            amount=TOKENS,
            destination=TREASURY,
        )
    )
    crashed = await crashed_sweep._journal.record(await strategy.sign())  # tops up (mined), signs the transfer
    (topup,) = [t for t in txs_of(h, tusd_job.key) if t.kind is TxKind.GAS_TOPUP]
    assert h.chain.sent == [topup.tx_hash]  # the token sweep was never broadcast
    h.chain.balances[h.deposit] += ETHER
    started = await rounds(sweeper)
    assert started == [[tusd_job.key], [eth_job.key], []]
    (eth_sweep,) = txs_of(h, eth_job.key)
    assert [t.tx_hash for t in txs_of(h, tusd_job.key)] == [topup.tx_hash, crashed.tx_hash]  # nothing new for TUSD
    assert h.chain.sent == [topup.tx_hash, crashed.tx_hash, eth_sweep.tx_hash]
    assert eth_sweep.nonce == crashed.nonce + 1
    completed = {c[0]: (c[1], c[2]) for c in h.ledger.completed}
    assert completed == {eth_job.key: (eth_sweep.tx_hash, ETHER - 21_000 * 30), tusd_job.key: (crashed.tx_hash, TOKENS)}


async def test_the_native_job_goes_first_whatever_order_the_claim_returns():
    h, eth_job, tusd_job, sweeper = two_jobs()
    h.ledger.jobs = [tusd_job, eth_job]
    assert await rounds(sweeper) == [[eth_job.key], [tusd_job.key], []]
    assert [c[0] for c in h.ledger.completed] == [eth_job.key, tusd_job.key]


async def test_jobs_of_other_deposit_addresses_start_together():
    """Only jobs that share a deposit key wait for each other (today's payments: one job each)."""
    h, eth_job, tusd_job, sweeper = two_jobs()
    other = job(TOKENS, token=True, payment_id="pay_other")
    other.deposit_address, other.derivation_path = keys().derive("m/44'/60'/5'/0/2").address, "m/44'/60'/5'/0/2"
    h.chain.token_balances[(TOKEN, other.deposit_address)] = TOKENS
    h.ledger.jobs.append(other)
    started = await rounds(sweeper)
    assert started[0] == [eth_job.key, other.key] and started[1] == [tusd_job.key]
    assert {c[0] for c in h.ledger.completed} == {eth_job.key, tusd_job.key, other.key}


async def test_the_first_claim_of_each_signer_term_takes_over_the_previous_signers_jobs():
    """A replica that has just become the chain's signer claims once with take_over
    (what its predecessor still held moves to it at once); the renewals after that
    claim only its own. Losing and gaining the lease again is a new term."""
    h, _eth_job, _tusd_job, sweeper = two_jobs()
    await rounds(sweeper, 2)
    assert h.ledger.take_overs == [True, False]
    h.keeper.term += 1  # the lease was lost and gained again
    await rounds(sweeper, 2)
    assert h.ledger.take_overs == [True, False, True, False]
