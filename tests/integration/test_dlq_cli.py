"""`python -m services.common.dlq` against real NATS: a message a consumer gave
up on is listed, shown (reason, original subject, decoded payload), replayed to
its original subject exactly once and then gone from the DLQ, or purged."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import nats
import pytest
from nats.js.api import DeliverPolicy

from services.common.nats_helpers import Handled, Outcome, ensure_pull_consumer, ensure_streams, run_pull_consumer
from tests.support.ledger import eventually, next_block, transfer_event
from tests.support.procs import run_command

pytestmark = pytest.mark.asyncio(loop_scope="session")
SUBJECT = "paymesh.chain.31337.transfer"


async def dlq(url: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMESH_")}
    env["PAYMESH_NATS_URL"] = url
    return await run_command(sys.executable, "-m", "services.common.dlq", *args, env=env)


async def dead_letter_via_consumer(js, durable: str, payloads: list[bytes], reason: str) -> None:
    """Publish `payloads` to SUBJECT and let a new pull consumer give up on each."""
    await ensure_pull_consumer(js, "CHAIN", durable, SUBJECT, deliver_policy=DeliverPolicy.NEW)
    before = (await js.stream_info("DLQ")).state.messages
    for payload in payloads:
        await js.publish(SUBJECT, payload, stream="CHAIN")
    stop = asyncio.Event()

    async def give_up(msgs):
        return [Handled(Outcome.DEAD, reason) for _ in msgs]

    task = asyncio.create_task(
        run_pull_consumer(js, stream="CHAIN", durable=durable, handler=give_up, stop=stop, fetch_timeout=0.1)
    )

    async def all_there():
        return (await js.stream_info("DLQ")).state.messages >= before + len(payloads)

    try:
        assert await eventually(all_there, timeout=20), "the consumer did not dead-letter them in time"
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def on_subject(js, subject: str) -> list:
    info = await js.stream_info("CHAIN", subjects_filter=subject)
    return info.state.subjects.get(subject, 0) if info.state.subjects else 0


async def test_list_show_replay_once_and_purge(nats_factory):
    server = nats_factory()
    nc = await nats.connect(server.url)
    js = nc.jetstream(timeout=10)
    try:
        await ensure_streams(js)
        event = transfer_event("0x" + "ab" * 20, 1234, block=next_block())
        await dead_letter_via_consumer(js, "dlqtest", [event.SerializeToString()], "chain event for an unknown chain")

        code, out, err = await dlq(server.url, "list", "--json")
        assert code == 0, err
        [row] = json.loads(out)
        assert row["durable"] == "dlqtest" and row["original_subject"] == SUBJECT
        assert row["reason"] == "chain event for an unknown chain"
        seq = row["seq"]
        code, out, _ = await dlq(server.url, "list")
        assert code == 0 and "chain event for an unknown chain" in out and SUBJECT in out

        code, out, err = await dlq(server.url, "show", str(seq), "--json")
        assert code == 0, err
        shown = json.loads(out)
        assert shown["payload"]["type"] == "paymesh.events.v1.TransferObserved"
        assert shown["payload"]["value"]["amount"] == "1234" and shown["payload"]["value"]["tx_hash"] == event.tx_hash
        assert shown["headers"]["Paymesh-Error"] == "chain event for an unknown chain"
        assert bytes.fromhex(shown["payload_hex"]) == event.SerializeToString()

        count = await on_subject(js, SUBJECT)
        code, out, err = await dlq(server.url, "replay", str(seq))
        assert code == 0, err
        assert f"dead letter {seq}: replayed to {SUBJECT} (CHAIN #" in out
        assert await on_subject(js, SUBJECT) == count + 1
        last = await js.get_last_msg("CHAIN", SUBJECT)
        assert last.data == event.SerializeToString() and last.headers["Nats-Msg-Id"].startswith("replay:dlq:dlqtest:")
        assert (await js.stream_info("DLQ")).state.messages == 0

        code, out, err = await dlq(server.url, "replay", str(seq))  # gone: nothing replayed twice
        assert code == 1 and f"there is no dead letter {seq}" in err and "Traceback" not in err
        assert await on_subject(js, SUBJECT) == count + 1

        # A replay that published and then crashed before removing the dead letter: run again, the
        # copy is dropped as a duplicate and the dead letter removed - still exactly one copy.
        await dead_letter_via_consumer(js, "dlqtest2", [b"\x00not protobuf"], "malformed")
        [row] = json.loads((await dlq(server.url, "list", "--json"))[1])
        dead = await js.get_msg("DLQ", row["seq"])
        await js.publish(SUBJECT, dead.data, headers={"Nats-Msg-Id": f"replay:{dead.headers['Nats-Msg-Id']}"})
        count = await on_subject(js, SUBJECT)
        code, out, err = await dlq(server.url, "replay", "--all")
        assert code == 0, err
        assert f"dead letter {row['seq']}: already replayed to {SUBJECT}" in out
        assert await on_subject(js, SUBJECT) == count and (await js.stream_info("DLQ")).state.messages == 0

        # Purge: one by number, then the rest.
        await dead_letter_via_consumer(js, "dlqtest3", [b"a", b"b", b"c"], "malformed")
        rows = json.loads((await dlq(server.url, "list", "--json"))[1])
        assert len(rows) == 3
        code, out, err = await dlq(server.url, "show", str(rows[0]["seq"]))
        assert code == 0 and "payload (paymesh.events.v1.TransferObserved)" in out and "payload hex: 61" in out, err
        code, out, err = await dlq(server.url, "purge", str(rows[0]["seq"]))
        assert code == 0 and f"dead letter {rows[0]['seq']}: removed" in out, err
        code, out, err = await dlq(server.url, "purge", "--all", "--durable", "dlqtest3")
        assert code == 0 and "removed 2 dead letter(s)" in out, err
        assert (await dlq(server.url, "list"))[1].strip() == "no dead letters"
        assert await on_subject(js, SUBJECT) == count + 3  # purged, not replayed: only the originals
    finally:
        await nc.close()


async def test_unreachable_nats_is_a_message_not_a_traceback():
    code, out, err = await dlq("nats://127.0.0.1:9", "list")
    assert code == 1 and "cannot reach NATS at nats://127.0.0.1:9" in err and "Traceback" not in err
