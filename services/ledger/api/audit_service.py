"""AuditService: a merchant's audit log, for the merchant (a key with the keys scope)
or the operator (admin token). Converts and calls audit.py."""

from __future__ import annotations

from paymesh.ledger.v1 import audit_service_pb2 as aupb
from paymesh.ledger.v1 import audit_service_pb2_grpc as augrpc

from services.common.grpc_server import bearer_token
from services.ledger.api.convert import audit_entry_to_pb
from services.ledger.audit import AuditLogService
from services.ledger.authentication import Authenticator


class AuditServicer(augrpc.AuditServiceServicer):
    def __init__(self, audit: AuditLogService, auth: Authenticator, admin_token: str) -> None:
        self._audit = audit
        self._auth = auth
        self._admin = admin_token

    async def ListAuditEntries(self, request: aupb.ListAuditEntriesRequest, context) -> aupb.ListAuditEntriesResponse:
        caller = await self._auth.operator_or_merchant(bearer_token(context), self._admin)
        rows, next_token = await self._audit.entries(caller, request.merchant_id, request.page_size, request.page_token)
        return aupb.ListAuditEntriesResponse(entries=[audit_entry_to_pb(r) for r in rows], next_page_token=next_token)
