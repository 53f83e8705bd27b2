import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from paymesh.ledger.v1 import sweep_ledger_service_pb2 as _sweep_ledger_service_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChainSweepStatus(_message.Message):
    __slots__ = ("chain_id", "leader", "gas_wallet_address", "gas_wallet_balance", "in_flight", "last_error", "last_run_at")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    GAS_WALLET_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    GAS_WALLET_BALANCE_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_AT_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    leader: bool
    gas_wallet_address: str
    gas_wallet_balance: str
    in_flight: int
    last_error: str
    last_run_at: _timestamp_pb2.Timestamp
    def __init__(self, chain_id: _Optional[int] = ..., leader: _Optional[bool] = ..., gas_wallet_address: _Optional[str] = ..., gas_wallet_balance: _Optional[str] = ..., in_flight: _Optional[int] = ..., last_error: _Optional[str] = ..., last_run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ("chain_id",)
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    def __init__(self, chain_id: _Optional[int] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("chains",)
    CHAINS_FIELD_NUMBER: _ClassVar[int]
    chains: _containers.RepeatedCompositeFieldContainer[ChainSweepStatus]
    def __init__(self, chains: _Optional[_Iterable[_Union[ChainSweepStatus, _Mapping]]] = ...) -> None: ...

class ListSweepsRequest(_message.Message):
    __slots__ = ("chain_id", "payment_id", "merchant_id", "page_size", "page_token")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    payment_id: str
    merchant_id: str
    page_size: int
    page_token: str
    def __init__(self, chain_id: _Optional[int] = ..., payment_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSweepsResponse(_message.Message):
    __slots__ = ("transactions", "next_page_token")
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    transactions: _containers.RepeatedCompositeFieldContainer[_sweep_ledger_service_pb2.SweepTransaction]
    next_page_token: str
    def __init__(self, transactions: _Optional[_Iterable[_Union[_sweep_ledger_service_pb2.SweepTransaction, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SweepNowRequest(_message.Message):
    __slots__ = ("payment_id", "merchant_id")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    merchant_id: str
    def __init__(self, payment_id: _Optional[str] = ..., merchant_id: _Optional[str] = ...) -> None: ...

class SweepNowResponse(_message.Message):
    __slots__ = ("payments_queued",)
    PAYMENTS_QUEUED_FIELD_NUMBER: _ClassVar[int]
    payments_queued: int
    def __init__(self, payments_queued: _Optional[int] = ...) -> None: ...

class RetrySweepRequest(_message.Message):
    __slots__ = ("payment_id",)
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    def __init__(self, payment_id: _Optional[str] = ...) -> None: ...

class RetrySweepResponse(_message.Message):
    __slots__ = ("payments_queued",)
    PAYMENTS_QUEUED_FIELD_NUMBER: _ClassVar[int]
    payments_queued: int
    def __init__(self, payments_queued: _Optional[int] = ...) -> None: ...
