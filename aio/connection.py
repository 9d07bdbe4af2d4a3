"""``AsyncHTTPConnection``: opens its stream on first use, then speaks HTTP/1.1.

Connection establishment is traced step by step (``connection.connect_tcp``,
``connection.connect_unix_socket``, ``connection.start_tls``,
``connection.retry``) and retried with exponential backoff when ``retries`` is
set. The caller's ``SSLContext`` is used as given and never modified; when none
is given, one shared context per ALPN offer is built once per process.
"""

from __future__ import annotations

import functools
import itertools
import logging
import ssl
from collections.abc import Iterable, Iterator
from typing import Any

from sansio.urls import Origin, validate_sni_hostname

from .backends import SOCKET_OPTION, AsyncIOBackend, AsyncNetworkBackend
from .exceptions import ConnectError, ConnectTimeout, UnsupportedProtocol
from .http11 import AsyncHTTP11Connection
from .interfaces import AsyncConnectionInterface
from .models import Request, Response
from .streams import AsyncNetworkStream
from .tls import default_ssl_context
from .trace import Trace

__all__ = ["AsyncHTTPConnection"]

logger = logging.getLogger(__name__)

# httpcore's backoff between connection retries: 0, 0.5, 1, 2, 4... seconds.
RETRIES_BACKOFF_FACTOR = 0.5


def _backoff_delays(factor: float) -> Iterator[float]:
    yield 0.0
    for n in itertools.count():
        yield factor * 2**n


@functools.cache
def _shared_ssl_context(alpn: tuple[str, ...]) -> ssl.SSLContext:
    context = default_ssl_context()
    context.set_alpn_protocols(list(alpn))
    return context


class AsyncHTTPConnection(AsyncConnectionInterface):
    """A connection to one origin, established on its first request.

    Args:
        origin: The origin to connect to.
        ssl_context: Client TLS settings for ``https``/``wss``; default: certifi.
        keepalive_expiry: Seconds an idle connection stays reusable, or None.
        http1: Allow HTTP/1.1.
        http2: Allow HTTP/2 (not available in this version: HTTP/1.1 is used).
        retries: Extra connection attempts after a connect failure.
        local_address: Local IP to bind.
        uds: Connect to this Unix socket path instead of TCP.
        network_backend: Opens streams; default :class:`AsyncIOBackend`.
        socket_options: ``setsockopt`` triples applied before connect.
    """

    def __init__(
        self,
        origin: Origin,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_expiry: float | None = None,
        http1: bool = True,
        http2: bool = False,
        retries: int = 0,
        local_address: str | None = None,
        uds: str | None = None,
        network_backend: AsyncNetworkBackend | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> None:
        self._origin = origin
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._http1 = http1
        self._http2 = http2
        self._retries = retries
        self._local_address = local_address
        self._uds = uds
        self._network_backend = network_backend or AsyncIOBackend()
        self._socket_options = socket_options
        self._connection: AsyncConnectionInterface | None = None
        self._connect_failed = False

    async def handle_async_request(self, request: Request) -> Response:
        """Connect if needed, then send ``request`` on the HTTP connection.

        Raises:
            RuntimeError: ``request`` is for another origin.
            ConnectTimeout, ConnectError: The connection could not be made.
            UnsupportedProtocol: Only HTTP/2 was allowed (not available yet).
            ConnectionNotAvailable: The connection is busy or closed.
            ReadTimeout, ReadError, WriteTimeout, WriteError,
            RemoteProtocolError: As for :class:`AsyncHTTP11Connection`.
        """
        if not self.can_handle_request(request.url.origin):
            raise RuntimeError(
                f"Attempted to send request to {request.url.origin} on connection "
                f"to {self._origin}"
            )
        if self._connection is None:
            if not self._http1:
                raise UnsupportedProtocol(
                    "http1=False asks for HTTP/2 only, which this version of "
                    "wireline does not speak yet"
                )
            try:
                stream = await self._connect(request)
            except BaseException:
                self._connect_failed = True
                raise
            self._connection = AsyncHTTP11Connection(
                origin=self._origin,
                stream=stream,
                keepalive_expiry=self._keepalive_expiry,
            )
        return await self._connection.handle_async_request(request)

    async def _connect(self, request: Request) -> AsyncNetworkStream:
        timeouts = request.extensions.get("timeout", {})
        timeout = timeouts.get("connect")
        sni_hostname = request.extensions.get("sni_hostname")
        retries_left = self._retries
        delays = _backoff_delays(RETRIES_BACKOFF_FACTOR)
        while True:
            kwargs: dict[str, Any]
            try:
                if self._uds is None:
                    kwargs = {
                        "host": self._origin.host.decode("ascii"),
                        "port": self._origin.port,
                        "local_address": self._local_address,
                        "timeout": timeout,
                        "socket_options": self._socket_options,
                    }
                    async with Trace("connect_tcp", logger, request, kwargs) as trace:
                        stream = await self._network_backend.connect_tcp(**kwargs)
                        trace.return_value = stream
                else:
                    kwargs = {
                        "path": self._uds,
                        "timeout": timeout,
                        "socket_options": self._socket_options,
                    }
                    async with Trace(
                        "connect_unix_socket", logger, request, kwargs
                    ) as trace:
                        stream = await self._network_backend.connect_unix_socket(
                            **kwargs
                        )
                        trace.return_value = stream
            except (ConnectError, ConnectTimeout):
                if retries_left <= 0:
                    raise
                retries_left -= 1
                delay = next(delays)
                async with Trace("retry", logger, request, kwargs):
                    await self._network_backend.sleep(delay)
                continue

            if self._origin.scheme in (b"https", b"wss"):
                server_hostname = (
                    validate_sni_hostname(sni_hostname)
                    if sni_hostname is not None
                    else self._origin.host.decode("ascii")
                )
                tls_kwargs = {
                    "ssl_context": self._tls_context(),
                    "server_hostname": server_hostname,
                    "timeout": timeout,
                }
                try:
                    async with Trace("start_tls", logger, request, tls_kwargs) as trace:
                        stream = await stream.start_tls(**tls_kwargs)
                        trace.return_value = stream
                except BaseException:
                    await stream.aclose()
                    raise
            return stream

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is not None:
            return self._ssl_context
        return _shared_ssl_context(("http/1.1",))

    # -- the pool's view -----------------------------------------------------

    def can_handle_request(self, origin: Origin) -> bool:
        """Whether this connection is for ``origin``."""
        return origin == self._origin

    def is_available(self) -> bool:
        """Whether a request may be sent on it now."""
        if self._connection is None:
            return False
        return self._connection.is_available()

    def has_expired(self) -> bool:
        """Whether it should be closed (a failed connect counts)."""
        if self._connection is None:
            return self._connect_failed
        return self._connection.has_expired()

    def is_idle(self) -> bool:
        """Whether no request is in flight."""
        if self._connection is None:
            return self._connect_failed
        return self._connection.is_idle()

    def is_closed(self) -> bool:
        """Whether it is closed for good."""
        if self._connection is None:
            return self._connect_failed
        return self._connection.is_closed()

    def info(self) -> str:
        """``CONNECTING``, ``CONNECTION FAILED``, or the HTTP connection's info."""
        if self._connection is None:
            return "CONNECTION FAILED" if self._connect_failed else "CONNECTING"
        return self._connection.info()

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} [{self.info()}]>"

    async def aclose(self) -> None:
        """Close the connection."""
        if self._connection is not None:
            await self._connection.aclose()

    async def __aenter__(self) -> AsyncHTTPConnection:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.aclose()
