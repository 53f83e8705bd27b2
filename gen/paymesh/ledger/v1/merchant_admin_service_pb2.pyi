import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from paymesh.ledger.v1 import audit_service_pb2 as _audit_service_pb2
from paymesh.ledger.v1 import payment_pb2 as _payment_pb2
from paymesh.ledger.v1 import payout_pb2 as _payout_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MerchantStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MERCHANT_STATUS_UNSPECIFIED: _ClassVar[MerchantStatus]
    MERCHANT_STATUS_ACTIVE: _ClassVar[MerchantStatus]
    MERCHANT_STATUS_DISABLED: _ClassVar[MerchantStatus]
MERCHANT_STATUS_UNSPECIFIED: MerchantStatus
MERCHANT_STATUS_ACTIVE: MerchantStatus
MERCHANT_STATUS_DISABLED: MerchantStatus

class Treasury(_message.Message):
    __slots__ = ("chain_id", "address")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    address: str
    def __init__(self, chain_id: _Optional[int] = ..., address: _Optional[str] = ...) -> None: ...

class Merchant(_message.Message):
    __slots__ = ("merchant_id", "name", "status", "webhook_url", "xpub", "derivation_path", "treasuries", "api_key_prefix", "created_at", "next_address_index", "payment_policy")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    XPUB_FIELD_NUMBER: _ClassVar[int]
    DERIVATION_PATH_FIELD_NUMBER: _ClassVar[int]
    TREASURIES_FIELD_NUMBER: _ClassVar[int]
    API_KEY_PREFIX_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_ADDRESS_INDEX_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_POLICY_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    name: str
    status: MerchantStatus
    webhook_url: str
    xpub: str
    derivation_path: str
    treasuries: _containers.RepeatedCompositeFieldContainer[Treasury]
    api_key_prefix: str
    created_at: _timestamp_pb2.Timestamp
    next_address_index: int
    payment_policy: _payment_pb2.PaymentPolicy
    def __init__(self, merchant_id: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[MerchantStatus, str]] = ..., webhook_url: _Optional[str] = ..., xpub: _Optional[str] = ..., derivation_path: _Optional[str] = ..., treasuries: _Optional[_Iterable[_Union[Treasury, _Mapping]]] = ..., api_key_prefix: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_address_index: _Optional[int] = ..., payment_policy: _Optional[_Union[_payment_pb2.PaymentPolicy, _Mapping]] = ...) -> None: ...

class CreateMerchantRequest(_message.Message):
    __slots__ = ("name", "xpub", "derivation_path", "webhook_url", "treasuries")
    NAME_FIELD_NUMBER: _ClassVar[int]
    XPUB_FIELD_NUMBER: _ClassVar[int]
    DERIVATION_PATH_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    TREASURIES_FIELD_NUMBER: _ClassVar[int]
    name: str
    xpub: str
    derivation_path: str
    webhook_url: str
    treasuries: _containers.RepeatedCompositeFieldContainer[Treasury]
    def __init__(self, name: _Optional[str] = ..., xpub: _Optional[str] = ..., derivation_path: _Optional[str] = ..., webhook_url: _Optional[str] = ..., treasuries: _Optional[_Iterable[_Union[Treasury, _Mapping]]] = ...) -> None: ...

class CreateMerchantResponse(_message.Message):
    __slots__ = ("merchant", "api_key", "webhook_secret")
    MERCHANT_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    merchant: Merchant
    api_key: str
    webhook_secret: str
    def __init__(self, merchant: _Optional[_Union[Merchant, _Mapping]] = ..., api_key: _Optional[str] = ..., webhook_secret: _Optional[str] = ...) -> None: ...

class GetMerchantRequest(_message.Message):
    __slots__ = ("merchant_id",)
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    def __init__(self, merchant_id: _Optional[str] = ...) -> None: ...

class GetMerchantResponse(_message.Message):
    __slots__ = ("merchant",)
    MERCHANT_FIELD_NUMBER: _ClassVar[int]
    merchant: Merchant
    def __init__(self, merchant: _Optional[_Union[Merchant, _Mapping]] = ...) -> None: ...

class ListMerchantsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMerchantsResponse(_message.Message):
    __slots__ = ("merchants", "next_page_token")
    MERCHANTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    merchants: _containers.RepeatedCompositeFieldContainer[Merchant]
    next_page_token: str
    def __init__(self, merchants: _Optional[_Iterable[_Union[Merchant, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DisableMerchantRequest(_message.Message):
    __slots__ = ("merchant_id",)
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    def __init__(self, merchant_id: _Optional[str] = ...) -> None: ...

class DisableMerchantResponse(_message.Message):
    __slots__ = ("merchant",)
    MERCHANT_FIELD_NUMBER: _ClassVar[int]
    merchant: Merchant
    def __init__(self, merchant: _Optional[_Union[Merchant, _Mapping]] = ...) -> None: ...

class EnableMerchantRequest(_message.Message):
    __slots__ = ("merchant_id",)
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    def __init__(self, merchant_id: _Optional[str] = ...) -> None: ...

class EnableMerchantResponse(_message.Message):
    __slots__ = ("merchant",)
    MERCHANT_FIELD_NUMBER: _ClassVar[int]
    merchant: Merchant
    def __init__(self, merchant: _Optional[_Union[Merchant, _Mapping]] = ...) -> None: ...

class RotateApiKeyRequest(_message.Message):
    __slots__ = ("merchant_id",)
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    def __init__(self, merchant_id: _Optional[str] = ...) -> None: ...

class RotateApiKeyResponse(_message.Message):
    __slots__ = ("merchant", "api_key")
    MERCHANT_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    merchant: Merchant
    api_key: str
    def __init__(self, merchant: _Optional[_Union[Merchant, _Mapping]] = ..., api_key: _Optional[str] = ...) -> None: ...

class SetWebhookRequest(_message.Message):
    __slots__ = ("merchant_id", "webhook_url", "webhook_secret", "keep_secret")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    KEEP_SECRET_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    webhook_url: str
    webhook_secret: str
    keep_secret: bool
    def __init__(self, merchant_id: _Optional[str] = ..., webhook_url: _Optional[str] = ..., webhook_secret: _Optional[str] = ..., keep_secret: _Optional[bool] = ...) -> None: ...

class SetWebhookResponse(_message.Message):
    __slots__ = ("merchant", "webhook_secret")
    MERCHANT_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    merchant: Merchant
    webhook_secret: str
    def __init__(self, merchant: _Optional[_Union[Merchant, _Mapping]] = ..., webhook_secret: _Optional[str] = ...) -> None: ...

class SetXpubRequest(_message.Message):
    __slots__ = ("merchant_id", "xpub", "derivation_path")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    XPUB_FIELD_NUMBER: _ClassVar[int]
    DERIVATION_PATH_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    xpub: str
    derivation_path: str
    def __init__(self, merchant_id: _Optional[str] = ..., xpub: _Optional[str] = ..., derivation_path: _Optional[str] = ...) -> None: ...

class SetXpubResponse(_message.Message):
    __slots__ = ("merchant", "pending_change")
    MERCHANT_FIELD_NUMBER: _ClassVar[int]
    PENDING_CHANGE_FIELD_NUMBER: _ClassVar[int]
    merchant: Merchant
    pending_change: _audit_service_pb2.ConfigChange
    def __init__(self, merchant: _Optional[_Union[Merchant, _Mapping]] = ..., pending_change: _Optional[_Union[_audit_service_pb2.ConfigChange, _Mapping]] = ...) -> None: ...

class SetTreasuryRequest(_message.Message):
    __slots__ = ("merchant_id", "treasury")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    TREASURY_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    treasury: Treasury
    def __init__(self, merchant_id: _Optional[str] = ..., treasury: _Optional[_Union[Treasury, _Mapping]] = ...) -> None: ...

class SetTreasuryResponse(_message.Message):
    __slots__ = ("merchant", "pending_change")
    MERCHANT_FIELD_NUMBER: _ClassVar[int]
    PENDING_CHANGE_FIELD_NUMBER: _ClassVar[int]
    merchant: Merchant
    pending_change: _audit_service_pb2.ConfigChange
    def __init__(self, merchant: _Optional[_Union[Merchant, _Mapping]] = ..., pending_change: _Optional[_Union[_audit_service_pb2.ConfigChange, _Mapping]] = ...) -> None: ...

class LookupPaymentRequest(_message.Message):
    __slots__ = ("payment_id",)
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    def __init__(self, payment_id: _Optional[str] = ...) -> None: ...

class LookupPaymentResponse(_message.Message):
    __slots__ = ("payment",)
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    payment: _payment_pb2.Payment
    def __init__(self, payment: _Optional[_Union[_payment_pb2.Payment, _Mapping]] = ...) -> None: ...

class SetPaymentPolicyRequest(_message.Message):
    __slots__ = ("merchant_id", "policy")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    policy: _payment_pb2.PaymentPolicy
    def __init__(self, merchant_id: _Optional[str] = ..., policy: _Optional[_Union[_payment_pb2.PaymentPolicy, _Mapping]] = ...) -> None: ...

class SetPaymentPolicyResponse(_message.Message):
    __slots__ = ("merchant",)
    MERCHANT_FIELD_NUMBER: _ClassVar[int]
    merchant: Merchant
    def __init__(self, merchant: _Optional[_Union[Merchant, _Mapping]] = ...) -> None: ...

class AssetPayoutLimits(_message.Message):
    __slots__ = ("chain_id", "asset", "approval_above", "daily_limit")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_ABOVE_FIELD_NUMBER: _ClassVar[int]
    DAILY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    asset: str
    approval_above: str
    daily_limit: str
    def __init__(self, chain_id: _Optional[int] = ..., asset: _Optional[str] = ..., approval_above: _Optional[str] = ..., daily_limit: _Optional[str] = ...) -> None: ...

class SetPayoutPolicyRequest(_message.Message):
    __slots__ = ("merchant_id", "limits")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    limits: _containers.RepeatedCompositeFieldContainer[AssetPayoutLimits]
    def __init__(self, merchant_id: _Optional[str] = ..., limits: _Optional[_Iterable[_Union[AssetPayoutLimits, _Mapping]]] = ...) -> None: ...

class SetPayoutPolicyResponse(_message.Message):
    __slots__ = ("limits",)
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    limits: _containers.RepeatedCompositeFieldContainer[AssetPayoutLimits]
    def __init__(self, limits: _Optional[_Iterable[_Union[AssetPayoutLimits, _Mapping]]] = ...) -> None: ...

class ApprovePayoutRequest(_message.Message):
    __slots__ = ("payout_id",)
    PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    payout_id: str
    def __init__(self, payout_id: _Optional[str] = ...) -> None: ...

class ApprovePayoutResponse(_message.Message):
    __slots__ = ("payout",)
    PAYOUT_FIELD_NUMBER: _ClassVar[int]
    payout: _payout_pb2.Payout
    def __init__(self, payout: _Optional[_Union[_payout_pb2.Payout, _Mapping]] = ...) -> None: ...
