"""The README is the front door: the statuses it shows are the wire names
grpcurl prints (`PAYMENT_STATUS_PENDING`), every one of them, and no other."""

from __future__ import annotations

import re
from pathlib import Path

from paymesh.ledger.v1 import payment_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
WIRE = {name for name in pb.PaymentStatus.keys() if name != "PAYMENT_STATUS_UNSPECIFIED"}
SHORT = {name.removeprefix("PAYMENT_STATUS_") for name in WIRE}


def test_statuses_table_lists_every_wire_name():
    section = README[README.index("### Payment statuses") :]
    section = section[: section.index("\n#")]
    table = re.findall(r"^\| `([A-Z_]+)` \|", section, flags=re.M)
    assert set(table) == WIRE and len(table) == len(WIRE), table


def test_no_short_status_names():
    short = [name for name in re.findall(r"`([A-Z_]+)`", README) if name in SHORT]
    assert not short, f"README shows statuses without their wire prefix: {short}"
    named = set(re.findall(r"\bPAYMENT_STATUS_[A-Z_]+\b", README))
    assert named <= WIRE, f"README names statuses that do not exist: {sorted(named - WIRE)}"
