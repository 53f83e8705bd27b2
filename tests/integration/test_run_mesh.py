"""`make run` as a new user sees it: start the mesh on its own local stack, paste
the printed grpcurl and tools.pay commands into a shell, then Ctrl-C. A second
`make run` on the same data says who runs it and touches nothing; a taken
service port is named with the variable that moves it; after a restart the same
pasted tools.pay command still works (it finds the running mesh by itself)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools import devstack
from tools.services import REPO_ROOT

SERVICES = ("LEDGER", "LISTENER", "SWEEPER", "NOTIFIER")


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text()
        if proc.poll() is not None:
            raise AssertionError(f"run_mesh exited early: {proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.2)
    raise AssertionError("run_mesh did not print its commands in time")


def _start(data_dir: Path, env: dict[str, str]) -> subprocess.Popen:
    (data_dir / "demo.txt").unlink(missing_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "tools.run_mesh", "--data", str(data_dir)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _ctrl_c(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's process group
    code = proc.wait(timeout=60)
    output = proc.stdout.read() if proc.stdout else ""
    assert code == 0, output
    assert "stopped." in output
    return output


def _bash(lines: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", "\n".join(lines)], capture_output=True, text=True, env=env, timeout=timeout)


def _line(text: str, predicate) -> str:
    return next(line for line in text.splitlines() if predicate(line))


@pytest.mark.timeout(420)
def test_make_run_then_readme_commands(tmp_path: Path):
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMESH_")}
    ports = {name: devstack.free_port() for name in SERVICES}
    env.update({f"PAYMESH_{name}_PORT": str(port) for name, port in ports.items()})
    # Not the usual 8545 / 4222: other checkouts on this machine may be running theirs.
    env.update(PAYMESH_ANVIL_PORT=str(devstack.free_port()), PAYMESH_NATS_PORT=str(devstack.free_port()))
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # grpcurl from the venv
    with devstack.postgres_scratch_dir(data) as data_dir:
        proc = _start(data_dir, env)
        try:
            text = _wait_for(data_dir / "demo.txt", proc)
            exports = [line for line in text.splitlines() if line.startswith("export ")]
            assert f"export PAYMESH_DATA_DIR={data_dir}" in exports
            create = _line(text, lambda line: "PaymentService/CreatePayment" in line)
            get = _line(text, lambda line: "PaymentService/GetPayment" in line)
            listing = _line(text, lambda line: "grpcurl" in line and line.endswith(" list"))
            pay = _line(text, lambda line: "-m tools.pay" in line)
            assert "--rpc" not in pay and "--ledger" not in pay, pay  # it finds the mesh by itself
            out = _bash([*exports, "set -e", listing, create], env)
            assert out.returncode == 0, out.stderr
            assert "paymesh.ledger.v1.PaymentService" in out.stdout
            created = json.loads(out.stdout[out.stdout.index("{") :])
            payment_id = created["payment"]["payment_id"]
            assert re.fullmatch(r"pay_[0-9a-f]{32}", payment_id)
            out = _bash([*exports, get.replace("PAYMENT_ID", payment_id)], env)
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout)["payment"]["status"] == "PAYMENT_STATUS_PENDING"

            # A second `make run` on the same data: says who runs it, exits 1, touches nothing.
            state_before = (data_dir / "mesh.json").read_text()
            second = subprocess.run(
                [sys.executable, "-m", "tools.run_mesh", "--data", str(data_dir)],
                cwd=REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert second.returncode == 1, second.stdout + second.stderr
            assert f"paymesh is already running (pid {proc.pid}, started at " in second.stderr
            assert f"stop it with Ctrl-C in its terminal or kill {proc.pid}" in second.stderr
            assert "Traceback" not in second.stderr and "Postgres" not in second.stderr
            assert (data_dir / "mesh.json").read_text() == state_before

            # Another checkout's mesh whose ledger port is taken (by ours): named, with its variable.
            other = tmp_path / "other"
            busy = subprocess.run(
                [sys.executable, "-m", "tools.run_mesh", "--data", str(other)],
                cwd=REPO_ROOT,
                env={
                    **env,
                    "PAYMESH_LISTENER_PORT": str(devstack.free_port()),
                    "PAYMESH_SWEEPER_PORT": str(devstack.free_port()),
                    "PAYMESH_NOTIFIER_PORT": str(devstack.free_port()),
                },
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert busy.returncode == 1, busy.stdout + busy.stderr
            assert f"port {ports['LEDGER']} on 127.0.0.1, where the ledger listens, is in use" in busy.stderr
            assert "PAYMESH_LEDGER_PORT=<port> make run" in busy.stderr and "Traceback" not in busy.stderr
            assert not (other / "postgres").exists()  # nothing was started

            # Pay it with the printed tools.pay line, then watch it confirm with grpcurl.
            out = _bash([*exports, "set -e", pay.replace("PAYMENT_ID", payment_id)], env, timeout=120)
            assert out.returncode == 0, out.stdout + out.stderr
            assert json.loads(out.stdout)["amount"] == "10000000000000000"
            status = ""
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and status not in ("PAYMENT_STATUS_CONFIRMED", "PAYMENT_STATUS_SWEPT"):
                time.sleep(0.5)
                out = _bash([*exports, get.replace("PAYMENT_ID", payment_id)], env)
                status = json.loads(out.stdout)["payment"]["status"] if out.returncode == 0 else ""
            assert status in ("PAYMENT_STATUS_CONFIRMED", "PAYMENT_STATUS_SWEPT"), status
            # Pasted again: nothing is due any more, nothing is sent.
            out = _bash([*exports, "set -e", pay.replace("PAYMENT_ID", payment_id)], env, timeout=120)
            assert out.returncode == 0 and out.stdout.startswith("nothing to pay"), out.stdout + out.stderr
        finally:
            output = _ctrl_c(proc)
        assert not (data_dir / "mesh.json").exists()
        leftovers = subprocess.run(["pgrep", "-f", str(data_dir)], capture_output=True, text=True).stdout.strip()
        assert leftovers == "", f"processes left running: {leftovers}"

        # Restarted, the same pasted commands still work: a new payment, paid by the same line.
        proc = _start(data_dir, env)
        try:
            again = _wait_for(data_dir / "demo.txt", proc)
            assert _line(again, lambda line: "-m tools.pay" in line) == pay
            out = _bash([*exports, "set -e", create.replace("demo-1", "demo-2")], env)
            assert out.returncode == 0, out.stderr
            second_id = json.loads(out.stdout)["payment"]["payment_id"]
            out = _bash([*exports, "set -e", pay.replace("PAYMENT_ID", second_id)], env, timeout=120)
            assert out.returncode == 0, out.stdout + out.stderr
            got = json.loads(_bash([*exports, get.replace("PAYMENT_ID", second_id)], env).stdout)["payment"]
            assert json.loads(out.stdout)["to"].lower() == got["deposit_address"].lower()
        finally:
            _ctrl_c(proc)
        leftovers = subprocess.run(["pgrep", "-f", str(data_dir)], capture_output=True, text=True).stdout.strip()
        assert leftovers == "", f"processes left running: {leftovers}"
        assert output
