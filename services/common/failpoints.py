"""Failpoints: named places where a process can be told to die with SIGKILL.

Crash tests set PAYMESH_FAILPOINTS=name[,name...] on a real service process to
kill it at the exact moment that matters (after a DB commit and before the
NATS ack, after a publish and before marking it published, ...). Unset, a
failpoint is a dictionary lookup and nothing else.
"""

from __future__ import annotations

import os
import signal

_ACTIVE = frozenset(filter(None, os.environ.get("PAYMESH_FAILPOINTS", "").split(",")))


def failpoint(name: str) -> None:
    if name in _ACTIVE:
        os.kill(os.getpid(), signal.SIGKILL)
