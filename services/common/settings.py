"""Settings shared by every service, from environment variables (prefix PAYMESH_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """Every service has these; each service's settings class extends it."""

    model_config = SettingsConfigDict(env_prefix="PAYMESH_", extra="ignore")

    chains_file: Path = Field(Path("chains.yaml"), description="path of chains.yaml")
    nats_url: str = Field("nats://127.0.0.1:4222", description="one NATS URL, or a cluster's nodes separated by commas")
    nats_replicas: int = Field(
        0, ge=0, le=5, description="replicas of streams and KV buckets; 0: 3 on a cluster of 3 or more nodes, else 1"
    )
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(0, ge=0, le=65535, description="0 picks a free port")
    metrics_port: int = Field(0, ge=0, le=65535, description="0 disables the /metrics listener")
    log_level: str = "INFO"
    admin_token: SecretStr = Field(SecretStr(""), description="operator bearer token")
    shutdown_grace_seconds: float = Field(10.0, ge=0)


class ConnectSettings(CommonSettings):
    """A service that also serves its merchant API over HTTP/JSON (the Connect
    protocol, services/common/connect_gateway.py): the ledger and the notifier."""

    connect_enabled: bool = Field(True, description="serve the merchant API over HTTP/JSON (the Connect protocol)")
    connect_host: str = Field("127.0.0.1", description="the HTTP/JSON (Connect) listener's address")
    connect_port: int = Field(0, ge=0, le=65535, description="the HTTP/JSON (Connect) listener's port; 0: a free one")


# The ledger's internal services each have their own token, shared by the ledger
# and the one service that calls it (same variable on both sides), so one
# caller's credentials cannot use another's API (protos/CHANGELOG.md).
ADDRESS_FEED_TOKEN = Field(SecretStr(""), description="AddressFeedService token (the listener calls it)")
SWEEP_LEDGER_TOKEN = Field(SecretStr(""), description="SweepLedgerService token (the sweeper calls it)")
MERCHANT_DIRECTORY_TOKEN = Field(SecretStr(""), description="MerchantDirectoryService token (the notifier calls it)")
CHECKOUT_LEDGER_TOKEN = Field(SecretStr(""), description="CheckoutLedgerService token (the checkout calls it)")
