"""ListenerService: the operator API (admin token). Translates protobuf to and
from the chain workers; errors are domain exceptions the shared interceptor
maps to gRPC statuses."""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf.timestamp_pb2 import Timestamp
from paymesh.listener.v1 import listener_service_pb2 as lpb
from paymesh.listener.v1 import listener_service_pb2_grpc as lgrpc

from services.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from services.common.grpc_server import check_token
from services.listener.adapters.heads import Mode
from services.listener.leadership import ChainWorker

MODE_TO_PB = {
    Mode.WEBSOCKET: lpb.CONNECTION_MODE_WEBSOCKET,
    Mode.HTTP_POLLING: lpb.CONNECTION_MODE_HTTP_POLLING,
    Mode.DISCONNECTED: lpb.CONNECTION_MODE_DISCONNECTED,
    Mode.STANDBY: lpb.CONNECTION_MODE_STANDBY,
}


def _ts(seconds: float) -> Timestamp | None:
    if not seconds:
        return None
    out = Timestamp()
    out.FromNanoseconds(int(seconds * 1e9))
    return out


def chain_status(worker: ChainWorker) -> lpb.ChainStatus:
    head = worker.head
    cursor = worker.scanner.cursor or 0
    return lpb.ChainStatus(
        chain_id=worker.chain_id,
        name=worker.chain.name,
        head=head,
        cursor=cursor,
        lag=max(head - cursor, 0),
        watched_addresses=len(worker.scanner.watched),
        mode=MODE_TO_PB[worker.mode],
        leader=worker.leader,
        last_error=worker.errors(),
        last_head_at=_ts(worker.follower.latest_at if worker.leader else 0.0),
        internal_transfers=worker.chain.internal_transfers,
    )


class ListenerServicer(lgrpc.ListenerServiceServicer):
    def __init__(self, workers: Mapping[int, ChainWorker], admin_token: str, max_rescan_blocks: int) -> None:
        self._workers = workers
        self._token = admin_token
        self._max_rescan = max_rescan_blocks

    def _worker(self, chain_id: int) -> ChainWorker:
        worker = self._workers.get(chain_id)
        if worker is None:
            known = ", ".join(str(c) for c in sorted(self._workers)) or "none"
            raise NotFound(f"chain {chain_id} is not watched by this listener (watched: {known})")
        return worker

    async def GetStatus(self, request: lpb.GetStatusRequest, context) -> lpb.GetStatusResponse:
        check_token(context, self._token, "admin")
        if request.chain_id:
            workers = [self._worker(request.chain_id)]
        else:
            workers = [self._workers[c] for c in sorted(self._workers)]
        return lpb.GetStatusResponse(chains=[chain_status(w) for w in workers])

    async def Rescan(self, request: lpb.RescanRequest, context) -> lpb.RescanResponse:
        check_token(context, self._token, "admin")
        if request.chain_id == 0:
            raise InvalidArgument("chain_id is required")
        worker = self._worker(request.chain_id)
        a, b = request.from_block, request.to_block
        if a > b:
            raise InvalidArgument(f"from_block ({a}) is after to_block ({b}); the range is inclusive: from <= to")
        if b - a + 1 > self._max_rescan:
            raise InvalidArgument(
                f"the range has {b - a + 1} blocks; at most {self._max_rescan} per Rescan: split it into smaller ranges"
            )
        if not worker.leader:
            holder = worker.leader_name or "another replica"
            raise FailedPrecondition(
                f"this replica is standby for chain {request.chain_id}; send Rescan to the leader ({holder})"
            )
        latest = worker.follower.latest or await worker.follower.poll_once()
        if latest is None:
            raise Unavailable(f"chain {request.chain_id}'s RPC is unreachable: {worker.errors() or 'no head yet'}")
        head = latest.number
        if b > head:
            raise InvalidArgument(f"to_block {b} is beyond the chain head {head}; wait for the block or lower to_block")
        job = await worker.scanner.rescan(a, b)
        return lpb.RescanResponse(blocks_scanned=job.blocks_scanned, transfers_published=job.transfers_published)
