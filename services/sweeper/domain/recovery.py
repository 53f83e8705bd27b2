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

    @classmethod
    def of(cls, tx: RecordedTx) -> TxGroup:
        """The group of a transaction just recorded (it has no replacements yet)."""
        return cls(tx.from_address, tx.nonce, [tx])

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


def foreign_sender(tx: RecordedTx, derived_address: str) -> str:
    """Why `tx` cannot be signed again with the key that derives `derived_address`
    (it is from another address), or "" when it can."""
    if derived_address.lower() == tx.from_address.lower():
        return ""
    return (
        f"recorded transaction {tx.tx_hash} is from {tx.from_address}, which this sweeper has no key for "
        f"(it derives {derived_address}); resolve it by hand"
    )
