from paymesh.ledger.v1 import payment_pb2 as _payment_pb2
from paymesh.ledger.v1 import payout_pb2 as _payout_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RefundAmount(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REFUND_AMOUNT_UNSPECIFIED: _ClassVar[RefundAmount]
    REFUND_AMOUNT_ALL_RECEIVED: _ClassVar[RefundAmount]
    REFUND_AMOUNT_EXCESS: _ClassVar[RefundAmount]
REFUND_AMOUNT_UNSPECIFIED: RefundAmount
REFUND_AMOUNT_ALL_RECEIVED: RefundAmount
REFUND_AMOUNT_EXCESS: RefundAmount

class CreateRefundRequest(_message.Message):
    __slots__ = ("payment_id", "amount", "mode", "chain_id", "asset", "destination", "idempotency_key", "reason", "value", "claim_link")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CLAIM_LINK_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    amount: str
    mode: RefundAmount
    chain_id: int
    asset: str
    destination: str
    idempotency_key: str
    reason: str
    value: _payment_pb2.Money
    claim_link: bool
    def __init__(self, payment_id: _Optional[str] = ..., amount: _Optional[str] = ..., mode: _Optional[_Union[RefundAmount, str]] = ..., chain_id: _Optional[int] = ..., asset: _Optional[str] = ..., destination: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., reason: _Optional[str] = ..., value: _Optional[_Union[_payment_pb2.Money, _Mapping]] = ..., claim_link: _Optional[bool] = ...) -> None: ...

class CreateRefundResponse(_message.Message):
    __slots__ = ("refund", "created")
    REFUND_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    refund: _payout_pb2.Payout
    created: bool
    def __init__(self, refund: _Optional[_Union[_payout_pb2.Payout, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetRefundRequest(_message.Message):
    __slots__ = ("refund_id",)
    REFUND_ID_FIELD_NUMBER: _ClassVar[int]
    refund_id: str
    def __init__(self, refund_id: _Optional[str] = ...) -> None: ...

class GetRefundResponse(_message.Message):
    __slots__ = ("refund",)
    REFUND_FIELD_NUMBER: _ClassVar[int]
    refund: _payout_pb2.Payout
    def __init__(self, refund: _Optional[_Union[_payout_pb2.Payout, _Mapping]] = ...) -> None: ...

class ListRefundsRequest(_message.Message):
    __slots__ = ("payment_id", "page_size", "page_token")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    page_size: int
    page_token: str
    def __init__(self, payment_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRefundsResponse(_message.Message):
    __slots__ = ("refunds", "next_page_token")
    REFUNDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    refunds: _containers.RepeatedCompositeFieldContainer[_payout_pb2.Payout]
    next_page_token: str
    def __init__(self, refunds: _Optional[_Iterable[_Union[_payout_pb2.Payout, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreatePayoutRequest(_message.Message):
    __slots__ = ("chain_id", "asset", "amount", "destination", "idempotency_key", "memo")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    asset: str
    amount: str
    destination: str
    idempotency_key: str
    memo: str
    def __init__(self, chain_id: _Optional[int] = ..., asset: _Optional[str] = ..., amount: _Optional[str] = ..., destination: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., memo: _Optional[str] = ...) -> None: ...

class CreatePayoutResponse(_message.Message):
    __slots__ = ("payout", "created")
    PAYOUT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    payout: _payout_pb2.Payout
    created: bool
    def __init__(self, payout: _Optional[_Union[_payout_pb2.Payout, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class PayoutItem(_message.Message):
    __slots__ = ("amount", "destination", "memo")
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    amount: str
    destination: str
    memo: str
    def __init__(self, amount: _Optional[str] = ..., destination: _Optional[str] = ..., memo: _Optional[str] = ...) -> None: ...

class CreatePayoutBatchRequest(_message.Message):
    __slots__ = ("chain_id", "asset", "items", "idempotency_key")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    asset: str
    items: _containers.RepeatedCompositeFieldContainer[PayoutItem]
    idempotency_key: str
    def __init__(self, chain_id: _Optional[int] = ..., asset: _Optional[str] = ..., items: _Optional[_Iterable[_Union[PayoutItem, _Mapping]]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class CreatePayoutBatchResponse(_message.Message):
    __slots__ = ("batch_id", "payouts", "created")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    PAYOUTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    payouts: _containers.RepeatedCompositeFieldContainer[_payout_pb2.Payout]
    created: bool
    def __init__(self, batch_id: _Optional[str] = ..., payouts: _Optional[_Iterable[_Union[_payout_pb2.Payout, _Mapping]]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetPayoutRequest(_message.Message):
    __slots__ = ("payout_id",)
    PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    payout_id: str
    def __init__(self, payout_id: _Optional[str] = ...) -> None: ...

class GetPayoutResponse(_message.Message):
    __slots__ = ("payout",)
    PAYOUT_FIELD_NUMBER: _ClassVar[int]
    payout: _payout_pb2.Payout
    def __init__(self, payout: _Optional[_Union[_payout_pb2.Payout, _Mapping]] = ...) -> None: ...

class ListPayoutsRequest(_message.Message):
    __slots__ = ("batch_id", "states", "page_size", "page_token")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    states: _containers.RepeatedScalarFieldContainer[_payout_pb2.PayoutState]
    page_size: int
    page_token: str
    def __init__(self, batch_id: _Optional[str] = ..., states: _Optional[_Iterable[_Union[_payout_pb2.PayoutState, str]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPayoutsResponse(_message.Message):
    __slots__ = ("payouts", "next_page_token")
    PAYOUTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    payouts: _containers.RepeatedCompositeFieldContainer[_payout_pb2.Payout]
    next_page_token: str
    def __init__(self, payouts: _Optional[_Iterable[_Union[_payout_pb2.Payout, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelPayoutRequest(_message.Message):
    __slots__ = ("payout_id",)
    PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    payout_id: str
    def __init__(self, payout_id: _Optional[str] = ...) -> None: ...

class CancelPayoutResponse(_message.Message):
    __slots__ = ("payout",)
    PAYOUT_FIELD_NUMBER: _ClassVar[int]
    payout: _payout_pb2.Payout
    def __init__(self, payout: _Optional[_Union[_payout_pb2.Payout, _Mapping]] = ...) -> None: ...

class GetPayoutWalletRequest(_message.Message):
    __slots__ = ("chain_id",)
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    def __init__(self, chain_id: _Optional[int] = ...) -> None: ...

class AssetBalance(_message.Message):
    __slots__ = ("asset", "token_address", "balance", "reserved")
    ASSET_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    asset: str
    token_address: str
    balance: str
    reserved: str
    def __init__(self, asset: _Optional[str] = ..., token_address: _Optional[str] = ..., balance: _Optional[str] = ..., reserved: _Optional[str] = ...) -> None: ...

class GetPayoutWalletResponse(_message.Message):
    __slots__ = ("address", "derivation_path", "chain_id", "balances", "balances_error")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DERIVATION_PATH_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    BALANCES_ERROR_FIELD_NUMBER: _ClassVar[int]
    address: str
    derivation_path: str
    chain_id: int
    balances: _containers.RepeatedCompositeFieldContainer[AssetBalance]
    balances_error: str
    def __init__(self, address: _Optional[str] = ..., derivation_path: _Optional[str] = ..., chain_id: _Optional[int] = ..., balances: _Optional[_Iterable[_Union[AssetBalance, _Mapping]]] = ..., balances_error: _Optional[str] = ...) -> None: ...

class PayoutServiceApprovePayoutRequest(_message.Message):
    __slots__ = ("payout_id",)
    PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    payout_id: str
    def __init__(self, payout_id: _Optional[str] = ...) -> None: ...

class PayoutServiceApprovePayoutResponse(_message.Message):
    __slots__ = ("payout",)
    PAYOUT_FIELD_NUMBER: _ClassVar[int]
    payout: _payout_pb2.Payout
    def __init__(self, payout: _Optional[_Union[_payout_pb2.Payout, _Mapping]] = ...) -> None: ...
