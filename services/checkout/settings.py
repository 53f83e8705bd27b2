"""Checkout settings (environment, prefix PAYMESH_)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from services.common.settings import CHECKOUT_LEDGER_TOKEN, CommonSettings


class CheckoutSettings(CommonSettings):
    checkout_ledger_token: SecretStr = CHECKOUT_LEDGER_TOKEN
    ledger_addr: str = Field("127.0.0.1:50051", description="the ledger's gRPC address (host:port)")
    ledger_timeout_seconds: float = Field(5.0, gt=0)
    http_host: str = Field("127.0.0.1", description="where the public pages listen")
    http_port: int = Field(8080, ge=0, le=65535, description="0 picks a free port")
    refresh_seconds: int = Field(10, ge=2, le=300, description="how often a page without JavaScript reloads itself")
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="proxies whose X-Forwarded-For / -Proto are believed (comma-separated, or *), for the "
        "client address the rate limits count",
    )
    keepalive_seconds: float = Field(15.0, gt=0, le=120, description="a comment on idle live-update streams")
    requote_per_minute: int = Field(
        30, ge=1, le=10_000, description="re-quotes one client address may cause per minute (HTTP 429 beyond)"
    )
    link_payments_per_minute_per_client: int = Field(
        10, ge=1, le=10_000, description="payments one client address may start from payment links per minute"
    )
    link_payments_per_minute_per_link: int = Field(
        600, ge=1, le=1_000_000, description="payments one payment link may start per minute, from everyone"
    )
