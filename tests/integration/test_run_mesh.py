"""`make run` as a new user sees it: start the mesh on its own local stack, paste
the printed grpcurl commands into a shell, then Ctrl-C."""

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


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text()
        if proc.poll() is not None:
            raise AssertionError(f"run_mesh exited early: {proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.2)
    raise AssertionError("run_mesh did not print its commands in time")


@pytest.mark.timeout(240)
def test_make_run_then_readme_commands(tmp_path: Path):
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMESH_")}
    ports = {name: devstack.free_port() for name in ("LEDGER", "LISTENER", "SWEEPER", "NOTIFIER")}
    env.update({f"PAYMESH_{name}_PORT": str(port) for name, port in ports.items()})
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # grpcurl from the venv
    with devstack.postgres_scratch_dir(data) as data_dir:
        proc = subprocess.Popen([sys.executable, "-m", "tools.run_mesh", "--data", str(data_dir)], cwd=REPO_ROOT,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            text = _wait_for(data_dir / "demo.txt", proc)
            exports = [line for line in text.splitlines() if line.startswith("export ")]
            create = next(line for line in text.splitlines() if "PaymentService/CreatePayment" in line)
            get = next(line for line in text.splitlines() if "PaymentService/GetPayment" in line)
            listing = next(line for line in text.splitlines() if "grpcurl" in line and line.endswith(" list"))
            shell = "\n".join([*exports, "set -e", listing, create])
            out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, env=env, timeout=60)
            assert out.returncode == 0, out.stderr
            assert "paymesh.ledger.v1.PaymentService" in out.stdout
            created = json.loads(out.stdout[out.stdout.index("{"):])
            payment_id = created["payment"]["payment_id"]
            assert re.fullmatch(r"pay_[0-9a-f]{32}", payment_id)
            shell = "\n".join([*exports, get.replace("PAYMENT_ID", payment_id)])
            out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, env=env, timeout=60)
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout)["payment"]["status"] == "PAYMENT_STATUS_PENDING"
            # Pay it with the printed tools.pay line, then watch it confirm with grpcurl.
            pay = next(line for line in text.splitlines() if "-m tools.pay" in line)
            shell = "\n".join([*exports, "set -e", pay.replace("PAYMENT_ID", payment_id)])
            out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, env=env, timeout=120)
            assert out.returncode == 0, out.stdout + out.stderr
            status = ""
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and status not in ("PAYMENT_STATUS_CONFIRMED", "PAYMENT_STATUS_SWEPT"):
                time.sleep(0.5)
                shell = "\n".join([*exports, get.replace("PAYMENT_ID", payment_id)])
                out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, env=env, timeout=60)
                status = json.loads(out.stdout)["payment"]["status"] if out.returncode == 0 else ""
            assert status in ("PAYMENT_STATUS_CONFIRMED", "PAYMENT_STATUS_SWEPT"), status
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's process group
            code = proc.wait(timeout=60)
            output = proc.stdout.read() if proc.stdout else ""
        assert code == 0, output
        assert "stopped." in output
        leftovers = subprocess.run(["pgrep", "-f", str(data_dir)], capture_output=True, text=True).stdout.strip()
        assert leftovers == "", f"processes left running: {leftovers}"
