import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from paymesh.ledger.v1 import payment_pb2 as _payment_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreatePaymentRequest(_message.Message):
    __slots__ = ("chain_id", "asset", "amount", "expires_in", "expires_at", "merchant_order_id", "metadata", "idempotency_key", "price", "policy", "options", "accept_all_assets", "accept_chain_ids", "description", "return_url")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_ALL_ASSETS_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_CHAIN_IDS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    RETURN_URL_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    asset: str
    amount: str
    expires_in: _duration_pb2.Duration
    expires_at: _timestamp_pb2.Timestamp
    merchant_order_id: str
    metadata: _containers.ScalarMap[str, str]
    idempotency_key: str
    price: _payment_pb2.Money
    policy: _payment_pb2.PaymentPolicy
    options: _containers.RepeatedCompositeFieldContainer[AcceptedAsset]
    accept_all_assets: bool
    accept_chain_ids: _containers.RepeatedScalarFieldContainer[int]
    description: str
    return_url: str
    def __init__(self, chain_id: _Optional[int] = ..., asset: _Optional[str] = ..., amount: _Optional[str] = ..., expires_in: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., merchant_order_id: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., idempotency_key: _Optional[str] = ..., price: _Optional[_Union[_payment_pb2.Money, _Mapping]] = ..., policy: _Optional[_Union[_payment_pb2.PaymentPolicy, _Mapping]] = ..., options: _Optional[_Iterable[_Union[AcceptedAsset, _Mapping]]] = ..., accept_all_assets: _Optional[bool] = ..., accept_chain_ids: _Optional[_Iterable[int]] = ..., description: _Optional[str] = ..., return_url: _Optional[str] = ...) -> None: ...

class AcceptedAsset(_message.Message):
    __slots__ = ("chain_id", "asset")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    asset: str
    def __init__(self, chain_id: _Optional[int] = ..., asset: _Optional[str] = ...) -> None: ...

class CreatePaymentResponse(_message.Message):
    __slots__ = ("payment", "created")
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    payment: _payment_pb2.Payment
    created: bool
    def __init__(self, payment: _Optional[_Union[_payment_pb2.Payment, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetPaymentRequest(_message.Message):
    __slots__ = ("payment_id",)
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    def __init__(self, payment_id: _Optional[str] = ...) -> None: ...

class GetPaymentResponse(_message.Message):
    __slots__ = ("payment",)
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    payment: _payment_pb2.Payment
    def __init__(self, payment: _Optional[_Union[_payment_pb2.Payment, _Mapping]] = ...) -> None: ...

class ListPaymentsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "statuses", "chain_id", "merchant_order_id", "created_after", "created_before")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    statuses: _containers.RepeatedScalarFieldContainer[_payment_pb2.PaymentStatus]
    chain_id: int
    merchant_order_id: str
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., statuses: _Optional[_Iterable[_Union[_payment_pb2.PaymentStatus, str]]] = ..., chain_id: _Optional[int] = ..., merchant_order_id: _Optional[str] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListPaymentsResponse(_message.Message):
    __slots__ = ("payments", "next_page_token")
    PAYMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    payments: _containers.RepeatedCompositeFieldContainer[_payment_pb2.Payment]
    next_page_token: str
    def __init__(self, payments: _Optional[_Iterable[_Union[_payment_pb2.Payment, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelPaymentRequest(_message.Message):
    __slots__ = ("payment_id", "reason")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    reason: str
    def __init__(self, payment_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelPaymentResponse(_message.Message):
    __slots__ = ("payment",)
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    payment: _payment_pb2.Payment
    def __init__(self, payment: _Optional[_Union[_payment_pb2.Payment, _Mapping]] = ...) -> None: ...

class WatchPaymentRequest(_message.Message):
    __slots__ = ("payment_id",)
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    def __init__(self, payment_id: _Optional[str] = ...) -> None: ...

class RequotePaymentRequest(_message.Message):
    __slots__ = ("payment_id",)
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    def __init__(self, payment_id: _Optional[str] = ...) -> None: ...

class RequotePaymentResponse(_message.Message):
    __slots__ = ("payment", "requoted")
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    REQUOTED_FIELD_NUMBER: _ClassVar[int]
    payment: _payment_pb2.Payment
    requoted: bool
    def __init__(self, payment: _Optional[_Union[_payment_pb2.Payment, _Mapping]] = ..., requoted: _Optional[bool] = ...) -> None: ...

class ResolvePaymentRequest(_message.Message):
    __slots__ = ("payment_id", "resolution", "note")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    resolution: _payment_pb2.Resolution
    note: str
    def __init__(self, payment_id: _Optional[str] = ..., resolution: _Optional[_Union[_payment_pb2.Resolution, str]] = ..., note: _Optional[str] = ...) -> None: ...

class ResolvePaymentResponse(_message.Message):
    __slots__ = ("payment",)
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    payment: _payment_pb2.Payment
    def __init__(self, payment: _Optional[_Union[_payment_pb2.Payment, _Mapping]] = ...) -> None: ...

class WatchPaymentResponse(_message.Message):
    __slots__ = ("payment",)
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    payment: _payment_pb2.Payment
    def __init__(self, payment: _Optional[_Union[_payment_pb2.Payment, _Mapping]] = ...) -> None: ...
