import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from paymesh.ledger.v1 import payment_pb2 as _payment_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SweepTransactionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SWEEP_TRANSACTION_KIND_UNSPECIFIED: _ClassVar[SweepTransactionKind]
    SWEEP_TRANSACTION_KIND_GAS_TOPUP: _ClassVar[SweepTransactionKind]
    SWEEP_TRANSACTION_KIND_SWEEP: _ClassVar[SweepTransactionKind]

class SweepTransactionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SWEEP_TRANSACTION_STATE_UNSPECIFIED: _ClassVar[SweepTransactionState]
    SWEEP_TRANSACTION_STATE_SIGNED: _ClassVar[SweepTransactionState]
    SWEEP_TRANSACTION_STATE_BROADCAST: _ClassVar[SweepTransactionState]
    SWEEP_TRANSACTION_STATE_MINED: _ClassVar[SweepTransactionState]
    SWEEP_TRANSACTION_STATE_CONFIRMED: _ClassVar[SweepTransactionState]
    SWEEP_TRANSACTION_STATE_FAILED: _ClassVar[SweepTransactionState]
    SWEEP_TRANSACTION_STATE_REPLACED: _ClassVar[SweepTransactionState]
SWEEP_TRANSACTION_KIND_UNSPECIFIED: SweepTransactionKind
SWEEP_TRANSACTION_KIND_GAS_TOPUP: SweepTransactionKind
SWEEP_TRANSACTION_KIND_SWEEP: SweepTransactionKind
SWEEP_TRANSACTION_STATE_UNSPECIFIED: SweepTransactionState
SWEEP_TRANSACTION_STATE_SIGNED: SweepTransactionState
SWEEP_TRANSACTION_STATE_BROADCAST: SweepTransactionState
SWEEP_TRANSACTION_STATE_MINED: SweepTransactionState
SWEEP_TRANSACTION_STATE_CONFIRMED: SweepTransactionState
SWEEP_TRANSACTION_STATE_FAILED: SweepTransactionState
SWEEP_TRANSACTION_STATE_REPLACED: SweepTransactionState

class SweepJob(_message.Message):
    __slots__ = ("payment_id", "merchant_id", "chain_id", "asset", "token_address", "deposit_address", "derivation_path", "amount", "treasury_address", "lease_expires_at", "transactions", "attempts")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DEPOSIT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DERIVATION_PATH_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    TREASURY_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    merchant_id: str
    chain_id: int
    asset: str
    token_address: str
    deposit_address: str
    derivation_path: str
    amount: str
    treasury_address: str
    lease_expires_at: _timestamp_pb2.Timestamp
    transactions: _containers.RepeatedCompositeFieldContainer[SweepTransaction]
    attempts: int
    def __init__(self, payment_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., chain_id: _Optional[int] = ..., asset: _Optional[str] = ..., token_address: _Optional[str] = ..., deposit_address: _Optional[str] = ..., derivation_path: _Optional[str] = ..., amount: _Optional[str] = ..., treasury_address: _Optional[str] = ..., lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., transactions: _Optional[_Iterable[_Union[SweepTransaction, _Mapping]]] = ..., attempts: _Optional[int] = ...) -> None: ...

class SweepTransaction(_message.Message):
    __slots__ = ("payment_id", "chain_id", "kind", "state", "tx_hash", "raw_tx", "nonce", "from_address", "to_address", "amount", "token_address", "gas_limit", "max_fee_per_gas", "max_priority_fee_per_gas", "block_number", "error", "replaces_tx_hash", "created_at", "updated_at", "merchant_id", "fee", "l1_fee_reserve", "asset")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    RAW_TX_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    FROM_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TO_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    GAS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MAX_FEE_PER_GAS_FIELD_NUMBER: _ClassVar[int]
    MAX_PRIORITY_FEE_PER_GAS_FIELD_NUMBER: _ClassVar[int]
    BLOCK_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REPLACES_TX_HASH_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    L1_FEE_RESERVE_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    chain_id: int
    kind: SweepTransactionKind
    state: SweepTransactionState
    tx_hash: str
    raw_tx: bytes
    nonce: int
    from_address: str
    to_address: str
    amount: str
    token_address: str
    gas_limit: int
    max_fee_per_gas: str
    max_priority_fee_per_gas: str
    block_number: int
    error: str
    replaces_tx_hash: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    merchant_id: str
    fee: str
    l1_fee_reserve: str
    asset: str
    def __init__(self, payment_id: _Optional[str] = ..., chain_id: _Optional[int] = ..., kind: _Optional[_Union[SweepTransactionKind, str]] = ..., state: _Optional[_Union[SweepTransactionState, str]] = ..., tx_hash: _Optional[str] = ..., raw_tx: _Optional[bytes] = ..., nonce: _Optional[int] = ..., from_address: _Optional[str] = ..., to_address: _Optional[str] = ..., amount: _Optional[str] = ..., token_address: _Optional[str] = ..., gas_limit: _Optional[int] = ..., max_fee_per_gas: _Optional[str] = ..., max_priority_fee_per_gas: _Optional[str] = ..., block_number: _Optional[int] = ..., error: _Optional[str] = ..., replaces_tx_hash: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., merchant_id: _Optional[str] = ..., fee: _Optional[str] = ..., l1_fee_reserve: _Optional[str] = ..., asset: _Optional[str] = ...) -> None: ...

class ClaimSweepsRequest(_message.Message):
    __slots__ = ("chain_id", "limit", "worker_id", "lease_seconds", "jobs_per_asset", "take_over")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    JOBS_PER_ASSET_FIELD_NUMBER: _ClassVar[int]
    TAKE_OVER_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    limit: int
    worker_id: str
    lease_seconds: int
    jobs_per_asset: bool
    take_over: bool
    def __init__(self, chain_id: _Optional[int] = ..., limit: _Optional[int] = ..., worker_id: _Optional[str] = ..., lease_seconds: _Optional[int] = ..., jobs_per_asset: _Optional[bool] = ..., take_over: _Optional[bool] = ...) -> None: ...

class ClaimSweepsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[SweepJob]
    def __init__(self, jobs: _Optional[_Iterable[_Union[SweepJob, _Mapping]]] = ...) -> None: ...

class RecordSweepTransactionRequest(_message.Message):
    __slots__ = ("worker_id", "transaction")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    transaction: SweepTransaction
    def __init__(self, worker_id: _Optional[str] = ..., transaction: _Optional[_Union[SweepTransaction, _Mapping]] = ...) -> None: ...

class RecordSweepTransactionResponse(_message.Message):
    __slots__ = ("transaction",)
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    transaction: SweepTransaction
    def __init__(self, transaction: _Optional[_Union[SweepTransaction, _Mapping]] = ...) -> None: ...

class UpdateSweepTransactionRequest(_message.Message):
    __slots__ = ("tx_hash", "state", "block_number", "error", "fee")
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    tx_hash: str
    state: SweepTransactionState
    block_number: int
    error: str
    fee: str
    def __init__(self, tx_hash: _Optional[str] = ..., state: _Optional[_Union[SweepTransactionState, str]] = ..., block_number: _Optional[int] = ..., error: _Optional[str] = ..., fee: _Optional[str] = ...) -> None: ...

class UpdateSweepTransactionResponse(_message.Message):
    __slots__ = ("transaction",)
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    transaction: SweepTransaction
    def __init__(self, transaction: _Optional[_Union[SweepTransaction, _Mapping]] = ...) -> None: ...

class CompleteSweepRequest(_message.Message):
    __slots__ = ("payment_id", "tx_hash", "amount", "fee", "chain_id", "asset")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    tx_hash: str
    amount: str
    fee: str
    chain_id: int
    asset: str
    def __init__(self, payment_id: _Optional[str] = ..., tx_hash: _Optional[str] = ..., amount: _Optional[str] = ..., fee: _Optional[str] = ..., chain_id: _Optional[int] = ..., asset: _Optional[str] = ...) -> None: ...

class CompleteSweepResponse(_message.Message):
    __slots__ = ("payment",)
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    payment: _payment_pb2.Payment
    def __init__(self, payment: _Optional[_Union[_payment_pb2.Payment, _Mapping]] = ...) -> None: ...

class ReleaseSweepRequest(_message.Message):
    __slots__ = ("payment_id", "worker_id", "error", "retry_after_seconds", "chain_id", "asset")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    worker_id: str
    error: str
    retry_after_seconds: int
    chain_id: int
    asset: str
    def __init__(self, payment_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., error: _Optional[str] = ..., retry_after_seconds: _Optional[int] = ..., chain_id: _Optional[int] = ..., asset: _Optional[str] = ...) -> None: ...

class ReleaseSweepResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSweepTransactionsRequest(_message.Message):
    __slots__ = ("chain_id", "payment_id", "merchant_id", "states", "page_size", "page_token", "asset")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    payment_id: str
    merchant_id: str
    states: _containers.RepeatedScalarFieldContainer[SweepTransactionState]
    page_size: int
    page_token: str
    asset: str
    def __init__(self, chain_id: _Optional[int] = ..., payment_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., states: _Optional[_Iterable[_Union[SweepTransactionState, str]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., asset: _Optional[str] = ...) -> None: ...

class ListSweepTransactionsResponse(_message.Message):
    __slots__ = ("transactions", "next_page_token")
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    transactions: _containers.RepeatedCompositeFieldContainer[SweepTransaction]
    next_page_token: str
    def __init__(self, transactions: _Optional[_Iterable[_Union[SweepTransaction, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RequestSweepRequest(_message.Message):
    __slots__ = ("payment_id", "merchant_id")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    merchant_id: str
    def __init__(self, payment_id: _Optional[str] = ..., merchant_id: _Optional[str] = ...) -> None: ...

class RequestSweepResponse(_message.Message):
    __slots__ = ("payments_eligible",)
    PAYMENTS_ELIGIBLE_FIELD_NUMBER: _ClassVar[int]
    payments_eligible: int
    def __init__(self, payments_eligible: _Optional[int] = ...) -> None: ...
