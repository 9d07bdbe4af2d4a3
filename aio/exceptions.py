"""httpcore's exception tree, under httpcore's names.

The protocol errors are the sans-IO core's own classes, so nothing is translated
between the layers. Network errors wrap the ``OSError`` / ``ssl.SSLError`` that
caused them (``raise ... from exc``) and say which operation failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sansio.errors import (
    LocalProtocolError,
    ProtocolError,
    ProxyError,
    RemoteProtocolError,
)

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
    "connect_errors",
]


class ConnectionNotAvailable(Exception):
    """The connection cannot take this request; the pool tries another."""


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


@contextlib.asynccontextmanager
async def connect_errors(timeout: float | None, what: str) -> AsyncIterator[None]:
    """Run a connection step under ``timeout``; map its failures for the caller.

    The one place where connect-phase errors become ours: our deadline expiring
    is :class:`ConnectTimeout`; ``OSError`` (DNS, refused, reset), ``ssl.SSLError``
    (a subclass), and the ``RuntimeError`` / ``ValueError`` that uvloop and
    ``ssl`` raise for unusable descriptors or names are :class:`ConnectError`.
    A ``TimeoutError`` that is not our deadline's is a ConnectError too.
    """
    try:
        async with asyncio.timeout(timeout) as scope:
            yield
    except TimeoutError as exc:
        if scope.expired():
            raise ConnectTimeout(f"{what} timed out after {timeout}s") from exc
        raise ConnectError(f"{what} failed: {exc}") from exc
    except (OSError, RuntimeError, ValueError) as exc:
        detail = str(exc) or type(exc).__name__
        raise ConnectError(f"{what} failed: {detail}") from exc
