"""The sweeper's records as protobuf (paymesh.sweeper.v1): the only place they become messages."""

from __future__ import annotations

from paymesh.sweeper.v1 import sweeper_service_pb2 as pb

from services.common.timestamps import to_timestamp
from services.sweeper.domain.model import ChainStatus


def chain_status_to_pb(status: ChainStatus) -> pb.ChainSweepStatus:
    """A chain's status; an unknown gas wallet balance (the node did not answer) is ""."""
    message = pb.ChainSweepStatus(
        chain_id=status.chain_id,
        leader=status.leader,
        gas_wallet_address=status.gas_wallet_address,
        gas_wallet_balance="" if status.gas_wallet_balance is None else str(status.gas_wallet_balance),
        in_flight=status.in_flight,
        last_error=status.last_error,
    )
    if status.last_run_at is not None:
        message.last_run_at.CopyFrom(to_timestamp(status.last_run_at))
    return message
