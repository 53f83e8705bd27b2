"""Confirmation depth means one thing everywhere: the block that includes a
transfer is its first confirmation (services/common/confirmations.py). The
docs, chains files and API comments must not say `confirmations` counts only
the blocks on top of a transfer's block (issue 12, item 1), and the code must
count the way they say."""

from __future__ import annotations

import re
from pathlib import Path

from services.common.confirmations import confirmations, is_confirmed, last_confirmed_block

ROOT = Path(__file__).resolve().parents[2]

# Where operators and API users read what `confirmations` means.
DOCUMENTS = sorted(
    {
        ROOT / "chains.yaml",
        *ROOT.glob("deploy/**/chains*.yaml"),
        *ROOT.glob("protos/paymesh/**/*.proto"),
        ROOT / "README.md",
        ROOT / "docs" / "OPERATIONS.md",
        *ROOT.glob("services/*/README.md"),
    }
)
# The defining sentence, in the files that define the setting.
DEFINERS = ["chains.yaml", "README.md", "docs/OPERATIONS.md", "protos/paymesh/ledger/v1/payment.proto"]
DEFINITION = re.compile(
    r"the block that includes a transfer is its first confirmation.{0,40}a transfer has N confirmations "
    r"when its block and N-1 blocks on top of it are in the canonical chain",
    re.I | re.S,
)
# A statement that says how deep a transfer must be...
ABOUT_DEPTH = re.compile(r"confirm|\bdeep|\bdepth|\bcounts?\b", re.I)
# ...and counts blocks on top of it...
ON_TOP = re.compile(r"\bon top\b", re.I)
# ...must say the including block is one of them.
COUNTS_ITS_BLOCK = re.compile(
    r"first confirmation|its block and|block that includes|including block|its block is the first", re.I
)


def _text(path: Path) -> str:
    """The prose of a file: the comments of .proto and .yaml files (other lines
    become paragraph breaks), all of markdown (a code block line by line)."""
    raw = path.read_text()
    if path.suffix == ".proto":
        return "\n".join(line.strip()[2:] if line.strip().startswith("//") else "" for line in raw.splitlines())
    if path.suffix in (".yaml", ".yml"):
        return "\n".join(line.partition("#")[2] for line in raw.splitlines())
    lines, fenced = [], False
    for line in raw.splitlines():
        fenced ^= line.startswith("```")
        lines += [line, ""] if fenced else [line]  # each line of a code block on its own
    return "\n".join(lines)


def statements(path: Path) -> list[str]:
    """Sentences of paragraphs, table cells, list items and field-list rows, whitespace folded."""
    # A blank line, a table cell, or a line starting a list item or a `name   description`
    # row (a word and two spaces) ends a statement.
    parts = re.split(r"\n\s*\n|\||\n(?=\s*(?:[*-]\s|\d+\.\s|\S+\s{2,}))", _text(path))
    out = []
    for part in parts:
        folded = " ".join(part.split())
        out += [s for s in re.split(r"(?<=[.;])\s+(?=[A-Z`(*])", folded) if s]
    return out


def stale_statements() -> list[str]:
    found = []
    for path in DOCUMENTS:
        for s in statements(path):
            if ON_TOP.search(s) and ABOUT_DEPTH.search(s) and not COUNTS_ITS_BLOCK.search(s):
                found.append(f"{path.relative_to(ROOT)}: {s}")
    return found


def test_no_document_counts_only_the_blocks_on_top():
    stale = stale_statements()
    assert not stale, (
        "these still count confirmations as blocks on top of a transfer's block; the block that "
        "includes a transfer is its first confirmation:\n" + "\n".join(stale)
    )


def test_the_definition_is_where_the_setting_is_defined():
    for name in DEFINERS:
        text = " ".join(_text(ROOT / name).replace("`", "").split())
        assert DEFINITION.search(text), f"{name} does not define confirmations with the one sentence"


def test_the_checker_sees_the_old_wording():
    # The phrasings issue 12 found, so the check above cannot pass by seeing nothing.
    old = [
        "confirmations           blocks on top of a transfer's block before it counts",
        "PAYMENT_STATUS_DETECTED is not yet deep enough (fewer blocks on top than the chain's confirmation depth).",
        "TRANSFER_STATE_CONFIRMED has at least the chain's confirmation depth on top.",
    ]
    for s in old:
        assert ON_TOP.search(s) and ABOUT_DEPTH.search(s) and not COUNTS_ITS_BLOCK.search(s), s
    assert "chains.yaml" in {p.name for p in DOCUMENTS} and len([p for p in DOCUMENTS if p.suffix == ".proto"]) >= 5


def test_the_code_counts_as_documented():
    # Its block is the first: mined in the head block = 1 confirmation.
    assert confirmations(100, 100) == 1 and confirmations(102, 100) == 3 and confirmations(99, 100) == 0
    # confirmations: 3 -> counted with its block and 2 blocks on top, not before.
    assert not is_confirmed(101, 100, 3) and is_confirmed(102, 100, 3)
    assert last_confirmed_block(102, 3) == 100
    # confirmations: 1 -> counted as soon as it is mined.
    assert is_confirmed(100, 100, 1) and last_confirmed_block(100, 1) == 100
