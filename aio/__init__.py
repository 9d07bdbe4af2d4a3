"""wireline's asyncio driver, with httpcore's async API.

``import aio as httpcore`` works for code written against httpcore's async
surface: the same class names, constructor arguments, exceptions and extensions.
"""

from sansio.urls import URL, Origin

from .api import request, stream
from .backends import SOCKET_OPTION, AsyncIOBackend, AsyncNetworkBackend
from .connection import AsyncHTTPConnection
from .exceptions import (
    ConnectError,
    ConnectionNotAvailable,
    ConnectTimeout,
    LocalProtocolError,
    NetworkError,
    PoolTimeout,
    ProtocolError,
    ProxyError,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    TimeoutException,
    UnsupportedProtocol,
    WriteError,
    WriteTimeout,
)
from .http2 import AsyncHTTP2Connection
from .http11 import AsyncHTTP11Connection
from .interfaces import AsyncConnectionInterface
from .mock import AsyncMockBackend, AsyncMockStream
from .models import ByteStream, Proxy, Request, Response
from .pool import AsyncConnectionPool, AsyncHTTPProxy, AsyncSOCKSProxy
from .proxy import AsyncForwardHTTPConnection, AsyncTunnelHTTPConnection
from .socks import AsyncSocks5Connection
from .streams import AsyncIOStream, AsyncNetworkStream
from .tls import default_ssl_context
from .trace import TraceInfo

__all__ = [
    "SOCKET_OPTION",
    "URL",
    "AsyncConnectionInterface",
    "AsyncConnectionPool",
    "AsyncForwardHTTPConnection",
    "AsyncHTTP2Connection",
    "AsyncHTTP11Connection",
    "AsyncHTTPConnection",
    "AsyncHTTPProxy",
    "AsyncIOBackend",
    "AsyncIOStream",
    "AsyncMockBackend",
    "AsyncMockStream",
    "AsyncNetworkBackend",
    "AsyncNetworkStream",
    "AsyncSOCKSProxy",
    "AsyncSocks5Connection",
    "AsyncTunnelHTTPConnection",
    "ByteStream",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionNotAvailable",
    "LocalProtocolError",
    "NetworkError",
    "Origin",
    "PoolTimeout",
    "ProtocolError",
    "Proxy",
    "ProxyError",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "Request",
    "Response",
    "TimeoutException",
    "TraceInfo",
    "UnsupportedProtocol",
    "WriteError",
    "WriteTimeout",
    "default_ssl_context",
    "request",
    "stream",
]
