import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from paymesh.ledger.v1 import payment_pb2 as _payment_pb2
from paymesh.ledger.v1 import payout_pb2 as _payout_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LinkView(_message.Message):
    __slots__ = ("merchant_name", "description", "price", "min_price", "max_price", "open")
    MERCHANT_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    MIN_PRICE_FIELD_NUMBER: _ClassVar[int]
    MAX_PRICE_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    merchant_name: str
    description: str
    price: _payment_pb2.Money
    min_price: _payment_pb2.Money
    max_price: _payment_pb2.Money
    open: bool
    def __init__(self, merchant_name: _Optional[str] = ..., description: _Optional[str] = ..., price: _Optional[_Union[_payment_pb2.Money, _Mapping]] = ..., min_price: _Optional[_Union[_payment_pb2.Money, _Mapping]] = ..., max_price: _Optional[_Union[_payment_pb2.Money, _Mapping]] = ..., open: _Optional[bool] = ...) -> None: ...

class GetLinkRequest(_message.Message):
    __slots__ = ("link_token",)
    LINK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    link_token: str
    def __init__(self, link_token: _Optional[str] = ...) -> None: ...

class GetLinkResponse(_message.Message):
    __slots__ = ("link",)
    LINK_FIELD_NUMBER: _ClassVar[int]
    link: LinkView
    def __init__(self, link: _Optional[_Union[LinkView, _Mapping]] = ...) -> None: ...

class OpenLinkRequest(_message.Message):
    __slots__ = ("link_token", "visitor_id", "amount")
    LINK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    VISITOR_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    link_token: str
    visitor_id: str
    amount: str
    def __init__(self, link_token: _Optional[str] = ..., visitor_id: _Optional[str] = ..., amount: _Optional[str] = ...) -> None: ...

class OpenLinkResponse(_message.Message):
    __slots__ = ("checkout_token", "created")
    CHECKOUT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    checkout_token: str
    created: bool
    def __init__(self, checkout_token: _Optional[str] = ..., created: _Optional[bool] = ...) -> None: ...

class CheckoutView(_message.Message):
    __slots__ = ("merchant_name", "merchant_order_id", "description", "status", "price", "deposit_address", "options", "expires_at", "return_url", "confirmations", "confirmations_required", "version", "expired")
    MERCHANT_NAME_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    DEPOSIT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    RETURN_URL_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATIONS_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATIONS_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    merchant_name: str
    merchant_order_id: str
    description: str
    status: _payment_pb2.PaymentStatus
    price: _payment_pb2.Money
    deposit_address: str
    options: _containers.RepeatedCompositeFieldContainer[_payment_pb2.PaymentOption]
    expires_at: _timestamp_pb2.Timestamp
    return_url: str
    confirmations: int
    confirmations_required: int
    version: int
    expired: bool
    def __init__(self, merchant_name: _Optional[str] = ..., merchant_order_id: _Optional[str] = ..., description: _Optional[str] = ..., status: _Optional[_Union[_payment_pb2.PaymentStatus, str]] = ..., price: _Optional[_Union[_payment_pb2.Money, _Mapping]] = ..., deposit_address: _Optional[str] = ..., options: _Optional[_Iterable[_Union[_payment_pb2.PaymentOption, _Mapping]]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., return_url: _Optional[str] = ..., confirmations: _Optional[int] = ..., confirmations_required: _Optional[int] = ..., version: _Optional[int] = ..., expired: _Optional[bool] = ...) -> None: ...

class GetCheckoutRequest(_message.Message):
    __slots__ = ("checkout_token",)
    CHECKOUT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    checkout_token: str
    def __init__(self, checkout_token: _Optional[str] = ...) -> None: ...

class GetCheckoutResponse(_message.Message):
    __slots__ = ("checkout",)
    CHECKOUT_FIELD_NUMBER: _ClassVar[int]
    checkout: CheckoutView
    def __init__(self, checkout: _Optional[_Union[CheckoutView, _Mapping]] = ...) -> None: ...

class WatchCheckoutRequest(_message.Message):
    __slots__ = ("checkout_token",)
    CHECKOUT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    checkout_token: str
    def __init__(self, checkout_token: _Optional[str] = ...) -> None: ...

class WatchCheckoutResponse(_message.Message):
    __slots__ = ("checkout",)
    CHECKOUT_FIELD_NUMBER: _ClassVar[int]
    checkout: CheckoutView
    def __init__(self, checkout: _Optional[_Union[CheckoutView, _Mapping]] = ...) -> None: ...

class RequoteCheckoutRequest(_message.Message):
    __slots__ = ("checkout_token",)
    CHECKOUT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    checkout_token: str
    def __init__(self, checkout_token: _Optional[str] = ...) -> None: ...

class RequoteCheckoutResponse(_message.Message):
    __slots__ = ("checkout", "requoted")
    CHECKOUT_FIELD_NUMBER: _ClassVar[int]
    REQUOTED_FIELD_NUMBER: _ClassVar[int]
    checkout: CheckoutView
    requoted: bool
    def __init__(self, checkout: _Optional[_Union[CheckoutView, _Mapping]] = ..., requoted: _Optional[bool] = ...) -> None: ...

class RefundClaimView(_message.Message):
    __slots__ = ("merchant_name", "chain_name", "asset", "decimals", "amount", "reason", "open", "destination", "state")
    MERCHANT_NAME_FIELD_NUMBER: _ClassVar[int]
    CHAIN_NAME_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    DECIMALS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    merchant_name: str
    chain_name: str
    asset: str
    decimals: int
    amount: str
    reason: str
    open: bool
    destination: str
    state: _payout_pb2.PayoutState
    def __init__(self, merchant_name: _Optional[str] = ..., chain_name: _Optional[str] = ..., asset: _Optional[str] = ..., decimals: _Optional[int] = ..., amount: _Optional[str] = ..., reason: _Optional[str] = ..., open: _Optional[bool] = ..., destination: _Optional[str] = ..., state: _Optional[_Union[_payout_pb2.PayoutState, str]] = ...) -> None: ...

class GetRefundClaimRequest(_message.Message):
    __slots__ = ("claim_token",)
    CLAIM_TOKEN_FIELD_NUMBER: _ClassVar[int]
    claim_token: str
    def __init__(self, claim_token: _Optional[str] = ...) -> None: ...

class GetRefundClaimResponse(_message.Message):
    __slots__ = ("claim",)
    CLAIM_FIELD_NUMBER: _ClassVar[int]
    claim: RefundClaimView
    def __init__(self, claim: _Optional[_Union[RefundClaimView, _Mapping]] = ...) -> None: ...

class SubmitRefundClaimRequest(_message.Message):
    __slots__ = ("claim_token", "destination", "destination_again")
    CLAIM_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_AGAIN_FIELD_NUMBER: _ClassVar[int]
    claim_token: str
    destination: str
    destination_again: str
    def __init__(self, claim_token: _Optional[str] = ..., destination: _Optional[str] = ..., destination_again: _Optional[str] = ...) -> None: ...

class SubmitRefundClaimResponse(_message.Message):
    __slots__ = ("claim",)
    CLAIM_FIELD_NUMBER: _ClassVar[int]
    claim: RefundClaimView
    def __init__(self, claim: _Optional[_Union[RefundClaimView, _Mapping]] = ...) -> None: ...
