"""Fakes of the sweeper's seams (services/sweeper/ports.py), for unit tests of its
state machines without anvil, NATS or a ledger.

- `FakeClock`: the settler's clock and sleep; sleeping advances time at once.
- `FakeChain` (ports.ChainGateway): a chain that mines a block every
  `block_time` seconds of the fake clock. Broadcast transactions (real signed
  bytes, decoded) enter a mempool and, with `auto_mine`, are mined in the next
  block, moving their value and fee (and ERC-20 transfers' tokens, with their
  Transfer log); tests can refuse sends, revert, orphan (reorg), drop from the
  mempool, use a sender's nonce elsewhere, short an ERC-20 transfer, stall the
  chain, or run a hook when the chain reaches a height.
- `FakeLedger` (ports.SweepLedger): records transactions as the ledger does
  (a replacement marks the one it replaces REPLACED) and remembers every call;
  its claims lease sweep jobs (SweepJobKey) until they are completed or released.
- `FakeClockChainSweeper`: chain_sweeper.ChainSweeper whose sweeps settle on the
  fake clock, for whole rounds on the fakes.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

import rlp
import structlog
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from pydantic import SecretStr

from services.common.chains import ChainConfig, NativeConfig, TokenConfig
from services.sweeper.adapters.key_store import KeyStore
from services.sweeper.chain_sweeper import ChainSweeper
from services.sweeper.domain.erc20 import TRANSFER_TOPIC
from services.sweeper.domain.fees import FeeQuote
from services.sweeper.domain.model import Job, RecordedTx, SignedTx, SweepJobKey, TxState
from services.sweeper.domain.policy import SweepPolicy
from services.sweeper.domain.send_errors import SendOutcome
from services.sweeper.gas_wallet import GasWallet
from services.sweeper.journal import PaymentJournal
from services.sweeper.payment_sweep import PaymentSweep
from services.sweeper.settings import SweepConfig
from services.sweeper.settler import Settler
from services.sweeper.transfer_strategies import NativeCoinTransfer, TokenTransfer, Transfer

CHAIN_ID = 31337
_TRANSFER_SELECTOR = bytes.fromhex("a9059cbb")


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


@dataclasses.dataclass
class ChainTx:
    """A transaction as the fake chain decoded it from its signed bytes."""

    tx_hash: str
    sender: str
    nonce: int
    to: str
    value: int
    data: bytes
    gas_price: int  # maxFeePerGas (type 2: maxFee == tip, so also the effective price) or gasPrice
    sent_height: int = 0


def decode(raw: bytes) -> ChainTx:
    sender = to_checksum_address(Account.recover_transaction(raw))
    tx_hash = "0x" + keccak(raw).hex()
    if raw[0] < 0x7F:  # typed (EIP-2718) envelope
        fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        to = to_checksum_address(bytes(fields["to"]))
        return ChainTx(
            tx_hash, sender, fields["nonce"], to, fields["value"], bytes(fields["data"]), fields["maxFeePerGas"]
        )
    nonce, gas_price, _gas, to, value, data, *_sig = rlp.decode(raw)
    return ChainTx(
        tx_hash,
        sender,
        int.from_bytes(nonce, "big"),
        to_checksum_address(to),
        int.from_bytes(value, "big"),
        bytes(data),
        int.from_bytes(gas_price, "big"),
    )


class FakeChain:
    """ports.ChainGateway on a simulated chain (see the module docstring)."""

    def __init__(
        self, clock: FakeClock, *, block_time: float = 1.0, start_height: int = 100, auto_mine: bool = True
    ) -> None:
        self.clock = clock
        self.block_time = block_time
        self._start = start_height
        self._frozen_at: int | None = None
        self.auto_mine = auto_mine
        self.base_fee = 10
        self.quote = FeeQuote(30, 30, base_fee=10)
        self.gas_used = 21_000
        self.estimate = 50_000
        self.contracts: set[str] = set()
        self.balances: dict[str, int] = {}
        self.token_balances: dict[tuple[str, str], int] = {}
        self.used_nonces: dict[str, int] = {}  # sender -> latest nonce (mined, ours or not)
        self.mempool: dict[str, ChainTx] = {}
        self.receipts: dict[str, dict] = {}
        self.reverting: set[str] = set()
        self.transfer_shortfall = 0  # an ERC-20 that moves less than asked (fee-on-transfer)
        self.answers: list[tuple[SendOutcome, str]] = []  # the node's next answers to sends, then ACCEPTED
        self.sent: list[str] = []  # hashes, in the order they were broadcast
        self._hooks: dict[int, list[Callable[[], None]]] = {}
        self._seen_height = start_height
        self._forks = 0

    # ------------------------------------------------------------------ the simulation

    @property
    def height(self) -> int:
        if self._frozen_at is not None:
            return self._frozen_at
        return self._start + int(self.clock.now / self.block_time)

    def freeze(self) -> None:
        """No more blocks (a stalled chain)."""
        self._frozen_at = self.height

    def at_height(self, height: int, hook: Callable[[], None]) -> None:
        self._hooks.setdefault(height, []).append(hook)

    def _advance(self) -> None:
        while self._seen_height < self.height:
            self._seen_height += 1
            if self.auto_mine:
                for tx in [t for t in self.mempool.values() if t.sent_height < self._seen_height]:
                    self.include(tx.tx_hash, self._seen_height)
            for hook in self._hooks.pop(self._seen_height, []):
                hook()

    def include(self, tx_hash: str, block: int | None = None) -> dict:
        """Mine a mempool transaction now (in `block`, default the current height)."""
        tx = self.mempool.pop(tx_hash)
        block = self.height if block is None else block
        status = 0 if tx_hash in self.reverting else 1
        fee = self.gas_used * tx.gas_price
        self.balances[tx.sender] = self.balances.get(tx.sender, 0) - fee - (tx.value if status else 0)
        logs = []
        if status:
            self.balances[tx.to] = self.balances.get(tx.to, 0) + tx.value
            if tx.data[:4] == _TRANSFER_SELECTOR:
                recipient = to_checksum_address(tx.data[16:36])
                amount = int.from_bytes(tx.data[36:68], "big") - self.transfer_shortfall
                self.token_balances[(tx.to, tx.sender)] = self.token_balances.get((tx.to, tx.sender), 0) - amount
                self.token_balances[(tx.to, recipient)] = self.token_balances.get((tx.to, recipient), 0) + amount
                logs.append(
                    {
                        "address": tx.to,
                        "topics": [
                            TRANSFER_TOPIC,
                            "0x" + "0" * 24 + tx.sender[2:].lower(),
                            "0x" + "0" * 24 + recipient[2:].lower(),
                        ],
                        "data": hex(amount),
                    }
                )
        self.used_nonces[tx.sender] = max(self.used_nonces.get(tx.sender, 0), tx.nonce + 1)
        receipt = {
            "transactionHash": tx_hash,
            "blockNumber": hex(block),
            "blockHash": f"0x{self._forks:08x}{block:056x}",
            "status": hex(status),
            "gasUsed": hex(self.gas_used),
            "effectiveGasPrice": hex(tx.gas_price),
            "logs": logs,
            "_tx": tx,
        }
        self.receipts[tx_hash] = receipt
        return receipt

    def orphan(self, tx_hash: str) -> None:
        """A reorg takes the transaction's block: it is back in the mempool, its effects undone."""
        self._forks += 1
        receipt = self.receipts.pop(tx_hash)
        tx = receipt["_tx"]
        fee = self.gas_used * tx.gas_price
        self.balances[tx.sender] += fee + (tx.value if receipt["status"] == "0x1" else 0)
        if receipt["status"] == "0x1":
            self.balances[tx.to] -= tx.value
        self.used_nonces[tx.sender] = tx.nonce
        tx.sent_height = self.height
        self.mempool[tx_hash] = tx

    def drop(self, tx_hash: str) -> None:
        """The node forgets a pending transaction (mempool eviction, restart)."""
        self.mempool.pop(tx_hash)

    def use_nonce_elsewhere(self, sender: str, nonce: int) -> None:
        """A transaction the sweeper never saw uses `sender`'s `nonce`."""
        self.used_nonces[sender] = max(self.used_nonces.get(sender, 0), nonce + 1)

    # ------------------------------------------------------------------ ports.ChainGateway

    @property
    def chain_id(self) -> int:
        return CHAIN_ID

    async def served_chain_id(self) -> int:
        return CHAIN_ID

    async def head(self, fresh: bool = False) -> int:
        self._advance()
        return self.height

    async def next_base_fee(self) -> int:
        return self.base_fee

    async def fee_quote(self) -> FeeQuote:
        return self.quote

    async def balance(self, address: str, block: str = "latest") -> int:
        self._advance()
        return self.balances.get(address, 0)

    async def nonce(self, address: str, block: str = "latest") -> int:
        self._advance()
        latest = self.used_nonces.get(address, 0)
        if block == "pending":
            pending = [t.nonce + 1 for t in self.mempool.values() if t.sender == address]
            return max([latest, *pending])
        return latest

    async def is_contract(self, address: str) -> bool:
        return address in self.contracts

    async def token_balance(self, token: str, owner: str) -> int:
        self._advance()
        return self.token_balances.get((token, owner), 0)

    async def estimate_gas(self, sender: str, to: str, data: bytes = b"", value: int = 0) -> int:
        return self.estimate

    async def send(self, raw_tx: bytes) -> tuple[SendOutcome, str]:
        self._advance()
        tx = decode(raw_tx)
        if self.answers:
            outcome, message = self.answers.pop(0)
            if outcome is not SendOutcome.ACCEPTED:
                return outcome, message
        if tx.tx_hash in self.receipts or tx.tx_hash in self.mempool:
            return SendOutcome.ALREADY_KNOWN, "already known"
        if tx.nonce < self.used_nonces.get(tx.sender, 0):
            return SendOutcome.NONCE_TOO_LOW, "nonce too low"
        for other in [t for t in self.mempool.values() if t.sender == tx.sender and t.nonce == tx.nonce]:
            del self.mempool[other.tx_hash]  # a replacement takes the original's place
        tx.sent_height = self.height
        self.mempool[tx.tx_hash] = tx
        self.sent.append(tx.tx_hash)
        return SendOutcome.ACCEPTED, ""

    async def known(self, tx_hash: str) -> bool:
        self._advance()
        return tx_hash in self.mempool or tx_hash in self.receipts

    async def receipt(self, tx_hash: str) -> dict | None:
        self._advance()
        receipt = self.receipts.get(tx_hash)
        return None if receipt is None else {k: v for k, v in receipt.items() if k != "_tx"}


class FakeLedger:
    """ports.SweepLedger in memory. `jobs` are the sweep jobs it leases: each claim returns
    those not yet completed or released, each with every transaction recorded for its
    payment (looser than the ledger, which sends only the job's own: Job keeps its own)."""

    def __init__(self) -> None:
        self.recorded: dict[str, RecordedTx] = {}  # the ledger's copies, by hash
        self.updates: list[tuple[str, TxState, int, str, int | None]] = []
        self.completed: list[tuple[SweepJobKey, str, int, int]] = []  # job, tx hash, amount, fee
        self.released: list[tuple[SweepJobKey, str, int]] = []  # job, reason, retry after
        self.jobs: list[Job] = []
        self.take_overs: list[bool] = []  # each claim's take_over

    def state_of(self, tx_hash: str) -> TxState:
        return self.recorded[tx_hash].state

    async def claim(
        self, chain_id: int, worker_id: str, limit: int, lease_seconds: int, take_over: bool = False
    ) -> list[Job]:
        self.take_overs.append(take_over)
        done = {c[0] for c in self.completed} | {r[0] for r in self.released}
        return [
            dataclasses.replace(
                j,
                transactions=[dataclasses.replace(t) for t in self.recorded.values() if t.payment_id == j.payment_id],
            )
            for j in self.jobs
            if j.key not in done
        ][:limit]

    async def record(self, worker_id: str, job: SweepJobKey, tx: SignedTx) -> RecordedTx:
        now = datetime.now(UTC)
        if tx.replaces_tx_hash:
            self.recorded[tx.replaces_tx_hash].state = TxState.REPLACED
        stored = dataclasses.replace(tx.as_recorded(job), created_at=now, updated_at=now)
        self.recorded[tx.tx_hash] = stored
        return dataclasses.replace(stored)

    async def update(
        self, tx_hash: str, state: TxState, block_number: int = 0, error: str = "", fee: int | None = None
    ) -> RecordedTx:
        self.updates.append((tx_hash, state, block_number, error, fee))
        stored = self.recorded[tx_hash]
        stored.state = state
        stored.block_number = block_number or stored.block_number
        stored.error = error or stored.error
        stored.fee = stored.fee if fee is None else fee
        return dataclasses.replace(stored)

    async def complete(self, job: SweepJobKey, tx_hash: str, amount: int, fee: int) -> str:
        self.completed.append((job, tx_hash, amount, fee))
        self.recorded[tx_hash].state = TxState.CONFIRMED  # as CompleteSweep does
        return "PAYMENT_STATUS_SWEPT"

    async def release(self, job: SweepJobKey, worker_id: str, error: str, retry_after_seconds: int) -> None:
        self.released.append((job, error, retry_after_seconds))

    async def unsettled_transactions(self, chain_id: int, limit: int = 500) -> list[RecordedTx]:
        open_ = [t for t in self.recorded.values() if t.state in (TxState.SIGNED, TxState.BROADCAST)]
        return [dataclasses.replace(t) for t in open_[:limit]]


class FakeKeeper:
    """The part of services/common/lease.LeaseKeeper the chain sweeper reads."""

    def __init__(self, held: bool = True) -> None:
        self.held = held
        self.changed = asyncio.Event()
        self.term = 1 if held else 0

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()


class FakeClockChainSweeper(ChainSweeper):
    """A ChainSweeper whose sweeps' settlers wait on `clock` (the fake chain's time)
    instead of the real one; everything else as the sweeper wires it."""

    def __init__(self, clock: FakeClock, **parts) -> None:
        super().__init__(**parts)
        self._fake_clock = clock

    def _payment_sweep(self, job: Job, log_) -> PaymentSweep:
        sweep = super()._payment_sweep(job, log_)
        sweep._settler._clock = self._fake_clock
        sweep._settler._sleep = self._fake_clock.sleep
        return sweep


# ---------------------------------------------------------------------- wiring on the fakes

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"  # tests/support/ledger.py
DEPOSIT_PATH = "m/44'/60'/5'/0/1"
GAS_WALLET_PATH = "m/44'/60'/0'/0/0"
TREASURY = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
ETHER = 10**18


def sweep_config(**overrides) -> SweepConfig:
    values = dict(
        worker_id="unit-sweeper",
        batch_size=20,
        concurrency=16,
        interval=5.0,
        claim_lease_seconds=300,
        poll=1.0,
        settle_timeout=600.0,
        stuck_after=30.0,
        fee_bump_bps=1250,
        max_replacements=3,
        token_gas_buffer_percent=10,
        dust_retry=6 * 3600,
        config_retry=600,
        gas_wallet_retry=120,
        error_retry=30,
    )
    values.update(overrides)
    return SweepConfig(**values)


_KEYS: KeyStore | None = None


def keys() -> KeyStore:
    global _KEYS
    if _KEYS is None:
        _KEYS = KeyStore(SecretStr(ANVIL_MNEMONIC))
    return _KEYS


def job(
    amount: int = ETHER,
    *,
    token: bool = False,
    transactions: list[RecordedTx] | None = None,
    payment_id: str = "pay_unit",
) -> Job:
    return Job(
        payment_id=payment_id,
        merchant_id="mch_unit",
        chain_id=CHAIN_ID,
        asset="TUSD" if token else "ETH",
        token_address=TOKEN if token else "",
        deposit_address=keys().derive(DEPOSIT_PATH).address,
        derivation_path=DEPOSIT_PATH,
        amount=amount,
        treasury_address=TREASURY,
        transactions=list(transactions or []),
    )


def chain_config(confirmations: int = 3) -> ChainConfig:
    return ChainConfig(
        chain_id=CHAIN_ID,
        name="unit",
        rpc_url="http://127.0.0.1:1",
        confirmations=confirmations,
        block_time_seconds=1.0,
        native=NativeConfig(symbol="ETH", decimals=18),
        tokens=[TokenConfig(symbol="TUSD", address=TOKEN, decimals=6)],
    )


@dataclasses.dataclass
class Harness:
    """One payment's sweep wired on the fakes, as chain_sweeper.ChainSweeper wires it."""

    clock: FakeClock
    chain: FakeChain
    ledger: FakeLedger
    keeper: FakeKeeper
    config: SweepConfig
    job: Job
    journal: PaymentJournal
    settler: Settler
    gas_wallet: GasWallet
    sweep: PaymentSweep

    @property
    def deposit(self) -> str:
        return self.job.deposit_address

    def transfer(self) -> Transfer:
        j = self.job
        return Transfer(
            chain_id=CHAIN_ID,
            key=keys().derive(DEPOSIT_PATH),
            symbol=j.asset,
            token_address=j.token_address,
            amount=j.amount,
            destination=j.treasury_address,
        )

    def native(self) -> NativeCoinTransfer:
        return NativeCoinTransfer(
            self.transfer(), gateway=self.chain, policy=SweepPolicy(), config=self.config, log=LOG
        )

    def token(self) -> TokenTransfer:
        return TokenTransfer(
            self.transfer(),
            gateway=self.chain,
            journal=self.journal,
            settler=self.settler,
            gas_wallet=self.gas_wallet,
            policy=SweepPolicy(),
            config=self.config,
            log=LOG,
        )


LOG = structlog.get_logger("sweeper.unit")


def harness(the_job: Job | None = None, *, confirmations: int = 3, auto_mine: bool = True, **config) -> Harness:
    clock = FakeClock()
    chain = FakeChain(clock, auto_mine=auto_mine)
    ledger = FakeLedger()
    keeper = FakeKeeper()
    cfg = sweep_config(**config)
    the_job = the_job or job()
    for tx in the_job.transactions:
        ledger.recorded[tx.tx_hash] = dataclasses.replace(tx)
    journal = PaymentJournal(
        job=the_job,
        ledger=ledger,
        gateway=chain,
        worker_id=cfg.worker_id,
        may_sign=lambda: keeper.held,
        label="u",
        log=LOG,
    )
    settler = Settler(
        gateway=chain,
        journal=journal,
        config=cfg,
        confirmations=confirmations,
        label="u",
        log=LOG,
        clock=clock,
        sleep=clock.sleep,
    )
    gas_wallet = GasWallet(
        key=keys().derive(GAS_WALLET_PATH), chain_id=CHAIN_ID, gateway=chain, ledger=ledger, config=cfg
    )
    sweep = PaymentSweep(
        the_job,
        chain=chain_config(confirmations),
        gateway=chain,
        ledger=ledger,
        keys=keys(),
        gas_wallet=gas_wallet,
        policy=SweepPolicy(),
        config=cfg,
        journal=journal,
        settler=settler,
        log=LOG,
    )
    return Harness(clock, chain, ledger, keeper, cfg, the_job, journal, settler, gas_wallet, sweep)
