"""A service's merchant API over plain HTTP with JSON: the Connect protocol
(https://connectrpc.com/docs/protocol), so `curl`, PHP, a browser or any Connect
client calls the same RPCs as gRPC clients do. The ledger serves its merchant
services so (8081 under `make run`), the notifier its NotifierService (8084).

    curl -H 'Content-Type: application/json' -H "Authorization: Bearer $KEY" \\
         -d '{"chainId": "31337", "asset": "ETH", "amount": "1000"}' \\
         http://127.0.0.1:8081/paymesh.ledger.v1.PaymentService/CreatePayment

(PAYMESH_CONNECT_PORT; PAYMESH_CONNECT_ENABLED=false turns it off.)

Every request is forwarded to the service's own gRPC server over loopback, with
the caller's `Authorization` header as metadata, and answered with what that
server answered. So there is one path for every call, whatever the transport:
the same request checks, credentials and scopes, idempotency keys, error codes and
messages (ErrorInfo reason included), metrics and logs. The price is one extra
loopback hop per call (bench_ledger measures it beside gRPC).

- Unary: `POST /<package.Service>/<Method>`, `Content-Type: application/json`,
  the request message as proto JSON (field names in lowerCamelCase or as in the
  proto; 64-bit integers as strings or numbers); the reply is the response message
  in canonical proto JSON (lowerCamelCase, 64-bit integers as strings, enums by
  name), every field present, defaults included.
- Errors: the HTTP status the Connect protocol gives each gRPC code (400, 401, 403,
  404, 409, 429, 499, 500, 501, 503, 504) and `{"code": "not_found", "message": ...,
  "details": [{"type": "google.rpc.ErrorInfo", "value": <base64>, "debug": {...}}]}`.
- Server streams (`WatchPayment`): `Content-Type: application/connect+json`, the
  request as one enveloped message; the reply is enveloped messages, then an
  end-of-stream envelope (flag 0x02) carrying `{"error": ...}` or `{}`.
- Only the services named are served (the merchant-facing ones); anything else
  is 404 with code `unimplemented`, as Connect answers an unknown procedure.
  `Connect-Timeout-Ms` sets the call's deadline (default and ceiling: 60 s for unary).
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from services.common.http_server import HttpServer

MAX_BODY_BYTES = 4 * 1024 * 1024  # the gRPC server's own limit
UNARY_TIMEOUT_SECONDS = 60.0

# https://connectrpc.com/docs/protocol#error-codes
HTTP_STATUS = {
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
_DETAILS_KEY = "grpc-status-details-bin"
_END_STREAM = 0x02


class _Procedure:
    """One RPC: its path, its message classes, whether it streams."""

    def __init__(self, service: str, method) -> None:
        self.path = f"/{service}/{method.name}"
        self.request = message_factory.GetMessageClass(method.input_type)
        self.response = message_factory.GetMessageClass(method.output_type)
        self.server_streaming = method.server_streaming
        self.client_streaming = method.client_streaming


def procedures(services: Sequence[str]) -> dict[str, _Procedure]:
    """Every unary and server-streaming RPC of `services`, by path (the services'
    generated modules must be imported: their descriptors are in the default pool)."""
    pool = descriptor_pool.Default()
    found = {}
    for service in services:
        descriptor = pool.FindServiceByName(service)
        for method in descriptor.methods:
            if not method.client_streaming:
                procedure = _Procedure(service, method)
                found[procedure.path] = procedure
    return found


def _connect_error(code: str, message: str, details: list[dict] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return body


def _error_of(err: grpc.aio.AioRpcError) -> tuple[int, dict[str, Any]]:
    """(HTTP status, Connect error JSON) of a failed gRPC call: the same code, message
    and ErrorInfo the gRPC caller would have seen."""
    code = err.code()
    details = []
    for key, value in err.trailing_metadata() or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            for any_ in status.details:
                info = error_details_pb2.ErrorInfo()
                if any_.Unpack(info):
                    details.append(
                        {
                            "type": "google.rpc.ErrorInfo",
                            "value": base64.b64encode(info.SerializeToString()).decode().rstrip("="),
                            "debug": json_format.MessageToDict(info),
                        }
                    )
    return HTTP_STATUS.get(code, 500), _connect_error(code.name.lower(), err.details() or code.name, details)


def _json(message: Message) -> str:
    """Canonical proto JSON with every field present, defaults included (as webhook
    bodies are): a client never has to know a default to read a reply."""
    return json_format.MessageToJson(message, indent=None, always_print_fields_with_no_presence=True)


def _timeout(request: Request, ceiling: float | None) -> float | None:
    raw = request.headers.get("connect-timeout-ms", "")
    if raw.isdigit() and 0 < len(raw) <= 10:
        seconds = int(raw) / 1000
        return min(seconds, ceiling) if ceiling else seconds
    return ceiling


class ConnectGateway:
    """A Starlette app serving `services` over the Connect protocol, forwarding each
    call to `channel` (the service's own gRPC server)."""

    def __init__(self, channel: grpc.aio.Channel, services: Sequence[str]) -> None:
        self._channel = channel
        self._services = tuple(services)
        self._procedures = procedures(self._services)
        self.app = Starlette(
            routes=[
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/{service}/{method}", self.call, methods=["POST"]),
            ],
        )

    async def healthz(self, request: Request) -> Response:
        return Response("ok", media_type="text/plain")

    async def call(self, request: Request) -> Response:
        path = f"/{request.path_params['service']}/{request.path_params['method']}"
        procedure = self._procedures.get(path)
        if procedure is None:
            return JSONResponse(
                _connect_error(
                    "unimplemented",
                    f"no procedure {path[:200]}; this API serves {', '.join(self._services)}",
                ),
                status_code=404,
            )
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse(
                _connect_error("resource_exhausted", "the request is larger than 4 MiB"), status_code=429
            )
        metadata = self._metadata(request)
        if procedure.server_streaming:
            if content_type != "application/connect+json":
                return self._bad_content_type(content_type, "application/connect+json")
            return await self._stream(procedure, body, metadata, request)
        if content_type != "application/json":
            return self._bad_content_type(content_type, "application/json")
        try:
            message = self._parse(procedure.request, body)
        except ValueError as exc:
            return JSONResponse(_connect_error("invalid_argument", str(exc)), status_code=400)
        call = self._channel.unary_unary(
            procedure.path,
            request_serializer=procedure.request.SerializeToString,
            response_deserializer=procedure.response.FromString,
        )
        try:
            reply = await call(message, metadata=metadata, timeout=_timeout(request, UNARY_TIMEOUT_SECONDS))
        except grpc.aio.AioRpcError as err:
            status, error = _error_of(err)
            return JSONResponse(error, status_code=status)
        return Response(_json(reply), media_type="application/json")

    @staticmethod
    def _metadata(request: Request) -> tuple[tuple[str, str], ...]:
        authorization = request.headers.get("authorization", "")
        return (("authorization", authorization),) if authorization else ()

    @staticmethod
    def _bad_content_type(got: str, wanted: str) -> Response:
        # Connect: an unsupported content type is HTTP 415, without a Connect error body.
        return Response(
            f"content type {got[:80] or '(none)'} is not supported here; send {wanted}",
            status_code=415,
            headers={"Accept-Post": wanted},
        )

    @staticmethod
    def _parse(cls: type[Message], body: bytes) -> Message:
        message = cls()
        if not body.strip():
            return message
        try:
            json_format.Parse(body.decode("utf-8"), message)
        except (json_format.ParseError, UnicodeDecodeError) as exc:
            raise ValueError(f"the request is not a {cls.DESCRIPTOR.full_name} in proto JSON: {exc}") from None
        return message

    async def _stream(self, procedure: _Procedure, body: bytes, metadata, request: Request) -> Response:
        """One enveloped request message in; enveloped replies out, then the end of stream."""
        if len(body) < 5:
            return JSONResponse(_connect_error("invalid_argument", "the request is not an enveloped message"), 400)
        flags, length = struct.unpack(">BI", body[:5])
        if flags & 0x01 or length != len(body) - 5:
            return JSONResponse(
                _connect_error("invalid_argument", "the request envelope is malformed or compressed (not supported)"),
                status_code=400,
            )
        try:
            message = self._parse(procedure.request, body[5:])
        except ValueError as exc:
            return JSONResponse(_connect_error("invalid_argument", str(exc)), status_code=400)
        call = self._channel.unary_stream(
            procedure.path,
            request_serializer=procedure.request.SerializeToString,
            response_deserializer=procedure.response.FromString,
        )
        stream = call(message, metadata=metadata, timeout=_timeout(request, None))

        async def frames() -> AsyncIterator[bytes]:
            end: dict[str, Any] = {}
            try:
                async for reply in stream:
                    data = _json(reply).encode()
                    yield struct.pack(">BI", 0, len(data)) + data
            except grpc.aio.AioRpcError as err:
                _status, error = _error_of(err)
                end = {"error": error}
            finally:
                stream.cancel()
            data = json.dumps(end).encode()
            yield struct.pack(">BI", _END_STREAM, len(data)) + data

        return StreamingResponse(frames(), media_type="application/connect+json")


async def start_gateway(
    services: Sequence[str],
    *,
    grpc_host: str,
    grpc_port: int,
    host: str,
    port: int,
    grace_seconds: float,
    name: str,
) -> tuple[HttpServer, grpc.aio.Channel]:
    """Serve `services` over HTTP/JSON on host:port, forwarded to the gRPC server on
    grpc_port; (the HTTP server, started; the channel to close after it)."""
    own = "127.0.0.1" if grpc_host in ("0.0.0.0", "::", "") else grpc_host
    channel = grpc.aio.insecure_channel(f"{own}:{grpc_port}")
    server = HttpServer(
        ConnectGateway(channel, services).app, host=host, port=port, grace_seconds=grace_seconds, name=name
    )
    await server.start()
    return server, channel
