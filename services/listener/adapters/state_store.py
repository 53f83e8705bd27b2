"""NATS key-value state of the listener: per-chain cursor + recent block hashes,
fenced by revision. Bucket `listener-state`, key `chain-<id>`, JSON.

The per-chain leader lease (bucket `listener-leases`, key `chain-<id>`, value:
the holder's replica id) is not kept here: it is services.common.lease's
KvLease + LeaseKeeper, shared with the sweeper (see services/listener/leadership.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import structlog
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

log = structlog.get_logger("listener.kv")


class StateConflict(Exception):
    """Someone else wrote the chain's state since we read it."""


@dataclass
class ChainState:
    cursor: int
    hashes: list[tuple[int, str]] = field(default_factory=list)
    head: int = 0
    address_mark: float | None = None  # see domain/backfill.py
    writer: str = ""
    saved_at: float = 0.0

    def encode(self) -> bytes:
        return json.dumps(
            {
                "v": 1,
                "cursor": self.cursor,
                "hashes": [[n, h] for n, h in self.hashes],
                "head": self.head,
                "address_mark": self.address_mark,
                "writer": self.writer,
                "saved_at": self.saved_at,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> ChainState:
        data = json.loads(raw)
        return cls(
            cursor=int(data["cursor"]),
            hashes=[(int(n), str(h)) for n, h in data.get("hashes", [])],
            head=int(data.get("head", 0)),
            address_mark=None if data.get("address_mark") is None else float(data["address_mark"]),
            writer=str(data.get("writer", "")),
            saved_at=float(data.get("saved_at", 0.0)),
        )


class StateStore:
    """One chain's state. `save` only succeeds over the revision last read or
    written by this store (compare-and-set), so two writers cannot interleave
    silently."""

    def __init__(self, kv: KeyValue, chain_id: int, writer: str) -> None:
        self._kv = kv
        self.key = f"chain-{chain_id}"
        self._writer = writer
        self._revision: int | None = None  # 0: known absent

    async def load(self) -> ChainState | None:
        try:
            entry = await self._kv.get(self.key)
        except (KeyNotFoundError, KeyDeletedError):
            self._revision = 0
            return None
        self._revision = entry.revision
        try:
            return ChainState.decode(entry.value or b"")
        except (ValueError, KeyError, TypeError) as exc:
            log.error("stored listener state is unreadable; starting over from the head", key=self.key, error=str(exc))
            return None

    async def peek(self) -> ChainState | None:
        """Read without taking the revision (for standby replicas and status)."""
        try:
            entry = await self._kv.get(self.key)
            return ChainState.decode(entry.value or b"")
        except (KeyNotFoundError, KeyDeletedError):
            return None
        except (ValueError, KeyError, TypeError):
            return None

    async def save(self, state: ChainState) -> None:
        state.writer = self._writer
        state.saved_at = time.time()
        value = state.encode()
        try:
            if not self._revision:
                self._revision = await self._kv.create(self.key, value)
            else:
                self._revision = await self._kv.update(self.key, value, last=self._revision)
        except KeyWrongLastSequenceError:
            self._revision = None
            raise StateConflict(f"{self.key} was written by another replica") from None
