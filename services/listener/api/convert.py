"""The listener's records <-> ListenerService messages: the only place its
status and rescan results become protobuf."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp
from paymesh.listener.v1 import listener_service_pb2 as lpb

from services.listener.adapters.heads import Mode
from services.listener.leadership import ChainStatus
from services.listener.scanner import ScanJob

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


def chain_status(status: ChainStatus) -> lpb.ChainStatus:
    return lpb.ChainStatus(
        chain_id=status.chain_id,
        name=status.name,
        head=status.head,
        cursor=status.cursor,
        lag=status.lag,
        watched_addresses=status.watched_addresses,
        mode=MODE_TO_PB[status.mode],
        leader=status.leader,
        last_error=status.last_error,
        last_head_at=_ts(status.last_head_at),
        internal_transfers=status.internal_transfers,
        endpoints=[
            lpb.RpcEndpointStatus(
                name=e.name,
                state=e.state,
                head=e.head,
                lag=e.lag,
                latency_ms=e.latency_ms,
                requests=e.requests,
                errors=e.errors,
                last_error=e.last_error,
                weight=e.weight,
            )
            for e in status.endpoints
        ],
    )


def rescan_response(job: ScanJob) -> lpb.RescanResponse:
    return lpb.RescanResponse(blocks_scanned=job.blocks_scanned, transfers_published=job.transfers_published)
