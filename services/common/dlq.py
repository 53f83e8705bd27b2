"""Inspect and replay dead letters: the DLQ stream, from the command line.

    python -m services.common.dlq list   [--durable NAME] [--limit N] [--json]
    python -m services.common.dlq show   SEQ [--json]
    python -m services.common.dlq replay SEQ... | --all [--durable NAME]
    python -m services.common.dlq purge  SEQ... | --all [--durable NAME]

A consumer that gives up on a message (malformed, or failing past max_deliver)
copies it to `paymesh.dlq.<durable>` (services/common/nats_helpers.dead_letter):
the payload unchanged, the reason in the `Paymesh-Error` header, the subject it
came from in `Paymesh-Original-Subject`. SEQ is the message's sequence number in
the DLQ stream, as `list` shows it.

- `list` shows each dead letter: sequence, time, durable, original subject, reason;
- `show` adds the headers and the payload, decoded as the event its subject
  carries (TransferObserved, HeadObserved, ReorgObserved, PaymentEvent) when it is one;
- `replay` publishes the payload to its original subject, then deletes the dead
  letter. Exactly once: the copy carries `Nats-Msg-Id: replay:<the dead letter's
  id>`, so a replay run again after a crash between the publish and the delete is
  dropped by JetStream as a duplicate (within the stream's duplicate window) and
  the dead letter is then removed;
- `purge` deletes dead letters without replaying them.

NATS is PAYMESH_NATS_URL (or --nats); unset, the running `make run`'s
(services/common/local_mesh.py), else nats://127.0.0.1:4222. Exit codes: 0 done,
1 an error (NATS unreachable, no such message, a publish refused), 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import nats
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError
from nats.js.api import RawStreamMsg
from nats.js.errors import NoStreamResponseError, NotFoundError

from services.common import local_mesh
from services.common.nats_helpers import DLQ_STREAM

assert DLQ_STREAM.name is not None
STREAM: str = DLQ_STREAM.name
PREFIX = "paymesh.dlq."
REASON = "Paymesh-Error"
ORIGINAL = "Paymesh-Original-Subject"


class DlqError(Exception):
    """Something an operator can act on; the message says what."""


def nats_url(flag: str | None = None) -> str:
    if flag:
        return flag
    if url := os.environ.get("PAYMESH_NATS_URL", "").strip():
        return url
    mesh = local_mesh.running()
    return (mesh or {}).get("nats_url") or "nats://127.0.0.1:4222"


def subject_filter(durable: str | None) -> str:
    return f"{PREFIX}{durable}" if durable else f"{PREFIX}>"


def event_type(subject: str):
    """The protobuf message class a paymesh subject carries, or None."""
    from paymesh.events.v1 import chain_events_pb2 as cev
    from paymesh.events.v1 import payment_events_pb2 as pev

    parts = subject.split(".")
    if len(parts) == 4 and parts[:2] == ["paymesh", "chain"]:
        return {"transfer": cev.TransferObserved, "head": cev.HeadObserved, "reorg": cev.ReorgObserved}.get(parts[3])
    if len(parts) == 4 and parts[:2] == ["paymesh", "payments"]:
        return pev.PaymentEvent
    return None


def summary(msg: RawStreamMsg) -> dict[str, Any]:
    headers = msg.headers or {}
    return {
        "seq": msg.seq,
        "time": msg.time.isoformat(timespec="seconds") if msg.time else "",
        "durable": (msg.subject or "").removeprefix(PREFIX),
        "original_subject": headers.get(ORIGINAL, ""),
        "reason": headers.get(REASON, ""),
        "size": len(msg.data or b""),
    }


def details(msg: RawStreamMsg) -> dict[str, Any]:
    out = summary(msg)
    data = msg.data or b""
    out["headers"] = dict(msg.headers or {})
    out["payload_hex"] = data.hex()
    kind = event_type(out["original_subject"])
    if kind is not None:
        try:
            out["payload"] = {
                "type": kind.DESCRIPTOR.full_name,
                "value": MessageToDict(kind.FromString(data), preserving_proto_field_name=True),
            }
        except DecodeError as exc:
            out["payload"] = {"type": kind.DESCRIPTOR.full_name, "error": f"not a valid {kind.DESCRIPTOR.name}: {exc}"}
    return out


class Dlq:
    """The DLQ stream on one NATS server."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._nc: nats.NATS | None = None

    async def __aenter__(self) -> Dlq:
        async def quiet(_exc: Exception) -> None:
            pass  # nats-py would log each failed attempt with a traceback; we say it once, below

        try:
            # One attempt (nats-py treats max_reconnect_attempts=0 as "keep trying"), bounded in time.
            self._nc = await asyncio.wait_for(
                nats.connect(
                    self.url, connect_timeout=5, allow_reconnect=False, max_reconnect_attempts=1, error_cb=quiet
                ),
                timeout=15,
            )
        except Exception as exc:  # noqa: BLE001 - nats-py raises many kinds; all mean the same here
            raise DlqError(
                f"cannot reach NATS at {self.url} ({exc or type(exc).__name__}); "
                "set PAYMESH_NATS_URL or --nats to the paymesh NATS server"
            ) from None
        self.js = self._nc.jetstream(timeout=10)
        try:
            await self.js.stream_info(STREAM)
        except NotFoundError:
            await self._nc.close()
            raise DlqError(
                f"NATS at {self.url} has no {STREAM} stream: it is created when a paymesh service "
                "starts; is this paymesh's NATS?"
            ) from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._nc is not None:
            await self._nc.close()

    async def messages(self, durable: str | None = None, limit: int = 0) -> AsyncIterator[RawStreamMsg]:
        """The dead letters, oldest first (of one durable's, when given)."""
        seq, seen = 1, 0
        while not limit or seen < limit:
            try:
                msg = await self.js.get_msg(STREAM, seq=seq, subject=subject_filter(durable), next=True)
            except NotFoundError:
                return
            yield msg
            seen += 1
            seq = int(msg.seq or 0) + 1

    async def get(self, seq: int) -> RawStreamMsg:
        try:
            msg = await self.js.get_msg(STREAM, seq=seq)
        except NotFoundError:
            raise DlqError(
                f"there is no dead letter {seq} in {STREAM} (replayed or purged already? `list` shows those there are)"
            ) from None
        if not (msg.subject or "").startswith(PREFIX):
            raise DlqError(f"message {seq} of {STREAM} is on {msg.subject}, not a dead letter")
        return msg

    async def replay(self, msg: RawStreamMsg) -> str:
        headers = msg.headers or {}
        subject = headers.get(ORIGINAL, "")
        if not subject:
            raise DlqError(f"dead letter {msg.seq} has no {ORIGINAL} header: nowhere to replay it to")
        msg_id = f"replay:{headers.get('Nats-Msg-Id') or f'{STREAM}:{msg.seq}'}"
        try:
            ack = await self.js.publish(
                subject,
                msg.data or b"",
                headers={"Nats-Msg-Id": msg_id, "Paymesh-Replayed-From": f"{STREAM} {msg.seq}"},
            )
        except NoStreamResponseError:
            raise DlqError(f"no stream takes {subject} on {self.url}: dead letter {msg.seq} is kept") from None
        await self.js.delete_msg(STREAM, int(msg.seq or 0))
        where = f"{ack.stream} #{ack.seq}"
        if ack.duplicate:
            return f"dead letter {msg.seq}: already replayed to {subject} ({where}); removed from {STREAM}"
        return f"dead letter {msg.seq}: replayed to {subject} ({where}); removed from {STREAM}"

    async def delete(self, seq: int) -> None:
        await self.get(seq)
        await self.js.delete_msg(STREAM, seq)

    async def purge(self, durable: str | None) -> int:
        before = (await self.js.stream_info(STREAM)).state.messages
        await self.js.purge_stream(STREAM, subject=subject_filter(durable) if durable else None)
        return before - (await self.js.stream_info(STREAM)).state.messages


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no dead letters"
    lines = [f"{'seq':>6}  {'time':25}  {'durable':16}  {'original subject':34}  reason"]
    for r in rows:
        reason = r["reason"] if len(r["reason"]) <= 100 else r["reason"][:99] + "…"
        lines.append(f"{r['seq']:>6}  {r['time']:25}  {r['durable']:16}  {r['original_subject']:34}  {reason}")
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> int:
    async with Dlq(nats_url(args.nats)) as dlq:
        if args.command == "list":
            rows = [summary(m) async for m in dlq.messages(args.durable, args.limit)]
            print(json.dumps(rows, indent=2) if args.json else _table(rows))
        elif args.command == "show":
            info = details(await dlq.get(args.seq))
            if args.json:
                print(json.dumps(info, indent=2))
            else:
                for key in ("seq", "time", "durable", "original_subject", "reason", "size"):
                    print(f"{key}: {info[key]}")
                for name, value in info["headers"].items():
                    print(f"header {name}: {value}")
                if "payload" in info:
                    print(
                        f"payload ({info['payload']['type']}): "
                        + json.dumps(info["payload"].get("value") or info["payload"].get("error"))
                    )
                print(f"payload hex: {info['payload_hex']}")
        elif args.command == "replay":
            targets = (
                [m async for m in dlq.messages(args.durable)] if args.all else [await dlq.get(seq) for seq in args.seq]
            )
            for msg in targets:
                print(await dlq.replay(msg), flush=True)
            if not targets:
                print("no dead letters")
        else:
            if args.all:
                print(f"removed {await dlq.purge(args.durable)} dead letter(s)")
            else:
                for seq in args.seq:
                    await dlq.delete(seq)
                    print(f"dead letter {seq}: removed from {STREAM}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.common.dlq", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nats", help="NATS URL (default: PAYMESH_NATS_URL, else the running make run's)")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="the dead letters, oldest first")
    listing.add_argument("--durable", help="only those of this consumer (paymesh.dlq.<durable>)")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (0: all; default 100)")
    listing.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="one dead letter with its headers and payload")
    show.add_argument("seq", type=int)
    show.add_argument("--json", action="store_true")
    for name, text in (("replay", "publish to the original subject, then remove"), ("purge", "remove, unreplayed")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("seq", type=int, nargs="*")
        cmd.add_argument("--all", action="store_true", help="every dead letter (of --durable, if given)")
        cmd.add_argument("--durable")
    args = parser.parse_args(argv)
    if args.command in ("replay", "purge"):
        if args.all == bool(args.seq):
            parser.error(f"{args.command} needs dead letter numbers (SEQ ...) or --all, not both")
        if args.durable and not args.all:
            parser.error("--durable goes with --all")
    try:
        return asyncio.run(run(args))
    except DlqError as exc:
        print(f"dlq: error: {exc}", file=sys.stderr)
        return 1
    except (nats.errors.Error, TimeoutError) as exc:
        print(f"dlq: error: NATS at {nats_url(args.nats)}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
