import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from paymesh.ledger.v1 import payout_pb2 as _payout_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PayoutTransactionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYOUT_TRANSACTION_KIND_UNSPECIFIED: _ClassVar[PayoutTransactionKind]
    PAYOUT_TRANSACTION_KIND_GAS_TOPUP: _ClassVar[PayoutTransactionKind]
    PAYOUT_TRANSACTION_KIND_PAYOUT: _ClassVar[PayoutTransactionKind]

class PayoutTransactionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYOUT_TRANSACTION_STATE_UNSPECIFIED: _ClassVar[PayoutTransactionState]
    PAYOUT_TRANSACTION_STATE_SIGNED: _ClassVar[PayoutTransactionState]
    PAYOUT_TRANSACTION_STATE_BROADCAST: _ClassVar[PayoutTransactionState]
    PAYOUT_TRANSACTION_STATE_MINED: _ClassVar[PayoutTransactionState]
    PAYOUT_TRANSACTION_STATE_CONFIRMED: _ClassVar[PayoutTransactionState]
    PAYOUT_TRANSACTION_STATE_FAILED: _ClassVar[PayoutTransactionState]
    PAYOUT_TRANSACTION_STATE_REPLACED: _ClassVar[PayoutTransactionState]
PAYOUT_TRANSACTION_KIND_UNSPECIFIED: PayoutTransactionKind
PAYOUT_TRANSACTION_KIND_GAS_TOPUP: PayoutTransactionKind
PAYOUT_TRANSACTION_KIND_PAYOUT: PayoutTransactionKind
PAYOUT_TRANSACTION_STATE_UNSPECIFIED: PayoutTransactionState
PAYOUT_TRANSACTION_STATE_SIGNED: PayoutTransactionState
PAYOUT_TRANSACTION_STATE_BROADCAST: PayoutTransactionState
PAYOUT_TRANSACTION_STATE_MINED: PayoutTransactionState
PAYOUT_TRANSACTION_STATE_CONFIRMED: PayoutTransactionState
PAYOUT_TRANSACTION_STATE_FAILED: PayoutTransactionState
PAYOUT_TRANSACTION_STATE_REPLACED: PayoutTransactionState

class PayoutTransaction(_message.Message):
    __slots__ = ("payout_id", "chain_id", "kind", "state", "tx_hash", "raw_tx", "nonce", "from_address", "to_address", "amount", "token_address", "gas_limit", "max_fee_per_gas", "max_priority_fee_per_gas", "block_number", "error", "replaces_tx_hash", "fee", "l1_fee_reserve", "created_at", "updated_at")
    PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
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
    FEE_FIELD_NUMBER: _ClassVar[int]
    L1_FEE_RESERVE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    payout_id: str
    chain_id: int
    kind: PayoutTransactionKind
    state: PayoutTransactionState
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
    fee: str
    l1_fee_reserve: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, payout_id: _Optional[str] = ..., chain_id: _Optional[int] = ..., kind: _Optional[_Union[PayoutTransactionKind, str]] = ..., state: _Optional[_Union[PayoutTransactionState, str]] = ..., tx_hash: _Optional[str] = ..., raw_tx: _Optional[bytes] = ..., nonce: _Optional[int] = ..., from_address: _Optional[str] = ..., to_address: _Optional[str] = ..., amount: _Optional[str] = ..., token_address: _Optional[str] = ..., gas_limit: _Optional[int] = ..., max_fee_per_gas: _Optional[str] = ..., max_priority_fee_per_gas: _Optional[str] = ..., block_number: _Optional[int] = ..., error: _Optional[str] = ..., replaces_tx_hash: _Optional[str] = ..., fee: _Optional[str] = ..., l1_fee_reserve: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PayoutJob(_message.Message):
    __slots__ = ("payout", "source_derivation_path", "transactions", "attempts", "lease_expires_at")
    PAYOUT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_DERIVATION_PATH_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    payout: _payout_pb2.Payout
    source_derivation_path: str
    transactions: _containers.RepeatedCompositeFieldContainer[PayoutTransaction]
    attempts: int
    lease_expires_at: _timestamp_pb2.Timestamp
    def __init__(self, payout: _Optional[_Union[_payout_pb2.Payout, _Mapping]] = ..., source_derivation_path: _Optional[str] = ..., transactions: _Optional[_Iterable[_Union[PayoutTransaction, _Mapping]]] = ..., attempts: _Optional[int] = ..., lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ClaimPayoutsRequest(_message.Message):
    __slots__ = ("chain_id", "limit", "worker_id", "lease_seconds", "take_over")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TAKE_OVER_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    limit: int
    worker_id: str
    lease_seconds: int
    take_over: bool
    def __init__(self, chain_id: _Optional[int] = ..., limit: _Optional[int] = ..., worker_id: _Optional[str] = ..., lease_seconds: _Optional[int] = ..., take_over: _Optional[bool] = ...) -> None: ...

class ClaimPayoutsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[PayoutJob]
    def __init__(self, jobs: _Optional[_Iterable[_Union[PayoutJob, _Mapping]]] = ...) -> None: ...

class RecordPayoutTransactionRequest(_message.Message):
    __slots__ = ("worker_id", "transaction")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    transaction: PayoutTransaction
    def __init__(self, worker_id: _Optional[str] = ..., transaction: _Optional[_Union[PayoutTransaction, _Mapping]] = ...) -> None: ...

class RecordPayoutTransactionResponse(_message.Message):
    __slots__ = ("transaction",)
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    transaction: PayoutTransaction
    def __init__(self, transaction: _Optional[_Union[PayoutTransaction, _Mapping]] = ...) -> None: ...

class UpdatePayoutTransactionRequest(_message.Message):
    __slots__ = ("tx_hash", "state", "block_number", "error", "fee")
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    tx_hash: str
    state: PayoutTransactionState
    block_number: int
    error: str
    fee: str
    def __init__(self, tx_hash: _Optional[str] = ..., state: _Optional[_Union[PayoutTransactionState, str]] = ..., block_number: _Optional[int] = ..., error: _Optional[str] = ..., fee: _Optional[str] = ...) -> None: ...

class UpdatePayoutTransactionResponse(_message.Message):
    __slots__ = ("transaction",)
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    transaction: PayoutTransaction
    def __init__(self, transaction: _Optional[_Union[PayoutTransaction, _Mapping]] = ...) -> None: ...

class CompletePayoutRequest(_message.Message):
    __slots__ = ("payout_id", "tx_hash", "amount_sent", "fee")
    PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_SENT_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    payout_id: str
    tx_hash: str
    amount_sent: str
    fee: str
    def __init__(self, payout_id: _Optional[str] = ..., tx_hash: _Optional[str] = ..., amount_sent: _Optional[str] = ..., fee: _Optional[str] = ...) -> None: ...

class CompletePayoutResponse(_message.Message):
    __slots__ = ("payout",)
    PAYOUT_FIELD_NUMBER: _ClassVar[int]
    payout: _payout_pb2.Payout
    def __init__(self, payout: _Optional[_Union[_payout_pb2.Payout, _Mapping]] = ...) -> None: ...

class FailPayoutRequest(_message.Message):
    __slots__ = ("payout_id", "worker_id", "reason")
    PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    payout_id: str
    worker_id: str
    reason: str
    def __init__(self, payout_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class FailPayoutResponse(_message.Message):
    __slots__ = ("payout",)
    PAYOUT_FIELD_NUMBER: _ClassVar[int]
    payout: _payout_pb2.Payout
    def __init__(self, payout: _Optional[_Union[_payout_pb2.Payout, _Mapping]] = ...) -> None: ...

class ReleasePayoutRequest(_message.Message):
    __slots__ = ("payout_id", "worker_id", "error", "retry_after_seconds")
    PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    payout_id: str
    worker_id: str
    error: str
    retry_after_seconds: int
    def __init__(self, payout_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., error: _Optional[str] = ..., retry_after_seconds: _Optional[int] = ...) -> None: ...

class ReleasePayoutResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
