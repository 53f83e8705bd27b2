"""Calling the merchant API the two ways a merchant backend can: gRPC, and HTTP/JSON
(the Connect protocol, plain httpx), each giving (code, message, reason, reply JSON)
so one table of cases can run over both transports and compare."""

from __future__ import annotations

import base64
import json

import grpc
import httpx
from google.protobuf import json_format
from google.rpc import error_details_pb2

from services.common.connect_gateway import HTTP_STATUS, procedures
from services.common.grpc_client import reason_of
from services.ledger.app import MERCHANT_SERVICES
from services.notifier.app import SERVICE_NAME as NOTIFIER_SERVICE

PROCEDURES = procedures((*MERCHANT_SERVICES, NOTIFIER_SERVICE))


def http_url(app, path: str) -> str:
    """`path` on the HTTP/JSON door of `app` (a LedgerApp or NotifierApp)."""
    return f"http://127.0.0.1:{app.http_port}{path}"


async def over_grpc(channel, path: str, body: dict, auth) -> tuple[str, str, str, dict]:
    """(code name, message, reason, reply as proto JSON) of a gRPC call."""
    procedure = PROCEDURES[path]
    request = json_format.ParseDict(body, procedure.request())
    call = channel.unary_unary(
        path,
        request_serializer=procedure.request.SerializeToString,
        response_deserializer=procedure.response.FromString,
    )
    try:
        reply = await call(request, metadata=auth)
    except grpc.aio.AioRpcError as err:
        return err.code().name.lower(), err.details(), reason_of(err) or err.code().name, {}
    return "ok", "", "", json_format.MessageToDict(reply)


async def over_http(ledger, path: str, body: dict, auth) -> tuple[str, str, str, dict]:
    """The same, as a Connect unary call with plain httpx: POST JSON."""
    headers = {"Content-Type": "application/json", **{k.title(): v for k, v in auth}}
    async with httpx.AsyncClient() as client:
        reply = await client.post(http_url(ledger, path), content=json.dumps(body), headers=headers)
    data = reply.json()
    if reply.status_code == 200:
        return "ok", "", "", data
    code = data["code"]
    assert reply.status_code == HTTP_STATUS[grpc.StatusCode[code.upper()]], (reply.status_code, data)
    info = error_details_pb2.ErrorInfo.FromString(base64.b64decode(data["details"][0]["value"] + "=="))
    return code, data["message"], info.reason, {}
