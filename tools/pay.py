"""Pay from an anvil dev account: the local demo's "customer".

    python -m tools.pay --payment-id PAYMENT_ID [--ledger 127.0.0.1:50051] [--rpc URL]
    python -m tools.pay --to ADDRESS --asset ETH|TUSD --amount BASEUNITS [--rpc URL]
    python -m tools.pay --deploy-token [--rpc URL]

With --payment-id the payment is read from the ledger (PaymentService.GetPayment
with PAYMESH_API_KEY, or MerchantAdminService.LookupPayment with
PAYMESH_ADMIN_TOKEN) and what is still due (amount_due - amount_received,
counting transfers seen but not yet confirmed) is paid in its asset:

  * nothing received yet: the whole amount;   partly paid: only the remainder;
  * paid in full already (any status, PAYMENT_STATUS_SWEPT included): nothing
    is sent; it says so and exits 0;
  * the payment takes no more money (PAYMENT_STATUS_CANCELLED, _EXPIRED, or
    past its expires_at, or PAYMENT_STATUS_PAID_AFTER_EXPIRY short of the due):
    nothing is sent; it says why and exits 3 (money sent now would only be
    recorded as paid after expiry);
  * --amount N pays exactly N whatever the payment's state (to try out late or
    extra payments).

Exit codes: 0 paid (or nothing due), 1 an error (ledger, node, input), 3 refused.

With `make run` going, no flags are needed: the running mesh's state
(.data/mesh.json, or under PAYMESH_DATA_DIR; services/common/local_mesh.py)
gives anvil's URL and the ledger's address, and its demo merchant's API key
reads the payment. Flags, then PAYMESH_ANVIL_RPC_URL / PAYMESH_LEDGER_ADDR /
PAYMESH_API_KEY, win over what the running mesh says.
TUSD is the
test token of tools/contracts, deployed (if it is not yet) by anvil's first dev
account at nonce 0, hence always at 0x5FbDB2315678afecb367f032d93F642f64180aa3
on a fresh anvil. Transactions are signed locally with eth-account and sent
with plain JSON-RPC; the key is anvil's well-known dev key: never real funds.

The pure helpers (signing, calldata) are reused by tests/support/chain.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils import to_checksum_address

ARTIFACT = Path(__file__).resolve().parent / "contracts" / "TestToken.json"
TOKEN_ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
TOKEN_SYMBOL = "TUSD"
TOKEN_DECIMALS = 6
TRANSFER_SELECTOR = "a9059cbb"  # transfer(address,uint256)
BALANCE_OF_SELECTOR = "70a08231"  # balanceOf(address)

# anvil's dev accounts for the mnemonic "test test ... junk" (public knowledge).
DEV_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)
DEV_ADDRESSES = tuple(Account.from_key(k).address for k in DEV_KEYS)
DEFAULT_RPC = "http://127.0.0.1:8545"

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# ---------------------------------------------------------------- pure helpers


def token_artifact() -> dict[str, Any]:
    return json.loads(ARTIFACT.read_text())


def word(value: int | str) -> str:
    """One 32-byte ABI word (an int, or a 0x address) as 64 hex digits."""
    if isinstance(value, str):
        return value.lower().removeprefix("0x").rjust(64, "0")
    return format(value, "064x")


def transfer_calldata(to: str, amount: int) -> str:
    return "0x" + TRANSFER_SELECTOR + word(to) + word(amount)


def sign(
    key: str, *, nonce: int, chain_id: int, gas_price: int, gas: int, to: str | None, value: int = 0, data: str = "0x"
) -> tuple[str, str]:
    """A signed legacy transaction: (raw 0x hex, tx hash 0x hex)."""
    tx: dict[str, Any] = {
        "nonce": nonce,
        "chainId": chain_id,
        "gasPrice": gas_price,
        "gas": gas,
        "value": value,
        "data": data,
    }
    if to is not None:
        tx["to"] = to_checksum_address(to)
    signed = Account.sign_transaction(tx, key)
    return "0x" + signed.raw_transaction.hex().removeprefix("0x"), "0x" + signed.hash.hex().removeprefix("0x")


def native_gas() -> int:
    return 21_000


def token_gas() -> int:
    return 100_000


# ---------------------------------------------------------------- JSON-RPC (sync, stdlib)


class Rpc:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout
        self._id = 0

    def __call__(self, method: str, *params: Any) -> Any:
        self._id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)}).encode()
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        with _NO_PROXY.open(request, timeout=self.timeout) as response:
            reply = json.loads(response.read())
        if reply.get("error"):
            raise RuntimeError(f"{method}: {reply['error'].get('message', reply['error'])}")
        return reply["result"]


def wait_receipt(rpc: Rpc, tx_hash: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        receipt = rpc("eth_getTransactionReceipt", tx_hash)
        if receipt is not None:
            return receipt
        time.sleep(0.1)
    raise TimeoutError(f"{tx_hash} not mined within {timeout:.0f}s (is anvil mining? automine or --block-time)")


def send(
    rpc: Rpc, key: str, *, to: str | None, value: int = 0, data: str = "0x", gas: int = 21_000, wait: bool = True
) -> dict[str, Any]:
    sender = Account.from_key(key).address
    nonce = int(rpc("eth_getTransactionCount", sender, "pending"), 16)
    chain_id = int(rpc("eth_chainId"), 16)
    gas_price = int(rpc("eth_gasPrice"), 16) * 2
    raw, tx_hash = sign(
        key, nonce=nonce, chain_id=chain_id, gas_price=gas_price, gas=gas, to=to, value=value, data=data
    )
    rpc("eth_sendRawTransaction", raw)
    if not wait:
        return {"transactionHash": tx_hash}
    receipt = wait_receipt(rpc, tx_hash)
    if int(receipt["status"], 16) != 1:
        raise RuntimeError(f"transaction {tx_hash} reverted")
    return receipt


def ensure_test_token(rpc_url: str = DEFAULT_RPC) -> str:
    """Deploy TUSD from dev account 0 at nonce 0 unless it is there; its address."""
    rpc = Rpc(rpc_url)
    if rpc("eth_getCode", TOKEN_ADDRESS, "latest") not in ("0x", "0x0", None):
        return TOKEN_ADDRESS
    deployer = DEV_ADDRESSES[0]
    nonce = int(rpc("eth_getTransactionCount", deployer, "latest"), 16)
    if nonce != 0:
        raise RuntimeError(
            f"TUSD is not deployed at {TOKEN_ADDRESS} and {deployer} has already sent {nonce} transaction(s), so a "
            "deployment would land elsewhere; restart anvil fresh (or set PAYMESH_ANVIL_TOKEN_ADDRESS)"
        )
    receipt = send(rpc, DEV_KEYS[0], to=None, data=token_artifact()["bytecode"], gas=2_000_000)
    address = to_checksum_address(receipt["contractAddress"])
    if address != TOKEN_ADDRESS:  # pragma: no cover - guaranteed by nonce 0
        raise RuntimeError(f"TUSD deployed at {address}, expected {TOKEN_ADDRESS}")
    return address


def pay(rpc_url: str, to: str, asset: str, amount: int, key: str = DEV_KEYS[0], wait: bool = True) -> dict[str, Any]:
    rpc = Rpc(rpc_url)
    if asset.upper() == "ETH":
        return send(rpc, key, to=to, value=amount, gas=native_gas(), wait=wait)
    if asset.upper() == TOKEN_SYMBOL:
        ensure_test_token(rpc_url)
        return send(rpc, key, to=TOKEN_ADDRESS, data=transfer_calldata(to, amount), gas=token_gas(), wait=wait)
    raise ValueError(f"unknown asset {asset!r}: ETH or {TOKEN_SYMBOL}")


# ---------------------------------------------------------------- reading the payment


EXIT_REFUSED = 3


class PaymentClosed(Exception):
    """The payment takes no more money; the message says why."""


@dataclass(frozen=True)
class Due:
    """What paying a payment means now: `amount` 0 means nothing is due, `note` says why."""

    address: str
    asset: str
    chain_id: int
    amount: int
    note: str


def what_is_due(payment: Any, now: datetime | None = None) -> Due:
    """The amount a customer still owes on `payment` (a paymesh.ledger.v1.Payment).

    Raises PaymentClosed when the payment no longer takes money."""
    from paymesh.ledger.v1 import payment_pb2 as pb

    status = pb.PaymentStatus.Name(payment.status)
    due = int(payment.amount_due)
    received = int(payment.amount_received or "0")
    remaining = due - received
    what = f"payment {payment.payment_id} ({status}) has received {received} of {due} {payment.asset} base units"
    if remaining <= 0 or payment.status == pb.PAYMENT_STATUS_SWEPT:
        return Due(payment.deposit_address, payment.asset, payment.chain_id, 0, f"nothing to pay: {what}")
    now = now or datetime.now(UTC)
    expired = payment.HasField("expires_at") and payment.expires_at.ToDatetime(tzinfo=UTC) <= now
    if (
        payment.status in (pb.PAYMENT_STATUS_CANCELLED, pb.PAYMENT_STATUS_EXPIRED, pb.PAYMENT_STATUS_PAID_AFTER_EXPIRY)
        or expired
    ):
        reason = (
            "was cancelled"
            if payment.status == pb.PAYMENT_STATUS_CANCELLED
            else (f"expired at {payment.expires_at.ToDatetime(tzinfo=UTC).isoformat(timespec='seconds')}")
        )
        raise PaymentClosed(
            f"not paying: {what} and {reason}, so it takes no more money (anything sent now would count as "
            "PAYMENT_STATUS_PAID_AFTER_EXPIRY); pass --amount N to send N anyway"
        )
    note = f"paying the remaining {remaining}: {what}" if received else f"paying {remaining}: {what}"
    return Due(payment.deposit_address, payment.asset, payment.chain_id, remaining, note)


def payment_from_ledger(ledger: str, payment_id: str, api_key: str | None = None, admin: str | None = None) -> Any:
    """The payment as the ledger has it (paymesh.ledger.v1.Payment)."""
    import grpc  # only this mode needs the ledger

    if api_key is None:
        api_key = os.environ.get("PAYMESH_API_KEY", "") or _local_demo_key()
    admin = os.environ.get("PAYMESH_ADMIN_TOKEN", "") if admin is None else admin
    try:
        return _read_payment(grpc, ledger, payment_id, api_key, admin)
    except grpc.RpcError as exc:
        raise RuntimeError(f"ledger {ledger}: {exc.code().name}: {exc.details()}") from None


def _read_payment(grpc, ledger: str, payment_id: str, api_key: str, admin: str) -> Any:
    with grpc.insecure_channel(ledger) as channel:
        if api_key:
            from paymesh.ledger.v1 import payment_service_pb2 as spb
            from paymesh.ledger.v1 import payment_service_pb2_grpc as sgrpc

            return (
                sgrpc.PaymentServiceStub(channel)
                .GetPayment(
                    spb.GetPaymentRequest(payment_id=payment_id),
                    metadata=(("authorization", f"Bearer {api_key}"),),
                    timeout=10,
                )
                .payment
            )
        if admin:
            from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
            from paymesh.ledger.v1 import merchant_admin_service_pb2_grpc as agrpc

            return (
                agrpc.MerchantAdminServiceStub(channel)
                .LookupPayment(
                    apb.LookupPaymentRequest(payment_id=payment_id),
                    metadata=(("authorization", f"Bearer {admin}"),),
                    timeout=10,
                )
                .payment
            )
    raise RuntimeError(
        "no API key to read the payment with: set PAYMESH_API_KEY (the merchant's) or PAYMESH_ADMIN_TOKEN "
        "(no running `make run` was found to take the demo merchant's key from)"
    )


def _local_mesh() -> dict[str, Any]:
    """The running `make run`'s state, or {} (services/common/local_mesh.py)."""
    from services.common import local_mesh

    return local_mesh.running() or {}


def _local_demo_key() -> str:
    from services.common import local_mesh

    mesh = _local_mesh()
    demo = local_mesh.load_demo(Path(mesh["data_dir"])) if mesh else None
    return str((demo or {}).get("api_key", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.pay", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--payment-id", help="pay what this payment still needs")
    what.add_argument("--to", help="deposit address to pay")
    what.add_argument("--deploy-token", action="store_true", help="deploy TUSD if it is not deployed yet")
    parser.add_argument("--asset", default="ETH", help="ETH or TUSD (with --to)")
    parser.add_argument("--amount", type=int, help="base units (wei, or TUSD units of 10^-6)")
    mesh = _local_mesh()
    parser.add_argument(
        "--rpc",
        default=os.environ.get("PAYMESH_ANVIL_RPC_URL") or mesh.get("anvil_rpc_url") or DEFAULT_RPC,
        help="anvil's JSON-RPC URL (default: the running make run's)",
    )
    parser.add_argument(
        "--ledger",
        default=os.environ.get("PAYMESH_LEDGER_ADDR") or mesh.get("ledger") or "127.0.0.1:50051",
        help="the ledger's gRPC address (default: the running make run's)",
    )
    parser.add_argument(
        "--from-account",
        type=int,
        default=0,
        choices=range(len(DEV_KEYS)),
        help="anvil dev account index to pay from (TUSD is held by 0)",
    )
    args = parser.parse_args(argv)
    try:
        if args.deploy_token:
            print(json.dumps({"token": ensure_test_token(args.rpc)}))
            return 0
        if args.payment_id:
            payment = payment_from_ledger(args.ledger, args.payment_id)
            if args.amount is not None:
                if args.amount <= 0:
                    parser.error("--amount must be a positive number of base units")
                to, asset, chain_id, amount = payment.deposit_address, payment.asset, payment.chain_id, args.amount
            else:
                due = what_is_due(payment)
                to, asset, chain_id, amount = due.address, due.asset, due.chain_id, due.amount
                print(due.note, file=sys.stderr if amount else sys.stdout, flush=True)
                if not amount:
                    return 0
            rpc_chain = int(Rpc(args.rpc)("eth_chainId"), 16)
            if chain_id != rpc_chain:
                raise RuntimeError(f"the payment is on chain {chain_id} but {args.rpc} is chain {rpc_chain}")
        else:
            if args.amount is None or args.amount <= 0:
                parser.error("--amount (a positive number of base units) is required with --to")
            to, asset, amount = args.to, args.asset, args.amount
        receipt = pay(args.rpc, to, asset, amount, DEV_KEYS[args.from_account])
    except PaymentClosed as exc:
        print(f"pay: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (OSError, RuntimeError, ValueError, TimeoutError) as exc:
        print(f"pay: error: {exc}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "tx_hash": receipt["transactionHash"],
                "block_number": int(receipt["blockNumber"], 16),
                "to": to_checksum_address(to),
                "asset": asset,
                "amount": str(amount),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
