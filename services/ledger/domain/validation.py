"""Validation of merchant input, with messages a person can act on."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from urllib.parse import urlsplit

from eth_utils import to_checksum_address

from services.common.chains import Asset, ChainConfig, Chains
from services.common.errors import InvalidArgument, NotFound
from services.common.money import parse_amount
from services.common.ssrf import webhook_url_problem
from services.ledger.domain.pricing import Price, PricingError, parse_price

MAX_ORDER_ID = 128
MAX_IDEMPOTENCY_KEY = 128
MAX_METADATA_KEYS = 32
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_METADATA_BYTES = 8 * 1024
MIN_EXPIRY = timedelta(minutes=1)
MAX_EXPIRY = timedelta(days=30)
DEFAULT_EXPIRY = timedelta(hours=1)


MAX_OPTIONS = 32
MAX_DESCRIPTION = 512
MAX_RETURN_URL = 2048


@dataclass(frozen=True)
class AcceptedOption:
    """An asset on a chain a new payment accepts, with the chain's minimum depth."""

    chain_id: int
    asset: Asset
    chain_minimum: int  # chains.yaml `confirmations`


@dataclass(frozen=True)
class NewPayment:
    chain_id: int  # the first option's
    asset: Asset  # the first option's
    amount_due: int | None  # None when priced: the quote gives it
    price: Price | None
    expires_at: datetime
    merchant_order_id: str
    metadata: dict[str, str]
    idempotency_key: str | None
    confirmations_required: int  # the first option's chain minimum
    # The expiry as asked for: ("in", microseconds), ("at", ISO time) or ("default",).
    # A retry repeats the request, so a relative expiry is compared as given, not
    # as the absolute time it produced.
    expiry_requested: tuple = ("default",)
    # Every option asked for, in order (one for chain_id + asset). With accept_all,
    # every configured candidate: those without a rate now are left out when quoted.
    options: tuple[AcceptedOption, ...] = ()
    accept_all: bool = False
    # How the options were asked for, for the fingerprint: () for chain_id + asset,
    # ("options", ...) or ("all", chain ids).
    options_requested: tuple = ()
    description: str = ""
    return_url: str = ""

    def fingerprint(self) -> tuple:
        """Every parameter of the request: a retry with the same idempotency key must repeat them all."""
        return (
            self.chain_id,
            self.asset.symbol,
            self.amount_due,
            None if self.price is None else (self.price.currency.code, str(self.price.amount)),
            self.merchant_order_id,
            tuple(sorted(self.metadata.items())),
            self.expiry_requested,
        ) + tuple(
            part
            for part in (
                self.options_requested,
                ("description", self.description) if self.description else (),
                ("return_url", self.return_url) if self.return_url else (),
            )
            if part
        )


def _asset(chains: Chains, chain_id: int, asset: str, where: str = "") -> tuple[ChainConfig, Asset]:
    """The configured chain and asset a request names; `where` prefixes the message
    ("options[2]: ")."""
    chain = chains.get(chain_id)
    if chain_id == 0:
        raise InvalidArgument(f"{where}chain_id is required; configured chains: {chains.ids()}")
    if chain is None:
        raise NotFound(f"{where}chain {chain_id} is not configured; configured chains: {chains.ids()}")
    if not asset.strip():
        raise InvalidArgument(f"{where}asset is required; chain {chain_id} accepts {chain.asset_symbols()}")
    if asset != asset.strip():
        raise InvalidArgument(
            f"{where}asset {asset[:32]!r} has spaces around it; send the symbol alone, e.g. {asset.strip()[:32]!r}"
        )
    found = chain.asset(asset)
    if found is None:
        raise NotFound(
            f"{where}asset {asset[:32]!r} is not configured on chain {chain_id}; it accepts {chain.asset_symbols()}"
        )
    return chain, found


def accepted_options(
    chains: Chains,
    *,
    chain_id: int,
    asset: str,
    options: Sequence[tuple[int, str]],
    accept_all: bool,
    accept_chain_ids: Sequence[int],
    priced: bool,
) -> tuple[tuple[AcceptedOption, ...], tuple]:
    """The options a request asks for, and how it asked (NewPayment.options_requested)."""
    ways = [
        name
        for name, given in (
            ("chain_id and asset", bool(chain_id or asset)),
            ("options", bool(options)),
            ("accept_all_assets", accept_all),
        )
        if given
    ]
    if len(ways) > 1:
        raise InvalidArgument(
            f"give one of chain_id and asset, options, or accept_all_assets; got {' and '.join(ways)}"
        )
    if accept_chain_ids and not accept_all:
        raise InvalidArgument("accept_chain_ids limits accept_all_assets; set accept_all_assets too")
    if not ways:
        raise InvalidArgument(
            f"say what the payment accepts: chain_id and asset, options (a list of chain_id and asset), "
            f"or accept_all_assets; configured chains: {chains.ids()}"
        )
    if (options or accept_all) and not priced:
        raise InvalidArgument(
            "options and accept_all_assets need a price: each option's amount due comes from the price at its "
            "quote; give price, or one chain_id and asset with amount"
        )
    if options:
        if len(options) > MAX_OPTIONS:
            raise InvalidArgument(f"options has {len(options)} entries; at most {MAX_OPTIONS} are allowed")
        found: list[AcceptedOption] = []
        for i, (option_chain, option_asset) in enumerate(options):
            chain, resolved = _asset(chains, option_chain, option_asset, f"options[{i}]: ")
            for j, earlier in enumerate(found):
                if (earlier.chain_id, earlier.asset.symbol) == (option_chain, resolved.symbol):
                    raise InvalidArgument(
                        f"options[{i}] repeats options[{j}] ({resolved.symbol} on chain {option_chain})"
                    )
            found.append(AcceptedOption(option_chain, resolved, chain.confirmations))
        return tuple(found), ("options", tuple((o.chain_id, o.asset.symbol) for o in found))
    if accept_all:
        if len(set(accept_chain_ids)) != len(accept_chain_ids):
            raise InvalidArgument("accept_chain_ids names a chain twice")
        for i, c in enumerate(accept_chain_ids):
            if chains.get(c) is None:
                raise NotFound(f"accept_chain_ids[{i}] {c} is not configured; configured chains: {chains.ids()}")
        wanted = set(accept_chain_ids)
        found = [
            AcceptedOption(chain.chain_id, a, chain.confirmations)
            for chain in chains
            if not wanted or chain.chain_id in wanted
            for a in chain.assets
        ]
        return tuple(found), ("all", tuple(sorted(wanted)))
    chain, resolved = _asset(chains, chain_id, asset)
    return (AcceptedOption(chain_id, resolved, chain.confirmations),), ()


def validate_new_payment(
    chains: Chains,
    *,
    chain_id: int,
    asset: str,
    amount: str,
    price: tuple[str, str] | None = None,
    expires_in: timedelta | None,
    expires_at: datetime | None,
    merchant_order_id: str,
    metadata: dict[str, str],
    idempotency_key: str,
    now: datetime,
    options: Sequence[tuple[int, str]] = (),
    accept_all: bool = False,
    accept_chain_ids: Sequence[int] = (),
    description: str = "",
    return_url: str = "",
    allow_http_return_url: bool = False,
) -> NewPayment:
    accepted, requested_options = accepted_options(
        chains,
        chain_id=chain_id,
        asset=asset,
        options=options,
        accept_all=accept_all,
        accept_chain_ids=accept_chain_ids,
        priced=price is not None,
    )
    amount_due: int | None = None
    parsed_price: Price | None = None
    if price is not None:
        if amount:
            raise InvalidArgument(
                "give amount (base units of the asset) or price (a fiat currency and amount), not both"
            )
        try:
            parsed_price = parse_price(*price)
        except PricingError as err:
            raise InvalidArgument(f"price: {err}") from None
    elif not amount:
        raise InvalidArgument(
            'amount or price is required: amount in base units of the asset ("1000000"), '
            'or price as a currency and a decimal amount ({"currency": "USD", "amount": "19.99"})'
        )
    else:
        amount_due = parse_amount(amount, field="amount")
    if expires_in is not None and expires_at is not None:
        raise InvalidArgument("give expires_in or expires_at, not both")
    if expires_at is not None:
        if expires_at <= now:
            raise InvalidArgument(f"expires_at {expires_at.isoformat()} is in the past")
        expiry = expires_at - now
        requested: tuple = ("at", expires_at.isoformat())
    elif expires_in is not None:
        expiry = expires_in
        requested = ("in", expires_in // timedelta(microseconds=1))
    else:
        expiry = DEFAULT_EXPIRY
        requested = ("default",)
    if expiry < MIN_EXPIRY or expiry > MAX_EXPIRY:
        raise InvalidArgument(
            f"expiry must be between 1 minute and 30 days from now; got {int(expiry.total_seconds())} s"
        )
    if len(merchant_order_id) > MAX_ORDER_ID:
        raise InvalidArgument(f"merchant_order_id is longer than {MAX_ORDER_ID} characters")
    validate_metadata(metadata)
    check_idempotency_key(idempotency_key)
    if len(description) > MAX_DESCRIPTION:
        raise InvalidArgument(f"description is longer than {MAX_DESCRIPTION} characters")
    validate_return_url(return_url, allow_http=allow_http_return_url)
    first = accepted[0]
    return NewPayment(
        chain_id=first.chain_id,
        asset=first.asset,
        amount_due=amount_due,
        price=parsed_price,
        expires_at=now + expiry,
        merchant_order_id=merchant_order_id,
        metadata=dict(metadata),
        idempotency_key=idempotency_key or None,
        confirmations_required=first.chain_minimum,
        expiry_requested=requested,
        options=accepted,
        accept_all=accept_all,
        options_requested=requested_options,
        description=description,
        return_url=return_url,
    )


def validate_return_url(url: str, *, allow_http: bool) -> str:
    """Where a checkout page may send the customer: an absolute https:// URL (http://
    where the operator allows it), with a host, no credentials, no spaces or control
    characters. javascript:, data: and every other scheme are refused."""
    if not url:
        return ""
    allowed = ("https", "http") if allow_http else ("https",)
    shown = url[:80]
    if len(url) > MAX_RETURN_URL:
        raise InvalidArgument(f"return_url is longer than {MAX_RETURN_URL} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidArgument(f"return_url {shown!r} contains spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() not in allowed:
        wanted = " or ".join(f"{a}://" for a in allowed)
        raise InvalidArgument(f"return_url must start with {wanted}; got {shown!r}")
    if not parts.hostname:
        raise InvalidArgument(f"return_url {shown!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidArgument(f"return_url {shown!r} carries credentials (user@host); give the URL without them")
    return url


def validate_metadata(metadata: dict[str, str]) -> None:
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidArgument(f"metadata has {len(metadata)} keys; at most {MAX_METADATA_KEYS} are allowed")
    total = 0
    for key, value in metadata.items():
        if not key or len(key) > MAX_METADATA_KEY:
            raise InvalidArgument(f"metadata keys must be 1 to {MAX_METADATA_KEY} characters; {key[:80]!r} is not")
        if len(value) > MAX_METADATA_VALUE:
            raise InvalidArgument(f"metadata[{key!r}] is longer than {MAX_METADATA_VALUE} characters")
        total += len(key.encode()) + len(value.encode())
    if total > MAX_METADATA_BYTES:
        raise InvalidArgument(f"metadata is {total} bytes; at most {MAX_METADATA_BYTES} are allowed")


_HEX_ADDRESS = re.compile(r"(0[xX])?[0-9a-fA-F]{40}")


@lru_cache(maxsize=65_536)
def checksum_address(value: str, field: str) -> str:
    """The EIP-55 form of an EVM address; InvalidArgument if it is not one, or
    if it is mixed-case with a wrong checksum. Cached: the chain-event consumer
    sees the same senders, tokens and deposit addresses again and again."""
    if not _HEX_ADDRESS.fullmatch(value):
        raise InvalidArgument(f"{field} is not an EVM address: {value[:64]!r}")
    checksummed = to_checksum_address(value)  # one keccak; eth_utils.is_address would add another
    digits = value[-40:]
    if digits not in (digits.lower(), digits.upper()) and digits != checksummed[2:]:
        raise InvalidArgument(f"{field} has a wrong EIP-55 checksum (mixed case that does not match): {value!r}")
    return checksummed


def validate_webhook_url(url: str, *, allow_private: bool) -> str:
    """The URL, if a webhook can ever be delivered to it (services/common/ssrf.py);
    the address a host name resolves to is checked again at each delivery."""
    if not url:
        return ""
    problem = webhook_url_problem(url, allow_private)
    if problem:
        raise InvalidArgument(f"webhook_url {url[:80]!r} cannot receive webhooks: {problem}")
    return url


def check_idempotency_key(value: str) -> str | None:
    """A request's idempotency key (None when it has none); InvalidArgument when too long."""
    if len(value) > MAX_IDEMPOTENCY_KEY:
        raise InvalidArgument(f"idempotency_key is longer than {MAX_IDEMPOTENCY_KEY} characters")
    return value or None


def tx_hash_field(value: str, field: str = "tx_hash") -> str:
    """A transaction hash as the sweeper reports one: 0x and 64 hex digits, lower-cased."""
    if not (value.startswith("0x") and len(value) == 66):
        raise InvalidArgument(f"{field} must be 0x followed by 64 hex digits; got {value[:70]!r}")
    try:
        int(value, 16)
    except ValueError:
        raise InvalidArgument(f"{field} is not hexadecimal: {value[:70]!r}") from None
    return value.lower()


def utcnow() -> datetime:
    return datetime.now(UTC)
