"""Shared bits of the benchmarks: machine description, percentiles, report files."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ROOT / "docs" / "bench"


def machine() -> str:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem_kb / 1024 / 1024:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {sys.version.split()[0]}"
    )


def versions(*commands: list[str]) -> str:
    out = []
    for cmd in commands:
        try:
            out.append(subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0])
        except (OSError, IndexError, subprocess.SubprocessError):
            pass
    return "; ".join(out)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {
        "p50": pct(ms, 50),
        "p90": pct(ms, 90),
        "p99": pct(ms, 99),
        "max": max(ms) if ms else float("nan"),
        "mean": statistics.fmean(ms) if ms else float("nan"),
    }


def write_section(name: str, markdown: str) -> Path:
    SECTIONS.mkdir(parents=True, exist_ok=True)
    path = SECTIONS / f"{name}.md"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    path.write_text(f"{markdown.rstrip()}\n\n_Measured {stamp} on {machine()}._\n")
    return path


def stop_all(procs: list, *servers) -> None:
    """Stop service processes (newest first; killed if they do not stop in time), then
    the local stack's servers (anvil, NATS, Postgres: anything with `stop()`)."""
    for proc in reversed(procs):
        try:
            proc.terminate(timeout=20)
        except Exception:  # noqa: BLE001 - shutting down a benchmark: kill what does not stop
            proc.kill()
    for server in servers:
        server.stop()
