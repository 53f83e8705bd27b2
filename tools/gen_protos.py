"""Generate gen/ from protos/ with the protoc bundled in grpcio-tools.

`--check` regenerates into a temporary folder and fails when gen/ differs, so
CI catches a proto change whose generated code was not committed.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GEN = ROOT / "gen"


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    well_known = str(resources.files("grpc_tools") / "_proto")
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Regular packages (not namespace packages) so tools and packagers see them.
    for folder in [out / "paymesh", *(p for p in (out / "paymesh").rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()


def differences(a: Path, b: Path) -> list[str]:
    out: list[str] = []
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])

    def walk(c: filecmp.dircmp, prefix: str) -> None:
        out.extend(f"only in gen/: {prefix}{n}" for n in c.left_only)
        out.extend(f"missing from gen/: {prefix}{n}" for n in c.right_only)
        out.extend(f"differs: {prefix}{n}" for n in c.diff_files)
        for name, sub in c.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(cmp, "")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=GEN)
    parser.add_argument("--check", action="store_true", help="fail if gen/ is stale")
    args = parser.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = Path(tmp) / "gen"
            generate(fresh)
            diff = differences(GEN, fresh)
        if diff:
            print("gen/ is out of date with protos/; run `make gen` and commit:", file=sys.stderr)
            print("\n".join(f"  {d}" for d in diff), file=sys.stderr)
            return 1
        print("gen/ is up to date")
        return 0
    shutil.rmtree(args.out / "paymesh", ignore_errors=True)
    generate(args.out)
    print(f"generated {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
