"""`make bench`: run every benchmark in bench/ (each bounded in time), then
assemble docs/BENCHMARKS.md from the sections they wrote in docs/bench/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.common import ROOT, SECTIONS, machine

BENCHES = [
    "bench.bench_ledger",
    "bench.bench_listener",
    "bench.bench_providers",
    "bench.bench_internal",
    "bench.bench_notifier",
    "bench.bench_sweeper",
    "bench.bench_payouts",
    "bench.bench_connect",
    "bench.bench_load",
    "bench.bench_checkout",
    "bench.bench_growth",
    "bench.bench_listener_growth",
]


def assemble() -> Path:
    order = [
        "ledger",
        "listener",
        "providers",
        "internal",
        "notifier",
        "sweeper",
        "payouts",
        "connect",
        "checkout",
        "load",
        "growth",
        "listener_growth",
        "chaos",
    ]
    sections = sorted(SECTIONS.glob("*.md"), key=lambda p: (order.index(p.stem) if p.stem in order else 99, p.stem))
    body = "\n\n".join(p.read_text().rstrip() for p in sections)
    out = ROOT / "docs" / "BENCHMARKS.md"
    out.write_text(
        "# Benchmarks\n\n"
        "Written by `make bench` (each benchmark also writes its own section in `docs/bench/`).\n"
        "Every figure states its parameters; latency is measured at a stated concurrency, because\n"
        "at saturation p99 is set by the queue length (Little's law), not by the code.\n"
        f"The machine of the last run: {machine()}.\n\n" + body + "\n"
    )
    return out


def main() -> int:
    failed = []
    for module in BENCHES:
        if not (ROOT / (module.replace(".", "/") + ".py")).exists():
            print(f"skip {module}: not written yet")
            continue
        print(f"== {module}", flush=True)
        if subprocess.run([sys.executable, "-m", module], cwd=ROOT, timeout=1800).returncode != 0:
            failed.append(module)
    print(f"wrote {assemble()}")
    if failed:
        print("failed:", ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
