"""The sweeper's keys: the ledger's watch-only addresses and the sweeper's private
keys agree for many indexes and accounts; the seed never shows; signing makes the
transactions the fee math promises."""

from __future__ import annotations

import logging

import pytest
import rlp
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes
from pydantic import SecretStr

from services.ledger.domain.hd import AddressDeriver, address_path
from services.sweeper.adapters.key_store import KeyError_, KeyStore
from services.sweeper.domain.fees import FeeQuote
from services.sweeper.domain.model import TxKind
from services.sweeper.settings import SweeperSettings
from tests.support.ledger import ANVIL_MNEMONIC, account_xpub

ANVIL_ACCOUNT_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
ANVIL_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


@pytest.fixture(scope="module")
def keys() -> KeyStore:
    return KeyStore(SecretStr(ANVIL_MNEMONIC))


@pytest.mark.parametrize("account", [0, 1, 7, 123])
def test_ledger_addresses_and_sweeper_keys_agree(keys, account):
    deriver = AddressDeriver(account_xpub(account))
    for index in [*range(0, 150), 1_000, 65_535, 2**31 - 1]:
        path = address_path(f"m/44'/60'/{account}'", index)
        assert keys.derive(path).address == deriver.address(index), path


def test_gas_wallet_default_is_anvil_account_0(keys):
    key = keys.derive(SweeperSettings(sweeper_mnemonic=ANVIL_MNEMONIC).sweeper_gas_wallet_path)
    assert key.address == ANVIL_ACCOUNT_0
    assert key._private_key == bytes.fromhex(ANVIL_KEY_0[2:])


def test_passphrase_changes_every_key():
    other = KeyStore(SecretStr(ANVIL_MNEMONIC), SecretStr("extra words"))
    assert other.derive("m/44'/60'/0'/0/0").address != ANVIL_ACCOUNT_0


def test_secrets_never_show(keys, caplog):
    key = keys.derive("m/44'/60'/0'/0/0")
    for text in (repr(keys), repr(key), str(key)):
        assert "test test" not in text and ANVIL_KEY_0[2:] not in text
    settings = SweeperSettings(sweeper_mnemonic=ANVIL_MNEMONIC)
    assert "test test" not in repr(settings) and "test test" not in str(settings.model_dump())
    with pytest.raises(ValueError) as info:
        KeyStore(SecretStr("test test test test test test test test test test test test"))  # bad checksum
    assert "test" not in str(info.value)
    with pytest.raises(ValueError) as info:
        KeyStore(SecretStr("   "))
    assert "empty" in str(info.value)


@pytest.mark.parametrize("path", ["", "m", "44'/60'", "m/44'/60'/x", "m/44'/60'/0'/0/7;rm"])
def test_bad_paths_are_refused(keys, path):
    with pytest.raises(KeyError_):
        keys.derive(path)


def test_mnemonic_from_file(tmp_path):
    secret = tmp_path / "mnemonic"
    secret.write_text(f"  {ANVIL_MNEMONIC}\n")
    settings = SweeperSettings(sweeper_mnemonic_file=secret)
    assert KeyStore(settings.mnemonic()).derive("m/44'/60'/0'/0/0").address == ANVIL_ACCOUNT_0
    with pytest.raises(ValueError, match="PAYMESH_SWEEPER_MNEMONIC"):
        SweeperSettings().mnemonic()
    with pytest.raises(ValueError, match="cannot read"):
        SweeperSettings(sweeper_mnemonic_file=tmp_path / "missing").mnemonic()


def test_min_amounts_setting_is_validated():
    assert SweeperSettings(sweeper_min_amounts={"ETH": "10"}).policy().min_amount(1, "eth") == 10
    with pytest.raises(ValueError):
        SweeperSettings(sweeper_min_amounts={"ETH": "1.5"})
    with pytest.raises(ValueError):
        SweeperSettings(sweeper_fee_bump_percent=10)


def test_signs_type2_with_fee_cap_equal_to_tip(keys):
    key = keys.derive("m/44'/60'/5'/0/3")
    fee = FeeQuote(3 * 10**9, 3 * 10**9)
    treasury = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"
    signed = key.sign(
        kind=TxKind.SWEEP,
        chain_id=31337,
        nonce=4,
        to=treasury,
        value=12345,
        data=b"",
        gas_limit=21_000,
        fee=fee,
        recipient=treasury,
        amount=12345,
    )
    assert signed.raw_tx[0] == 2
    fields = TypedTransaction.from_bytes(HexBytes(signed.raw_tx)).as_dict()
    assert fields["maxFeePerGas"] == fields["maxPriorityFeePerGas"] == 3 * 10**9
    assert (fields["nonce"], fields["value"], fields["gas"], fields["chainId"]) == (4, 12345, 21_000, 31337)
    assert Account.recover_transaction(signed.raw_tx) == key.address == signed.from_address
    assert signed.tx_hash.startswith("0x") and len(signed.tx_hash) == 66


def test_signs_legacy_with_eip155(keys):
    key = keys.derive("m/44'/60'/5'/0/4")
    signed = key.sign(
        kind=TxKind.SWEEP,
        chain_id=31337,
        nonce=0,
        to=ANVIL_ACCOUNT_0,
        value=1,
        data=b"",
        gas_limit=21_000,
        fee=FeeQuote(7, None),
        recipient=ANVIL_ACCOUNT_0,
        amount=1,
    )
    nonce, gas_price, gas, _to, value, _data, v, _r, _s = rlp.decode(signed.raw_tx)
    assert int.from_bytes(gas_price, "big") == 7 and int.from_bytes(value, "big") == 1
    assert int.from_bytes(v, "big") in (31337 * 2 + 35, 31337 * 2 + 36)
    assert Account.recover_transaction(signed.raw_tx) == key.address


def test_no_secret_in_logs(keys, caplog):
    caplog.set_level(logging.DEBUG)
    keys.derive("m/44'/60'/9'/0/9")
    assert "test test" not in caplog.text
