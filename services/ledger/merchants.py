"""Merchant use cases: the operator's (create, read, list, enable/disable, rotate the
API key, set the webhook, xpub and treasuries) and the notifier's read of a
merchant. Inputs are checked here (xpub, derivation path, webhook URL, treasury
address); one xpub belongs to one merchant, or two would share deposit addresses."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.chains import Chains
from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from services.common.page_tokens import PageTokens, page_size
from services.ledger.adapters import repository as repo
from services.ledger.api_keys import issue_primary_key
from services.ledger.authentication import Authenticator
from services.ledger.domain import hd, keys
from services.ledger.domain import policy as policies
from services.ledger.domain.audit import OPERATOR, audit_fields
from services.ledger.domain.policy import Policy, PolicyError
from services.ledger.domain.records import MerchantRecord
from services.ledger.domain.validation import checksum_address, utcnow, validate_webhook_url
from services.ledger.index_allocation import IndexAllocator

# The changes of where a merchant's money goes, which may wait for a delay.
TREASURY_SET = "treasury.set"
XPUB_SET = "xpub.set"


class MerchantsService:
    def __init__(
        self,
        engine: AsyncEngine,
        chains: Chains,
        auth: Authenticator,
        allocator: IndexAllocator,
        tokens: PageTokens,
        *,
        allow_private_webhooks: bool,
        change_delay: timedelta = timedelta(0),
    ) -> None:
        """`change_delay`: how long a change of a treasury or the xpub waits, cancellable
        (PAYMESH_CONFIG_CHANGE_DELAY_SECONDS; 0: applied at once)."""
        self._change_delay = change_delay
        self._engine = engine
        self._allow_private = allow_private_webhooks
        self._tokens = tokens
        self._chains = chains
        self._auth = auth
        self._allocator = allocator

    def _treasury(self, chain_id: int, address: str) -> tuple[int, str]:
        chain = self._chains.get(chain_id)
        if chain is None:
            raise NotFound(f"chain {chain_id} is not configured; configured chains: {self._chains.ids()}")
        address = checksum_address(address, "treasury.address")
        if int(address, 16) == 0:
            raise InvalidArgument("treasury.address is the zero address: funds sent there are burnt")
        if any(t.address == address for t in chain.tokens):
            raise InvalidArgument(
                f"treasury.address is the {next(t.symbol for t in chain.tokens if t.address == address)} token "
                "contract itself: tokens sent there are lost"
            )
        return chain_id, address

    async def create(
        self, *, name: str, xpub: str, derivation_path: str, webhook_url: str, treasuries: list[tuple[int, str]]
    ) -> tuple[MerchantRecord, str, str]:
        name = name.strip()
        if not 1 <= len(name) <= 128:
            raise InvalidArgument("name must be 1 to 128 characters")
        hd.parse_xpub(xpub)
        path = hd.validate_derivation_path(derivation_path)
        url = validate_webhook_url(webhook_url, allow_private=self._allow_private)
        checked = [self._treasury(c, a) for c, a in treasuries]
        api_key = keys.new_api_key()
        secret = keys.new_webhook_secret()
        merchant_id = keys.new_merchant_id()
        async with self._engine.begin() as conn:
            await self._xpub_unused(conn, xpub.strip(), merchant_id)
            await repo.merchants.insert_merchant(
                conn,
                id=merchant_id,
                name=name,
                status="active",
                api_key_hash=keys.hash_api_key(api_key),
                api_key_prefix=keys.key_prefix(api_key),
                webhook_url=url,
                webhook_secret=secret,
                xpub=xpub.strip(),
                derivation_path=path,
            )
            await issue_primary_key(conn, merchant_id, api_key, utcnow())
            for chain_id, address in checked:
                await repo.merchants.set_treasury(conn, merchant_id, chain_id, address)
            await repo.audit.append(
                conn,
                merchant_id=merchant_id,
                actor=OPERATOR,
                action="merchant.created",
                after={
                    "name": name,
                    "xpub": xpub.strip(),
                    "derivation_path": path,
                    "webhook_url": url,
                    "treasuries": {str(c): a for c, a in checked},
                },
            )
            merchant = await repo.merchants.get_merchant(conn, merchant_id)
        assert merchant is not None
        return merchant, api_key, secret

    @staticmethod
    async def _xpub_unused(conn, xpub: str, merchant_id: str) -> None:
        """Two merchants on one xpub would be handed the same deposit addresses."""
        owner = await repo.merchants.merchant_with_xpub(conn, xpub)
        if owner is not None and owner != merchant_id:
            raise AlreadyExists(
                f"this xpub is already used by merchant {owner}; each merchant needs its own account xpub"
            )

    async def get(self, merchant_id: str) -> MerchantRecord:
        if not merchant_id:
            raise InvalidArgument("merchant_id is required")
        async with self._engine.connect() as conn:
            merchant = await repo.merchants.get_merchant(conn, merchant_id)
        if merchant is None:
            raise NotFound(f"merchant {merchant_id} not found")
        return merchant

    async def list(self, size: int, token: str) -> tuple[list[MerchantRecord], str]:
        limit = page_size(size)
        after = self._tokens.read("ListMerchants|operator", token, str)
        async with self._engine.connect() as conn:
            rows = await repo.merchants.list_merchants(conn, after, limit + 1)  # type: ignore[arg-type]
        next_token = ""
        if len(rows) > limit:
            rows = rows[:limit]
            next_token = self._tokens.issue("ListMerchants|operator", rows[-1].created_at, rows[-1].id)
        return rows, next_token

    async def _update(self, merchant_id: str, action: str, **values) -> MerchantRecord:
        """Change the merchant's fields `values` and record `action` in the audit log in
        the same transaction: the fields before and after (a secret only as "changed")."""
        if not merchant_id:
            raise InvalidArgument("merchant_id is required")
        async with self._engine.begin() as conn:
            before = await repo.merchants.get_merchant(conn, merchant_id, for_update=True)
            if before is None or not await repo.merchants.update_merchant(conn, merchant_id, **values):
                raise NotFound(f"merchant {merchant_id} not found")
            merchant = await repo.merchants.get_merchant(conn, merchant_id)
            assert merchant is not None
            await repo.audit.append(
                conn,
                merchant_id=merchant_id,
                actor=OPERATOR,
                action=action,
                before=audit_fields(before, values),
                after=audit_fields(merchant, values, previous=before),
            )
        self._auth.forget()
        return merchant

    async def set_status(self, merchant_id: str, active: bool) -> MerchantRecord:
        return await self._update(
            merchant_id,
            "merchant.enabled" if active else "merchant.disabled",
            status="active" if active else "disabled",
        )

    async def rotate_key(self, merchant_id: str) -> tuple[MerchantRecord, str]:
        """The operator's rotation: every key of the merchant stops working now, and one
        new key with every scope is issued (ApiKeyService rotates with an overlap)."""
        api_key = keys.new_api_key()
        if not merchant_id:
            raise InvalidArgument("merchant_id is required")
        now = utcnow()
        async with self._engine.begin() as conn:
            if not await repo.merchants.update_merchant(
                conn, merchant_id, api_key_hash=keys.hash_api_key(api_key), api_key_prefix=keys.key_prefix(api_key)
            ):
                raise NotFound(f"merchant {merchant_id} not found")
            await repo.api_keys.revoke_all(conn, merchant_id, now)
            await issue_primary_key(conn, merchant_id, api_key, now)
            merchant = await repo.merchants.get_merchant(conn, merchant_id)
            await repo.audit.append(
                conn,
                merchant_id=merchant_id,
                actor=OPERATOR,
                action="api_keys.rotated",
                after={"revoked": "every key", "new_key_prefix": keys.key_prefix(api_key)},
            )
        self._auth.forget()
        assert merchant is not None
        return merchant, api_key

    async def set_webhook(
        self, merchant_id: str, url: str, secret: str, *, keep_secret: bool = False
    ) -> tuple[MerchantRecord, str]:
        url = validate_webhook_url(url, allow_private=self._allow_private)
        if keep_secret and secret:
            raise InvalidArgument("give webhook_secret or keep_secret, not both")
        if secret and not 16 <= len(secret) <= 256:
            raise InvalidArgument("webhook_secret must be 16 to 256 characters (or empty to generate one)")
        if keep_secret:
            merchant = await self._update(merchant_id, "webhook.set", webhook_url=url)
            return merchant, merchant.webhook_secret
        secret = secret or keys.new_webhook_secret()
        merchant = await self._update(merchant_id, "webhook.set", webhook_url=url, webhook_secret=secret)
        return merchant, secret

    async def set_xpub(self, merchant_id: str, xpub: str, derivation_path: str) -> tuple[MerchantRecord, Any]:
        """(the merchant, None) once set; or, with a change delay, (the merchant as it
        is, the pending change), applied by ConfigChangesService when it is due."""
        hd.parse_xpub(xpub)
        xpub, path = xpub.strip(), hd.validate_derivation_path(derivation_path)
        async with self._engine.connect() as conn:
            await self._xpub_unused(conn, xpub, merchant_id)
        return await self._set_or_schedule(merchant_id, XPUB_SET, "", {"xpub": xpub, "derivation_path": path})

    async def set_treasury(self, merchant_id: str, chain_id: int, address: str) -> tuple[MerchantRecord, Any]:
        """As set_xpub, for the treasury of one chain."""
        chain_id, address = self._treasury(chain_id, address)
        return await self._set_or_schedule(merchant_id, TREASURY_SET, str(chain_id), {"address": address})

    async def _set_or_schedule(
        self, merchant_id: str, action: str, target: str, after: dict[str, str]
    ) -> tuple[MerchantRecord, Any]:
        if not merchant_id:
            raise InvalidArgument("merchant_id is required")
        now = utcnow()
        change = None
        async with self._engine.begin() as conn:
            if await repo.merchants.get_merchant(conn, merchant_id, for_update=True) is None:
                raise NotFound(f"merchant {merchant_id} not found")
            if not self._change_delay:
                await self.apply_change(conn, merchant_id, action, target, after, actor=OPERATOR)
            else:
                waiting = await repo.config_changes.pending_for(conn, merchant_id, action, target)
                if waiting is not None:
                    raise FailedPrecondition(
                        f"change {waiting.id} of the same setting waits until {waiting.effective_at.isoformat()}; "
                        "cancel it first (AuditService.CancelConfigChange)"
                    )
                change = await repo.config_changes.insert_change(
                    conn,
                    id="chg_" + keys.new_payment_id().split("_", 1)[1],
                    merchant_id=merchant_id,
                    action=action,
                    target=target,
                    after=after,
                    created_by=OPERATOR,
                    created_at=now,
                    effective_at=now + self._change_delay,
                )
                await repo.audit.append(
                    conn,
                    merchant_id=merchant_id,
                    actor=OPERATOR,
                    action=action.replace(".set", ".scheduled"),
                    target=target,
                    after={**after, "change_id": change.id, "effective_at": change.effective_at.isoformat()},
                )
        return await self.get(merchant_id), change

    async def apply_change(
        self,
        conn,
        merchant_id: str,
        action: str,
        target: str,
        after: dict[str, Any],
        *,
        actor: str,
        note: dict | None = None,
    ) -> None:
        """Set the treasury or xpub in `conn`'s transaction (the merchant's row locked by
        the caller) with its audit entry; `note` is added to the entry's after (the
        delayed change it applies). AlreadyExists: the xpub is another merchant's now."""
        if action == XPUB_SET:
            values = {"xpub": after["xpub"], "derivation_path": after["derivation_path"]}
            await self._xpub_unused(conn, values["xpub"], merchant_id)
            before = await repo.merchants.get_merchant(conn, merchant_id)
            await repo.merchants.update_merchant(conn, merchant_id, **values)
            merchant = await repo.merchants.get_merchant(conn, merchant_id)
            audit_before, audit_after = audit_fields(before, values), audit_fields(merchant, values, previous=before)
            self._allocator.forget(merchant_id)
        elif action == TREASURY_SET:
            chain_id = int(target)
            old = await repo.merchants.treasury_of(conn, merchant_id, chain_id)
            await repo.merchants.set_treasury(conn, merchant_id, chain_id, after["address"])
            audit_before, audit_after = {"address": old}, {"address": after["address"]}
        else:
            raise InvalidArgument(f"unknown configuration change {action!r}")
        await repo.audit.append(
            conn,
            merchant_id=merchant_id,
            actor=actor,
            action=action,
            target=target,
            before=audit_before,
            after={**audit_after, **(note or {})},
        )

    async def set_payment_policy(self, merchant_id: str, policy: Policy) -> MerchantRecord:
        """Replace the merchant's payment policy; payments created afterwards use it
        (within the API key cache's seconds on other replicas), existing ones keep theirs."""
        try:
            policies.check_policy(policy, {c.chain_id: c.confirmations for c in self._chains}, where="policy")
        except PolicyError as err:
            raise InvalidArgument(str(err)) from None
        return await self._update(merchant_id, "payment_policy.set", payment_policy=policy.to_json())
