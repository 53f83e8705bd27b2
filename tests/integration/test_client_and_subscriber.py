"""The merchant client package and the example NATS subscriber, against the
real ledger and NATS."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import grpc
import pytest
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh_client import PaymeshClient

from tests.support.ledger import next_block, publish_chain, publish_head, transfer_event

pytestmark = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parents[2]


def load_example():
    spec = importlib.util.spec_from_file_location("nats_subscriber", ROOT / "examples" / "nats_subscriber.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_client_round_trip(ledger, merchant):
    async with PaymeshClient(f"127.0.0.1:{ledger.port}", merchant.api_key) as client:
        created = await client.create_payment(chain_id=31337, asset="TUSD", amount=25_000_000, merchant_order_id="c-1")
        assert created.amount_due == "25000000" and created.status == pb.PAYMENT_STATUS_PENDING
        assert (await client.get_payment(created.payment_id)).deposit_address == created.deposit_address
        listed = [p.payment_id async for p in client.list_payments(page_size=1)]
        assert listed == [created.payment_id]
        cancelled = await client.cancel_payment(created.payment_id, reason="test")
        assert cancelled.status == pb.PAYMENT_STATUS_CANCELLED
        with pytest.raises(TypeError):
            await client.create_payment(chain_id=31337, asset="ETH", amount=1.5)  # type: ignore[arg-type]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.get_payment("pay_missing")
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_client_retries_unavailable_then_reports_it():
    async with PaymeshClient("127.0.0.1:9", "pmk_x", attempts=2, backoff=0.01, timeout=1) as client:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.get_payment("pay_x")
    assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


async def test_example_subscriber_sees_each_event_once_in_order(ledger, merchant, js, nats_server):
    example = load_example()
    payment = await merchant.create(amount="1000")
    block = next_block()
    await publish_chain(js, "transfer", transfer_event(payment.deposit_address, 1000, block=block))
    await publish_head(js, block + 1)
    stop = asyncio.Event()
    events = await asyncio.wait_for(
        example.consume(nats_server.url, f"example-{merchant.merchant_id}", merchant.merchant_id, stop, limit=3),
        timeout=30,
    )
    assert [e.payment.status for e in events] == [
        pb.PAYMENT_STATUS_PENDING,
        pb.PAYMENT_STATUS_DETECTED,
        pb.PAYMENT_STATUS_CONFIRMED,
    ]
    assert len({e.event_id for e in events}) == 3


async def _line_with(stream: asyncio.StreamReader, predicate, what: str, within: float = 30) -> str:
    """The first line from `stream` that satisfies `predicate`, within `within` s."""
    seen: list[str] = []

    async def scan() -> str:
        while line := (await stream.readline()).decode():
            if predicate(line):
                return line
            seen.append(line)
        raise AssertionError(f"the subscriber's output ended before {what}:\n" + "".join(seen[-15:]))

    return await asyncio.wait_for(scan(), timeout=within)


async def _collect(stream: asyncio.StreamReader, into: list[str]) -> None:
    while line := (await stream.readline()).decode():
        into.append(line)


async def test_example_subscriber_stays_up_while_idle(ledger, merchant, nats_server):
    """Run as a user would: the example sits idle through many empty fetches
    (nats-py reports some of them as a bare asyncio.TimeoutError), then still
    handles the next event and stops cleanly on SIGINT."""
    import signal
    import sys

    idle_waits = 200  # at 0.02 s each; the unfixed example died within 1-60 of them
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples" / "nats_subscriber.py"),
        "--nats",
        nats_server.url,
        "--durable",
        f"idle-{merchant.merchant_id}",
        "--merchant",
        merchant.merchant_id,
        "--fetch-timeout",
        "0.02",
        "--verbose",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await _line_with(
            proc.stderr, lambda line: f"({idle_waits} in a row)" in line, f"{idle_waits} empty waits", within=90
        )
        assert proc.returncode is None
        # Keep reading its stderr (a full pipe would block it), and see it still waiting idle.
        stderr_lines: list[str] = []
        drain = asyncio.create_task(_collect(proc.stderr, stderr_lines))
        payment = await merchant.create(amount="1000")
        line = await _line_with(proc.stdout, lambda line: payment.payment_id in line, "the created event")
        assert line.split()[0] == "created" and "PENDING" in line
        assert proc.returncode is None
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
        await asyncio.wait_for(drain, timeout=10)
        assert stderr_lines[-1] == "stopped.\n", stderr_lines[-5:]
        assert not any("Traceback" in line for line in stderr_lines)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
