"""Scenario 4: reorgs of depth 1, 2 and 3 on anvil while payments are in flight.
The orphaned credit is reverted, the canonical one applied, and nothing is swept
before it is confirmed (the chain's depth here is 4, deeper than any reorg)."""

from __future__ import annotations

import secrets
from pathlib import Path

import grpc
import pytest
from eth_utils import to_checksum_address
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import sweep_ledger_service_pb2 as ipb
from paymesh.ledger.v1 import sweep_ledger_service_pb2_grpc as igrpc

from tests.e2e.conftest import local_mesh
from tests.support.ledger import SWEEP_LEDGER_TOKEN, bearer, create_merchant, eventually, fresh_xpub

pytestmark = pytest.mark.asyncio(loop_scope="session")
PAYER = 7  # anvil dev account used only here
PAYER_ADDRESS = "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955"


@pytest.fixture(scope="module")
def mesh(stack_dir: Path):
    with local_mesh(stack_dir, block_time="1", confirmations=4) as local:
        yield local


@pytest.mark.parametrize("depth", [1, 2, 3])
async def test_reorg_during_flow(mesh, chain, depth):
    treasury = to_checksum_address("0x" + secrets.token_hex(20))
    async with grpc.aio.insecure_channel(mesh.addr("ledger")) as channel:
        xpub, account = fresh_xpub()
        merchant = await create_merchant(
            channel,
            xpub,
            derivation_path=f"m/44'/60'/{account}'",
            treasuries=[apb.Treasury(chain_id=31337, address=treasury)],
        )
        payment = await merchant.create(asset="ETH", amount="1000000000000000")
        await chain.rpc("evm_setIntervalMining", 0)  # hold the chain still
        try:
            nonce = int(await chain.rpc("eth_getTransactionCount", PAYER_ADDRESS, "pending"), 16)
            raw, orphan_tx = await chain.signed(PAYER, to=payment.deposit_address, value=10**15, nonce=nonce)
            await chain.send_raw(raw)
            await chain.mine(1)

            async def detected():
                p = await merchant.get(payment.payment_id)
                return p if p.status == pb.PAYMENT_STATUS_DETECTED else None

            seen = await eventually(detected, timeout=20)
            orphan_block = seen.transfers[0].block_hash
            if depth > 1:
                await chain.mine(depth - 1)
            # The last `depth` blocks are replaced: the payer's nonce now pays a
            # different amount in a new block, so the first transfer can never come back.
            raw2, canonical_tx = await chain.signed(
                PAYER, to=payment.deposit_address, value=10**15 + depth, data="0x01", gas=30_000, nonce=nonce
            )
            await chain.reorg(depth, [(raw2, 0)])
            await chain.mine(1)
        finally:
            await chain.rpc("evm_setIntervalMining", 1)

        async def swept():
            p = await merchant.get(payment.payment_id)
            return p if p.status == pb.PAYMENT_STATUS_SWEPT else None

        final = await eventually(swept, timeout=60)
        states = {t.tx_hash: t.state for t in final.transfers}
        assert states[orphan_tx] == pb.TRANSFER_STATE_ORPHANED
        assert states[canonical_tx] == pb.TRANSFER_STATE_CONFIRMED
        assert orphan_block not in {t.block_hash for t in final.transfers if t.state != pb.TRANSFER_STATE_ORPHANED}
        assert final.amount_confirmed == str(10**15 + depth)
        assert int(final.amount_swept) + int(final.sweep_fee) == 10**15 + depth and final.sweep_dust == "0"

        # The sweep was signed only after the canonical transfer was confirmed:
        # exactly one sweep, for the canonical amount, and the address is empty.
        internal = igrpc.SweepLedgerServiceStub(channel)
        sweeps = (
            await internal.ListSweepTransactions(
                ipb.ListSweepTransactionsRequest(payment_id=payment.payment_id), metadata=bearer(SWEEP_LEDGER_TOKEN)
            )
        ).transactions
        confirmed = [
            s
            for s in sweeps
            if s.state == ipb.SWEEP_TRANSACTION_STATE_CONFIRMED and s.kind == ipb.SWEEP_TRANSACTION_KIND_SWEEP
        ]
        assert len(confirmed) == 1
        canonical_block = next(t.block_number for t in final.transfers if t.tx_hash == canonical_tx)
        first_signed = min(s.created_at.ToDatetime() for s in sweeps)
        block = await chain.block(canonical_block + 3)  # the block that gave it 4 confirmations
        assert first_signed.timestamp() >= int(block["timestamp"], 16) - 1
        assert int(await chain.rpc("eth_getBalance", payment.deposit_address, "latest"), 16) == 0
