"""Rebuild the test contracts' artifacts (TestToken.json, TestForwarder.json, TestPriceFeed.json) from
their Solidity sources with solcjs (npm `solc`, WebAssembly).

    python tools/contracts/build.py            # write the .json artifacts
    python tools/contracts/build.py --check    # fail if an artifact differs

Runs `npx --yes solc@0.8.24 --standard-json` in a temporary directory, so the
repository's package.json never gains a compiler. Nothing at test or run time
needs this: the ABIs and bytecode are committed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTRACTS = ("TestToken", "TestForwarder", "TestPriceFeed")  # each in <name>.sol, built into <name>.json
SOLC = "0.8.24"
SETTINGS = {"optimizer": {"enabled": True, "runs": 200}, "evmVersion": "cancun"}


def build() -> dict[str, dict]:
    npx = shutil.which("npx")
    if npx is None:
        raise SystemExit("npx (Node.js) is needed to run solcjs")
    sources = {f"{name}.sol": (HERE / f"{name}.sol").read_text() for name in CONTRACTS}
    request = {
        "language": "Solidity",
        "sources": {file: {"content": text} for file, text in sources.items()},
        "settings": {**SETTINGS, "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}}},
    }
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [npx, "--yes", f"solc@{SOLC}", "--standard-json"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            cwd=tmp,
            timeout=600,
            check=True,
        )
    output = json.loads(done.stdout[done.stdout.index("{") :])  # solcjs may print a notice first
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise SystemExit("\n".join(e["formattedMessage"] for e in errors))
    artifacts = {}
    for name in CONTRACTS:
        file = f"{name}.sol"
        contract = output["contracts"][file][name]
        artifacts[name] = {
            "contractName": name,
            "compiler": f"solc {SOLC} (solcjs, npm solc@{SOLC}): python tools/contracts/build.py",
            "settings": SETTINGS,
            "sourceSha256": hashlib.sha256(sources[file].encode()).hexdigest(),
            "abi": contract["abi"],
            "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
        }
    return artifacts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    stale = []
    for name, artifact in build().items():
        path = HERE / f"{name}.json"
        if args.check:
            current = json.loads(path.read_text()) if path.exists() else {}
            if current.get("bytecode") != artifact["bytecode"] or current.get("abi") != artifact["abi"]:
                stale.append(path.name)
            continue
        path.write_text(json.dumps(artifact, indent=1) + "\n")
        print(f"wrote {path}")
    if args.check:
        print(f"differ from a fresh build: {', '.join(stale)}" if stale else "contract artifacts are up to date")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
