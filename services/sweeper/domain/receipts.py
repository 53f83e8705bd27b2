"""What a mined transaction's receipt says: the fee it paid the network, and the
tokens its Transfer logs moved. Pure functions of the receipt (a JSON-RPC dict)."""

from __future__ import annotations

from eth_utils import to_checksum_address

from services.common.errors import MalformedResponse
from services.sweeper.domain.erc20 import TRANSFER_TOPIC


def block_number(receipt: dict) -> int:
    return int(receipt["blockNumber"], 16)


def succeeded(receipt: dict) -> bool:
    """status 1 (a receipt without a status, pre-Byzantium, counts as success)."""
    return int(receipt.get("status", "0x1"), 16) == 1


def fee_paid(receipt: dict, gas_price: int) -> int:
    """What a mined transaction paid the network, in wei, per its receipt: gasUsed x
    effectiveGasPrice (`gas_price`, the transaction's own, where a pre-London node
    leaves it out), plus l1Fee where the receipt has one (OP-stack chains charge the
    L1 data fee on top of gas, out of the sender's balance)."""
    try:
        used = int(receipt["gasUsed"], 16)
        price = int(receipt["effectiveGasPrice"], 16) if receipt.get("effectiveGasPrice") else gas_price
        l1_fee = int(receipt["l1Fee"], 16) if receipt.get("l1Fee") else 0
    except (KeyError, TypeError, ValueError):
        raise MalformedResponse(
            f"receipt of {receipt.get('transactionHash')} has no usable gasUsed / effectiveGasPrice / l1Fee"
        ) from None
    return used * price + l1_fee


def transferred(receipt: dict, token: str, sender: str, recipient: str) -> int:
    """The amount of `token` a mined receipt's Transfer logs moved from sender to recipient."""
    total = 0
    for entry in receipt.get("logs") or []:
        try:
            if to_checksum_address(entry["address"]) != to_checksum_address(token):
                continue
            topics = [t.lower() for t in entry.get("topics") or []]
            if len(topics) != 3 or topics[0] != TRANSFER_TOPIC:
                continue
            src = to_checksum_address("0x" + topics[1][-40:])
            dst = to_checksum_address("0x" + topics[2][-40:])
            if src == to_checksum_address(sender) and dst == to_checksum_address(recipient):
                total += int(entry.get("data") or "0x0", 16)
        except (KeyError, ValueError, TypeError):
            continue
    return total
