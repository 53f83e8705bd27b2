"""The local mesh's state on disk: what a running `make run` (tools/run_mesh.py)
leaves in its data directory so the commands beside it find it by themselves.

The data directory is PAYMESH_DATA_DIR, by default `.data` in the checkout. In it:

    mesh.lock           locked (flock) by the running `make run` for its whole life,
                        and holding its pid and start time: a second `make run` reads
                        who runs instead of starting a second mesh on the same data
    mesh.json           written once the mesh serves, removed when it stops: the pid,
                        the start time and the addresses (services, anvil, NATS)
    demo_merchant.json  the demo merchant's id, API key and webhook secret (mode 600)
    secrets.env         the admin and service tokens of the local mesh (mode 600)

Guarantees: `running()` returns a mesh only while the process that wrote mesh.json
is alive (the same process, not a later one with its pid), so a `make run` killed
with SIGKILL never sends anyone to dead addresses; `save_demo()` replaces the demo
file atomically, so readers see the old content or the new, never half.

Only the standard library: the ledger's CLI and the DLQ CLI read this too, and the
service image has no local stack.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / ".data"
STATE_FILE = "mesh.json"
LOCK_FILE = "mesh.lock"
DEMO_FILE = "demo_merchant.json"
SECRETS_FILE = "secrets.env"


def data_dir() -> Path:
    """The local mesh's data directory: PAYMESH_DATA_DIR, else `.data` in the checkout."""
    value = os.environ.get("PAYMESH_DATA_DIR", "").strip()
    return Path(value).expanduser().resolve() if value else DEFAULT_DATA_DIR


def process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot), or None if there is no such
    process: together with the pid it names one process, never a later one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields[0] == "Z":
        return None  # a zombie has stopped running
    return int(fields[19])


def alive(record: dict[str, Any]) -> bool:
    """Whether the process a lock or state record names still runs."""
    pid, start = record.get("pid"), record.get("pid_start")
    return isinstance(pid, int) and pid > 0 and start is not None and process_start(pid) == start


def running(data: Path | None = None) -> dict[str, Any] | None:
    """The running local mesh's state (mesh.json), or None when none runs there."""
    path = (data or data_dir()) / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not alive(state):
        return None
    state.setdefault("data_dir", str(path.parent))
    return state


def write_state(data: Path, state: dict[str, Any]) -> None:
    _write_atomic(data / STATE_FILE, json.dumps(state, indent=2) + "\n", 0o644)


def remove_state(data: Path) -> None:
    (data / STATE_FILE).unlink(missing_ok=True)


def load_demo(data: Path | None = None) -> dict[str, Any] | None:
    """The demo merchant make run created ({merchant_id, api_key, webhook_secret}), if any."""
    try:
        demo = json.loads(((data or data_dir()) / DEMO_FILE).read_text())
    except (OSError, ValueError):
        return None
    return demo if isinstance(demo, dict) else None


def save_demo(data: Path, demo: dict[str, Any]) -> Path:
    path = data / DEMO_FILE
    _write_atomic(path, json.dumps(demo, indent=2), 0o600)
    return path


def load_secrets(data: Path | None = None) -> dict[str, str]:
    """KEY=VALUE lines of the local mesh's secrets.env ({} when there is none)."""
    try:
        text = ((data or data_dir()) / SECRETS_FILE).read_text()
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def _write_atomic(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)  # whatever the umask
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)
