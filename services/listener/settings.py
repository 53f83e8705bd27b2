"""Listener settings (environment, prefix PAYMESH_)."""

from __future__ import annotations

import os
import socket

from pydantic import Field, SecretStr

from services.common.settings import ADDRESS_FEED_TOKEN, CommonSettings


def _default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ListenerSettings(CommonSettings):
    address_feed_token: SecretStr = ADDRESS_FEED_TOKEN
    ledger_addr: str = Field("127.0.0.1:50051", description="the ledger's gRPC address (WatchAddresses)")
    replica_id: str = Field(default_factory=_default_replica_id, description="this replica's name in leases")
    chain_ids: list[int] = Field(
        default_factory=list, description="chains to watch (JSON list); empty: all in chains.yaml"
    )

    # NATS key-value state and leadership.
    state_bucket: str = "listener-state"
    lease_bucket: str = "listener-leases"
    lease_ttl_seconds: float = Field(
        10.0, ge=1.0, le=600.0, description="a dead leader's chains are taken over after this"
    )

    # Scanning.
    history_blocks: int = Field(64, ge=2, le=10_000, description="recent block hashes kept for reorg detection")
    lag_blocks: int = Field(0, ge=0, le=10_000, description="stay this many blocks behind the head (all chains)")
    lag_blocks_by_chain: dict[int, int] = Field(default_factory=dict, description='per-chain override, JSON {"1": 3}')
    start_block: int = Field(-1, ge=-1, description="where a chain without saved state starts; -1: at the head")
    block_batch: int = Field(100, ge=1, le=1000, description="blocks per JSON-RPC batch (providers often cap at 100)")
    block_concurrency: int = Field(4, ge=1, le=64, description="JSON-RPC batches in flight per chain")
    max_step_blocks: int = Field(1000, ge=1, le=100_000, description="blocks scanned per step when catching up")
    logs_range_initial: int = Field(1000, ge=1)
    logs_range_min: int = Field(1, ge=1)
    logs_range_max: int = Field(10_000, ge=1)
    max_backfill_blocks: int = Field(50_000, ge=1, description="deepest backfill for a late address")
    max_rescan_blocks: int = Field(100_000, ge=1, description="largest Rescan range accepted")
    address_margin_seconds: float = Field(60.0, ge=0, description="see services/listener/domain/backfill.py")

    # Talking to nodes.
    poll_interval_seconds: float = Field(0.0, ge=0, description="HTTP head polling; 0: half the chain's block time")
    ws_poll_interval_seconds: float = Field(5.0, gt=0, description="safety polling while the WebSocket is up")
    ws_backoff_max_seconds: float = Field(30.0, gt=0)
    rpc_timeout_seconds: float = Field(10.0, gt=0)
    rpc_attempts: int = Field(3, ge=1, le=20, description="tries per JSON-RPC call before the step is retried")
    rpc_trust_env: bool = Field(False, description="use HTTP(S)_PROXY from the environment for RPC")

    def lag_for(self, chain_id: int) -> int:
        return self.lag_blocks_by_chain.get(chain_id, self.lag_blocks)
