import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from paymesh.ledger.v1 import audit_service_pb2 as _audit_service_pb2
from paymesh.ledger.v1 import payment_pb2 as _payment_pb2
from paymesh.ledger.v1 import payout_pb2 as _payout_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PaymentEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_EVENT_TYPE_UNSPECIFIED: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_CREATED: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_DETECTED: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_CONFIRMED: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_UNDERPAID: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_OVERPAID: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_EXPIRED: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_CANCELLED: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_PAID_AFTER_EXPIRY: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_SWEPT: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_REORGED: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_TEST: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_RESOLVED: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_REQUOTED: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_REFUND_CREATED: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_REFUND_APPROVED: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_REFUND_BROADCAST: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_REFUND_CONFIRMED: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_REFUND_FAILED: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_REFUND_CANCELLED: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_PAYOUT_CREATED: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_PAYOUT_APPROVED: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_PAYOUT_BROADCAST: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_PAYOUT_CONFIRMED: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_PAYOUT_FAILED: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_PAYOUT_CANCELLED: _ClassVar[PaymentEventType]
    PAYMENT_EVENT_TYPE_CONFIG_CHANGED: _ClassVar[PaymentEventType]
PAYMENT_EVENT_TYPE_UNSPECIFIED: PaymentEventType
PAYMENT_EVENT_TYPE_CREATED: PaymentEventType
PAYMENT_EVENT_TYPE_DETECTED: PaymentEventType
PAYMENT_EVENT_TYPE_CONFIRMED: PaymentEventType
PAYMENT_EVENT_TYPE_UNDERPAID: PaymentEventType
PAYMENT_EVENT_TYPE_OVERPAID: PaymentEventType
PAYMENT_EVENT_TYPE_EXPIRED: PaymentEventType
PAYMENT_EVENT_TYPE_CANCELLED: PaymentEventType
PAYMENT_EVENT_TYPE_PAID_AFTER_EXPIRY: PaymentEventType
PAYMENT_EVENT_TYPE_SWEPT: PaymentEventType
PAYMENT_EVENT_TYPE_REORGED: PaymentEventType
PAYMENT_EVENT_TYPE_TEST: PaymentEventType
PAYMENT_EVENT_TYPE_RESOLVED: PaymentEventType
PAYMENT_EVENT_TYPE_REQUOTED: PaymentEventType
PAYMENT_EVENT_TYPE_REFUND_CREATED: PaymentEventType
PAYMENT_EVENT_TYPE_REFUND_APPROVED: PaymentEventType
PAYMENT_EVENT_TYPE_REFUND_BROADCAST: PaymentEventType
PAYMENT_EVENT_TYPE_REFUND_CONFIRMED: PaymentEventType
PAYMENT_EVENT_TYPE_REFUND_FAILED: PaymentEventType
PAYMENT_EVENT_TYPE_REFUND_CANCELLED: PaymentEventType
PAYMENT_EVENT_TYPE_PAYOUT_CREATED: PaymentEventType
PAYMENT_EVENT_TYPE_PAYOUT_APPROVED: PaymentEventType
PAYMENT_EVENT_TYPE_PAYOUT_BROADCAST: PaymentEventType
PAYMENT_EVENT_TYPE_PAYOUT_CONFIRMED: PaymentEventType
PAYMENT_EVENT_TYPE_PAYOUT_FAILED: PaymentEventType
PAYMENT_EVENT_TYPE_PAYOUT_CANCELLED: PaymentEventType
PAYMENT_EVENT_TYPE_CONFIG_CHANGED: PaymentEventType

class PaymentEvent(_message.Message):
    __slots__ = ("event_id", "type", "merchant_id", "payment", "created_at", "previous_status", "payout", "audit")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATUS_FIELD_NUMBER: _ClassVar[int]
    PAYOUT_FIELD_NUMBER: _ClassVar[int]
    AUDIT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    type: PaymentEventType
    merchant_id: str
    payment: _payment_pb2.Payment
    created_at: _timestamp_pb2.Timestamp
    previous_status: _payment_pb2.PaymentStatus
    payout: _payout_pb2.Payout
    audit: _audit_service_pb2.AuditEntry
    def __init__(self, event_id: _Optional[str] = ..., type: _Optional[_Union[PaymentEventType, str]] = ..., merchant_id: _Optional[str] = ..., payment: _Optional[_Union[_payment_pb2.Payment, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., previous_status: _Optional[_Union[_payment_pb2.PaymentStatus, str]] = ..., payout: _Optional[_Union[_payout_pb2.Payout, _Mapping]] = ..., audit: _Optional[_Union[_audit_service_pb2.AuditEntry, _Mapping]] = ...) -> None: ...
