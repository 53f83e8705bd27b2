"""Command line of the ledger.

    python -m services.ledger [serve]          run the ledger
    python -m services.ledger migrate          upgrade the database schema
    python -m services.ledger admin COMMAND    operator commands over gRPC
        (PAYMESH_LEDGER_ADDR, default 127.0.0.1:50051; PAYMESH_ADMIN_TOKEN)

Secrets change only when asked: `admin set-webhook` keeps the merchant's current
signing secret (SetWebhookRequest.keep_secret) unless --secret gives one or
--rotate-secret asks for a new one; `admin rotate-api-key` replaces the API key,
as its name says.

Against a running `make run` (services/common/local_mesh.py) the ledger address
and the tokens default to the local mesh's, and a new API key or webhook secret
of its demo merchant is written to .data/demo_merchant.json too, so the next
`make run` and tools.pay use the key that works.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
import uvloop
from google.protobuf.json_format import MessageToJson
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import merchant_admin_service_pb2_grpc as agrpc

from services.common import local_mesh


def _treasury(text: str) -> apb.Treasury:
    chain, _, address = text.partition(":")
    if not chain.isdigit() or not address:
        raise argparse.ArgumentTypeError("treasury must be CHAIN_ID:ADDRESS, e.g. 31337:0xabc...")
    return apb.Treasury(chain_id=int(chain), address=address)


def _admin_parser(sub: argparse._SubParsersAction) -> None:
    admin = sub.add_parser("admin", help="operator commands (MerchantAdminService)")
    cmds = admin.add_subparsers(dest="admin_command", required=True)
    c = cmds.add_parser("create-merchant")
    c.add_argument("--name", required=True)
    c.add_argument("--xpub", required=True)
    c.add_argument("--derivation-path", default="")
    c.add_argument("--webhook-url", default="")
    c.add_argument("--treasury", type=_treasury, action="append", default=[], help="CHAIN_ID:ADDRESS")
    cmds.add_parser("list-merchants")
    for name in ("get-merchant", "disable-merchant", "enable-merchant", "rotate-api-key"):
        cmds.add_parser(name).add_argument("merchant_id")
    w = cmds.add_parser("set-webhook")
    w.add_argument("merchant_id")
    w.add_argument("--url", required=True, help="the webhook URL; empty removes the webhook")
    secret = w.add_mutually_exclusive_group()
    secret.add_argument("--secret", default="", help="sign deliveries with this secret (16 to 256 characters)")
    secret.add_argument(
        "--rotate-secret",
        action="store_true",
        help="generate a new signing secret (printed once); without this or --secret the current secret is kept",
    )
    x = cmds.add_parser("set-xpub")
    x.add_argument("merchant_id")
    x.add_argument("--xpub", required=True)
    x.add_argument("--derivation-path", default="")
    t = cmds.add_parser("set-treasury")
    t.add_argument("merchant_id")
    t.add_argument("treasury", type=_treasury, help="CHAIN_ID:ADDRESS")


class _Refused(Exception):
    """The command cannot be done as asked; the message says what to do instead."""


def _target() -> tuple[str, str, dict | None]:
    """(ledger address, admin token, the local mesh or None): the environment wins;
    a running `make run` fills in what it leaves unset."""
    mesh = local_mesh.running()
    address = os.environ.get("PAYMESH_LEDGER_ADDR", "")
    if mesh is not None and address and address != mesh.get("ledger"):
        mesh = None  # another ledger than the local mesh's: its files are not this ledger's
    local = local_mesh.load_secrets(Path(mesh["data_dir"])) if mesh else {}
    return (
        address or (mesh or {}).get("ledger") or "127.0.0.1:50051",
        os.environ.get("PAYMESH_ADMIN_TOKEN", "") or local.get("PAYMESH_ADMIN_TOKEN", ""),
        mesh,
    )


def _keep_demo_in_step(mesh: dict | None, merchant_id: str, field: str, value: str) -> None:
    """The local mesh's demo merchant got a new secret: write it to its demo file too."""
    if mesh is None or not value:
        return
    data = Path(mesh["data_dir"])
    demo = local_mesh.load_demo(data)
    if not demo or demo.get("merchant_id") != merchant_id or demo.get(field) == value:
        return
    old = demo.get(field, "")
    demo[field] = value
    path = local_mesh.save_demo(data, demo)
    banner = data / "demo.txt"
    if old and banner.exists():  # the commands make run printed, as tests and people copy them
        banner.write_text(banner.read_text().replace(old, value))
    hint = f"; in your shell: export PAYMESH_API_KEY={value}" if field == "api_key" else ""
    print(f"the local mesh's demo merchant: {path} now holds the new {field.replace('_', ' ')}{hint}", file=sys.stderr)


def _admin_call(args: argparse.Namespace) -> int:
    address, token, mesh = _target()
    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(address) as channel:
        stub = agrpc.MerchantAdminServiceStub(channel)
        cmd = args.admin_command
        try:
            if cmd == "create-merchant":
                reply = stub.CreateMerchant(
                    apb.CreateMerchantRequest(
                        name=args.name,
                        xpub=args.xpub,
                        derivation_path=args.derivation_path,
                        webhook_url=args.webhook_url,
                        treasuries=args.treasury,
                    ),
                    metadata=metadata,
                )
            elif cmd == "list-merchants":
                reply = stub.ListMerchants(apb.ListMerchantsRequest(page_size=500), metadata=metadata)
            elif cmd == "get-merchant":
                reply = stub.GetMerchant(apb.GetMerchantRequest(merchant_id=args.merchant_id), metadata=metadata)
            elif cmd == "disable-merchant":
                reply = stub.DisableMerchant(
                    apb.DisableMerchantRequest(merchant_id=args.merchant_id), metadata=metadata
                )
            elif cmd == "enable-merchant":
                reply = stub.EnableMerchant(apb.EnableMerchantRequest(merchant_id=args.merchant_id), metadata=metadata)
            elif cmd == "rotate-api-key":
                reply = stub.RotateApiKey(apb.RotateApiKeyRequest(merchant_id=args.merchant_id), metadata=metadata)
                _keep_demo_in_step(mesh, args.merchant_id, "api_key", reply.api_key)
            elif cmd == "set-webhook":
                # Keep the secret unless told otherwise: --secret sets one, --rotate-secret makes one.
                reply = stub.SetWebhook(
                    apb.SetWebhookRequest(
                        merchant_id=args.merchant_id,
                        webhook_url=args.url,
                        webhook_secret=args.secret,
                        keep_secret=not args.secret and not args.rotate_secret,
                    ),
                    metadata=metadata,
                )
                _keep_demo_in_step(mesh, args.merchant_id, "webhook_secret", reply.webhook_secret)
            elif cmd == "set-xpub":
                reply = stub.SetXpub(
                    apb.SetXpubRequest(
                        merchant_id=args.merchant_id, xpub=args.xpub, derivation_path=args.derivation_path
                    ),
                    metadata=metadata,
                )
            else:
                reply = stub.SetTreasury(
                    apb.SetTreasuryRequest(merchant_id=args.merchant_id, treasury=args.treasury), metadata=metadata
                )
        except grpc.RpcError as err:
            print(f"error: {err.code().name}: {err.details()}", file=sys.stderr)
            return 1
        except _Refused as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(MessageToJson(reply, preserving_proto_field_name=True))
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.ledger", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the ledger (default)")
    sub.add_parser("migrate", help="upgrade the database schema and exit")
    _admin_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "admin":
        return _admin_call(args)
    if args.command == "migrate":
        from services.ledger.adapters.db import migrate
        from services.ledger.settings import LedgerSettings

        migrate(LedgerSettings().database_url)
        print("schema is up to date")
        return 0
    from services.ledger.app import serve

    uvloop.run(serve())
    return 0
