"""Stand-in Chainlink price feeds on anvil, for the local demo and the rate tests.

    python -m tools.price_feed --ensure [--rpc URL]        # the local stack's two feeds
    python -m tools.price_feed --set FEED --answer 3120.55 [--rpc URL]

The contract is tools/contracts/TestPriceFeed.sol: a STAND-IN that answers
AggregatorV3Interface's reads like a real feed but lets anyone set its answer;
never point a real rates.yaml at it.

Addresses: every feed is deployed by a dedicated deployer (FEED_DEPLOYER, a
fixed key that only exists for this, funded with anvil_setBalance), not by one
of anvil's ten dev accounts, which tests and benchmarks spend from. Its nonce 0
and 1 therefore always go to the local stack's feeds on a fresh anvil, at fixed
addresses (rates.yaml names them):

    ETH/USD   ETH_USD_FEED   0x290B11352f69b9c7c64c51f0fEe1703D58aA929E  (nonce 0, 3000.00, 8 decimals)
    TUSD/USD  TUSD_USD_FEED  0x9032b596EDbc3386a87025B23C39eBFaBaB63aD4  (nonce 1, 1.00, 8 decimals)

`ensure_price_feeds(rpc_url)` deploys them unless they are there.
`deploy_price_feed` deploys another feed at the deployer's next nonce (tests).
Answers are exact decimals, scaled by the feed's decimals (never floats).
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import eth_abi
from eth_account import Account
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from tools.pay import DEFAULT_RPC, Rpc, wait_receipt

ARTIFACT = Path(__file__).resolve().parent / "contracts" / "TestPriceFeed.json"
# keccak256("paymesh price feed deployer (anvil only)"): public, worthless off anvil.
FEED_DEPLOYER_KEY = "0x42b7b05da474b284646bf86b4b6fa36a54fc8f1e369efece498390fdd913856a"
FEED_DEPLOYER = Account.from_key(FEED_DEPLOYER_KEY).address  # 0x63C1A27819f4753c530AAE9Bc6614De7BbCeD9Ed
ETH_USD_FEED = "0x290B11352f69b9c7c64c51f0fEe1703D58aA929E"  # FEED_DEPLOYER's nonce 0
TUSD_USD_FEED = "0x9032b596EDbc3386a87025B23C39eBFaBaB63aD4"  # FEED_DEPLOYER's nonce 1
ETH_USD_ANSWER = Decimal("3000.00")
TUSD_USD_ANSWER = Decimal("1.00")
FEED_GAS = 1_500_000
_FUNDS = 10**21  # 1000 ETH for the deployer's gas
_TIP = 10**9  # 1 gwei


def artifact() -> dict[str, Any]:
    return json.loads(ARTIFACT.read_text())


def scaled_answer(answer: Decimal, decimals: int) -> int:
    """answer × 10^decimals as the feed's int256; ValueError if it has more decimals than the feed."""
    raw = Decimal(answer).scaleb(decimals)
    if raw != raw.to_integral_value():
        raise ValueError(f"{answer} has more than the feed's {decimals} decimals")
    return int(raw)


def _calldata(signature: str, types: list[str], args: list[Any]) -> str:
    return "0x" + (function_signature_to_4byte_selector(signature) + eth_abi.encode(types, args)).hex()


def send(rpc: Rpc, key: str, *, to: str | None, data: str, gas: int) -> dict[str, Any]:
    """An EIP-1559 transaction with a fixed 1 gwei tip, mined and successful; its receipt.
    (A fixed tip, not a multiple of eth_gasPrice: anvil suggests prices from recent tips,
    so paying a multiple of its suggestion would double it with every transaction.)"""
    sender = Account.from_key(key).address
    base_fee = int(rpc("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
    tx: dict[str, Any] = {
        "type": 2,
        "chainId": int(rpc("eth_chainId"), 16),
        "nonce": int(rpc("eth_getTransactionCount", sender, "pending"), 16),
        "maxPriorityFeePerGas": _TIP,
        "maxFeePerGas": 2 * base_fee + _TIP,
        "gas": gas,
        "value": 0,
        "data": data,
    }
    if to is not None:
        tx["to"] = to_checksum_address(to)
    signed = Account.sign_transaction(tx, key)
    tx_hash = rpc("eth_sendRawTransaction", "0x" + signed.raw_transaction.hex().removeprefix("0x"))
    receipt = wait_receipt(rpc, tx_hash)
    if int(receipt["status"], 16) != 1:
        raise RuntimeError(f"transaction {tx_hash} reverted")
    return receipt


def _fund_deployer(rpc: Rpc) -> None:
    if int(rpc("eth_getBalance", FEED_DEPLOYER, "latest"), 16) < _FUNDS // 10:
        rpc("anvil_setBalance", FEED_DEPLOYER, hex(_FUNDS))


def deploy_price_feed(
    rpc_url: str, answer: Decimal, decimals: int = 8, description: str = "ETH / USD", *, rpc: Rpc | None = None
) -> str:
    """Deploy a TestPriceFeed (stand-in) answering `answer`, updated now; its address
    (FEED_DEPLOYER's next nonce)."""
    rpc = rpc or Rpc(rpc_url)
    _fund_deployer(rpc)
    args = eth_abi.encode(["uint8", "string", "int256"], [decimals, description, scaled_answer(answer, decimals)])
    receipt = send(rpc, FEED_DEPLOYER_KEY, to=None, data=artifact()["bytecode"] + args.hex(), gas=FEED_GAS)
    return to_checksum_address(receipt["contractAddress"])


def feed_decimals(rpc_url: str, feed: str) -> int:
    return int(Rpc(rpc_url)("eth_call", {"to": feed, "data": _calldata("decimals()", [], [])}, "latest"), 16)


def set_answer(rpc_url: str, feed: str, answer: Decimal) -> dict[str, Any]:
    """A new round answering `answer`, updated at the block's time; the receipt."""
    rpc = Rpc(rpc_url)
    _fund_deployer(rpc)
    raw = scaled_answer(answer, feed_decimals(rpc_url, feed))
    return send(rpc, FEED_DEPLOYER_KEY, to=feed, data=_calldata("setAnswer(int256)", ["int256"], [raw]), gas=200_000)


def set_round(
    rpc_url: str, feed: str, *, round_id: int, answer: Decimal, updated_at: int, answered_in_round: int
) -> dict[str, Any]:
    """Any round, for stale (old updatedAt), incomplete (updatedAt 0), non-positive or
    carried-over (answeredInRound < roundId) answers; the receipt."""
    rpc = Rpc(rpc_url)
    _fund_deployer(rpc)
    raw = scaled_answer(answer, feed_decimals(rpc_url, feed))
    data = _calldata(
        "setRound(uint80,int256,uint256,uint80)",
        ["uint80", "int256", "uint256", "uint80"],
        [round_id, raw, updated_at, answered_in_round],
    )
    return send(rpc, FEED_DEPLOYER_KEY, to=feed, data=data, gas=200_000)


def ensure_price_feeds(rpc_url: str = DEFAULT_RPC) -> dict[str, str]:
    """The local stack's ETH/USD (3000.00) and TUSD/USD (1.00) feeds at their fixed
    addresses, deployed unless there; {"ETH/USD": address, "TUSD/USD": address}.
    A feed found there gets a fresh round with its answer, so a long-lived anvil's
    feed is not stale for the ledger's max age."""
    rpc = Rpc(rpc_url)
    wanted = [
        ("ETH/USD", ETH_USD_FEED, ETH_USD_ANSWER, "ETH / USD"),
        ("TUSD/USD", TUSD_USD_FEED, TUSD_USD_ANSWER, "TUSD / USD"),
    ]
    out: dict[str, str] = {}
    for nonce, (pair, address, answer, description) in enumerate(wanted):
        if rpc("eth_getCode", address, "latest") not in ("0x", "0x0", None):
            set_answer(rpc_url, address, answer)
            out[pair] = address
            continue
        sent = int(rpc("eth_getTransactionCount", FEED_DEPLOYER, "latest"), 16)
        if sent != nonce:
            raise RuntimeError(
                f"the {pair} feed is not at {address} and {FEED_DEPLOYER} has sent {sent} transaction(s), so a "
                "deployment would land elsewhere; restart anvil fresh (or set PAYMESH_ANVIL_ETH_USD_FEED / "
                "PAYMESH_ANVIL_TUSD_USD_FEED to feeds you deployed)"
            )
        deployed = deploy_price_feed(rpc_url, answer, 8, description, rpc=rpc)
        if deployed != address:  # pragma: no cover - guaranteed by the nonce
            raise RuntimeError(f"the {pair} feed landed at {deployed}, expected {address}")
        out[pair] = deployed
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.price_feed", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--ensure", action="store_true", help="deploy the local stack's feeds unless they are there")
    what.add_argument("--set", metavar="FEED", help="give this feed a new round")
    parser.add_argument("--answer", type=Decimal, help="the new answer (with --set), e.g. 3120.55")
    parser.add_argument("--rpc", default=DEFAULT_RPC, help="anvil's JSON-RPC URL")
    args = parser.parse_args(argv)
    try:
        if args.ensure:
            print(json.dumps(ensure_price_feeds(args.rpc)))
            return 0
        if args.answer is None:
            parser.error("--answer is required with --set")
        receipt = set_answer(args.rpc, args.set, args.answer)
        print(json.dumps({"feed": args.set, "answer": f"{args.answer:f}", "tx_hash": receipt["transactionHash"]}))
    except (OSError, RuntimeError, ValueError, TimeoutError) as exc:
        print(f"price_feed: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
