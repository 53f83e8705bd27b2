import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConnectionMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONNECTION_MODE_UNSPECIFIED: _ClassVar[ConnectionMode]
    CONNECTION_MODE_WEBSOCKET: _ClassVar[ConnectionMode]
    CONNECTION_MODE_HTTP_POLLING: _ClassVar[ConnectionMode]
    CONNECTION_MODE_DISCONNECTED: _ClassVar[ConnectionMode]
    CONNECTION_MODE_STANDBY: _ClassVar[ConnectionMode]
CONNECTION_MODE_UNSPECIFIED: ConnectionMode
CONNECTION_MODE_WEBSOCKET: ConnectionMode
CONNECTION_MODE_HTTP_POLLING: ConnectionMode
CONNECTION_MODE_DISCONNECTED: ConnectionMode
CONNECTION_MODE_STANDBY: ConnectionMode

class ChainStatus(_message.Message):
    __slots__ = ("chain_id", "name", "head", "cursor", "lag", "watched_addresses", "mode", "leader", "last_error", "last_head_at", "internal_transfers", "endpoints")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    WATCHED_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_HEAD_AT_FIELD_NUMBER: _ClassVar[int]
    INTERNAL_TRANSFERS_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    name: str
    head: int
    cursor: int
    lag: int
    watched_addresses: int
    mode: ConnectionMode
    leader: bool
    last_error: str
    last_head_at: _timestamp_pb2.Timestamp
    internal_transfers: str
    endpoints: _containers.RepeatedCompositeFieldContainer[RpcEndpointStatus]
    def __init__(self, chain_id: _Optional[int] = ..., name: _Optional[str] = ..., head: _Optional[int] = ..., cursor: _Optional[int] = ..., lag: _Optional[int] = ..., watched_addresses: _Optional[int] = ..., mode: _Optional[_Union[ConnectionMode, str]] = ..., leader: _Optional[bool] = ..., last_error: _Optional[str] = ..., last_head_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., internal_transfers: _Optional[str] = ..., endpoints: _Optional[_Iterable[_Union[RpcEndpointStatus, _Mapping]]] = ...) -> None: ...

class RpcEndpointStatus(_message.Message):
    __slots__ = ("name", "state", "head", "lag", "latency_ms", "requests", "errors", "last_error", "weight")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: str
    head: int
    lag: int
    latency_ms: float
    requests: int
    errors: int
    last_error: str
    weight: int
    def __init__(self, name: _Optional[str] = ..., state: _Optional[str] = ..., head: _Optional[int] = ..., lag: _Optional[int] = ..., latency_ms: _Optional[float] = ..., requests: _Optional[int] = ..., errors: _Optional[int] = ..., last_error: _Optional[str] = ..., weight: _Optional[int] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ("chain_id",)
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    def __init__(self, chain_id: _Optional[int] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("chains",)
    CHAINS_FIELD_NUMBER: _ClassVar[int]
    chains: _containers.RepeatedCompositeFieldContainer[ChainStatus]
    def __init__(self, chains: _Optional[_Iterable[_Union[ChainStatus, _Mapping]]] = ...) -> None: ...

class RescanRequest(_message.Message):
    __slots__ = ("chain_id", "from_block", "to_block")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_BLOCK_FIELD_NUMBER: _ClassVar[int]
    TO_BLOCK_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    from_block: int
    to_block: int
    def __init__(self, chain_id: _Optional[int] = ..., from_block: _Optional[int] = ..., to_block: _Optional[int] = ...) -> None: ...

class RescanResponse(_message.Message):
    __slots__ = ("blocks_scanned", "transfers_published")
    BLOCKS_SCANNED_FIELD_NUMBER: _ClassVar[int]
    TRANSFERS_PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    blocks_scanned: int
    transfers_published: int
    def __init__(self, blocks_scanned: _Optional[int] = ..., transfers_published: _Optional[int] = ...) -> None: ...
