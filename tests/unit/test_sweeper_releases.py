"""The release table (services/sweeper/releases.py): every exception that can end a
sweep maps to its category, retry delay and a reason a person can act on; and the
chain sweeper applies it (ReleaseSweep, the metric, last_error), or holds the
payment back when the ledger itself is unreachable."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from services.common.errors import DomainError, FailedPrecondition, MalformedResponse, Unavailable
from services.common.evm_rpc import RpcError, RpcUnavailable
from services.sweeper.adapters.chain_rpc import FeeCapExceeded, L1FeeUnavailable
from services.sweeper.chain_sweeper import ChainSweeper
from services.sweeper.domain.policy import SweepPolicy
from services.sweeper.domain.releases import Release, ReleaseCategory, RetryDelays
from services.sweeper.releases import RELEASES, ReleasePayment, release_for
from tests.unit.sweeper_fakes import CHAIN_ID, ETHER, chain_config, harness, job, keys

pytestmark = pytest.mark.unit

DELAYS = RetryDelays(dust=21_600, config=600, gas_wallet=120, error=30)
FEE_CAP = (
    "fees on chain 31337 are 90 wei per gas, above the cap of 50 (PAYMESH_SWEEPER_MAX_FEE_PER_GAS_WEI); "
    "waiting for cheaper gas"
)
L1 = "chain 10 (chains.yaml l1_data_fee: op_stack): no GasPriceOracle answers at 0x42..0F; is this an OP-stack chain?"


@pytest.mark.parametrize(
    ("exc", "category", "retry_after", "reason"),
    [
        (FeeCapExceeded(FEE_CAP), ReleaseCategory.FEES, 30, FEE_CAP),
        (L1FeeUnavailable(L1), ReleaseCategory.CONFIG, 600, L1),
        (
            RpcUnavailable("eth_getBalance: connection refused"),
            ReleaseCategory.ERROR,
            30,
            "chain 31337 RPC failed, will retry: eth_getBalance: connection refused",
        ),
        (
            MalformedResponse("eth_call returned no hex: 'zz'"),
            ReleaseCategory.ERROR,
            30,
            "chain 31337 RPC failed, will retry: eth_call returned no hex: 'zz'",
        ),
        (
            RpcError("eth_feeHistory", -32000, "header not found"),
            ReleaseCategory.ERROR,
            30,
            "chain 31337 node error, will retry: eth_feeHistory: error -32000: header not found",
        ),
        (
            FailedPrecondition("ledger (recording transaction 0xab): payment pay_1 is not leased to unit-sweeper"),
            ReleaseCategory.ERROR,
            30,
            "ledger (recording transaction 0xab): payment pay_1 is not leased to unit-sweeper",
        ),
        (
            asyncio.CancelledError(),
            ReleaseCategory.STOPPING,
            1,
            "the sweeper stopped; another replica or a restart resumes it",
        ),
        (KeyError("blockNumber"), ReleaseCategory.ERROR, 30, "internal error in the sweeper; see its logs"),
        (
            ReleasePayment("dust: 5 base units of TUSD are below the minimum", 21_600, ReleaseCategory.DUST),
            ReleaseCategory.DUST,
            21_600,
            "dust: 5 base units of TUSD are below the minimum",
        ),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
)
def test_each_exception_type_maps_to_its_release(exc, category, retry_after, reason):
    release = release_for(exc, chain_id=CHAIN_ID, delays=DELAYS)
    assert release is not None
    assert (release.category, release.retry_after, release.reason) == (category, retry_after, reason)
    assert release.hand_back  # the ledger is told
    assert release.unexpected == isinstance(exc, KeyError)  # only a bug logs its traceback


def test_the_ledger_unreachable_is_not_a_release_the_claim_lapses():
    release = release_for(
        Unavailable("ledger (claiming sweeps): failed to connect to all addresses"), chain_id=CHAIN_ID, delays=DELAYS
    )
    assert release == Release(
        "ledger (claiming sweeps): failed to connect to all addresses", 30, ReleaseCategory.ERROR, hand_back=False
    )


def test_what_is_not_a_sweeps_failure_propagates():
    assert release_for(KeyboardInterrupt(), chain_id=CHAIN_ID, delays=DELAYS) is None
    assert release_for(SystemExit(2), chain_id=CHAIN_ID, delays=DELAYS) is None


def test_the_most_specific_row_wins():
    # Unavailable and FailedPrecondition are DomainErrors; Unavailable has its own row.
    assert issubclass(Unavailable, DomainError) and Unavailable in RELEASES
    assert not release_for(Unavailable("x"), chain_id=1, delays=DELAYS).hand_back
    assert release_for(DomainError("x"), chain_id=1, delays=DELAYS).hand_back


def test_categories_are_the_metric_labels():
    """paymesh_sweeper_payments_released_total{category} takes exactly these values."""
    assert [c.value for c in ReleaseCategory] == ["dust", "config", "gas_wallet", "fees", "error", "stopping"]
    assert {rule.category for rule in RELEASES.values()} <= set(ReleaseCategory)


# ---------------------------------------------------------------------- applied by the chain sweeper


def released_total(category: str) -> float:
    value = REGISTRY.get_sample_value(
        "paymesh_sweeper_payments_released_total", {"chain_id": str(CHAIN_ID), "category": category}
    )
    return value or 0.0


def chain_sweeper(h) -> ChainSweeper:
    return ChainSweeper(
        chain=chain_config(),
        gateway=h.chain,
        ledger=h.ledger,
        keys=keys(),
        gas_wallet=h.gas_wallet,
        keeper=h.keeper,
        policy=SweepPolicy(),
        config=h.config,
    )


async def test_an_rpc_failure_releases_the_payment_with_the_reason_and_delay():
    h = harness(job(ETHER))

    async def node_down(address: str, block: str = "latest") -> int:
        raise RpcUnavailable("eth_getTransactionCount: connection refused")

    h.chain.nonce = node_down
    sweeper = chain_sweeper(h)
    before = released_total("error")
    await sweeper._sweep(h.job)
    reason = "chain 31337 RPC failed, will retry: eth_getTransactionCount: connection refused"
    assert h.ledger.released == [(h.job.key, reason, 30)]
    assert released_total("error") == before + 1
    assert sweeper.last_error == f"pay_unit: {reason}"
    assert h.ledger.recorded == {}  # nothing was signed


async def test_dust_is_released_for_hours_with_the_reason():
    h = harness(job(1_000))
    h.chain.balances[h.deposit] = 1_000
    sweeper = chain_sweeper(h)
    before = released_total("dust")
    await sweeper._sweep(h.job)
    ((key, reason, retry_after),) = h.ledger.released
    assert key == h.job.key and retry_after == 6 * 3600
    assert reason.startswith("dust: 1000 base units of ETH are below the sweep fee of 630000")
    assert reason.endswith("not swept at a loss (retried in 6.0 h)")
    assert released_total("dust") == before + 1


async def test_the_ledger_unreachable_holds_the_payment_back_without_a_release():
    h = harness(job(ETHER))
    h.chain.balances[h.deposit] = ETHER

    async def ledger_down(*args, **kwargs):
        raise Unavailable("ledger (recording transaction 0x..): unavailable")

    h.ledger.record = ledger_down
    sweeper = chain_sweeper(h)
    before = released_total("error")
    await sweeper._sweep(h.job)
    assert h.ledger.released == [] and released_total("error") == before  # the claim lapses by itself
    assert h.job.key in sweeper._not_before  # and this replica does not pick it up again at once
    assert sweeper.last_error == "ledger (recording transaction 0x..): unavailable"


async def test_a_sweep_cancelled_on_stop_is_released_at_once_and_stays_cancelled():
    h = harness(job(ETHER), auto_mine=False)
    h.chain.balances[h.deposit] = ETHER
    sweeper = chain_sweeper(h)
    before = released_total("stopping")
    broadcast = asyncio.Event()
    node_send = h.chain.send

    async def send(raw_tx: bytes):
        try:
            return await node_send(raw_tx)
        finally:
            broadcast.set()

    h.chain.send = send
    task = asyncio.create_task(sweeper._sweep(h.job))
    await broadcast.wait()  # recorded and sent: the sweep now waits for it to be mined
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert h.ledger.released == [(h.job.key, "the sweeper stopped; another replica or a restart resumes it", 1)]
    assert released_total("stopping") == before + 1
    assert sweeper.last_error == ""  # a stop is not an error
