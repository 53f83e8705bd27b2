from paymesh.ledger.v1 import api_key_service_pb2 as _api_key_service_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetWebhookTargetRequest(_message.Message):
    __slots__ = ("merchant_id",)
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    def __init__(self, merchant_id: _Optional[str] = ...) -> None: ...

class GetWebhookTargetResponse(_message.Message):
    __slots__ = ("webhook_url", "webhook_secret", "merchant_active")
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    webhook_url: str
    webhook_secret: str
    merchant_active: bool
    def __init__(self, webhook_url: _Optional[str] = ..., webhook_secret: _Optional[str] = ..., merchant_active: _Optional[bool] = ...) -> None: ...

class AuthenticateApiKeyRequest(_message.Message):
    __slots__ = ("api_key",)
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    api_key: str
    def __init__(self, api_key: _Optional[str] = ...) -> None: ...

class AuthenticateApiKeyResponse(_message.Message):
    __slots__ = ("merchant_id", "active", "scopes")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    active: bool
    scopes: _containers.RepeatedScalarFieldContainer[_api_key_service_pb2.ApiKeyScope]
    def __init__(self, merchant_id: _Optional[str] = ..., active: _Optional[bool] = ..., scopes: _Optional[_Iterable[_Union[_api_key_service_pb2.ApiKeyScope, str]]] = ...) -> None: ...

class GetWebhookEndpointsRequest(_message.Message):
    __slots__ = ("merchant_id",)
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    def __init__(self, merchant_id: _Optional[str] = ...) -> None: ...

class WebhookEndpointTarget(_message.Message):
    __slots__ = ("endpoint_id", "url", "event_types", "enabled", "secrets")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    url: str
    event_types: _containers.RepeatedScalarFieldContainer[str]
    enabled: bool
    secrets: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, endpoint_id: _Optional[str] = ..., url: _Optional[str] = ..., event_types: _Optional[_Iterable[str]] = ..., enabled: _Optional[bool] = ..., secrets: _Optional[_Iterable[str]] = ...) -> None: ...

class GetWebhookEndpointsResponse(_message.Message):
    __slots__ = ("merchant_active", "endpoints")
    MERCHANT_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    merchant_active: bool
    endpoints: _containers.RepeatedCompositeFieldContainer[WebhookEndpointTarget]
    def __init__(self, merchant_active: _Optional[bool] = ..., endpoints: _Optional[_Iterable[_Union[WebhookEndpointTarget, _Mapping]]] = ...) -> None: ...
