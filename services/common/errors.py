"""Domain errors. Plain Python, no grpc: the gRPC layer maps each class to a status.

Raise these from domain and service code with a message a person can act on;
anything else that escapes becomes INTERNAL with a reference id, never a trace.

Each error also carries a machine-readable `reason` (UPPER_SNAKE_CASE), sent in
the status details as a `google.rpc.ErrorInfo` (services/common/grpc_server.py)
and read back by services/common/grpc_client.py, so a caller that must tell two
failures with the same status apart compares reasons, never message text. The
default reason is the status's name; the ones callers act on are in `Reason`.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Reasons a caller of our APIs acts on (the ErrorInfo `reason`, domain "paymesh")."""

    API_KEY_UNKNOWN = "API_KEY_UNKNOWN"  # a merchant API key nobody has (vs. a wrong service token)
    MERCHANT_DISABLED = "MERCHANT_DISABLED"
    SERVICE_TOKEN_WRONG = "SERVICE_TOKEN_WRONG"  # a service-to-service or operator token that does not match
    API_DISABLED = "API_DISABLED"  # the operator has not set this API's token
    SWEEP_LEASE_NOT_HELD = "SWEEP_LEASE_NOT_HELD"  # another sweeper holds (or the lease expired)
    RATE_NOT_CONFIGURED = "RATE_NOT_CONFIGURED"  # no rate source for the asset/currency pair (rates.yaml)
    RATE_UNAVAILABLE = "RATE_UNAVAILABLE"  # the pair's source has no rate younger than its max age
    ASSET_DEPEGGED = "ASSET_DEPEGGED"  # a fixed-rate stablecoin's guard feed says it is off its peg
    PAYOUT_BAD_DESTINATION = "PAYOUT_BAD_DESTINATION"  # zero address, the source itself, the token contract
    PAYOUT_DAILY_LIMIT = "PAYOUT_DAILY_LIMIT"  # over the merchant's payout limit per 24 hours
    PAYOUT_NOT_CANCELLABLE = "PAYOUT_NOT_CANCELLABLE"  # signed already: its transaction may be mined
    REFUND_NOTHING_TO_REFUND = "REFUND_NOTHING_TO_REFUND"  # no confirmed funds (or excess) left to give back
    REFUND_TOO_LARGE = "REFUND_TOO_LARGE"  # more than the option's confirmed funds less earlier refunds
    SWEEP_HELD_FOR_REFUND = "SWEEP_HELD_FOR_REFUND"  # a refund from the deposit address goes first
    SCOPE_MISSING = "SCOPE_MISSING"  # the API key lacks the scope the RPC needs (the message names it)
    SAME_KEY_APPROVAL = "SAME_KEY_APPROVAL"  # a payout approved by the key that created it


class DomainError(Exception):
    """Base class; `message` is shown to the caller as is, `reason` is for programs.
    An error from another service (grpc_client) also keeps that service's own message
    in `peer_message`, without what we were doing when it failed."""

    default_reason = "UNKNOWN"
    peer_message = ""

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason


class InvalidArgument(DomainError):
    """The request is malformed or out of range (INVALID_ARGUMENT)."""

    default_reason = "INVALID_ARGUMENT"


class NotFound(DomainError):
    """The named thing does not exist for this caller (NOT_FOUND)."""

    default_reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    """A conflicting thing exists, e.g. an idempotency key reused (ALREADY_EXISTS)."""

    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    """The request is valid but not in the current state (FAILED_PRECONDITION)."""

    default_reason = "FAILED_PRECONDITION"


class Unauthenticated(DomainError):
    """Credentials missing or wrong (UNAUTHENTICATED)."""

    default_reason = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    """Credentials valid but not allowed to do this (PERMISSION_DENIED)."""

    default_reason = "PERMISSION_DENIED"


class Unavailable(DomainError):
    """A dependency is down; retrying later may succeed (UNAVAILABLE)."""

    default_reason = "UNAVAILABLE"


class MalformedResponse(ValueError):
    """Untrusted data from outside (an RPC node's answer) is not the shape that was
    asked for. Not a DomainError: it never reaches a caller of our APIs; the code
    that talks to the outside logs it and retries."""
