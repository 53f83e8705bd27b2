"""An extra consumer of paymesh payment events: a durable JetStream pull consumer
on the PAYMENTS stream, acking each event after handling it, deduplicating on
the event id (Nats-Msg-Id) the way any subscriber should.

    python examples/nats_subscriber.py --nats nats://127.0.0.1:4222 [--merchant mch_...] [--durable my-app]
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import nats
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from paymesh.events.v1 import payment_events_pb2 as ev
from paymesh.ledger.v1 import payment_pb2 as pb


def describe(event: ev.PaymentEvent) -> str:
    p = event.payment
    return (f"{ev.PaymentEventType.Name(event.type).removeprefix('PAYMENT_EVENT_TYPE_').lower():18} "
            f"{p.payment_id} {pb.PaymentStatus.Name(p.status).removeprefix('PAYMENT_STATUS_')} "
            f"received={p.amount_received} due={p.amount_due} {p.asset} v{p.version}")


async def consume(nats_url: str, durable: str, merchant: str, stop: asyncio.Event, limit: int = 0) -> list[ev.PaymentEvent]:
    """Handle events until `stop` is set (or `limit` new events were seen)."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    subject = f"paymesh.payments.{merchant or '*'}.>"
    await js.add_consumer("PAYMENTS", ConsumerConfig(durable_name=durable, filter_subject=subject,
                                                     ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL))
    sub = await js.pull_subscribe_bind(durable=durable, stream="PAYMENTS")
    seen: set[str] = set()  # a real consumer keeps this in its own database
    handled: list[ev.PaymentEvent] = []
    try:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(batch=100, timeout=1.0)
            except NatsTimeout:
                continue
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
        await nc.drain()
    return handled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--durable", default="example-subscriber")
    parser.add_argument("--merchant", default="", help="only this merchant's events")
    args = parser.parse_args()

    async def run() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await consume(args.nats, args.durable, args.merchant, stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
