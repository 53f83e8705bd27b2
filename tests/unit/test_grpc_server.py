"""The shared gRPC wrapper's status messages stay small enough to reach the caller."""

from __future__ import annotations

from services.common.grpc_server import MAX_MESSAGE_BYTES, bounded_message


def test_long_messages_lose_their_middle_and_keep_both_ends():
    assert bounded_message("merchant mch_1 not found") == "merchant mch_1 not found"
    cut = bounded_message("merchant " + "\U0001f4a5" * 5000 + " not found")
    assert len(cut.encode()) <= MAX_MESSAGE_BYTES
    assert cut.startswith("merchant \U0001f4a5") and cut.endswith("\U0001f4a5 not found") and " ... (cut) ... " in cut
    exact = "x" * MAX_MESSAGE_BYTES
    assert bounded_message(exact) == exact
