"""Sweeper settings (environment, prefix PAYMESH_).

The seed comes from PAYMESH_SWEEPER_MNEMONIC, or better from a secret file named by
PAYMESH_SWEEPER_MNEMONIC_FILE (a mounted Kubernetes secret); it is a SecretStr and
is never logged or shown.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from services.common.settings import SWEEP_LEDGER_TOKEN, CommonSettings
from services.sweeper.domain.policy import SweepPolicy
from services.sweeper.domain.releases import RetryDelays


def _default_worker_id() -> str:
    return f"sweeper-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class SweepConfig:
    """How one chain's sweeper runs: its share of the settings (SweeperSettings.sweep_config)."""

    worker_id: str
    batch_size: int
    concurrency: int
    interval: float
    claim_lease_seconds: int
    poll: float
    settle_timeout: float
    stuck_after: float
    fee_bump_bps: int
    max_replacements: int
    token_gas_buffer_percent: int
    dust_retry: int
    config_retry: int
    gas_wallet_retry: int
    error_retry: int
    drain_seconds: float = 10.0

    @property
    def retry_delays(self) -> RetryDelays:
        return RetryDelays(
            dust=self.dust_retry, config=self.config_retry, gas_wallet=self.gas_wallet_retry, error=self.error_retry
        )


class SweeperSettings(CommonSettings):
    sweep_ledger_token: SecretStr = SWEEP_LEDGER_TOKEN
    ledger_addr: str = Field("127.0.0.1:50051", description="the ledger's gRPC address")
    ledger_timeout_seconds: float = Field(15.0, gt=0, description="deadline of each ledger call")

    # The seed.
    sweeper_mnemonic: SecretStr = Field(SecretStr(""), description="BIP-39 mnemonic (prefer the _FILE variant)")
    sweeper_mnemonic_file: Path | None = Field(None, description="file holding the mnemonic (a mounted secret)")
    sweeper_mnemonic_passphrase: SecretStr = Field(SecretStr(""), description="optional BIP-39 passphrase")
    sweeper_gas_wallet_path: str = Field("m/44'/60'/0'/0/0", description="key that pays gas top-ups for token sweeps")

    # Who and what.
    sweeper_worker_id: str = Field(
        default_factory=_default_worker_id,
        description="this replica's id in ledger leases and the signer lease; set it to the pod name to "
        "resume a crashed replica's leases at once",
    )
    sweeper_chain_ids: list[int] = Field(default_factory=list, description="chains to sweep (JSON list); empty: all")

    # Work loop.
    sweeper_batch_size: int = Field(20, ge=1, le=500, description="payments claimed per round")
    sweeper_concurrency: int = Field(16, ge=1, le=200, description="payments swept at once per chain")
    sweeper_interval_seconds: float = Field(5.0, gt=0, description="time between rounds")
    sweeper_wake_on_events: bool = Field(
        True, description="start a round at once on the ledger's confirmed/overpaid/... payment events (NATS)"
    )
    sweeper_claim_lease_seconds: int = Field(300, ge=10, le=3600, description="ledger lease of a claimed payment")
    sweeper_signer_lease_bucket: str = Field(
        "sweeper-leases", description="NATS KV bucket of the per-chain signer lease"
    )
    sweeper_signer_lease_ttl_seconds: float = Field(
        10.0, ge=1.0, le=600.0, description="a dead signer's chains are taken over after this"
    )
    sweeper_poll_seconds: float = Field(
        0.0, ge=0, description="receipt polling; 0: half the chain's block time (<= 1 s)"
    )
    sweeper_settle_timeout_seconds: float = Field(
        900.0, gt=0, description="longest wait for one transaction before the payment is released (and resumed later)"
    )

    # Policy.
    sweeper_min_amounts: dict[str, str] = Field(
        default_factory=dict,
        description="smallest amount worth sweeping, base units, JSON "
        '{"ETH": "1000000000000000", "31337:TUSD": "1000000"}',
    )
    sweeper_max_fee_share_percent: int = Field(
        50, ge=1, le=100, description="a native sweep waits while its fee is above this share of the amount"
    )
    sweeper_dust_retry_seconds: int = Field(6 * 3600, ge=1, description="retry of a payment left as dust")
    sweeper_config_retry_seconds: int = Field(
        600, ge=1, description="retry after a configuration problem (treasury missing or invalid, key mismatch)"
    )
    sweeper_gas_wallet_retry_seconds: int = Field(120, ge=1, description="retry while the gas wallet is too poor")
    sweeper_error_retry_seconds: int = Field(30, ge=1, description="retry after a transient error (RPC, node)")

    # Fees.
    sweeper_base_fee_multiplier_percent: int = Field(200, ge=100, le=1000, description="maxFee = base x this % + tip")
    sweeper_min_priority_fee_wei: int = Field(0, ge=0)
    sweeper_legacy_gas_price_percent: int = Field(
        110, ge=100, le=1000, description="legacy gasPrice = eth_gasPrice x this %"
    )
    sweeper_max_fee_per_gas_wei: int = Field(0, ge=0, description="never pay more per gas; 0: no cap")
    sweeper_token_gas_buffer_percent: int = Field(10, ge=0, le=200, description="gas limit = estimate x (100 + this) %")
    sweeper_stuck_after_seconds: float = Field(120.0, gt=0, description="replace a transaction pending this long")
    sweeper_fee_bump_percent: float = Field(12.5, ge=12.5, le=500, description="fee increase of a replacement")
    sweeper_max_replacements: int = Field(5, ge=0, le=50)

    # RPC.
    sweeper_rpc_timeout_seconds: float = Field(10.0, gt=0)
    sweeper_rpc_attempts: int = Field(3, ge=1, le=20)
    sweeper_rpc_trust_env: bool = Field(False, description="use HTTP(S)_PROXY from the environment for RPC")

    @field_validator("sweeper_min_amounts")
    @classmethod
    def _amounts(cls, value: dict[str, str]) -> dict[str, str]:
        for key, amount in value.items():
            text = str(amount)
            if not text.isascii() or not text.isdigit():
                raise ValueError(f"sweeper_min_amounts[{key!r}] must be a whole number of base units, got {text!r}")
        return {k: str(v) for k, v in value.items()}

    def mnemonic(self) -> SecretStr:
        """The mnemonic from the file or the variable; ValueError (without the words) if missing."""
        if self.sweeper_mnemonic_file is not None:
            try:
                text = self.sweeper_mnemonic_file.read_text()
            except OSError as exc:
                raise ValueError(
                    f"PAYMESH_SWEEPER_MNEMONIC_FILE={self.sweeper_mnemonic_file}: cannot read it ({exc.strerror})"
                ) from None
            if not text.strip():
                raise ValueError(f"PAYMESH_SWEEPER_MNEMONIC_FILE={self.sweeper_mnemonic_file} is empty")
            return SecretStr(" ".join(text.split()))
        if self.sweeper_mnemonic.get_secret_value().strip():
            return self.sweeper_mnemonic
        raise ValueError(
            "the sweeper needs the HD seed: set PAYMESH_SWEEPER_MNEMONIC_FILE (a secret file) "
            "or PAYMESH_SWEEPER_MNEMONIC"
        )

    def policy(self) -> SweepPolicy:
        return SweepPolicy(
            min_amounts={k: int(v) for k, v in self.sweeper_min_amounts.items()},
            max_fee_share_percent=self.sweeper_max_fee_share_percent,
        )

    @property
    def fee_bump_bps(self) -> int:
        return round(self.sweeper_fee_bump_percent * 100)

    def sweep_config(self, block_time_seconds: float) -> SweepConfig:
        """The sweep config of a chain with this block time (receipt polling follows it)."""
        return SweepConfig(
            worker_id=self.sweeper_worker_id,
            batch_size=self.sweeper_batch_size,
            concurrency=self.sweeper_concurrency,
            interval=self.sweeper_interval_seconds,
            claim_lease_seconds=self.sweeper_claim_lease_seconds,
            poll=self.sweeper_poll_seconds or min(1.0, block_time_seconds / 2),
            settle_timeout=self.sweeper_settle_timeout_seconds,
            stuck_after=self.sweeper_stuck_after_seconds,
            fee_bump_bps=self.fee_bump_bps,
            max_replacements=self.sweeper_max_replacements,
            token_gas_buffer_percent=self.sweeper_token_gas_buffer_percent,
            dust_retry=self.sweeper_dust_retry_seconds,
            config_retry=self.sweeper_config_retry_seconds,
            gas_wallet_retry=self.sweeper_gas_wallet_retry_seconds,
            error_retry=self.sweeper_error_retry_seconds,
            drain_seconds=self.shutdown_grace_seconds,
        )
