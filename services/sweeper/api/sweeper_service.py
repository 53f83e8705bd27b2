"""SweeperService: the operator's view of the sweeper (admin token only).

Checks the token, converts (api/convert.py), asks the chains' sweepers or the
ledger client; errors are domain exceptions that the shared interceptor maps to
gRPC statuses. ListSweeps passes the ledger's SweepTransaction messages through
unchanged; SweepNow and RetrySweep make payments claimable at the ledger, then
wake every chain's sweeper.
"""

from __future__ import annotations

from collections.abc import Callable

from paymesh.sweeper.v1 import sweeper_service_pb2 as pb
from paymesh.sweeper.v1 import sweeper_service_pb2_grpc as pgrpc

from services.common.errors import InvalidArgument, NotFound
from services.common.grpc_server import check_token
from services.common.page_tokens import page_size
from services.sweeper.adapters.ledger_client import LedgerClient
from services.sweeper.api.convert import chain_status_to_pb
from services.sweeper.chain_sweeper import ChainSweeper


def _id(value: str, field: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidArgument(f"{field} is required")
    if len(value) > 64:
        raise InvalidArgument(f"{field} is longer than 64 characters; got {value[:64]!r}...")
    return value


class SweeperServicer(pgrpc.SweeperServiceServicer):
    """paymesh.sweeper.v1.SweeperService; `sweepers` gives this replica's chain sweepers by chain id."""

    def __init__(
        self,
        sweepers: Callable[[], dict[int, ChainSweeper]],
        ledger: LedgerClient,
        admin_token: str,
    ) -> None:
        self._sweepers = sweepers
        self._ledger = ledger
        self._token = admin_token

    def _check(self, context) -> None:
        check_token(context, self._token, "sweeper operator")

    def _wake(self) -> None:
        for sweeper in self._sweepers().values():
            sweeper.wake.set()

    async def GetStatus(self, request: pb.GetStatusRequest, context) -> pb.GetStatusResponse:
        self._check(context)
        sweepers = self._sweepers()
        if request.chain_id and request.chain_id not in sweepers:
            raise NotFound(f"chain {request.chain_id} is not swept by this sweeper; it sweeps {sorted(sweepers)}")
        chains = []
        for chain_id, sweeper in sorted(sweepers.items()):
            if request.chain_id and chain_id != request.chain_id:
                continue
            chains.append(chain_status_to_pb(await sweeper.status()))
        return pb.GetStatusResponse(chains=chains)

    async def ListSweeps(self, request: pb.ListSweepsRequest, context) -> pb.ListSweepsResponse:
        self._check(context)
        reply = await self._ledger.list_transactions(
            chain_id=request.chain_id,
            payment_id=request.payment_id.strip(),
            merchant_id=request.merchant_id.strip(),
            page_size=page_size(request.page_size),
            page_token=request.page_token,
        )
        return pb.ListSweepsResponse(transactions=reply.transactions, next_page_token=reply.next_page_token)

    async def SweepNow(self, request: pb.SweepNowRequest, context) -> pb.SweepNowResponse:
        self._check(context)
        target = request.WhichOneof("target")
        if target == "payment_id":
            count = await self._ledger.request_sweep(payment_id=_id(request.payment_id, "payment_id"))
        elif target == "merchant_id":
            count = await self._ledger.request_sweep(merchant_id=_id(request.merchant_id, "merchant_id"))
        else:
            raise InvalidArgument("give payment_id or merchant_id")
        self._wake()
        return pb.SweepNowResponse(payments_queued=count)

    async def RetrySweep(self, request: pb.RetrySweepRequest, context) -> pb.RetrySweepResponse:
        self._check(context)
        count = await self._ledger.request_sweep(payment_id=_id(request.payment_id, "payment_id"))
        self._wake()
        return pb.RetrySweepResponse(payments_queued=min(count, 1))
