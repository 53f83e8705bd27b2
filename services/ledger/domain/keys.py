"""API keys: random, shown once, stored as SHA-256 (they are high-entropy, so a
fast hash is the right tool: lookup is by hash, and brute force is hopeless)."""

from __future__ import annotations

import hashlib
import secrets
import uuid

API_KEY_PREFIX = "pmk_"


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str:
    return key[:12]


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def new_merchant_id() -> str:
    return "mch_" + uuid.uuid4().hex


def new_payment_id() -> str:
    return "pay_" + uuid.uuid4().hex


# A checkout token opens one payment's public page: 24 random bytes (192 bits), URL-safe.
CHECKOUT_TOKEN_PATTERN = r"[A-Za-z0-9_-]{32,64}"


def new_checkout_token() -> str:
    return secrets.token_urlsafe(24)
