from paymesh.events.v1 import payment_events_pb2 as _payment_events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListEventsRequest(_message.Message):
    __slots__ = ("after_event_id", "types", "payment_id", "page_size", "page_token")
    AFTER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    after_event_id: str
    types: _containers.RepeatedScalarFieldContainer[_payment_events_pb2.PaymentEventType]
    payment_id: str
    page_size: int
    page_token: str
    def __init__(self, after_event_id: _Optional[str] = ..., types: _Optional[_Iterable[_Union[_payment_events_pb2.PaymentEventType, str]]] = ..., payment_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_payment_events_pb2.PaymentEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[_payment_events_pb2.PaymentEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
