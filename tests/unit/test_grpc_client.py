"""One mapping from a failed call to the shared domain errors, for every caller;
reasons travel as google.rpc.ErrorInfo, so no caller reads message text."""

from __future__ import annotations

import grpc
import pytest

from services.common import errors
from services.common.grpc_client import error_from_rpc, reason_of
from services.common.grpc_server import error_status


def failed(code: grpc.StatusCode, details: str, reason: str | None = None) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata()
    if reason is not None:
        for key, value in error_status(code, details, reason).trailing_metadata:
            trailing.add(key, value)
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details)


@pytest.mark.parametrize(
    ("code", "reason", "kind", "needle"),
    [
        (grpc.StatusCode.NOT_FOUND, "NOT_FOUND", errors.NotFound, "ledger (recording transaction 0xab): payment pay_x"),
        (grpc.StatusCode.FAILED_PRECONDITION, "SWEEP_LEASE_NOT_HELD", errors.FailedPrecondition, "does not hold"),
        (
            grpc.StatusCode.UNAUTHENTICATED,
            "SERVICE_TOKEN_WRONG",
            errors.PermissionDenied,
            "check PAYMESH_SWEEP_LEDGER_TOKEN",
        ),
        (grpc.StatusCode.PERMISSION_DENIED, "API_DISABLED", errors.PermissionDenied, "refused our token"),
        (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_UNKNOWN", errors.Unauthenticated, "not recognised"),
        (grpc.StatusCode.UNAVAILABLE, None, errors.Unavailable, "ledger is unavailable (UNAVAILABLE)"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, None, errors.Unavailable, "DEADLINE_EXCEEDED"),
        (grpc.StatusCode.INTERNAL, "INTERNAL", errors.Unavailable, "INTERNAL"),
        (grpc.StatusCode.INVALID_ARGUMENT, None, errors.InvalidArgument, "bad"),
    ],
)
def test_failed_calls_become_domain_errors(code, reason, kind, needle):
    details = {
        "NOT_FOUND": "payment pay_x not found",
        "FAILED_PRECONDITION": "worker w does not hold the lease",
        "UNAUTHENTICATED": "API key not recognised",
        "INVALID_ARGUMENT": "bad",
    }.get(code.name, "x")
    err = failed(code, details, reason)
    mapped = error_from_rpc(
        err, peer="ledger", what="recording transaction 0xab", token_variable="PAYMESH_SWEEP_LEDGER_TOKEN"
    )
    assert type(mapped) is kind and needle in mapped.message
    assert mapped.reason == (reason or code.name)


def test_reason_is_read_from_the_status_details_only():
    assert (
        reason_of(failed(grpc.StatusCode.UNAUTHENTICATED, "wrong sweep ledger token", "SERVICE_TOKEN_WRONG"))
        == "SERVICE_TOKEN_WRONG"
    )
    assert reason_of(failed(grpc.StatusCode.UNAUTHENTICATED, "SERVICE_TOKEN_WRONG")) == ""  # text is not a reason
    junk = grpc.aio.Metadata(("grpc-status-details-bin", b"\xff\x00junk"))
    assert reason_of(grpc.aio.AioRpcError(grpc.StatusCode.INTERNAL, grpc.aio.Metadata(), junk, "x")) == ""


def test_every_domain_error_has_its_status_name_as_default_reason():
    from services.common.grpc_server import STATUS_OF

    for cls, code in STATUS_OF.items():
        assert cls("m").reason == code.name
    assert errors.Unauthenticated("m", reason=errors.Reason.API_KEY_UNKNOWN).reason == "API_KEY_UNKNOWN"
