"""docs/OPERATIONS.md cannot rot: the settings it names exist, and its metric
table lists exactly the metrics the services export. (The cookbook commands are
run against a live mesh by tests/e2e/test_operations_cookbook.py.)"""

from __future__ import annotations

import re
from pathlib import Path

from tests.deploy.test_deploy_files import known_env_vars

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "OPERATIONS.md").read_text()


def test_every_setting_named_exists():
    named = set(re.findall(r"\bPAYMESH_[A-Z0-9_]+\b", DOC))
    # Chain RPC variables are the operator's own names in their chains.yaml.
    named = {n for n in named if not n.endswith(("_RPC_URL", "_WS_URL"))}
    named.discard("PAYMESH_API_KEY")  # a shell variable the cookbook and `make run` use, not a setting
    unknown = named - known_env_vars()
    assert not unknown, f"OPERATIONS.md names settings no service reads: {sorted(unknown)}"


def test_metric_table_matches_the_code():
    in_code: set[str] = set()
    for path in (ROOT / "services").rglob("*.py"):
        in_code |= set(re.findall(r'(?:Counter|Gauge|Histogram|Summary)\(\s*"(paymesh_[a-z0-9_]+)"', path.read_text()))
    documented = set(re.findall(r"^\| `(paymesh_[a-z0-9_]+)` \|", DOC, flags=re.M))
    assert documented == in_code, (
        f"undocumented: {sorted(in_code - documented)}; documented but gone: {sorted(documented - in_code)}"
    )
