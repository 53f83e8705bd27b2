import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PaymentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_STATUS_UNSPECIFIED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_PENDING: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_DETECTED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_CONFIRMED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_UNDERPAID: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_OVERPAID: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_EXPIRED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_CANCELLED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_PAID_AFTER_EXPIRY: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_SWEPT: _ClassVar[PaymentStatus]

class TransferState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSFER_STATE_UNSPECIFIED: _ClassVar[TransferState]
    TRANSFER_STATE_SEEN: _ClassVar[TransferState]
    TRANSFER_STATE_CONFIRMED: _ClassVar[TransferState]
    TRANSFER_STATE_ORPHANED: _ClassVar[TransferState]

class TransferKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSFER_KIND_UNSPECIFIED: _ClassVar[TransferKind]
    TRANSFER_KIND_PAYMENT: _ClassVar[TransferKind]
    TRANSFER_KIND_GAS_TOPUP: _ClassVar[TransferKind]

class Resolution(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESOLUTION_UNSPECIFIED: _ClassVar[Resolution]
    RESOLUTION_ACCEPTED: _ClassVar[Resolution]
    RESOLUTION_REFUND: _ClassVar[Resolution]

class PaymentOptionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_OPTION_STATUS_UNSPECIFIED: _ClassVar[PaymentOptionStatus]
    PAYMENT_OPTION_STATUS_AWAITING: _ClassVar[PaymentOptionStatus]
    PAYMENT_OPTION_STATUS_DETECTED: _ClassVar[PaymentOptionStatus]
    PAYMENT_OPTION_STATUS_UNDERPAID: _ClassVar[PaymentOptionStatus]
    PAYMENT_OPTION_STATUS_PAID: _ClassVar[PaymentOptionStatus]
    PAYMENT_OPTION_STATUS_SURPLUS: _ClassVar[PaymentOptionStatus]
PAYMENT_STATUS_UNSPECIFIED: PaymentStatus
PAYMENT_STATUS_PENDING: PaymentStatus
PAYMENT_STATUS_DETECTED: PaymentStatus
PAYMENT_STATUS_CONFIRMED: PaymentStatus
PAYMENT_STATUS_UNDERPAID: PaymentStatus
PAYMENT_STATUS_OVERPAID: PaymentStatus
PAYMENT_STATUS_EXPIRED: PaymentStatus
PAYMENT_STATUS_CANCELLED: PaymentStatus
PAYMENT_STATUS_PAID_AFTER_EXPIRY: PaymentStatus
PAYMENT_STATUS_SWEPT: PaymentStatus
TRANSFER_STATE_UNSPECIFIED: TransferState
TRANSFER_STATE_SEEN: TransferState
TRANSFER_STATE_CONFIRMED: TransferState
TRANSFER_STATE_ORPHANED: TransferState
TRANSFER_KIND_UNSPECIFIED: TransferKind
TRANSFER_KIND_PAYMENT: TransferKind
TRANSFER_KIND_GAS_TOPUP: TransferKind
RESOLUTION_UNSPECIFIED: Resolution
RESOLUTION_ACCEPTED: Resolution
RESOLUTION_REFUND: Resolution
PAYMENT_OPTION_STATUS_UNSPECIFIED: PaymentOptionStatus
PAYMENT_OPTION_STATUS_AWAITING: PaymentOptionStatus
PAYMENT_OPTION_STATUS_DETECTED: PaymentOptionStatus
PAYMENT_OPTION_STATUS_UNDERPAID: PaymentOptionStatus
PAYMENT_OPTION_STATUS_PAID: PaymentOptionStatus
PAYMENT_OPTION_STATUS_SURPLUS: PaymentOptionStatus

class Transfer(_message.Message):
    __slots__ = ("chain_id", "tx_hash", "log_index", "block_number", "block_hash", "from_address", "amount", "state", "credited", "late", "observed_at", "token_address", "asset", "kind", "value", "after_quote_expiry")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    BLOCK_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    FROM_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREDITED_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_AT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    AFTER_QUOTE_EXPIRY_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    tx_hash: str
    log_index: int
    block_number: int
    block_hash: str
    from_address: str
    amount: str
    state: TransferState
    credited: bool
    late: bool
    observed_at: _timestamp_pb2.Timestamp
    token_address: str
    asset: str
    kind: TransferKind
    value: Money
    after_quote_expiry: bool
    def __init__(self, chain_id: _Optional[int] = ..., tx_hash: _Optional[str] = ..., log_index: _Optional[int] = ..., block_number: _Optional[int] = ..., block_hash: _Optional[str] = ..., from_address: _Optional[str] = ..., amount: _Optional[str] = ..., state: _Optional[_Union[TransferState, str]] = ..., credited: _Optional[bool] = ..., late: _Optional[bool] = ..., observed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., token_address: _Optional[str] = ..., asset: _Optional[str] = ..., kind: _Optional[_Union[TransferKind, str]] = ..., value: _Optional[_Union[Money, _Mapping]] = ..., after_quote_expiry: _Optional[bool] = ...) -> None: ...

class Money(_message.Message):
    __slots__ = ("currency", "amount")
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    currency: str
    amount: str
    def __init__(self, currency: _Optional[str] = ..., amount: _Optional[str] = ...) -> None: ...

class Quote(_message.Message):
    __slots__ = ("asset", "currency", "rate", "source", "observed_at", "quoted_at", "expires_at")
    ASSET_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_AT_FIELD_NUMBER: _ClassVar[int]
    QUOTED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    asset: str
    currency: str
    rate: str
    source: str
    observed_at: _timestamp_pb2.Timestamp
    quoted_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, asset: _Optional[str] = ..., currency: _Optional[str] = ..., rate: _Optional[str] = ..., source: _Optional[str] = ..., observed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., quoted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ChainConfirmations(_message.Message):
    __slots__ = ("chain_id", "confirmations")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATIONS_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    confirmations: int
    def __init__(self, chain_id: _Optional[int] = ..., confirmations: _Optional[int] = ...) -> None: ...

class ConfirmationTier(_message.Message):
    __slots__ = ("min_price", "confirmations")
    MIN_PRICE_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATIONS_FIELD_NUMBER: _ClassVar[int]
    min_price: Money
    confirmations: int
    def __init__(self, min_price: _Optional[_Union[Money, _Mapping]] = ..., confirmations: _Optional[int] = ...) -> None: ...

class PaymentPolicy(_message.Message):
    __slots__ = ("underpayment_tolerance_bps", "confirmations", "confirmation_tiers", "watch_after_expiry")
    UNDERPAYMENT_TOLERANCE_BPS_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATIONS_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATION_TIERS_FIELD_NUMBER: _ClassVar[int]
    WATCH_AFTER_EXPIRY_FIELD_NUMBER: _ClassVar[int]
    underpayment_tolerance_bps: int
    confirmations: _containers.RepeatedCompositeFieldContainer[ChainConfirmations]
    confirmation_tiers: _containers.RepeatedCompositeFieldContainer[ConfirmationTier]
    watch_after_expiry: _duration_pb2.Duration
    def __init__(self, underpayment_tolerance_bps: _Optional[int] = ..., confirmations: _Optional[_Iterable[_Union[ChainConfirmations, _Mapping]]] = ..., confirmation_tiers: _Optional[_Iterable[_Union[ConfirmationTier, _Mapping]]] = ..., watch_after_expiry: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class PaymentOption(_message.Message):
    __slots__ = ("chain_id", "asset", "token_address", "decimals", "amount_due", "amount_minimum", "amount_received", "amount_confirmed", "amount_swept", "sweep_fee", "sweep_dust", "quote", "value_confirmed", "confirmations_required", "status", "selected", "amount_refunded")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DECIMALS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_DUE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINIMUM_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_SWEPT_FIELD_NUMBER: _ClassVar[int]
    SWEEP_FEE_FIELD_NUMBER: _ClassVar[int]
    SWEEP_DUST_FIELD_NUMBER: _ClassVar[int]
    QUOTE_FIELD_NUMBER: _ClassVar[int]
    VALUE_CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATIONS_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SELECTED_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_REFUNDED_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    asset: str
    token_address: str
    decimals: int
    amount_due: str
    amount_minimum: str
    amount_received: str
    amount_confirmed: str
    amount_swept: str
    sweep_fee: str
    sweep_dust: str
    quote: Quote
    value_confirmed: Money
    confirmations_required: int
    status: PaymentOptionStatus
    selected: bool
    amount_refunded: str
    def __init__(self, chain_id: _Optional[int] = ..., asset: _Optional[str] = ..., token_address: _Optional[str] = ..., decimals: _Optional[int] = ..., amount_due: _Optional[str] = ..., amount_minimum: _Optional[str] = ..., amount_received: _Optional[str] = ..., amount_confirmed: _Optional[str] = ..., amount_swept: _Optional[str] = ..., sweep_fee: _Optional[str] = ..., sweep_dust: _Optional[str] = ..., quote: _Optional[_Union[Quote, _Mapping]] = ..., value_confirmed: _Optional[_Union[Money, _Mapping]] = ..., confirmations_required: _Optional[int] = ..., status: _Optional[_Union[PaymentOptionStatus, str]] = ..., selected: _Optional[bool] = ..., amount_refunded: _Optional[str] = ...) -> None: ...

class Payment(_message.Message):
    __slots__ = ("payment_id", "merchant_id", "chain_id", "asset", "token_address", "decimals", "amount_due", "amount_received", "amount_confirmed", "amount_swept", "deposit_address", "status", "merchant_order_id", "metadata", "confirmations_required", "created_at", "expires_at", "updated_at", "transfers", "version", "sweep_tx_hash", "sweep_fee", "sweep_dust", "price", "quote", "policy", "amount_minimum", "value_confirmed", "resolution", "resolution_note", "resolved_at", "watch_until", "options", "checkout_token", "checkout_url", "description", "return_url", "amount_refunded")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DECIMALS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_DUE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_SWEPT_FIELD_NUMBER: _ClassVar[int]
    DEPOSIT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATIONS_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    TRANSFERS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SWEEP_TX_HASH_FIELD_NUMBER: _ClassVar[int]
    SWEEP_FEE_FIELD_NUMBER: _ClassVar[int]
    SWEEP_DUST_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    QUOTE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINIMUM_FIELD_NUMBER: _ClassVar[int]
    VALUE_CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_NOTE_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_FIELD_NUMBER: _ClassVar[int]
    WATCH_UNTIL_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CHECKOUT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CHECKOUT_URL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    RETURN_URL_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_REFUNDED_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    merchant_id: str
    chain_id: int
    asset: str
    token_address: str
    decimals: int
    amount_due: str
    amount_received: str
    amount_confirmed: str
    amount_swept: str
    deposit_address: str
    status: PaymentStatus
    merchant_order_id: str
    metadata: _containers.ScalarMap[str, str]
    confirmations_required: int
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    transfers: _containers.RepeatedCompositeFieldContainer[Transfer]
    version: int
    sweep_tx_hash: str
    sweep_fee: str
    sweep_dust: str
    price: Money
    quote: Quote
    policy: PaymentPolicy
    amount_minimum: str
    value_confirmed: Money
    resolution: Resolution
    resolution_note: str
    resolved_at: _timestamp_pb2.Timestamp
    watch_until: _timestamp_pb2.Timestamp
    options: _containers.RepeatedCompositeFieldContainer[PaymentOption]
    checkout_token: str
    checkout_url: str
    description: str
    return_url: str
    amount_refunded: str
    def __init__(self, payment_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., chain_id: _Optional[int] = ..., asset: _Optional[str] = ..., token_address: _Optional[str] = ..., decimals: _Optional[int] = ..., amount_due: _Optional[str] = ..., amount_received: _Optional[str] = ..., amount_confirmed: _Optional[str] = ..., amount_swept: _Optional[str] = ..., deposit_address: _Optional[str] = ..., status: _Optional[_Union[PaymentStatus, str]] = ..., merchant_order_id: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., confirmations_required: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., transfers: _Optional[_Iterable[_Union[Transfer, _Mapping]]] = ..., version: _Optional[int] = ..., sweep_tx_hash: _Optional[str] = ..., sweep_fee: _Optional[str] = ..., sweep_dust: _Optional[str] = ..., price: _Optional[_Union[Money, _Mapping]] = ..., quote: _Optional[_Union[Quote, _Mapping]] = ..., policy: _Optional[_Union[PaymentPolicy, _Mapping]] = ..., amount_minimum: _Optional[str] = ..., value_confirmed: _Optional[_Union[Money, _Mapping]] = ..., resolution: _Optional[_Union[Resolution, str]] = ..., resolution_note: _Optional[str] = ..., resolved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., watch_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., options: _Optional[_Iterable[_Union[PaymentOption, _Mapping]]] = ..., checkout_token: _Optional[str] = ..., checkout_url: _Optional[str] = ..., description: _Optional[str] = ..., return_url: _Optional[str] = ..., amount_refunded: _Optional[str] = ...) -> None: ...
