"""Calling another paymesh service over gRPC: one helper for every caller.

`ServiceClient` holds a stub, the caller's bearer token and a deadline, and turns
every failed call into the shared domain errors (services/common/errors.py) the
same way everywhere:

- the status code picks the class (the inverse of grpc_server.STATUS_OF), and the
  `google.rpc.ErrorInfo` reason the server put in the status details is kept on
  the error (`err.reason`), so callers compare reasons, never message text;
- a refused service token (UNAUTHENTICATED / PERMISSION_DENIED with reason
  SERVICE_TOKEN_WRONG or API_DISABLED) becomes PermissionDenied naming the
  variable to check on both sides;
- UNAVAILABLE, DEADLINE_EXCEEDED and anything the server did not mean
  (INTERNAL, UNKNOWN, ...) become Unavailable: retrying later may succeed.

Messages say which peer failed while doing what, e.g. "ledger (claiming sweeps):
payment pay_... not found".

`channel(target)` opens the channel to a peer that may run as several replicas:
round-robin over every address the target resolves to (`ipv4:a:p,b:p`, or a
Kubernetes headless Service's `dns:///ledger-headless:50051`), so the calls spread
over the replicas and a dead one is skipped until it answers again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from services.common import errors
from services.common.grpc_server import ERROR_DOMAIN, STATUS_OF


def channel(target: str, *, max_receive_bytes: int = 0) -> grpc.aio.Channel:
    """An insecure channel to `target`, balanced round-robin over its addresses."""
    options: list[tuple[str, Any]] = [("grpc.lb_policy_name", "round_robin")]
    if max_receive_bytes:
        options.append(("grpc.max_receive_message_length", max_receive_bytes))
    return grpc.aio.insecure_channel(target, options=options)


_CLASS_OF: dict[grpc.StatusCode, type[errors.DomainError]] = {code: cls for cls, code in STATUS_OF.items()}
_DETAILS_KEY = "grpc-status-details-bin"


def reason_of(err: grpc.aio.AioRpcError) -> str:
    """The ErrorInfo reason of a failed call ("" when the server sent none)."""
    for key, value in err.trailing_metadata() or ():
        if key != _DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except Exception:  # noqa: BLE001 - a peer's malformed details just carry no reason
            return ""
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info) and info.domain == ERROR_DOMAIN:
                return info.reason
    return ""


def error_from_rpc(err: grpc.aio.AioRpcError, *, peer: str, what: str, token_variable: str = "") -> errors.DomainError:
    """The domain error for a failed call to `peer` made while doing `what`."""
    code = err.code()
    reason = reason_of(err) or code.name
    detail = err.details() or code.name
    if reason in (errors.Reason.SERVICE_TOKEN_WRONG, errors.Reason.API_DISABLED):
        hint = f"; check {token_variable} on both" if token_variable else ""
        return errors.PermissionDenied(f"{peer} refused our token while {what} ({detail}){hint}", reason=reason)
    cls = _CLASS_OF.get(code)
    if cls is None or cls is errors.Unavailable:
        return errors.Unavailable(f"{peer} is unavailable ({code.name}) while {what}: {detail}", reason=reason)
    error = cls(f"{peer} ({what}): {detail}", reason=reason)
    error.peer_message = detail  # the peer's own words, for a page that shows them to a person
    return error


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


class ServiceClient:
    """Calls one service of a peer with a token and a deadline; failures become domain errors."""

    def __init__(self, stub: Any, *, peer: str, token: str, timeout: float, token_variable: str = "") -> None:
        self.stub = stub
        self.peer = peer
        self._metadata = bearer(token)
        self._timeout = timeout
        self._token_variable = token_variable

    def error(self, err: grpc.aio.AioRpcError, what: str) -> errors.DomainError:
        return error_from_rpc(err, peer=self.peer, what=what, token_variable=self._token_variable)

    async def call(self, what: str, method: str, request: Any, *, timeout: float | None = None) -> Any:
        """stub.<method>(request) with the token and the deadline."""
        try:
            return await getattr(self.stub, method)(
                request, metadata=self._metadata, timeout=self._timeout if timeout is None else timeout
            )
        except grpc.aio.AioRpcError as err:
            raise self.error(err, what) from None

    async def stream(self, what: str, method: str, request: Any) -> AsyncIterator[Any]:
        """The messages of a server stream (no deadline: streams live as long as the caller wants)."""
        call = getattr(self.stub, method)(request, metadata=self._metadata)
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as err:
            raise self.error(err, what) from None
        finally:
            call.cancel()
