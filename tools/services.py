"""Run a paymesh service as a real OS process (`python -m services.<name>`), wait
until its gRPC health says SERVING, and kill it (SIGKILL) or stop it (SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parents[1]


# Services that serve HTTP, not gRPC: their port is PAYMESH_HTTP_PORT and they are
# serving once GET /healthz answers 200.
HTTP_SERVICES = frozenset({"services.checkout"})


class ServiceProcess:
    def __init__(self, module: str, env: dict[str, str], log_path: Path, port: int) -> None:
        self.module = module
        self.env = env
        self.log_path = log_path
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.http = module in HTTP_SERVICES

    def start(self, extra_env: dict[str, str] | None = None, wait: bool = True) -> ServiceProcess:
        port_variable = "PAYMESH_HTTP_PORT" if self.http else "PAYMESH_GRPC_PORT"
        env = {**os.environ, **self.env, **(extra_env or {}), port_variable: str(self.port)}
        if "PAYMESH_SWEEPER_MNEMONIC" not in {**self.env, **(extra_env or {})}:
            env.pop("PAYMESH_SWEEPER_MNEMONIC", None)
        if "PAYMESH_FAILPOINTS" not in (extra_env or {}):
            env.pop("PAYMESH_FAILPOINTS", None)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if wait:
            self.wait_serving()
        return self

    def wait_serving(self, timeout: float = 30.0) -> None:
        if self.http:
            self._wait_http(timeout)
            return
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"{self.module} exited with {self.proc.returncode}:\n{self.tail()}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"{self.module} not serving after {timeout}s:\n{self.tail()}")

    def _wait_http(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.module} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.module} not serving after {timeout}s:\n{self.tail()}")

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"
