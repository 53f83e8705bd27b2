"""How driving a group of same-nonce transactions can end (settler.py returns these).

- `Mined`: one member is in the chain, succeeded, and is deep enough (the chain's
  confirmations, or the depth asked for); `receipt` is its receipt at that depth.
- `Reorged`: a member was mined but left the chain before it was deep enough;
  the group is open again and the settler keeps driving it.
- `Failed`: no member will ever do what the group was for (reverted, the nonce
  was used by a transaction the sweeper did not record, the node refused it for
  insufficient funds, a token transfer moved another amount); `reason` says which.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.sweeper.domain.model import RecordedTx


@dataclass(frozen=True)
class Mined:
    tx: RecordedTx
    receipt: dict


@dataclass(frozen=True)
class Reorged:
    tx: RecordedTx


@dataclass(frozen=True)
class Failed:
    reason: str
    receipt: dict | None = None


Settlement = Mined | Failed  # what settling a group returns (a reorg is not an end: it is settled again)
