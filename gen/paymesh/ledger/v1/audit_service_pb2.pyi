import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConfigChangeState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONFIG_CHANGE_STATE_UNSPECIFIED: _ClassVar[ConfigChangeState]
    CONFIG_CHANGE_STATE_PENDING: _ClassVar[ConfigChangeState]
    CONFIG_CHANGE_STATE_APPLIED: _ClassVar[ConfigChangeState]
    CONFIG_CHANGE_STATE_CANCELLED: _ClassVar[ConfigChangeState]
    CONFIG_CHANGE_STATE_FAILED: _ClassVar[ConfigChangeState]
CONFIG_CHANGE_STATE_UNSPECIFIED: ConfigChangeState
CONFIG_CHANGE_STATE_PENDING: ConfigChangeState
CONFIG_CHANGE_STATE_APPLIED: ConfigChangeState
CONFIG_CHANGE_STATE_CANCELLED: ConfigChangeState
CONFIG_CHANGE_STATE_FAILED: ConfigChangeState

class AuditEntry(_message.Message):
    __slots__ = ("entry_id", "merchant_id", "actor", "action", "target", "before", "after", "created_at")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    entry_id: int
    merchant_id: str
    actor: str
    action: str
    target: str
    before: _struct_pb2.Struct
    after: _struct_pb2.Struct
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, entry_id: _Optional[int] = ..., merchant_id: _Optional[str] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., target: _Optional[str] = ..., before: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., after: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAuditEntriesRequest(_message.Message):
    __slots__ = ("merchant_id", "page_size", "page_token")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    page_size: int
    page_token: str
    def __init__(self, merchant_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAuditEntriesResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ConfigChange(_message.Message):
    __slots__ = ("change_id", "merchant_id", "action", "target", "after", "state", "created_by", "created_at", "effective_at", "decided_at", "decided_by", "failure")
    CHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_AT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    change_id: str
    merchant_id: str
    action: str
    target: str
    after: _struct_pb2.Struct
    state: ConfigChangeState
    created_by: str
    created_at: _timestamp_pb2.Timestamp
    effective_at: _timestamp_pb2.Timestamp
    decided_at: _timestamp_pb2.Timestamp
    decided_by: str
    failure: str
    def __init__(self, change_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., action: _Optional[str] = ..., target: _Optional[str] = ..., after: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., state: _Optional[_Union[ConfigChangeState, str]] = ..., created_by: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., effective_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decided_by: _Optional[str] = ..., failure: _Optional[str] = ...) -> None: ...

class ListConfigChangesRequest(_message.Message):
    __slots__ = ("merchant_id", "state")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    state: ConfigChangeState
    def __init__(self, merchant_id: _Optional[str] = ..., state: _Optional[_Union[ConfigChangeState, str]] = ...) -> None: ...

class ListConfigChangesResponse(_message.Message):
    __slots__ = ("changes",)
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[ConfigChange]
    def __init__(self, changes: _Optional[_Iterable[_Union[ConfigChange, _Mapping]]] = ...) -> None: ...

class CancelConfigChangeRequest(_message.Message):
    __slots__ = ("change_id",)
    CHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    change_id: str
    def __init__(self, change_id: _Optional[str] = ...) -> None: ...

class CancelConfigChangeResponse(_message.Message):
    __slots__ = ("change",)
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    change: ConfigChange
    def __init__(self, change: _Optional[_Union[ConfigChange, _Mapping]] = ...) -> None: ...
