import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WatchedAddress(_message.Message):
    __slots__ = ("chain_id", "address", "payment_id", "from_block", "created_at")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_BLOCK_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    address: str
    payment_id: str
    from_block: int
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, chain_id: _Optional[int] = ..., address: _Optional[str] = ..., payment_id: _Optional[str] = ..., from_block: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatchAddressesRequest(_message.Message):
    __slots__ = ("chain_id",)
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    def __init__(self, chain_id: _Optional[int] = ...) -> None: ...

class WatchAddressesResponse(_message.Message):
    __slots__ = ("addresses", "snapshot_complete")
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    addresses: _containers.RepeatedCompositeFieldContainer[WatchedAddress]
    snapshot_complete: bool
    def __init__(self, addresses: _Optional[_Iterable[_Union[WatchedAddress, _Mapping]]] = ..., snapshot_complete: _Optional[bool] = ...) -> None: ...
