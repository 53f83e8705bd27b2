"""Notifier settings (environment, prefix PAYMESH_)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator

from services.common.settings import MERCHANT_DIRECTORY_TOKEN, ConnectSettings
from services.notifier.domain.backoff import DEFAULT_SCHEDULE, parse_schedule


class NotifierSettings(ConnectSettings):
    merchant_directory_token: SecretStr = MERCHANT_DIRECTORY_TOKEN
    # Its own tables (notifier_*, version table alembic_version_notifier): a
    # separate database is best (PAYMESH_NOTIFIER_DATABASE_URL); sharing the
    # ledger's database through PAYMESH_DATABASE_URL also works.
    database_url: str = Field(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/paymesh",
        validation_alias=AliasChoices("PAYMESH_NOTIFIER_DATABASE_URL", "PAYMESH_DATABASE_URL", "database_url"),
    )
    db_pool_size: int = Field(10, ge=1, le=200)
    migrate_on_start: bool = Field(True, description="run Alembic migrations at startup")
    ledger_addr: str = Field("127.0.0.1:50051", description="the ledger's gRPC address (host:port)")
    ledger_timeout_seconds: float = Field(5.0, gt=0)

    # Intake from JetStream.
    notifier_durable: str = Field(
        "notifier", pattern=r"^[A-Za-z0-9_-]{1,64}$", description="durable consumer name on PAYMENTS"
    )
    notifier_deliver_policy: Literal["all", "new"] = Field(
        "all", description="where a new durable starts: the whole PAYMENTS stream, or new events only"
    )
    consumer_batch: int = Field(256, ge=1, le=5000)
    consumer_ack_wait_seconds: float = Field(30.0, gt=0, description="unacked events are redelivered after this")
    # run_pull_consumer's fetch waits this long for a full batch once the stream
    # is idle, so it bounds the intake delay of an event arriving on a quiet stream.
    consumer_fetch_wait_seconds: float = Field(0.05, gt=0, le=5)

    # Delivery.
    retry_schedule: str = Field(DEFAULT_SCHEDULE, description="delays between attempts, e.g. '5s,30s,2m,1h'")
    retry_jitter: float = Field(0.2, ge=0, lt=1, description="each delay is spread by +/- this fraction")
    request_timeout_seconds: float = Field(10.0, gt=0, description="whole attempt, connect to last byte")
    connect_timeout_seconds: float = Field(5.0, gt=0)
    max_concurrency: int = Field(256, ge=1, le=10_000, description="attempts in flight, all merchants")
    per_endpoint_concurrency: int = Field(
        8,
        ge=1,
        le=1000,
        description="attempts in flight per webhook endpoint (PAYMESH_PER_MERCHANT_CONCURRENCY: the old name)",
        validation_alias=AliasChoices(
            "PAYMESH_PER_ENDPOINT_CONCURRENCY", "PAYMESH_PER_MERCHANT_CONCURRENCY", "per_endpoint_concurrency"
        ),
    )
    claim_batch: int = Field(256, ge=1, le=5000)
    poll_interval_seconds: float = Field(0.25, gt=0, description="how often due retries are looked for")
    lease_seconds: float = Field(60.0, gt=0, description="an attempt not recorded by then is retried")
    allow_private_webhooks: bool = Field(
        False, description="allow webhook hosts on loopback/private/link-local/... addresses (dev, tests)"
    )
    max_response_bytes: int = Field(64 * 1024, ge=0, description="response body read at most (then dropped)")
    target_cache_seconds: float = Field(5.0, ge=0, description="how long a merchant's webhook URL/secret is cached")
    auth_cache_seconds: float = Field(1.0, ge=0, description="how long an API key lookup is cached")
    retention_days: float = Field(30.0, gt=0, description="finished deliveries are pruned after this")
    user_agent: str = "paymesh-notifier/1.0 (+webhooks)"

    @field_validator("retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        parse_schedule(value)  # raises ValueError with the bad item
        return value

    @model_validator(mode="after")
    def _lease_covers_attempt(self) -> NotifierSettings:
        if self.lease_seconds < self.request_timeout_seconds + 2:
            raise ValueError(
                "lease_seconds must exceed request_timeout_seconds by at least 2 seconds, "
                "or attempts still running would be retried by another replica"
            )
        return self

    @property
    def schedule(self) -> tuple[float, ...]:
        return parse_schedule(self.retry_schedule)
