"""ListenerService: the operator API (admin token). Checks the token, finds the
chain, calls its leadership (services/listener/leadership.py) and converts
(api/convert.py); errors are domain exceptions the shared interceptor maps to
gRPC statuses."""

from __future__ import annotations

from collections.abc import Mapping

from paymesh.listener.v1 import listener_service_pb2 as lpb
from paymesh.listener.v1 import listener_service_pb2_grpc as lgrpc

from services.common.errors import InvalidArgument, NotFound
from services.common.grpc_server import check_token
from services.listener.api import convert
from services.listener.leadership import ChainLeadership


class ListenerServicer(lgrpc.ListenerServiceServicer):
    def __init__(self, leaderships: Mapping[int, ChainLeadership], admin_token: str) -> None:
        self._leaderships = leaderships
        self._token = admin_token

    def _chain(self, chain_id: int) -> ChainLeadership:
        leadership = self._leaderships.get(chain_id)
        if leadership is None:
            known = ", ".join(str(c) for c in sorted(self._leaderships)) or "none"
            raise NotFound(f"chain {chain_id} is not watched by this listener (watched: {known})")
        return leadership

    async def GetStatus(self, request: lpb.GetStatusRequest, context) -> lpb.GetStatusResponse:
        check_token(context, self._token, "admin")
        if request.chain_id:
            chains = [self._chain(request.chain_id)]
        else:
            chains = [self._leaderships[c] for c in sorted(self._leaderships)]
        return lpb.GetStatusResponse(chains=[convert.chain_status(c.status()) for c in chains])

    async def Rescan(self, request: lpb.RescanRequest, context) -> lpb.RescanResponse:
        check_token(context, self._token, "admin")
        if request.chain_id == 0:
            raise InvalidArgument("chain_id is required")
        leadership = self._chain(request.chain_id)
        job = await leadership.rescan(request.from_block, request.to_block)
        return convert.rescan_response(job)
