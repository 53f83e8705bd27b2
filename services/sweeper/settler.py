"""Driving a group of same-nonce transactions to an end.

A group is an original and its fee-bumped replacements (domain/recovery.py);
at most one of them can ever be mined. `Settler.settle` drives it until one
member is mined, succeeded and is deep enough (`Mined`), or until none can be
(`Failed`: reverted, the nonce used by a transaction the sweeper did not record,
refused for insufficient funds, a token transfer that moved another amount).
On the way it rebroadcasts the recorded bytes the node lost, replaces a member
stuck longer than PAYMESH_SWEEPER_STUCK_AFTER_SECONDS (or below the base fee)
while this replica may sign, and follows a mined member that leaves the chain
(`Reorged`) back to settling. Every state reached is written to the ledger
through the payment's journal before the settler acts on it.

Bounded by PAYMESH_SWEEPER_SETTLE_TIMEOUT_SECONDS: then ReleasePayment (error
retry); the transactions stay recorded and a later claim resumes exactly here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

from services.common.confirmations import is_confirmed
from services.sweeper import metrics
from services.sweeper.domain.fees import FeeQuote
from services.sweeper.domain.model import RecordedTx, SignedTx, TxState
from services.sweeper.domain.receipts import block_number, fee_paid, succeeded
from services.sweeper.domain.recovery import TxGroup
from services.sweeper.domain.replacement import replacement_fee, should_replace
from services.sweeper.domain.send_errors import SendOutcome
from services.sweeper.domain.settlement import Failed, Mined, Reorged, Settlement
from services.sweeper.journal import PaymentJournal
from services.sweeper.ports import ChainGateway
from services.sweeper.releases import ReleasePayment
from services.sweeper.settings import SweepConfig

_SENT = (SendOutcome.ACCEPTED, SendOutcome.ALREADY_KNOWN)


class TxAuthor(Protocol):
    """Whoever signed a group's transactions (a transfer strategy, the gas wallet):
    it signs a stuck one again at higher fees and says whether a mined one did
    what it was for."""

    async def replacement(self, stuck: RecordedTx, fee: FeeQuote) -> SignedTx | None:
        """`stuck` again at `fee` (same nonce and funds), signed; None: it cannot be bumped further."""
        ...

    def mined_problem(self, tx: RecordedTx, receipt: dict) -> str:
        """Why a mined, successful `tx` still did not do its job ("" when it did)."""
        ...


class Settler:
    """Settles one payment's groups (one per payment sweep)."""

    def __init__(
        self,
        *,
        gateway: ChainGateway,
        journal: PaymentJournal,
        config: SweepConfig,
        confirmations: int,
        label: str,
        log,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._gateway = gateway
        self._journal = journal
        self._cfg = config
        self._confirmations = confirmations
        self._label = label
        self._log = log
        self._clock = clock
        self._sleep = sleep

    async def settle(self, group: TxGroup, author: TxAuthor, depth: int | None = None) -> Settlement:
        """Drive `group` until one member is mined and `depth` deep (default: the
        chain's confirmations), or until none can be. ReleasePayment at the settle
        timeout or when the node refuses the latest member outright."""
        depth = depth or self._confirmations
        deadline = self._clock() + self._cfg.settle_timeout
        sent_at = self._clock() - _age(group.latest)
        checked_known_at = 0.0
        nonce_checked_at = -1e9
        first = True
        while True:
            if not first:
                if self._clock() > deadline:
                    raise ReleasePayment(
                        f"transaction {group.latest.tx_hash} (nonce {group.nonce}) is still not confirmed after "
                        f"{self._cfg.settle_timeout:.0f} s; it stays recorded and the sweep resumes later",
                        self._cfg.error_retry,
                    )
                await self._sleep(self._cfg.poll)
            first = False
            found = await self.check_mined(group, author, deadline, depth)
            if isinstance(found, Mined | Failed):
                return found
            if isinstance(found, Reorged):
                continue
            now = self._clock()
            nonce_due = group.latest.state is TxState.SIGNED or now - nonce_checked_at >= max(2.0, 4 * self._cfg.poll)
            if nonce_due:
                nonce_checked_at = now
            if nonce_due and await self._gateway.nonce(group.from_address, "latest") > group.nonce:
                # Mined between the receipt checks and now? Look once more before giving up on the group.
                found = await self.check_mined(group, author, deadline, depth)
                if isinstance(found, Mined | Failed):
                    return found
                if isinstance(found, Reorged):
                    continue
                reason = (
                    f"nonce too low: nonce {group.nonce} of {group.from_address} was used by a transaction "
                    "the sweeper did not record"
                )
                for member in group.members:
                    if member.is_open or member.state is TxState.REPLACED:
                        await self._journal.update(member, TxState.FAILED, error=reason)
                return Failed(reason)
            latest = group.latest
            now = self._clock()
            if latest.state is TxState.SIGNED or now - checked_known_at > max(5.0, self._cfg.stuck_after / 4):
                checked_known_at = now
                was_signed = latest.state is TxState.SIGNED
                if was_signed or not await self._gateway.known(latest.tx_hash):
                    if not was_signed:
                        metrics.REBROADCASTS.labels(self._label).inc()
                        self._log.info("rebroadcasting", tx_hash=latest.tx_hash, nonce=latest.nonce)
                    outcome, message = await self._journal.broadcast(latest)
                    if outcome in _SENT:
                        if was_signed:
                            sent_at = self._clock()
                    elif outcome is SendOutcome.NONCE_TOO_LOW:
                        continue  # mined meanwhile, or used elsewhere: the checks above sort it out
                    elif outcome is SendOutcome.UNDERPRICED:
                        sent_at = -1e9  # below the base fee now: replace at once
                    elif outcome is SendOutcome.INSUFFICIENT_FUNDS:
                        reason = f"insufficient funds: {message}"
                        previous = next((m for m in reversed(group.members[:-1]) if m.state is TxState.REPLACED), None)
                        await self._journal.update(latest, TxState.FAILED, error=reason)
                        if previous is None:
                            return Failed(reason)
                        await self._journal.update(previous, TxState.BROADCAST)  # the original is still live
                        continue
                    else:
                        raise ReleasePayment(
                            f"the node refused transaction {latest.tx_hash}: {message}; it stays recorded and is "
                            "sent again later",
                            self._cfg.error_retry,
                        )
            if await self._maybe_replace(group, author, latest, self._clock() - sent_at):
                sent_at = self._clock()

    async def check_mined(
        self, group: TxGroup, author: TxAuthor, deadline: float, depth: int
    ) -> Mined | Failed | Reorged | None:
        """One look at the group's receipts: the end when a member is mined (deep
        enough, or failed), Reorged when one was mined but left the chain, None when
        no member has a receipt."""
        for tx in group.candidates():
            receipt = await self._gateway.receipt(tx.tx_hash)
            if receipt is not None:
                return await self._until_deep(group, author, tx, receipt, deadline, depth)
        return None

    async def _maybe_replace(self, group: TxGroup, author: TxAuthor, latest: RecordedTx, age: float) -> bool:
        base = await self._gateway.next_base_fee()
        if not should_replace(
            current_fee=latest.max_fee_per_gas,
            next_base_fee=base,
            age_seconds=age,
            stuck_after_seconds=self._cfg.stuck_after,
            replacements=group.replacements,
            max_replacements=self._cfg.max_replacements,
        ):
            return False
        if not self._journal.may_sign():
            return False
        market = await self._gateway.fee_quote()
        signed = await author.replacement(latest, replacement_fee(latest, market, self._cfg.fee_bump_bps))
        if signed is None:
            return False
        self._log.warning(
            "replacing a stuck transaction",
            old=latest.tx_hash,
            new=signed.tx_hash,
            nonce=signed.nonce,
            old_fee=str(latest.max_fee_per_gas),
            new_fee=str(signed.max_fee_per_gas),
            waited_seconds=round(age, 1),
        )
        recorded = await self._journal.record(signed)  # the ledger marks `latest` REPLACED
        latest.state = TxState.REPLACED
        group.members.append(recorded)
        metrics.REPLACEMENTS.labels(self._label).inc()
        outcome, message = await self._journal.broadcast(recorded)
        if outcome not in (*_SENT, SendOutcome.NONCE_TOO_LOW):
            self._log.warning("replacement refused; keeping the original", error=message[:300])
            await self._journal.update(recorded, TxState.FAILED, error=f"replacement refused: {message}")
            await self._journal.update(latest, TxState.BROADCAST)
        return True

    async def _until_deep(
        self, group: TxGroup, author: TxAuthor, tx: RecordedTx, receipt: dict, deadline: float, depth: int
    ) -> Mined | Failed | Reorged:
        """tx is in a block: record it, wait for `depth` confirmations (its block is
        the first, services/common/confirmations.py). Reorged when it left the chain
        meanwhile: the caller keeps settling the group."""
        block = block_number(receipt)
        block_hash = receipt.get("blockHash")
        fee = fee_paid(receipt, tx.max_fee_per_gas)
        if tx.state is not TxState.MINED or tx.block_number != block or tx.fee != fee:
            await self._journal.update(tx, TxState.MINED, block, fee=fee)
        for other in group.members:
            if other is not tx and other.state in (TxState.SIGNED, TxState.BROADCAST):
                await self._journal.update(
                    other, TxState.FAILED, error=f"another transaction with the same nonce ({tx.tx_hash}) was mined"
                )
        if not succeeded(receipt):
            reason = f"transaction {tx.tx_hash} reverted in block {block}"
            await self._journal.update(tx, TxState.FAILED, block, error=reason)
            return Failed(reason, receipt)
        problem = author.mined_problem(tx, receipt)
        if problem:
            await self._journal.update(tx, TxState.FAILED, block, error=problem)
            return Failed(problem, receipt)
        while True:
            head = await self._gateway.head()
            if is_confirmed(head, block, depth):
                again = await self._gateway.receipt(tx.tx_hash)
                if again is None or again.get("blockHash") != block_hash:
                    self._log.warning("transaction left its block (reorg); settling again", tx_hash=tx.tx_hash)
                    await self._journal.update(tx, TxState.BROADCAST)
                    return Reorged(tx)
                return Mined(tx, again)
            if self._clock() > deadline:
                raise ReleasePayment(
                    f"transaction {tx.tx_hash} is mined in block {block} but has fewer than {depth} "
                    "confirmations yet (its block is the first); the sweep resumes later",
                    self._cfg.error_retry,
                )
            await self._sleep(self._cfg.poll)


def _age(tx: RecordedTx) -> float:
    """Seconds since the ledger last wrote `tx` (how long it has been pending, at least)."""
    stamp = tx.updated_at or tx.created_at
    if stamp is None:
        return 0.0
    return max(0.0, (datetime.now(UTC) - stamp).total_seconds())
