"""docs/FLOW.md cannot go stale: every `path/to/file.py:Symbol` it names exists
(the file, and in it a module-level function or class, or Class.method)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLOW = ROOT / "docs" / "FLOW.md"
REFERENCE = re.compile(r"`((?:services|tools|clients|examples)/[\w/.-]+\.py):([\w.]+)`")


def symbols(path: Path) -> set[str]:
    """Module-level functions and classes, and Class.method for each class's methods."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names.update(
                f"{node.name}.{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            )
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def test_flow_names_only_what_exists():
    references = REFERENCE.findall(FLOW.read_text())
    assert len(references) >= 30, "FLOW.md should trace every hop as `file.py:Symbol`"
    missing = []
    for file, symbol in references:
        path = ROOT / file
        if not path.is_file():
            missing.append(f"{file} (no such file)")
        elif symbol not in symbols(path):
            missing.append(f"{file}:{symbol}")
    assert not missing, "docs/FLOW.md names what does not exist:\n" + "\n".join(missing)


def test_flow_has_the_three_paths():
    text = FLOW.read_text()
    for heading in ("## One payment", "## A reorg", "## A sweep"):
        assert heading in text, heading
