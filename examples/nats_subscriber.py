"""An extra consumer of paymesh payment events: a durable JetStream pull consumer
on the PAYMENTS stream, acking each event after handling it, deduplicating on
the event id (Nats-Msg-Id) the way any subscriber should.

    python examples/nats_subscriber.py --nats nats://127.0.0.1:4222 [--merchant mch_...] [--durable my-app]
        [--fetch-timeout SECONDS] [--verbose]

It runs until Ctrl-C (SIGINT) or SIGTERM, idle for as long as there is nothing
to handle: each fetch waits up to --fetch-timeout seconds (default 5) for an
event, and one that comes back empty, however nats-py reports it (an empty
batch, nats.errors.TimeoutError, or a plain asyncio.TimeoutError, which
nats-py 2.16 raises when the server's own expiry answer wins the race against
the client's timer), just waits again. --verbose prints a line to stderr for
every empty wait. NATS restarts are ridden out: the client reconnects without
a limit.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from paymesh.events.v1 import payment_events_pb2 as ev
from paymesh.ledger.v1 import payment_pb2 as pb


def describe(event: ev.PaymentEvent) -> str:
    p = event.payment
    return (
        f"{ev.PaymentEventType.Name(event.type).removeprefix('PAYMENT_EVENT_TYPE_').lower():18} "
        f"{p.payment_id} {pb.PaymentStatus.Name(p.status).removeprefix('PAYMENT_STATUS_')} "
        f"received={p.amount_received} due={p.amount_due} {p.asset} v{p.version}"
    )


async def consume(
    nats_url: str,
    durable: str,
    merchant: str,
    stop: asyncio.Event,
    limit: int = 0,
    fetch_timeout: float = 5.0,
    verbose: bool = False,
) -> list[ev.PaymentEvent]:
    """Handle events until `stop` is set (or `limit` new events were seen)."""
    nc = await nats.connect(nats_url, max_reconnect_attempts=-1, reconnect_time_wait=1.0)
    js = nc.jetstream()
    subject = f"paymesh.payments.{merchant or '*'}.>"
    await js.add_consumer(
        "PAYMENTS",
        ConsumerConfig(
            durable_name=durable,
            filter_subject=subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
        ),
    )
    sub = await js.pull_subscribe_bind(durable=durable, stream="PAYMENTS")
    seen: set[str] = set()  # a real consumer keeps this in its own database
    handled: list[ev.PaymentEvent] = []
    idle = 0
    try:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(batch=100, timeout=fetch_timeout)
            except TimeoutError:  # nats.errors.TimeoutError and the bare asyncio one both are one
                msgs = []
            if not msgs:
                idle += 1
                if verbose:
                    print(f"idle: no event within {fetch_timeout:g} s ({idle} in a row)", file=sys.stderr, flush=True)
                continue
            idle = 0
            for msg in msgs:
                event = ev.PaymentEvent.FromString(msg.data)
                if event.event_id not in seen:
                    seen.add(event.event_id)
                    handled.append(event)
                    print(describe(event), flush=True)
                await msg.ack()  # after handling: a crash before this redelivers
                if limit and len(handled) >= limit:
                    stop.set()
    finally:
        # Unsubscribe first: draining a pull subscription waits out nats-py's
        # drain timeout (30 s) instead of returning once the acks are flushed.
        await sub.unsubscribe()
        await nc.drain()
    return handled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--durable", default="example-subscriber")
    parser.add_argument("--merchant", default="", help="only this merchant's events")
    parser.add_argument("--fetch-timeout", type=float, default=5.0, help="seconds each fetch waits for events")
    parser.add_argument("--verbose", action="store_true", help="print a line to stderr for every empty wait")
    args = parser.parse_args()
    if args.fetch_timeout <= 0:
        parser.error("--fetch-timeout must be a positive number of seconds")

    async def run() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await consume(
            args.nats, args.durable, args.merchant, stop, fetch_timeout=args.fetch_timeout, verbose=args.verbose
        )
        print("stopped.", file=sys.stderr, flush=True)

    asyncio.run(run())


if __name__ == "__main__":
    main()
