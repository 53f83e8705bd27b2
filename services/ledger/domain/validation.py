"""Validation of merchant input, with messages a person can act on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from urllib.parse import urlsplit

from eth_utils import to_checksum_address

from services.common.chains import Asset, Chains
from services.common.errors import InvalidArgument, NotFound
from services.common.money import parse_amount

MAX_ORDER_ID = 128
MAX_IDEMPOTENCY_KEY = 128
MAX_METADATA_KEYS = 32
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_METADATA_BYTES = 8 * 1024
MIN_EXPIRY = timedelta(minutes=1)
MAX_EXPIRY = timedelta(days=30)
DEFAULT_EXPIRY = timedelta(hours=1)
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50


@dataclass(frozen=True)
class NewPayment:
    chain_id: int
    asset: Asset
    amount_due: int
    expires_at: datetime
    merchant_order_id: str
    metadata: dict[str, str]
    idempotency_key: str | None
    confirmations_required: int

    def fingerprint(self) -> tuple:
        """What must match for an idempotent retry (expiry is relative, so it is left out)."""
        return (
            self.chain_id,
            self.asset.symbol,
            self.amount_due,
            self.merchant_order_id,
            tuple(sorted(self.metadata.items())),
        )


def validate_new_payment(
    chains: Chains,
    *,
    chain_id: int,
    asset: str,
    amount: str,
    expires_in: timedelta | None,
    expires_at: datetime | None,
    merchant_order_id: str,
    metadata: dict[str, str],
    idempotency_key: str,
    now: datetime,
) -> NewPayment:
    chain = chains.get(chain_id)
    if chain_id == 0:
        raise InvalidArgument(f"chain_id is required; configured chains: {chains.ids()}")
    if chain is None:
        raise NotFound(f"chain {chain_id} is not configured; configured chains: {chains.ids()}")
    if not asset.strip():
        raise InvalidArgument(f"asset is required; chain {chain_id} accepts {chain.asset_symbols()}")
    found = chain.asset(asset)
    if found is None:
        raise NotFound(f"asset {asset[:32]!r} is not configured on chain {chain_id}; it accepts {chain.asset_symbols()}")
    amount_due = parse_amount(amount, field="amount")
    if expires_in is not None and expires_at is not None:
        raise InvalidArgument("give expires_in or expires_at, not both")
    if expires_at is not None:
        if expires_at <= now:
            raise InvalidArgument(f"expires_at {expires_at.isoformat()} is in the past")
        expiry = expires_at - now
    else:
        expiry = expires_in if expires_in is not None else DEFAULT_EXPIRY
    if expiry < MIN_EXPIRY or expiry > MAX_EXPIRY:
        raise InvalidArgument(
            f"expiry must be between 1 minute and 30 days from now; got {int(expiry.total_seconds())} s"
        )
    if len(merchant_order_id) > MAX_ORDER_ID:
        raise InvalidArgument(f"merchant_order_id is longer than {MAX_ORDER_ID} characters")
    validate_metadata(metadata)
    if len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidArgument(f"idempotency_key is longer than {MAX_IDEMPOTENCY_KEY} characters")
    return NewPayment(
        chain_id=chain_id,
        asset=found,
        amount_due=amount_due,
        expires_at=now + expiry,
        merchant_order_id=merchant_order_id,
        metadata=dict(metadata),
        idempotency_key=idempotency_key or None,
        confirmations_required=chain.confirmations,
    )


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


def page_size(requested: int) -> int:
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    if requested > MAX_PAGE_SIZE:
        raise InvalidArgument(f"page_size must be at most {MAX_PAGE_SIZE}; got {requested}")
    return requested


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


def validate_webhook_url(url: str) -> str:
    """Shape only; whether the host may be reached is decided at delivery (SSRF guard)."""
    if not url:
        return ""
    if len(url) > 2048:
        raise InvalidArgument("webhook_url is longer than 2048 characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(f"webhook_url must be an absolute http(s) URL; got {url[:80]!r}")
    if parts.username or parts.password:
        raise InvalidArgument("webhook_url must not carry credentials; the HMAC signature authenticates us")
    return url


def utcnow() -> datetime:
    return datetime.now(UTC)
