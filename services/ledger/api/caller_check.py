"""The credentials check of the ledger's internal services, each meant for one caller
with its own token (AddressFeedService: the listener, SweepLedgerService: the
sweeper, MerchantDirectoryService: the notifier), and the check that a chain
named in a request is configured."""

from __future__ import annotations

from collections.abc import Callable

from services.common.errors import NotFound
from services.common.grpc_server import check_token


class CallerCheck:
    """A servicer that only its one caller may use, with its own token."""

    def __init__(self, token: str, what: str, known_chain: Callable[[int], bool]) -> None:
        self._token = token
        self._what = what
        self._known_chain = known_chain

    def _check(self, context) -> None:
        check_token(context, self._token, self._what)

    def _chain(self, chain_id: int) -> None:
        if not self._known_chain(chain_id):
            raise NotFound(f"chain {chain_id} is not configured")
