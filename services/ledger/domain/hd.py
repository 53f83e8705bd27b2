"""Watch-only deposit addresses from an extended public key.

Address i is the key at `<xpub>/0/i` (the external chain below the account
node, as wallets do). The xpub is parsed and checked with bip-utils; the
per-address child derivation (BIP-32 CKDpub) is done with coincurve directly,
which is ~3x faster than going through bip-utils objects on the hot path.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from bip_utils import Bip32Secp256k1
from coincurve import PublicKey
from Crypto.Hash import keccak

from services.common.errors import InvalidArgument

DEFAULT_ACCOUNT_PATH = "m/44'/60'/0'"
_PATH = re.compile(r"^m(/\d+'?)*$")
_HARDENED = 0x80000000


def _ckd_tweak(pubkey: bytes, chain_code: bytes, index: int) -> tuple[bytes, bytes]:
    """BIP-32 CKDpub's HMAC: (tweak to add to the parent point, child chain code)."""
    if not 0 <= index < _HARDENED:
        raise ValueError("a public key derives only non-hardened children (0 <= index < 2^31)")
    digest = hmac.digest(chain_code, pubkey + index.to_bytes(4, "big"), hashlib.sha512)
    return digest[:32], digest[32:]


def _ckd_pub(pubkey: bytes, chain_code: bytes, index: int) -> tuple[bytes, bytes]:
    tweak, child_chain = _ckd_tweak(pubkey, chain_code, index)
    return PublicKey(pubkey).add(tweak).format(compressed=True), child_chain


def parse_xpub(xpub: str) -> tuple[bytes, bytes]:
    """(compressed public key, chain code) of the xpub's node; InvalidArgument if not an xpub."""
    xpub = xpub.strip()
    if not xpub:
        raise InvalidArgument("xpub is required: the extended public key deposit addresses derive from")
    if xpub[1:4] == "prv":
        raise InvalidArgument("that is an extended PRIVATE key; the ledger only takes the extended public key (xpub)")
    if len(xpub) > 200:
        raise InvalidArgument("xpub is too long to be a BIP-32 extended public key")
    try:
        node = Bip32Secp256k1.FromExtendedKey(xpub)
    except Exception as exc:  # noqa: BLE001 - bip-utils raises many kinds (checksum, length, key)
        raise InvalidArgument(f"xpub is not a valid BIP-32 extended public key: {exc}") from None
    if not node.IsPublicOnly():
        raise InvalidArgument("that is an extended PRIVATE key; give the extended public key (xpub)")
    return node.PublicKey().RawCompressed().ToBytes(), node.ChainCode().ToBytes()


def validate_derivation_path(path: str) -> str:
    path = path.strip() or DEFAULT_ACCOUNT_PATH
    if not _PATH.match(path) or len(path) > 64:
        raise InvalidArgument(f"derivation_path must look like \"m/44'/60'/0'\"; got {path[:64]!r}")
    return path


class AddressDeriver:
    """Derives checksummed EVM addresses `<xpub>/0/i` for one xpub."""

    def __init__(self, xpub: str) -> None:
        pubkey, chain_code = parse_xpub(xpub)
        self._external_pub, self._external_chain = _ckd_pub(pubkey, chain_code, 0)
        self._external_key = PublicKey(self._external_pub)  # parsed once, not per address

    def address(self, index: int) -> str:
        # CKDpub with the child point going straight to its uncompressed form
        # (no compress / re-parse round trip).
        tweak, _ = _ckd_tweak(self._external_pub, self._external_chain, index)
        uncompressed = self._external_key.add(tweak).format(compressed=False)
        return checksum_address(keccak.new(digest_bits=256, data=uncompressed[1:]).digest()[-20:])


def checksum_address(address: bytes) -> str:
    """EIP-55: the 20 bytes in hex, each letter upper case where the keccak of the
    lower-case hex has a nibble of 8 or more. Written out with pycryptodome's keccak
    instead of eth_utils' keccak + to_checksum_address: 13 us instead of 36 us per
    address (CreatePayment derives one; docs/BENCHMARKS.md, issue 14)."""
    lower = address.hex()
    nibbles = keccak.new(digest_bits=256, data=lower.encode()).hexdigest()
    return "0x" + "".join([u if n >= "8" else c for c, u, n in zip(lower, lower.upper(), nibbles, strict=False)])


def address_path(account_path: str, index: int) -> str:
    """The full path of deposit address `index` under the operator's seed."""
    return f"{account_path}/0/{index}"


def payout_wallet_address(xpub: str) -> str:
    """The checksummed address of a merchant's payout wallet: the key at `<xpub>/1/0`
    (the account's internal chain, index 0; deposit addresses use the external chain
    /0/i), which the sweeper derives from the seed at domain/payouts.payout_wallet_path."""
    pubkey, chain_code = parse_xpub(xpub)
    internal_pub, internal_chain = _ckd_pub(pubkey, chain_code, 1)
    child, _ = _ckd_pub(internal_pub, internal_chain, 0)
    uncompressed = PublicKey(child).format(compressed=False)
    return checksum_address(keccak.new(digest_bits=256, data=uncompressed[1:]).digest()[-20:])
