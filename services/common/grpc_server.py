"""grpc.aio server bootstrap shared by every service.

Health service, reflection (so grpcurl needs no proto files), a wrapper around
every application method that checks the decoded request (request_check.py),
turns domain errors into gRPC statuses and counts/logs every call (the shared
"interceptor"), and a graceful stop: health NOT_SERVING first, then in-flight
calls drain with grace.

The wrapper is applied once, when a servicer is registered, rather than as a
grpc.aio ServerInterceptor: an interceptor runs a coroutine and builds new
method handlers on every call, which costs ~15 % of a trivial call.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import signal
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import grpc
import structlog
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from services.common import errors
from services.common.metrics import GRPC_HANDLED, GRPC_LATENCY
from services.common.request_check import check_request

log = structlog.get_logger("grpc")

STATUS_OF: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}


ERROR_DOMAIN = "paymesh"


def error_status(code: grpc.StatusCode, message: str, reason: str) -> grpc.Status:
    """A status whose details carry a google.rpc.ErrorInfo with the machine-readable
    reason (read back by services/common/grpc_client.error_from_rpc)."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN))
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=[detail]))


def status_for(exc: errors.DomainError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return grpc.StatusCode.UNKNOWN


def _split(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").rpartition("/")
    return service, name


class _Undecodable:
    """Stands in for a request whose bytes are not the method's protobuf message."""

    def __init__(self, error: str) -> None:
        self.error = error


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # noqa: BLE001 - answered as INVALID_ARGUMENT by the handler
            return _Undecodable(str(exc) or type(exc).__name__)

    return parse


# The RPC being served ("package.Service/Method"), set by the wrapper below for the
# servicer's code: the ledger's Authenticator reads it to check a merchant key's scope
# against its one table (services/ledger/domain/scopes.py).
_CURRENT_RPC: contextvars.ContextVar[str] = contextvars.ContextVar("paymesh_current_rpc", default="")


def current_rpc() -> str:
    """The full name of the RPC this task is serving ("" outside one)."""
    return _CURRENT_RPC.get()


class ErrorAndMetrics:
    """Map DomainError to its status; hide unexpected errors behind a reference id;
    answer undecodable requests, and requests that break the rules of
    request_check (NUL in a string, Timestamp/Duration out of range, uint64 above
    BIGINT, unknown enum value), with INVALID_ARGUMENT before the servicer (and
    so before credentials are checked) sees them; count and time every call."""

    def wrap(self, handler: grpc.RpcMethodHandler, full_method: str) -> grpc.RpcMethodHandler:
        service, method = _split(full_method)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, service, method),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, service, method),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler

    @staticmethod
    async def _fail(context: grpc.aio.ServicerContext, exc: BaseException, service: str, method: str):
        if isinstance(exc, errors.DomainError):
            code = status_for(exc)
            GRPC_HANDLED.labels(service, method, code.name).inc()
            await context.abort_with_status(error_status(code, bounded_message(exc.message), exc.reason))
        ref = uuid.uuid4().hex[:12]
        log.exception("unhandled error in rpc", rpc=f"{service}/{method}", ref=ref)
        GRPC_HANDLED.labels(service, method, "INTERNAL").inc()
        await context.abort_with_status(
            error_status(
                grpc.StatusCode.INTERNAL,
                f"internal error (reference {ref}); the operator can find it in the logs",
                "INTERNAL",
            )
        )

    def _wrap_unary(self, inner: Callable, service: str, method: str):
        latency = GRPC_LATENCY.labels(service, method)  # bound once, not per call
        handled_ok = GRPC_HANDLED.labels(service, method, "OK")

        rpc = f"{service}/{method}"

        async def call(request: Any, context: grpc.aio.ServicerContext):
            started = time.perf_counter()
            _CURRENT_RPC.set(rpc)
            try:
                _check_decoded(request, method)
                response = await inner(request, context)
            except grpc.aio.AbortError:
                GRPC_HANDLED.labels(service, method, _code_name(context)).inc()
                raise
            except Exception as exc:  # noqa: BLE001 - every error gets a status
                await self._fail(context, exc, service, method)
                raise  # unreachable: abort raises
            finally:
                latency.observe(time.perf_counter() - started)
            handled_ok.inc()
            return response

        return call

    def _wrap_stream(self, inner: Callable, service: str, method: str):
        rpc = f"{service}/{method}"

        async def call(request: Any, context: grpc.aio.ServicerContext):
            started = time.perf_counter()
            _CURRENT_RPC.set(rpc)
            first = True
            try:
                _check_decoded(request, method)
                async for item in inner(request, context):
                    if first:
                        GRPC_LATENCY.labels(service, method).observe(time.perf_counter() - started)
                        first = False
                    yield item
            except grpc.aio.AbortError:
                GRPC_HANDLED.labels(service, method, _code_name(context)).inc()
                raise
            except asyncio.CancelledError:
                GRPC_HANDLED.labels(service, method, "CANCELLED").inc()
                raise
            except Exception as exc:  # noqa: BLE001
                await self._fail(context, exc, service, method)
                raise
            GRPC_HANDLED.labels(service, method, "OK").inc()

        return call


MAX_MESSAGE_BYTES = 1024


def bounded_message(message: str) -> str:
    """At most MAX_MESSAGE_BYTES of UTF-8, cut in the middle: messages quote what
    the caller sent ("merchant <id> not found"), so the start and the end (what
    is wrong) are kept and the quoted value loses its middle. The status message
    travels percent-encoded in the grpc-message trailer: past the client's 8 KiB
    soft / 16 KiB hard metadata limit the caller would get RESOURCE_EXHAUSTED
    "Stream removed" instead of the status; 1 KiB encodes to at most 3 KiB."""
    data = message.encode()
    if len(data) <= MAX_MESSAGE_BYTES:
        return message
    cut = " ... (cut) ... "
    keep = MAX_MESSAGE_BYTES - len(cut)
    head, tail = data[: keep * 2 // 3], data[len(data) - keep // 3 :]
    return head.decode(errors="ignore") + cut + tail.decode(errors="ignore")


def _check_decoded(request: Any, method: str) -> None:
    """Where every request enters, unary and streaming: decodable, and within
    what every field of its type may hold (request_check)."""
    if isinstance(request, _Undecodable):
        raise errors.InvalidArgument(
            f"the request is not a valid protobuf message for {method} ({request.error}); "
            "check the client's generated code matches this server's protos"
        )
    check_request(request)


def _code_name(context: grpc.aio.ServicerContext) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


def bearer_token(context: grpc.aio.ServicerContext) -> str:
    """The token of `authorization: Bearer <token>`; Unauthenticated if absent."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            scheme, _, token = value.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise errors.Unauthenticated("authorization metadata must be 'Bearer <token>'")
            return token.strip()
    raise errors.Unauthenticated("missing credentials: send gRPC metadata 'authorization: Bearer <token>'")


def check_token(context: grpc.aio.ServicerContext, expected: str, what: str) -> None:
    """The caller's bearer token must equal `expected` (compared in constant time).
    An empty `expected` means the operator did not set it: the API refuses everyone."""
    token = bearer_token(context)
    if not expected:
        raise errors.PermissionDenied(
            f"the {what} API is disabled: the operator has not set its token", reason=errors.Reason.API_DISABLED
        )
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise errors.Unauthenticated(f"wrong {what} token", reason=errors.Reason.SERVICE_TOKEN_WRONG)


class _WrappingRegistrar:
    """What generated `add_*Servicer_to_server` functions see instead of the
    server: it wraps each method handler with ErrorAndMetrics, then registers it."""

    def __init__(self, server: grpc.aio.Server, wrapper: ErrorAndMetrics) -> None:
        self._server = server
        self._wrapper = wrapper

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self._server.add_registered_method_handlers(service, self._wrapped(service, handlers))

    def add_generic_rpc_handlers(self, generic_handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(tuple(_WrappedGeneric(g, self._wrapper) for g in generic_handlers))

    def _wrapped(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> dict[str, grpc.RpcMethodHandler]:
        return {name: self._wrapper.wrap(h, f"/{service}/{name}") for name, h in handlers.items()}


class _WrappedGeneric(grpc.GenericRpcHandler):
    """A generic handler whose method handlers are wrapped (once per method)."""

    def __init__(self, inner: grpc.GenericRpcHandler, wrapper: ErrorAndMetrics) -> None:
        self._inner = inner
        self._wrapper = wrapper
        self._cache: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if method not in self._cache:
            handler = self._inner.service(handler_call_details)
            if handler is None:
                return None
            self._cache[method] = self._wrapper.wrap(handler, method)
        return self._cache[method]


class GrpcServer:
    """A grpc.aio server with health, reflection and the ErrorAndMetrics wrapper, started on a port (0 = free)."""

    def __init__(self, *, host: str, port: int, max_message_bytes: int = 4 * 1024 * 1024) -> None:
        self._host = host
        self._requested_port = port
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                ("grpc.so_reuseport", 0),
            ],
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self._service_names: list[str] = []
        self.port: int = 0

    def add(self, register: Callable[[Any, grpc.aio.Server], None], servicer: Any, full_name: str) -> None:
        """Register a servicer, e.g. add(add_FooServicer_to_server, FooServicer(), 'pkg.FooService')."""
        register(servicer, _WrappingRegistrar(self.server, ErrorAndMetrics()))
        self._service_names.append(full_name)

    async def start(self) -> int:
        names = [*self._service_names, reflection.SERVICE_NAME, health.SERVICE_NAME]
        reflection.enable_server_reflection(names, self.server)
        self.port = self.server.add_insecure_port(f"{self._host}:{self._requested_port}")
        if self.port == 0:
            raise RuntimeError(f"could not bind gRPC port {self._host}:{self._requested_port}")
        await self.server.start()
        await self.set_serving(True)
        return self.port

    async def set_serving(self, serving: bool, services: Iterable[str] | None = None) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in services if services is not None else ["", *self._service_names]:
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING, then let in-flight calls finish for up to `grace` seconds."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set `stop` (the service then drains and exits)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
