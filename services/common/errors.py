"""Domain errors. Plain Python, no grpc: the gRPC layer maps each class to a status.

Raise these from domain and service code with a message a person can act on;
anything else that escapes becomes INTERNAL with a reference id, never a trace.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base class; `message` is shown to the caller as is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DomainError):
    """The request is malformed or out of range (INVALID_ARGUMENT)."""


class NotFound(DomainError):
    """The named thing does not exist for this caller (NOT_FOUND)."""


class AlreadyExists(DomainError):
    """A conflicting thing exists, e.g. an idempotency key reused (ALREADY_EXISTS)."""


class FailedPrecondition(DomainError):
    """The request is valid but not in the current state (FAILED_PRECONDITION)."""


class Unauthenticated(DomainError):
    """Credentials missing or wrong (UNAUTHENTICATED)."""


class PermissionDenied(DomainError):
    """Credentials valid but not allowed to do this (PERMISSION_DENIED)."""


class Unavailable(DomainError):
    """A dependency is down; retrying later may succeed (UNAVAILABLE)."""


class MalformedResponse(ValueError):
    """Untrusted data from outside (an RPC node's answer) is not the shape that was
    asked for. Not a DomainError: it never reaches a caller of our APIs; the code
    that talks to the outside logs it and retries."""
