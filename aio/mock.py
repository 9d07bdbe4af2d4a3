"""In-memory backend for byte-exact tests, with httpcore's mock semantics.

Every connection replays the whole script: ``read()`` returns one list element
per call whatever ``max_bytes`` is, then ``b""``; writes are discarded;
``start_tls`` returns the same stream; after ``aclose()`` reads raise.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

from .backends import SOCKET_OPTION, AsyncNetworkBackend
from .exceptions import ReadError
from .streams import AsyncNetworkStream

__all__ = ["AsyncMockBackend", "AsyncMockStream"]


class _MockSSLObject:
    def __init__(self, http2: bool) -> None:
        self._http2 = http2

    def selected_alpn_protocol(self) -> str:
        return "h2" if self._http2 else "http/1.1"


class AsyncMockStream(AsyncNetworkStream):
    """A stream that plays back ``buffer`` and ignores what is written to it.

    Args:
        buffer: The chunks ``read()`` returns, in order.
        http2: Report ALPN ``h2`` instead of ``http/1.1``.
    """

    def __init__(self, buffer: list[bytes], http2: bool = False) -> None:
        self._buffer = buffer
        self._http2 = http2
        self._closed = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Return the next scripted chunk, or ``b""`` when the script is done.

        Raises:
            ReadError: The stream was closed.
        """
        if self._closed:
            raise ReadError("Connection closed")
        if not self._buffer:
            return b""
        return self._buffer.pop(0)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Discard ``buffer``."""

    async def aclose(self) -> None:
        """Mark the stream closed."""
        self._closed = True

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        """Return this same stream."""
        return self

    def get_extra_info(self, info: str) -> Any:
        """A fake ``ssl_object`` reporting the ALPN protocol; None otherwise."""
        return _MockSSLObject(http2=self._http2) if info == "ssl_object" else None

    def __repr__(self) -> str:
        return "<aio.AsyncMockStream>"


class AsyncMockBackend(AsyncNetworkBackend):
    """A backend whose every connection replays ``buffer`` from the start.

    Args:
        buffer: The chunks each new stream returns from ``read()``.
        http2: Report ALPN ``h2``.
    """

    def __init__(self, buffer: list[bytes], http2: bool = False) -> None:
        self._buffer = buffer
        self._http2 = http2

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        """Return a fresh stream replaying the script."""
        return AsyncMockStream(list(self._buffer), http2=self._http2)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        """Return a fresh stream replaying the script."""
        return AsyncMockStream(list(self._buffer), http2=self._http2)

    async def sleep(self, seconds: float) -> None:
        """Return at once: mock time does not pass."""
