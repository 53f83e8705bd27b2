"""AuditService: a merchant's audit log and its delayed configuration changes, for the
merchant (a key with the keys scope) or the operator (admin token). Converts and calls
audit.py and config_changes.py."""

from __future__ import annotations

from paymesh.ledger.v1 import audit_service_pb2 as aupb
from paymesh.ledger.v1 import audit_service_pb2_grpc as augrpc

from services.common.errors import InvalidArgument
from services.common.grpc_server import bearer_token
from services.ledger.api.convert import CONFIG_CHANGE_STATE_FROM_PB, audit_entry_to_pb, config_change_to_pb
from services.ledger.audit import AuditLogService
from services.ledger.authentication import Authenticator
from services.ledger.config_changes import ConfigChangesService


class AuditServicer(augrpc.AuditServiceServicer):
    def __init__(
        self, audit: AuditLogService, changes: ConfigChangesService, auth: Authenticator, admin_token: str
    ) -> None:
        self._audit = audit
        self._changes = changes
        self._auth = auth
        self._admin = admin_token

    async def ListAuditEntries(self, request: aupb.ListAuditEntriesRequest, context) -> aupb.ListAuditEntriesResponse:
        caller = await self._auth.operator_or_merchant(bearer_token(context), self._admin)
        rows, next_token = await self._audit.entries(caller, request.merchant_id, request.page_size, request.page_token)
        return aupb.ListAuditEntriesResponse(entries=[audit_entry_to_pb(r) for r in rows], next_page_token=next_token)

    async def ListConfigChanges(self, request, context) -> aupb.ListConfigChangesResponse:
        caller = await self._auth.operator_or_merchant(bearer_token(context), self._admin)
        state = None
        if request.state != aupb.CONFIG_CHANGE_STATE_UNSPECIFIED:
            if request.state not in CONFIG_CHANGE_STATE_FROM_PB:
                raise InvalidArgument(f"state {request.state} is not a ConfigChangeState")
            state = CONFIG_CHANGE_STATE_FROM_PB[request.state]
        rows = await self._changes.list(caller, request.merchant_id, state)
        return aupb.ListConfigChangesResponse(changes=[config_change_to_pb(r) for r in rows])

    async def CancelConfigChange(self, request, context) -> aupb.CancelConfigChangeResponse:
        caller = await self._auth.operator_or_merchant(bearer_token(context), self._admin)
        row = await self._changes.cancel(caller, request.change_id)
        return aupb.CancelConfigChangeResponse(change=config_change_to_pb(row))
