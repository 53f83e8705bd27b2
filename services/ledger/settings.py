"""Ledger settings (environment, prefix PAYMESH_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from services.common.settings import (
    ADDRESS_FEED_TOKEN,
    CHECKOUT_LEDGER_TOKEN,
    MERCHANT_DIRECTORY_TOKEN,
    SWEEP_LEDGER_TOKEN,
    ConnectSettings,
)


class LedgerSettings(ConnectSettings):
    address_feed_token: SecretStr = ADDRESS_FEED_TOKEN
    sweep_ledger_token: SecretStr = SWEEP_LEDGER_TOKEN
    merchant_directory_token: SecretStr = MERCHANT_DIRECTORY_TOKEN
    checkout_ledger_token: SecretStr = CHECKOUT_LEDGER_TOKEN
    checkout_base_url: str = Field(
        "", description="the public checkout's base URL (Payment.checkout_url = this + /pay/<token>); empty: none"
    )
    allow_http_return_urls: bool = Field(
        False, description="accept http:// return URLs on payments (development); https:// only otherwise"
    )
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/paymesh"
    db_pool_size: int = Field(20, ge=1, le=200)
    migrate_on_start: bool = Field(True, description="run Alembic migrations at startup")
    api_key_cache_seconds: float = Field(1.0, ge=0, description="how long an API key lookup is cached")
    address_reservation: int = Field(10, ge=1, le=1000, description="derivation indexes reserved per DB round trip")
    expiry_interval_seconds: float = Field(1.0, gt=0)
    config_change_delay_seconds: float = Field(
        0.0,
        ge=0,
        le=30 * 86400,
        description="a change of a treasury or the xpub waits this long, announced and cancellable (0: at once)",
    )
    config_change_interval_seconds: float = Field(1.0, gt=0, description="how often due changes are looked for")
    create_batch: int = Field(
        128, ge=1, le=1000, description="most CreatePayment requests that share one statement and commit"
    )
    relay_batch: int = Field(256, ge=1, le=10_000)
    relay_idle_seconds: float = Field(0.2, gt=0, description="outbox poll interval when idle")
    relay_linger_seconds: float = Field(
        0.005, ge=0, le=1, description="pause between partial outbox batches, so one round trip carries many events"
    )
    outbox_retention_days: float = Field(
        30.0, gt=0, description="published payment events are kept this long (EventService.ListEvents reads them)"
    )
    watch_retention_days: float = Field(
        7.0,
        ge=0,
        le=90,
        description="watch a deposit address this long after its payment expires (unless its payment policy says)",
    )
    consumer_batch: int = Field(256, ge=1, le=5000)
    consumer_ack_wait_seconds: float = Field(30.0, ge=1, description="redelivery delay of an unacked chain event")
    allow_private_webhooks: bool = Field(False, description="allow webhook URLs on private/loopback hosts")
    rates_file: Path = Field(
        Path("rates.yaml"),
        description="path of rates.yaml (fiat rate sources); the default path absent means no fiat pricing",
    )
