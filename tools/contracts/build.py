"""Rebuild TestToken.json from TestToken.sol with solcjs (npm `solc`, WebAssembly).

    python tools/contracts/build.py            # write TestToken.json
    python tools/contracts/build.py --check    # fail if TestToken.json differs

Runs `npx --yes solc@0.8.24 --standard-json` in a temporary directory, so the
repository's package.json never gains a compiler. Nothing at test or run time
needs this: the ABI and bytecode are committed.
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
SOURCE = HERE / "TestToken.sol"
ARTIFACT = HERE / "TestToken.json"
SOLC = "0.8.24"
SETTINGS = {"optimizer": {"enabled": True, "runs": 200}, "evmVersion": "cancun"}


def build() -> dict:
    npx = shutil.which("npx")
    if npx is None:
        raise SystemExit("npx (Node.js) is needed to run solcjs")
    source = SOURCE.read_text()
    request = {
        "language": "Solidity",
        "sources": {SOURCE.name: {"content": source}},
        "settings": {**SETTINGS, "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}}},
    }
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [npx, "--yes", f"solc@{SOLC}", "--standard-json"],
            input=json.dumps(request), capture_output=True, text=True, cwd=tmp, timeout=600, check=True,
        )
    output = json.loads(done.stdout[done.stdout.index("{"):])  # solcjs may print a notice first
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise SystemExit("\n".join(e["formattedMessage"] for e in errors))
    contract = output["contracts"][SOURCE.name]["TestToken"]
    return {
        "contractName": "TestToken",
        "compiler": f"solc {SOLC} (solcjs, npm solc@{SOLC}): python tools/contracts/build.py",
        "settings": SETTINGS,
        "sourceSha256": hashlib.sha256(source.encode()).hexdigest(),
        "abi": contract["abi"],
        "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    artifact = build()
    text = json.dumps(artifact, indent=1) + "\n"
    if args.check:
        current = json.loads(ARTIFACT.read_text())
        same = current["bytecode"] == artifact["bytecode"] and current["abi"] == artifact["abi"]
        print("TestToken.json is up to date" if same else "TestToken.json differs from a fresh build")
        return 0 if same else 1
    ARTIFACT.write_text(text)
    print(f"wrote {ARTIFACT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
