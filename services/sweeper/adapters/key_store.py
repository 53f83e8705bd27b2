"""The HD seed and the keys derived from it. The mnemonic and private keys never
leave this module in a printable form: no repr, no log, no error message shows them."""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field

from bip_utils import Bip32Slip10Secp256k1, Bip39MnemonicValidator, Bip39SeedGenerator
from eth_account import Account
from eth_utils import to_checksum_address
from pydantic import SecretStr

from services.sweeper.domain.fees import FeeQuote
from services.sweeper.domain.model import SignedTx, TxKind

_PATH = re.compile(r"^m(/\d{1,10}'?){1,10}$")


class KeyError_(Exception):  # noqa: N801 - not the builtin KeyError
    """A key cannot be derived (bad path); the message never contains key material."""


@dataclass(frozen=True)
class DerivedKey:
    path: str
    address: str
    _private_key: bytes = field(repr=False)

    def __repr__(self) -> str:  # never print the key
        return f"DerivedKey(path={self.path!r}, address={self.address!r})"

    def sign(
        self,
        *,
        kind: TxKind,
        chain_id: int,
        nonce: int,
        to: str,
        value: int,
        data: bytes,
        gas_limit: int,
        fee: FeeQuote,
        recipient: str,
        amount: int,
        token_address: str = "",
        replaces_tx_hash: str = "",
    ) -> SignedTx:
        """Sign a type-2 (EIP-1559, maxFee == tip as quoted) or legacy (EIP-155) transaction.
        `to`/`value`/`data` are the transaction's; `recipient`/`amount` are the funds' (for a
        token transfer: the treasury and the token amount)."""
        tx: dict = {
            "chainId": chain_id,
            "nonce": nonce,
            "to": to,
            "value": value,
            "data": data,
            "gas": gas_limit,
        }
        if fee.legacy:
            tx["gasPrice"] = fee.max_fee_per_gas
        else:
            tx["type"] = 2
            tx["maxFeePerGas"] = fee.max_fee_per_gas
            tx["maxPriorityFeePerGas"] = fee.max_priority_fee_per_gas
        signed = Account.sign_transaction(tx, self._private_key)
        return SignedTx(
            kind=kind,
            tx_hash="0x" + bytes(signed.hash).hex(),
            raw_tx=bytes(signed.raw_transaction),
            nonce=nonce,
            from_address=self.address,
            to_address=recipient,
            amount=amount,
            token_address=token_address,
            gas_limit=gas_limit,
            max_fee_per_gas=fee.max_fee_per_gas,
            max_priority_fee_per_gas=fee.max_priority_fee_per_gas,
            replaces_tx_hash=replaces_tx_hash,
            l1_fee_reserve=fee.l1_fee,
        )


class KeyStore:
    """Derives secp256k1 keys at BIP-32 paths of one BIP-39 mnemonic (cached, bounded)."""

    def __init__(self, mnemonic: SecretStr, passphrase: SecretStr | None = None, cache_size: int = 4096) -> None:
        words = " ".join(mnemonic.get_secret_value().split())
        if not words:
            raise ValueError(
                "the sweeper's mnemonic is empty: set PAYMESH_SWEEPER_MNEMONIC or PAYMESH_SWEEPER_MNEMONIC_FILE"
            )
        try:
            valid = Bip39MnemonicValidator().IsValid(words)
        except Exception:  # noqa: BLE001 - bip-utils raises for unknown words/languages
            valid = False
        if not valid:
            # Never echo the words: say what is wrong only in general terms.
            raise ValueError(
                f"the sweeper's mnemonic is not a valid BIP-39 mnemonic ({len(words.split())} words; "
                "check spelling, word count and checksum)"
            )
        seed = Bip39SeedGenerator(words).Generate(passphrase.get_secret_value() if passphrase else "")
        self._master = Bip32Slip10Secp256k1.FromSeed(seed)
        self._cache: OrderedDict[str, DerivedKey] = OrderedDict()
        self._cache_size = cache_size

    def __repr__(self) -> str:
        return "KeyStore(<secret>)"

    def derive(self, path: str) -> DerivedKey:
        path = path.strip()
        cached = self._cache.get(path)
        if cached is not None:
            self._cache.move_to_end(path)
            return cached
        if not _PATH.match(path):
            raise KeyError_(f"derivation path {path[:80]!r} is not of the form m/44'/60'/0'/0/7")
        try:
            node = self._master.DerivePath(path)
        except Exception as exc:  # noqa: BLE001
            raise KeyError_(f"cannot derive a key at {path!r}: {type(exc).__name__}") from None
        private_key = node.PrivateKey().Raw().ToBytes()
        address = to_checksum_address(Account.from_key(private_key).address)
        key = DerivedKey(path, address, private_key)
        self._cache[path] = key
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return key
