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
