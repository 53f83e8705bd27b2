import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TransferObserved(_message.Message):
    __slots__ = ("chain_id", "block_number", "block_hash", "block_timestamp", "tx_hash", "log_index", "from_address", "to_address", "token_address", "amount")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    BLOCK_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    BLOCK_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    FROM_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TO_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    block_number: int
    block_hash: str
    block_timestamp: _timestamp_pb2.Timestamp
    tx_hash: str
    log_index: int
    from_address: str
    to_address: str
    token_address: str
    amount: str
    def __init__(self, chain_id: _Optional[int] = ..., block_number: _Optional[int] = ..., block_hash: _Optional[str] = ..., block_timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tx_hash: _Optional[str] = ..., log_index: _Optional[int] = ..., from_address: _Optional[str] = ..., to_address: _Optional[str] = ..., token_address: _Optional[str] = ..., amount: _Optional[str] = ...) -> None: ...

class HeadObserved(_message.Message):
    __slots__ = ("chain_id", "number", "hash", "parent_hash", "timestamp")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    PARENT_HASH_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    number: int
    hash: str
    parent_hash: str
    timestamp: _timestamp_pb2.Timestamp
    def __init__(self, chain_id: _Optional[int] = ..., number: _Optional[int] = ..., hash: _Optional[str] = ..., parent_hash: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReorgObserved(_message.Message):
    __slots__ = ("chain_id", "common_ancestor_number", "common_ancestor_hash", "orphaned_block_hashes", "new_head_number", "new_head_hash")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    COMMON_ANCESTOR_NUMBER_FIELD_NUMBER: _ClassVar[int]
    COMMON_ANCESTOR_HASH_FIELD_NUMBER: _ClassVar[int]
    ORPHANED_BLOCK_HASHES_FIELD_NUMBER: _ClassVar[int]
    NEW_HEAD_NUMBER_FIELD_NUMBER: _ClassVar[int]
    NEW_HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    common_ancestor_number: int
    common_ancestor_hash: str
    orphaned_block_hashes: _containers.RepeatedScalarFieldContainer[str]
    new_head_number: int
    new_head_hash: str
    def __init__(self, chain_id: _Optional[int] = ..., common_ancestor_number: _Optional[int] = ..., common_ancestor_hash: _Optional[str] = ..., orphaned_block_hashes: _Optional[_Iterable[str]] = ..., new_head_number: _Optional[int] = ..., new_head_hash: _Optional[str] = ...) -> None: ...
