import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PayoutKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYOUT_KIND_UNSPECIFIED: _ClassVar[PayoutKind]
    PAYOUT_KIND_REFUND: _ClassVar[PayoutKind]
    PAYOUT_KIND_PAYOUT: _ClassVar[PayoutKind]

class PayoutSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYOUT_SOURCE_UNSPECIFIED: _ClassVar[PayoutSource]
    PAYOUT_SOURCE_DEPOSIT_ADDRESS: _ClassVar[PayoutSource]
    PAYOUT_SOURCE_PAYOUT_WALLET: _ClassVar[PayoutSource]

class PayoutState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYOUT_STATE_UNSPECIFIED: _ClassVar[PayoutState]
    PAYOUT_STATE_REQUESTED: _ClassVar[PayoutState]
    PAYOUT_STATE_APPROVED: _ClassVar[PayoutState]
    PAYOUT_STATE_SIGNED: _ClassVar[PayoutState]
    PAYOUT_STATE_BROADCAST: _ClassVar[PayoutState]
    PAYOUT_STATE_CONFIRMED: _ClassVar[PayoutState]
    PAYOUT_STATE_FAILED: _ClassVar[PayoutState]
    PAYOUT_STATE_CANCELLED: _ClassVar[PayoutState]
    PAYOUT_STATE_AWAITING_CLAIM: _ClassVar[PayoutState]
PAYOUT_KIND_UNSPECIFIED: PayoutKind
PAYOUT_KIND_REFUND: PayoutKind
PAYOUT_KIND_PAYOUT: PayoutKind
PAYOUT_SOURCE_UNSPECIFIED: PayoutSource
PAYOUT_SOURCE_DEPOSIT_ADDRESS: PayoutSource
PAYOUT_SOURCE_PAYOUT_WALLET: PayoutSource
PAYOUT_STATE_UNSPECIFIED: PayoutState
PAYOUT_STATE_REQUESTED: PayoutState
PAYOUT_STATE_APPROVED: PayoutState
PAYOUT_STATE_SIGNED: PayoutState
PAYOUT_STATE_BROADCAST: PayoutState
PAYOUT_STATE_CONFIRMED: PayoutState
PAYOUT_STATE_FAILED: PayoutState
PAYOUT_STATE_CANCELLED: PayoutState
PAYOUT_STATE_AWAITING_CLAIM: PayoutState

class Payout(_message.Message):
    __slots__ = ("payout_id", "merchant_id", "kind", "payment_id", "batch_id", "chain_id", "asset", "token_address", "decimals", "amount", "fee_from_amount", "amount_sent", "fee", "destination", "source", "source_address", "state", "memo", "failure_reason", "last_error", "tx_hash", "approval_required", "approved_by", "created_at", "updated_at", "completed_at", "claim_url")
    PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DECIMALS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    FEE_FROM_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_SENT_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    APPROVED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    CLAIM_URL_FIELD_NUMBER: _ClassVar[int]
    payout_id: str
    merchant_id: str
    kind: PayoutKind
    payment_id: str
    batch_id: str
    chain_id: int
    asset: str
    token_address: str
    decimals: int
    amount: str
    fee_from_amount: bool
    amount_sent: str
    fee: str
    destination: str
    source: PayoutSource
    source_address: str
    state: PayoutState
    memo: str
    failure_reason: str
    last_error: str
    tx_hash: str
    approval_required: bool
    approved_by: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    claim_url: str
    def __init__(self, payout_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., kind: _Optional[_Union[PayoutKind, str]] = ..., payment_id: _Optional[str] = ..., batch_id: _Optional[str] = ..., chain_id: _Optional[int] = ..., asset: _Optional[str] = ..., token_address: _Optional[str] = ..., decimals: _Optional[int] = ..., amount: _Optional[str] = ..., fee_from_amount: _Optional[bool] = ..., amount_sent: _Optional[str] = ..., fee: _Optional[str] = ..., destination: _Optional[str] = ..., source: _Optional[_Union[PayoutSource, str]] = ..., source_address: _Optional[str] = ..., state: _Optional[_Union[PayoutState, str]] = ..., memo: _Optional[str] = ..., failure_reason: _Optional[str] = ..., last_error: _Optional[str] = ..., tx_hash: _Optional[str] = ..., approval_required: _Optional[bool] = ..., approved_by: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., claim_url: _Optional[str] = ...) -> None: ...
