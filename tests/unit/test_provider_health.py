"""The pure health and ordering rules of a chain's RPC providers (services/common/provider_health.py)."""

from __future__ import annotations

import random

import pytest

from services.common.provider_health import EndpointHealth, canonical_hash, order

pytestmark = pytest.mark.unit


def names(endpoints) -> list[str]:
    return [e.name for e in endpoints]


def test_a_failure_cools_an_endpoint_down_doubling_up_to_a_minute_and_a_success_ends_it():
    e = EndpointHealth("a")
    e.failed("boom", now=100.0)
    assert e.cooling(100.5) and not e.cooling(101.0)
    for _ in range(10):
        e.failed("boom", now=200.0)
    assert e.cooldown_until == 260.0 and e.errors == 11 and e.requests == 11
    e.succeeded(0.01, now=201.0)
    assert not e.cooling(201.0) and e.failures_in_row == 0 and e.last_error == ""


def test_retry_after_sets_the_cooldown_bounded_to_five_minutes():
    e = EndpointHealth("a")
    e.failed("HTTP 429", now=0.0, retry_after=7)
    assert e.cooldown_until == 7.0
    e.failed("HTTP 429", now=0.0, retry_after=10_000)
    assert e.cooldown_until == 300.0


def test_healthy_first_by_weight_then_over_budget_lagging_and_cooling():
    healthy = EndpointHealth("healthy", head=100)
    lagging = EndpointHealth("lagging", head=80)
    cooling = EndpointHealth("cooling", head=100)
    cooling.failed("x", now=0.0)
    budget = EndpointHealth("budget", head=100, requests_per_second=1)
    budget.spend(0.0)  # its one request of this second is used
    ranked = order([cooling, lagging, budget, healthy], now=0.5, max_lag=5, rng=random.Random(1))
    assert names(ranked) == ["healthy", "budget", "lagging", "cooling"]
    assert lagging.state(0.5, 100, 5) == "lagging" and lagging.lag(100) == 20


def test_weights_share_the_first_place():
    heavy, light = EndpointHealth("heavy", weight=3), EndpointHealth("light", weight=1)
    rng = random.Random(7)
    firsts = [order([heavy, light], 0.0, 5, rng)[0].name for _ in range(4000)]
    assert 0.70 < firsts.count("heavy") / 4000 < 0.80


def test_the_budget_refills_at_its_rate():
    e = EndpointHealth("a", requests_per_second=2)
    assert e.has_budget(0.0)
    e.spend(0.0)
    e.spend(0.0)
    assert not e.has_budget(0.0) and e.state(0.0, None, 5) == "over_budget"
    assert e.has_budget(0.5)


def test_forked_and_wrong_chain_endpoints_are_left_out_unless_nothing_else_is_there():
    good = EndpointHealth("good")
    forked = EndpointHealth("forked", forked=True)
    wrong = EndpointHealth("wrong", wrong_chain=True)
    assert names(order([forked, wrong, good], 0.0, 5, random.Random(0))) == ["good"]
    assert names(order([wrong], 0.0, 5, random.Random(0))) == ["wrong"]


def test_the_canonical_hash_is_the_heaviest_and_a_tie_goes_to_the_first_listed():
    assert canonical_hash({0: "0xf", 1: "0xa", 2: "0xa"}, [1, 1, 1]) == "0xa"
    assert canonical_hash({0: "0xf", 1: "0xa"}, [1, 1]) == "0xf"
    assert canonical_hash({0: "0xf", 1: "0xa"}, [1, 2]) == "0xa"
    assert canonical_hash({}, []) is None
