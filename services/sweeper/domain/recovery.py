"""Recovery decisions over the transactions the ledger recorded for a payment.

Transactions with the same sender and nonce form a group (an original and its
fee-bumped replacements); at most one of a group can ever be mined. A group is
open while one of its members may still be mined and none is confirmed; the
sweeper settles open groups (rebroadcast, wait, replace) before it signs
anything new, so a crash never leads to a second, different sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.sweeper.domain.model import RecordedTx, TxKind, TxState


@dataclass
class TxGroup:
    from_address: str
    nonce: int
    members: list[RecordedTx]  # oldest first

    @property
    def kind(self) -> TxKind:
        return self.members[0].kind

    @property
    def confirmed(self) -> RecordedTx | None:
        return next((t for t in self.members if t.state is TxState.CONFIRMED), None)

    @property
    def is_open(self) -> bool:
        return self.confirmed is None and any(t.is_open for t in self.members)

    @property
    def latest(self) -> RecordedTx:
        """The newest member still open (the one to rebroadcast or replace)."""
        open_members = [t for t in self.members if t.is_open]
        return (open_members or self.members)[-1]

    @property
    def replacements(self) -> int:
        return len(self.members) - 1

    def candidates(self) -> list[RecordedTx]:
        """Members that may be (or have been) mined: all but the failed ones, newest first."""
        return [t for t in reversed(self.members) if t.state is not TxState.FAILED]


def group_transactions(txs: list[RecordedTx], kind: TxKind | None = None) -> list[TxGroup]:
    """Groups by (sender, nonce), in the order their first member was recorded."""
    groups: dict[tuple[str, int], TxGroup] = {}
    for tx in txs:
        if kind is not None and tx.kind is not kind:
            continue
        key = (tx.from_address.lower(), tx.nonce)
        if key not in groups:
            groups[key] = TxGroup(tx.from_address, tx.nonce, [])
        groups[key].members.append(tx)
    return list(groups.values())


def open_groups(txs: list[RecordedTx], kind: TxKind) -> list[TxGroup]:
    return [g for g in group_transactions(txs, kind) if g.is_open]


def should_replace(
    *,
    current_fee: int,
    next_base_fee: int,
    age_seconds: float,
    stuck_after_seconds: float,
    replacements: int,
    max_replacements: int,
) -> bool:
    """Replace a pending transaction when it waited too long, or when its fee cap is
    below the next block's base fee (it cannot be included now) — within a bound."""
    if replacements >= max_replacements:
        return False
    if next_base_fee and current_fee < next_base_fee:
        return True
    return age_seconds >= stuck_after_seconds
