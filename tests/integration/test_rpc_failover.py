"""Several RPC providers per chain, on real anvil nodes behind the faulty-RPC proxy:
one provider down, one answering 429 with Retry-After, one frozen, one lagging 20
blocks, one flapping. In each case the listener keeps detecting and confirming every
payment, exactly once, from the healthy provider; GetStatus says which provider is
what and why. Every wait is bounded; nothing asserts a duration."""

from __future__ import annotations

import pytest
import pytest_asyncio
from paymesh.ledger.v1 import payment_pb2 as pb

from tests.support.chain import (
    Chain,
    FaultyRpc,
    isolated_buckets,
    mesh,
    status,
    wait_status,
    wait_watching_all,
)
from tests.support.ledger import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")

CONFIRMED = pb.PAYMENT_STATUS_CONFIRMED


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def net(postgres, tmp_path_factory):
    async with mesh(postgres, tmp_path_factory.mktemp("rpc-failover"), database="rpc_failover") as m:
        yield m


async def pay_three(net, app, amount: int) -> None:
    """Three payments (ETH and TUSD) paid and confirmed, each credited exactly once."""
    payments = []
    for i in range(3):
        asset = "TUSD" if i == 1 else "ETH"
        p = await net.merchant.create(asset=asset, amount=str(amount + i))
        payments.append((p, asset))
    await wait_watching_all(app.port, net.database_url)
    for p, asset in payments:
        if asset == "ETH":
            await net.chain.send_eth(p.deposit_address, int(p.amount_due))
        else:
            await net.chain.send_token(p.deposit_address, int(p.amount_due))
    await net.chain.mine(2)
    for p, _ in payments:
        done = await wait_status(net.merchant, p.payment_id, CONFIRMED, timeout=40)
        assert done.amount_confirmed == done.amount_due and len(done.transfers) == 1


@pytest.mark.parametrize(
    "mode, expected_state",
    [
        ("down", "cooling"),
        ("rate_limited", "cooling"),
        ("frozen", "cooling"),
        ("lagging", "lagging"),
        ("flapping", None),
    ],
)
async def test_one_bad_provider_beside_a_good_one_misses_nothing(net, mode, expected_state):
    bad = FaultyRpc(net.anvil.http_url, every=10**9, mode=mode, hang_seconds=5.0, lag=20, flap_seconds=0.7).start()
    good = FaultyRpc(net.anvil.http_url, every=10**9).start()
    await net.chain.mine(25)  # the lagging provider is 20 behind a head past 20
    # The bad provider first in the file: it is tried, fails or lags, and is passed over.
    chains = net.write_chains(f"two-{mode}.yaml", rpc_urls=[bad.url, good.url], max_head_lag_blocks=5)
    try:
        async with net.listener(
            chains_file=chains, rpc_timeout_seconds=1.0, rpc_attempts=3, **isolated_buckets(f"pool-{mode}")
        ) as app:
            await pay_three(net, app, 7000)
            s = await status(app.port)
            assert [e.name for e in s.endpoints] == [f"#1 127.0.0.1:{bad.port}", f"#2 127.0.0.1:{good.port}"]
            assert s.endpoints[1].state == "healthy" and s.endpoints[1].requests > 0
            if expected_state is not None:

                async def bad_seen():
                    e = (await status(app.port)).endpoints[0]
                    return e if e.state == expected_state else None

                seen = await eventually(bad_seen, timeout=20)
                if mode == "lagging":
                    assert seen.lag >= 15 and seen.errors == 0
                else:
                    assert seen.errors > 0 and seen.last_error
            assert "127.0.0.1:" + str(good.port) + "/" not in str(s)  # names, never URLs
            # The provider recovers: it is used again.
            bad.mode = ""
            await pay_three(net, app, 8000)

            async def healthy_again():
                e = (await status(app.port)).endpoints[0]
                return e if e.state == "healthy" else None

            await eventually(healthy_again, timeout=30)
    finally:
        bad.stop()
        good.stop()


async def test_both_providers_down_then_one_back_resumes_detection(net):
    first = FaultyRpc(net.anvil.http_url, every=10**9).start()
    second = FaultyRpc(net.anvil.http_url, every=10**9).start()
    chains = net.write_chains("both.yaml", rpc_urls=[first.url, second.url])
    try:
        async with net.listener(chains_file=chains, rpc_timeout_seconds=1.0, **isolated_buckets("pool-both")) as app:
            await pay_three(net, app, 9000)
            first.mode = second.mode = "down"
            p = await net.merchant.create(amount="9100")
            await wait_watching_all(app.port, net.database_url)
            await net.chain.send_eth(p.deposit_address, 9100)
            await net.chain.mine(2)

            async def both_failing():
                s = await status(app.port)
                return s if all(e.state == "cooling" for e in s.endpoints) else None

            await eventually(both_failing, timeout=20)
            second.mode = ""  # one provider back: the payment made meanwhile is found
            await wait_status(net.merchant, p.payment_id, CONFIRMED, timeout=40)
    finally:
        first.stop()
        second.stop()


async def test_a_provider_on_another_fork_is_left_out_and_nothing_is_credited_from_it(net, tmp_path):
    """A second anvil with the same chain id but other blocks at the same heights; two
    providers on the real node against one on the fork (listed first). A payment paid
    on the fork only is never seen; one paid on the real chain is confirmed once."""
    from tools import devstack

    fork_node = devstack.start_anvil(log_file=tmp_path / "fork.log", silent=True)
    fork_chain = Chain(fork_node.http_url)
    try:
        head = await net.chain.block_number()
        await fork_chain.mine(head + 3)  # as high, other hashes
        fork = FaultyRpc(fork_node.http_url, every=10**9).start()
        real_a = FaultyRpc(net.anvil.http_url, every=10**9).start()
        real_b = FaultyRpc(net.anvil.http_url, every=10**9).start()
        chains = net.write_chains("fork.yaml", rpc_urls=[fork.url, real_a.url, real_b.url])
        try:
            async with net.listener(chains_file=chains, **isolated_buckets("pool-fork")) as app:

                async def fork_seen():
                    e = (await status(app.port)).endpoints[0]
                    return e if e.state == "forked" else None

                await eventually(fork_seen, timeout=20)
                on_fork = await net.merchant.create(amount="4242")
                real = await net.merchant.create(amount="4343")
                await wait_watching_all(app.port, net.database_url)
                await fork_chain.send_eth(on_fork.deposit_address, 4242)
                await fork_chain.mine(3)
                await net.chain.send_eth(real.deposit_address, 4343)
                await net.chain.mine(2)
                done = await wait_status(net.merchant, real.payment_id, CONFIRMED, timeout=40)
                assert len(done.transfers) == 1
                await net.chain.mine(3)
                await wait_status(net.merchant, real.payment_id, CONFIRMED)
                untouched = await net.merchant.get(on_fork.payment_id)
                assert untouched.status == pb.PAYMENT_STATUS_PENDING and not untouched.transfers
                assert (await status(app.port)).endpoints[0].state == "forked"
        finally:
            fork.stop()
            real_a.stop()
            real_b.stop()
    finally:
        await fork_chain.aclose()
        fork_node.stop()


async def test_an_endpoint_serving_another_chain_is_refused_at_start(net, tmp_path):
    from services.common.chains import ChainConfigError
    from tools import devstack

    other = devstack.start_anvil(chain_id=999, log_file=tmp_path / "other.log", silent=True)
    try:
        chains = net.write_chains("wrong-chain.yaml", rpc_urls=[net.anvil.http_url, other.http_url])
        with pytest.raises(ChainConfigError) as refused:
            async with net.listener(chains_file=chains, **isolated_buckets("pool-wrong")):
                pass
        message = str(refused.value)
        assert str(chains) in message and "chains[0].rpc[1].url (chain 31337, anvil)" in message
        assert "serves chain 999, not 31337" in message and other.http_url not in message
    finally:
        other.stop()


async def test_with_confirmation_agreement_nothing_is_confirmed_while_only_one_provider_answers(net):
    first = FaultyRpc(net.anvil.http_url, every=10**9).start()
    second = FaultyRpc(net.anvil.http_url, every=10**9).start()
    chains = net.write_chains("agree.yaml", rpc_urls=[first.url, second.url], confirmation_agreement=True)
    try:
        async with net.listener(chains_file=chains, rpc_timeout_seconds=1.0, **isolated_buckets("pool-agree")) as app:
            await pay_three(net, app, 6000)  # both agree: confirmed as usual
            second.mode = "down"
            p = await net.merchant.create(amount="6100")
            await wait_watching_all(app.port, net.database_url)
            await net.chain.send_eth(p.deposit_address, 6100)
            await net.chain.mine(4)
            await wait_status(net.merchant, p.payment_id, pb.PAYMENT_STATUS_DETECTED, timeout=30)
            await net.chain.mine(3)

            async def held():
                s = await status(app.port)
                return s if s.endpoints[1].state == "cooling" and s.cursor >= await net.chain.block_number() else None

            await eventually(held, timeout=20)
            assert (await net.merchant.get(p.payment_id)).status == pb.PAYMENT_STATUS_DETECTED  # not confirmed alone
            second.mode = ""  # the second provider is back and agrees: the next head confirms
            await net.chain.mine(1)
            done = await wait_status(net.merchant, p.payment_id, CONFIRMED, timeout=40)
            assert len(done.transfers) == 1
    finally:
        first.stop()
        second.stop()
