"""The one table from what ended a sweep to how the payment is released.

Every exception that escapes a payment's sweep is looked up here by the most
specific class in its MRO, and becomes a Release (domain/releases.py): the
reason a person reads, the retry delay, the metric category, and whether the
ledger can be told at all. A sweep that decides by itself to give a payment back
(dust, a bad treasury, a poor gas wallet, ...) raises ReleasePayment with its own
reason instead. Anything not in the table (KeyboardInterrupt, SystemExit)
propagates.
"""

from __future__ import annotations

import asyncio

from services.common.errors import DomainError, MalformedResponse, Unavailable
from services.common.evm_rpc import RpcError, RpcUnavailable
from services.sweeper.adapters.chain_rpc import FeeCapExceeded, L1FeeUnavailable
from services.sweeper.domain import releases as rules
from services.sweeper.domain.releases import Release, ReleaseCategory, ReleaseRule, RetryDelays


class ReleasePayment(Exception):
    """The sweep gives the payment back: `reason` is stored with it, retried after `retry_after` s."""

    def __init__(self, reason: str, retry_after: int, category: ReleaseCategory = ReleaseCategory.ERROR) -> None:
        super().__init__(reason)
        self.release = Release(reason, retry_after, category)


RELEASES: dict[type[BaseException], ReleaseRule] = {
    FeeCapExceeded: rules.FEES_ABOVE_CAP,  # above PAYMESH_SWEEPER_MAX_FEE_PER_GAS_WEI: wait for cheaper gas
    L1FeeUnavailable: rules.L1_FEE_UNKNOWN,  # l1_data_fee: op_stack on a chain without the oracle
    RpcUnavailable: rules.RPC_FAILED,
    MalformedResponse: rules.RPC_FAILED,
    RpcError: rules.NODE_ERROR,
    Unavailable: rules.LEDGER_UNAVAILABLE,  # only the ledger's calls raise it here
    DomainError: rules.LEDGER_REFUSED,  # the ledger refused a call (its message says why)
    asyncio.CancelledError: rules.STOPPED,  # the sweeper stops (SIGTERM, drain timeout)
    Exception: rules.INTERNAL_ERROR,  # a bug: the traceback is logged
}


def release_for(exc: BaseException, *, chain_id: int, delays: RetryDelays) -> Release | None:
    """How `exc` ends the sweep of a payment on `chain_id` (None: not a sweep's
    failure, let it propagate)."""
    if isinstance(exc, ReleasePayment):
        return exc.release
    for cls in type(exc).__mro__:
        rule = RELEASES.get(cls)
        if rule is not None:
            return rule.release(error=str(exc), chain_id=chain_id, delays=delays)
    return None
