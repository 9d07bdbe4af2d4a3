"""httpcore's exception tree, under httpcore's names.

The protocol errors are the sans-IO core's own classes, so nothing is translated
between the layers. Network errors wrap the ``OSError`` / ``ssl.SSLError`` that
caused them (``raise ... from exc``) and say which operation failed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from sansio.errors import LocalProtocolError, ProtocolError, RemoteProtocolError

__all__ = [
    "ConnectError",
    "ConnectTimeout",
    "ConnectionNotAvailable",
    "LocalProtocolError",
    "NetworkError",
    "PoolTimeout",
    "ProtocolError",
    "ProxyError",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "TimeoutException",
    "UnsupportedProtocol",
    "WriteError",
    "WriteTimeout",
    "map_exceptions",
]


class ConnectionNotAvailable(Exception):
    """The connection cannot take this request; the pool tries another."""


class ProxyError(Exception):
    """The proxy refused or failed the tunnel."""


class UnsupportedProtocol(Exception):
    """The URL scheme is not one we speak."""


class TimeoutException(Exception):
    """Base class of the four timeouts."""


class PoolTimeout(TimeoutException):
    """No connection became available within the ``pool`` timeout."""


class ConnectTimeout(TimeoutException):
    """The TCP connect or the TLS handshake exceeded the ``connect`` timeout."""


class ReadTimeout(TimeoutException):
    """No data arrived within the ``read`` timeout."""


class WriteTimeout(TimeoutException):
    """The data could not be sent within the ``write`` timeout."""


class NetworkError(Exception):
    """Base class of the I/O failures."""


class ConnectError(NetworkError):
    """The connection (or its TLS handshake) could not be made."""


class ReadError(NetworkError):
    """Reading from the connection failed."""


class WriteError(NetworkError):
    """Writing to the connection failed."""


ExceptionMapping = Mapping[type[BaseException], type[Exception]]


@contextlib.contextmanager
def map_exceptions(mapping: ExceptionMapping) -> Iterator[None]:
    """Re-raise the first matching exception type in ``mapping`` as its target."""
    try:
        yield
    except Exception as exc:
        for from_type, to_type in mapping.items():
            if isinstance(exc, from_type):
                raise to_type(str(exc) or type(exc).__name__) from exc
        raise
