import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from paymesh.ledger.v1 import payment_pb2 as _payment_pb2
from paymesh.ledger.v1 import payment_service_pb2 as _payment_service_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PaymentLink(_message.Message):
    __slots__ = ("link_id", "url", "token", "description", "price", "min_price", "max_price", "options", "accept_all_assets", "accept_chain_ids", "expires_at", "max_uses", "uses", "return_url", "active", "created_at")
    LINK_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    MIN_PRICE_FIELD_NUMBER: _ClassVar[int]
    MAX_PRICE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_ALL_ASSETS_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_CHAIN_IDS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_USES_FIELD_NUMBER: _ClassVar[int]
    USES_FIELD_NUMBER: _ClassVar[int]
    RETURN_URL_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    link_id: str
    url: str
    token: str
    description: str
    price: _payment_pb2.Money
    min_price: _payment_pb2.Money
    max_price: _payment_pb2.Money
    options: _containers.RepeatedCompositeFieldContainer[_payment_service_pb2.AcceptedAsset]
    accept_all_assets: bool
    accept_chain_ids: _containers.RepeatedScalarFieldContainer[int]
    expires_at: _timestamp_pb2.Timestamp
    max_uses: int
    uses: int
    return_url: str
    active: bool
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, link_id: _Optional[str] = ..., url: _Optional[str] = ..., token: _Optional[str] = ..., description: _Optional[str] = ..., price: _Optional[_Union[_payment_pb2.Money, _Mapping]] = ..., min_price: _Optional[_Union[_payment_pb2.Money, _Mapping]] = ..., max_price: _Optional[_Union[_payment_pb2.Money, _Mapping]] = ..., options: _Optional[_Iterable[_Union[_payment_service_pb2.AcceptedAsset, _Mapping]]] = ..., accept_all_assets: _Optional[bool] = ..., accept_chain_ids: _Optional[_Iterable[int]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_uses: _Optional[int] = ..., uses: _Optional[int] = ..., return_url: _Optional[str] = ..., active: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreatePaymentLinkRequest(_message.Message):
    __slots__ = ("description", "price", "min_price", "max_price", "options", "accept_all_assets", "accept_chain_ids", "expires_at", "max_uses", "return_url", "idempotency_key")
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    MIN_PRICE_FIELD_NUMBER: _ClassVar[int]
    MAX_PRICE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_ALL_ASSETS_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_CHAIN_IDS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_USES_FIELD_NUMBER: _ClassVar[int]
    RETURN_URL_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    description: str
    price: _payment_pb2.Money
    min_price: _payment_pb2.Money
    max_price: _payment_pb2.Money
    options: _containers.RepeatedCompositeFieldContainer[_payment_service_pb2.AcceptedAsset]
    accept_all_assets: bool
    accept_chain_ids: _containers.RepeatedScalarFieldContainer[int]
    expires_at: _timestamp_pb2.Timestamp
    max_uses: int
    return_url: str
    idempotency_key: str
    def __init__(self, description: _Optional[str] = ..., price: _Optional[_Union[_payment_pb2.Money, _Mapping]] = ..., min_price: _Optional[_Union[_payment_pb2.Money, _Mapping]] = ..., max_price: _Optional[_Union[_payment_pb2.Money, _Mapping]] = ..., options: _Optional[_Iterable[_Union[_payment_service_pb2.AcceptedAsset, _Mapping]]] = ..., accept_all_assets: _Optional[bool] = ..., accept_chain_ids: _Optional[_Iterable[int]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_uses: _Optional[int] = ..., return_url: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class CreatePaymentLinkResponse(_message.Message):
    __slots__ = ("link", "created")
    LINK_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    link: PaymentLink
    created: bool
    def __init__(self, link: _Optional[_Union[PaymentLink, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetPaymentLinkRequest(_message.Message):
    __slots__ = ("link_id",)
    LINK_ID_FIELD_NUMBER: _ClassVar[int]
    link_id: str
    def __init__(self, link_id: _Optional[str] = ...) -> None: ...

class GetPaymentLinkResponse(_message.Message):
    __slots__ = ("link",)
    LINK_FIELD_NUMBER: _ClassVar[int]
    link: PaymentLink
    def __init__(self, link: _Optional[_Union[PaymentLink, _Mapping]] = ...) -> None: ...

class DeactivatePaymentLinkRequest(_message.Message):
    __slots__ = ("link_id",)
    LINK_ID_FIELD_NUMBER: _ClassVar[int]
    link_id: str
    def __init__(self, link_id: _Optional[str] = ...) -> None: ...

class DeactivatePaymentLinkResponse(_message.Message):
    __slots__ = ("link",)
    LINK_FIELD_NUMBER: _ClassVar[int]
    link: PaymentLink
    def __init__(self, link: _Optional[_Union[PaymentLink, _Mapping]] = ...) -> None: ...
