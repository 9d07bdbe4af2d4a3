"""wireline's sans-IO protocol core: HTTP/1.1 and HTTP/2 client state with no I/O,
no event loop and no clock, reusable by any driver."""

from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    InformationalResponse,
    ProtocolSwitched,
    ResponseComplete,
    ResponseReceived,
    SettingsChanged,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from .headers import (
    HeaderInput,
    Headers,
    has_header,
    normalize_headers,
    validate_method,
    validate_target,
)
from .http2 import (
    DEFAULT_MAX_HEADER_LIST_SIZE,
    ErrorCode,
    HTTP2ConnectionState,
    HTTP2State,
)
from .http11 import (
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_HEADER_COUNT,
    HTTP11ConnectionState,
    HTTP11State,
)
from .urls import (
    DEFAULT_PORTS,
    URL,
    Origin,
    enforce_bytes,
    host_header_value,
    validate_sni_hostname,
)

__all__ = [
    "DEFAULT_MAX_HEADER_BYTES",
    "DEFAULT_MAX_HEADER_COUNT",
    "DEFAULT_MAX_HEADER_LIST_SIZE",
    "DEFAULT_PORTS",
    "URL",
    "ConnectionTerminated",
    "DataReceived",
    "ErrorCode",
    "Event",
    "HTTP2ConnectionState",
    "HTTP2State",
    "HTTP11ConnectionState",
    "HTTP11State",
    "HeaderInput",
    "Headers",
    "InformationalResponse",
    "LocalProtocolError",
    "Origin",
    "ProtocolError",
    "ProtocolSwitched",
    "RemoteProtocolError",
    "ResponseComplete",
    "ResponseReceived",
    "SettingsChanged",
    "StreamReset",
    "TrailersReceived",
    "WindowUpdated",
    "enforce_bytes",
    "has_header",
    "host_header_value",
    "normalize_headers",
    "validate_method",
    "validate_sni_hostname",
    "validate_target",
]
