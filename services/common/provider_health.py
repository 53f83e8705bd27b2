"""How healthy each of a chain's RPC providers is, from what its calls gave, and in
which order to try them. Pure: no I/O, times passed in.

An endpoint is **cooling down** after a failure (an error, a timeout, HTTP 429 or
5xx): for `Retry-After` seconds when the provider said so, else 1 s doubling per
failure in a row up to 60 s. It is **lagging** when its head is more than
`max_lag` blocks behind the best head any endpoint reported. It is **over budget**
when its `requests_per_second` are used up for the moment. It is **forked** when the
block hash it reports at a height the endpoints share is not the one most of them
(by weight) report, and **wrong_chain** when eth_chainId names another chain: these
two are left out altogether. Reads go to the endpoints
that are none of these, chosen at random by weight (so load spreads, and a provider
with weight 2 takes about twice the share); then, only if those fail or none is
left, to the others: over-budget ones, then lagging ones, then cooling ones, the one
whose cooldown ends soonest first. Nothing is ever refused outright: with every
provider failing, the least bad one is still tried, so one provider behaves as the
single-URL client did.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

COOLDOWN_BASE_SECONDS = 1.0
COOLDOWN_MAX_SECONDS = 60.0
MAX_RETRY_AFTER_SECONDS = 300.0
LATENCY_WEIGHT = 0.2  # of each new sample in the moving average


@dataclass
class EndpointHealth:
    name: str  # what logs, metrics and GetStatus call it: never the URL (it carries API keys)
    weight: int = 1
    requests_per_second: float = 0.0  # 0: no budget of our own
    failures_in_row: int = 0
    cooldown_until: float = 0.0
    latency_seconds: float | None = None
    head: int | None = None
    requests: int = 0
    errors: int = 0
    last_error: str = ""
    # Checked with eth_chainId once it answers: None until then; an endpoint serving
    # another chain is never used (a misconfigured URL must not feed another chain's blocks).
    served_chain_id: int | None = None
    wrong_chain: bool = False
    # On another fork than most of the chain's endpoints (by weight) at the last probe:
    # left out until it agrees again.
    forked: bool = False
    _tokens: float = field(default=0.0, repr=False)
    _tokens_at: float | None = field(default=None, repr=False)

    def cooling(self, now: float) -> bool:
        return now < self.cooldown_until

    def lag(self, best_head: int | None) -> int:
        if best_head is None or self.head is None:
            return 0
        return max(0, best_head - self.head)

    def succeeded(self, seconds: float, now: float) -> None:
        self.requests += 1
        self.failures_in_row = 0
        self.cooldown_until = 0.0
        self.last_error = ""
        if self.latency_seconds is None:
            self.latency_seconds = seconds
        else:
            self.latency_seconds += LATENCY_WEIGHT * (seconds - self.latency_seconds)

    def failed(self, error: str, now: float, retry_after: float | None = None) -> None:
        self.requests += 1
        self.errors += 1
        self.failures_in_row += 1
        self.last_error = error[:300]
        if retry_after is not None and retry_after > 0:
            pause = min(retry_after, MAX_RETRY_AFTER_SECONDS)
        else:
            pause = min(COOLDOWN_BASE_SECONDS * 2 ** (self.failures_in_row - 1), COOLDOWN_MAX_SECONDS)
        self.cooldown_until = max(self.cooldown_until, now + pause)

    def saw_head(self, number: int) -> None:
        if self.head is None or number > self.head:
            self.head = number

    def has_budget(self, now: float) -> bool:
        """Whether a request may go now within requests_per_second (a token bucket of
        one second's worth); does not take the token."""
        if self.requests_per_second <= 0:
            return True
        self._refill(now)
        return self._tokens >= 1.0

    def spend(self, now: float) -> None:
        if self.requests_per_second <= 0:
            return
        self._refill(now)
        self._tokens -= 1.0

    def _refill(self, now: float) -> None:
        if self._tokens_at is None:
            self._tokens, self._tokens_at = self.requests_per_second, now
            return
        self._tokens = min(self.requests_per_second, self._tokens + (now - self._tokens_at) * self.requests_per_second)
        self._tokens_at = now

    def state(self, now: float, best_head: int | None, max_lag: int) -> str:
        """One of "healthy", "cooling", "lagging", "over_budget", "wrong_chain" (GetStatus, metrics)."""
        if self.wrong_chain:
            return "wrong_chain"
        if self.forked:
            return "forked"
        if self.cooling(now):
            return "cooling"
        if self.lag(best_head) > max_lag:
            return "lagging"
        if not self.has_budget(now):
            return "over_budget"
        return "healthy"


def best_head(endpoints: Sequence[EndpointHealth]) -> int | None:
    heads = [e.head for e in endpoints if e.head is not None]
    return max(heads) if heads else None


def order(endpoints: Sequence[EndpointHealth], now: float, max_lag: int, rng: random.Random) -> list[EndpointHealth]:
    """Every endpoint, in the order to try them (see the module docstring); one that
    serves another chain is left out (all of them: the first, so a call still fails
    with what that node says rather than with nothing)."""
    usable = [e for e in endpoints if not (e.wrong_chain or e.forked)] or list(endpoints[:1])
    top = best_head(usable)
    rank = {"healthy": 0, "over_budget": 1, "lagging": 2, "cooling": 3, "wrong_chain": 3, "forked": 3}
    groups: dict[int, list[EndpointHealth]] = {0: [], 1: [], 2: [], 3: []}
    for e in usable:
        groups[rank[e.state(now, top, max_lag)]].append(e)
    out = _weighted_shuffle(groups[0], rng)
    out += sorted(groups[1], key=lambda e: -e.weight)
    out += sorted(groups[2], key=lambda e: e.lag(top))
    out += sorted(groups[3], key=lambda e: e.cooldown_until)
    return out


def canonical_hash(hashes: dict[int, str], weights: Sequence[int]) -> str | None:
    """The block hash most of the endpoints report at one height, by weight; a tie goes
    to the hash of the endpoint listed first (the operator's primary provider).
    `hashes`: endpoint index -> hash, for the endpoints that answered."""
    if not hashes:
        return None
    totals: dict[str, int] = {}
    for index, value in hashes.items():
        totals[value] = totals.get(value, 0) + weights[index]
    first = {v: min(i for i, h in hashes.items() if h == v) for v in totals}
    return max(totals, key=lambda v: (totals[v], -first[v]))


def _weighted_shuffle(items: list[EndpointHealth], rng: random.Random) -> list[EndpointHealth]:
    """A random order where an item comes first with probability weight / total."""
    pool = list(items)
    out: list[EndpointHealth] = []
    while pool:
        pick = rng.choices(range(len(pool)), weights=[e.weight for e in pool])[0]
        out.append(pool.pop(pick))
    return out
