"""``AsyncHTTPConnection``: opens its stream on first use, then speaks HTTP/1.1
or HTTP/2 (by ALPN, or by prior knowledge in clear text).

Connection establishment is traced step by step (``connection.connect_tcp``,
``connection.connect_unix_socket``, ``connection.start_tls``,
``connection.retry``) and retried with exponential backoff when ``retries`` is
set. The caller's ``SSLContext`` is used as given and never modified; when none
is given, one shared context per ALPN offer is built once per process.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import ssl
from collections.abc import Iterable, Iterator
from typing import Any

from sansio.urls import Origin, validate_sni_hostname

from .backends import SOCKET_OPTION, AsyncIOBackend, AsyncNetworkBackend
from .exceptions import (
    ConnectError,
    ConnectionNotAvailable,
    ConnectTimeout,
)
from .http2 import AsyncHTTP2Connection
from .http11 import AsyncHTTP11Connection
from .interfaces import AsyncConnectionInterface
from .models import (
    Request,
    Response,
    check_scheme,
    start_deadline,
    time_left,
    timeout_for,
)
from .streams import AsyncNetworkStream
from .tls import default_ssl_context
from .trace import Trace

__all__ = ["AsyncHTTPConnection"]

logger = logging.getLogger(__name__)

# Schemes whose connections start with a TLS handshake to the origin.
TLS_SCHEMES = frozenset({b"https", b"wss"})

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
        http2: Allow HTTP/2: offered first by ALPN over TLS; with ``http1=False``
            spoken by prior knowledge over clear text.
        retries: Extra connection attempts after a connect failure.
        local_address: Local IP to bind.
        uds: Connect to this Unix socket path instead of TCP.
        network_backend: Opens streams; default :class:`AsyncIOBackend`.
        socket_options: ``setsockopt`` triples applied before connect.

    Attributes:
        established: The HTTP/1.1 or HTTP/2 connection, once connected (None
            before); read-only.
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
        # Set once, when connected. The pool reads the attribute itself on
        # every request (the property costs a call).
        self._established: AsyncConnectionInterface | None = None
        self._connect_failed = False
        self._connect_lock = asyncio.Lock()

    async def handle_async_request(self, request: Request) -> Response:
        """Connect if needed, then send ``request`` on the HTTP connection.

        Raises:
            UnsupportedProtocol: The URL's scheme is not http, https, ws or wss.
            RuntimeError: ``request`` is for another origin.
            ConnectTimeout, ConnectError: The connection could not be made.
            ConnectionNotAvailable: The connection is busy, closed, or failed
                to connect for an earlier request.
            ReadTimeout, ReadError, WriteTimeout, WriteError,
            RemoteProtocolError: As for :class:`AsyncHTTP11Connection`.
        """
        check_scheme(request.url)
        if not self.can_handle_request(request.url.origin):
            raise RuntimeError(
                f"Attempted to send request to {request.url.origin} on connection "
                f"to {self._origin}"
            )
        start_deadline(request, again=False)  # the pool's, if it came through one
        return await self._handle(request)

    async def _handle(self, request: Request) -> Response:
        """Connect if needed, then send ``request`` as it is."""
        if self._established is None:
            # One connect per connection: a second request arriving meanwhile
            # waits here, then finds the connection busy (HTTP/1.1 carries one
            # request at a time) or failed.
            async with self._connect_lock:
                if self._established is None:
                    await self._establish(request)
        assert self._established is not None
        return await self._established.handle_async_request(request)

    async def _establish(self, request: Request) -> None:
        if self._connect_failed:
            raise ConnectionNotAvailable()
        try:
            stream = await self._connect(request)
        except BaseException:
            self._connect_failed = True
            raise
        if self._connect_failed:
            # abort() arrived while we connected (the pool was closed).
            await stream.aclose()
            raise ConnectionNotAvailable()
        connection: AsyncConnectionInterface
        if self._speaks_http2(stream):
            connection = AsyncHTTP2Connection(
                origin=self._origin,
                stream=stream,
                keepalive_expiry=self._keepalive_expiry,
            )
        else:
            connection = AsyncHTTP11Connection(
                origin=self._origin,
                stream=stream,
                keepalive_expiry=self._keepalive_expiry,
            )
        self._established = connection

    @property
    def established(self) -> AsyncConnectionInterface | None:
        """The HTTP/1.1 or HTTP/2 connection, once connected (None before)."""
        return self._established

    def _speaks_http2(self, stream: AsyncNetworkStream) -> bool:
        """Whether to speak HTTP/2 on the stream just established."""
        ssl_object = stream.get_extra_info("ssl_object")
        if ssl_object is not None:
            alpn = ssl_object.selected_alpn_protocol()
            return alpn == "h2" or (not self._http1 and alpn is None)
        # Clear text: HTTP/2 only by prior knowledge (RFC 9113 §3.3).
        return self._http2 and not self._http1

    async def _connect(self, request: Request) -> AsyncNetworkStream:
        """Open the stream (and TLS), retrying every step per ``retries``."""
        retries_left = self._retries
        delays = _backoff_delays(RETRIES_BACKOFF_FACTOR)
        while True:
            step: dict[str, Any] = {}
            timeout = timeout_for(request, "connect")
            try:
                return await self._connect_once(request, timeout, step)
            except (ConnectError, ConnectTimeout):
                if retries_left <= 0:
                    raise
                retries_left -= 1
                delay = next(delays)
                left = time_left(request)  # a backoff never outlasts ``total``
                if left is not None:
                    delay = min(delay, max(left, 0.0))
                async with Trace("retry", logger, request, step):
                    await self._network_backend.sleep(delay)

    async def _connect_once(
        self, request: Request, timeout: float | None, step: dict[str, Any]
    ) -> AsyncNetworkStream:
        """One attempt: the stream to the origin, then TLS for https/wss.

        ``step`` is filled with the current step's arguments, which a
        ``connection.retry`` trace event reports. Proxy connections override
        this to reach the origin through the proxy.
        """
        stream = await self._open_stream(request, self._origin, timeout, step)
        if self._origin.scheme in TLS_SCHEMES:
            stream = await self._start_tls(
                request,
                stream,
                timeout,
                step,
                ssl_context=self._tls_context(),
                server_hostname=self._server_hostname(request),
            )
        return stream

    def _server_hostname(self, request: Request) -> str:
        """The origin's TLS name: ``sni_hostname`` if given, else its host."""
        sni_hostname = request.extensions.get("sni_hostname")
        if sni_hostname is not None:
            return validate_sni_hostname(sni_hostname)
        # A fully qualified host ("example.com.") is verified and sent in the
        # SNI without its dot, as certificates name it (RFC 6066 §3).
        return self._origin.host.decode("ascii").removesuffix(".")

    async def _open_stream(
        self,
        request: Request,
        origin: Origin,
        timeout: float | None,
        step: dict[str, Any],
        log: logging.Logger = logger,
    ) -> AsyncNetworkStream:
        """Connect to ``origin`` (or to ``uds``), traced on ``log``."""
        if self._uds is None:
            step.update(
                host=origin.host.decode("ascii"),
                port=origin.port,
                local_address=self._local_address,
                timeout=timeout,
                socket_options=self._socket_options,
            )
            async with Trace("connect_tcp", log, request, dict(step)) as trace:
                stream = await self._network_backend.connect_tcp(**step)
                trace.return_value = stream
        else:
            step.update(
                path=self._uds, timeout=timeout, socket_options=self._socket_options
            )
            async with Trace("connect_unix_socket", log, request, dict(step)) as trace:
                stream = await self._network_backend.connect_unix_socket(**step)
                trace.return_value = stream
        return stream

    async def _start_tls(
        self,
        request: Request,
        stream: AsyncNetworkStream,
        timeout: float | None,
        step: dict[str, Any],
        *,
        ssl_context: ssl.SSLContext,
        server_hostname: str,
        log: logging.Logger = logger,
    ) -> AsyncNetworkStream:
        """TLS over ``stream``, traced on ``log``; ``stream`` is closed on failure."""
        step.clear()
        step.update(
            ssl_context=ssl_context, server_hostname=server_hostname, timeout=timeout
        )
        try:
            async with Trace("start_tls", log, request, dict(step)) as trace:
                tls_stream = await stream.start_tls(**step)
                trace.return_value = tls_stream
        except BaseException:
            await stream.aclose()
            raise
        return tls_stream

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is not None:
            return self._ssl_context
        # h2 first when allowed (httpcore offers it second, so servers that
        # honour the client's order pick HTTP/1.1). Never for wss: a WebSocket
        # Upgrade needs HTTP/1.1 (RFC 8441's HTTP/2 WebSockets are not spoken).
        http2 = self._http2 and self._origin.scheme != b"wss"
        alpn: tuple[str, ...] = ("h2",) if http2 else ()
        alpn += ("http/1.1",) if self._http1 or not http2 else ()
        return _shared_ssl_context(alpn)

    # -- the pool's view -----------------------------------------------------

    def can_handle_request(self, origin: Origin) -> bool:
        """Whether this connection is for ``origin``."""
        return origin == self._origin

    def is_available(self) -> bool:
        """Whether a request may be sent on it now.

        While connecting, True when HTTP/2 is likely (https with http2, or
        prior knowledge): more requests can then share the connection.
        """
        if self._established is None:
            return (
                self._http2
                and (self._origin.scheme == b"https" or not self._http1)
                and not self._connect_failed
            )
        return self._established.is_available()

    def stream_capacity(self) -> int | None:
        """For HTTP/2, the streams the server allows at once now (0 once it
        takes no new ones); None for HTTP/1.1 or while connecting."""
        capacity = getattr(self._established, "stream_capacity", None)
        return None if capacity is None else int(capacity())

    def response_started(self) -> bool:
        """HTTP/1.1: whether the last request got any response byte."""
        started = getattr(self._established, "response_started", None)
        return started is not None and bool(started())

    def has_expired(self) -> bool:
        """Whether it should be closed (a failed connect counts)."""
        if self._established is None:
            return self._connect_failed
        return self._established.has_expired()

    def is_idle(self) -> bool:
        """Whether no request is in flight."""
        if self._established is None:
            return self._connect_failed
        return self._established.is_idle()

    def is_closed(self) -> bool:
        """Whether it is closed for good."""
        if self._established is None:
            return self._connect_failed
        return self._established.is_closed()

    def info(self) -> str:
        """``CONNECTING``, ``CONNECTION FAILED``, or the HTTP connection's info."""
        if self._established is None:
            return "CONNECTION FAILED" if self._connect_failed else "CONNECTING"
        return self._established.info()

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} [{self.info()}]>"

    def abort(self) -> None:
        """Close now, synchronously, whatever state it is in (for the pool).

        A connection still connecting is marked failed; its connect attempt is
        the requesting task's and ends with that task.
        """
        if self._established is None:
            self._connect_failed = True
            return
        abort = getattr(self._established, "abort", None)
        if abort is not None:
            abort()

    async def aclose(self) -> None:
        """Close the connection."""
        if self._established is not None:
            await self._established.aclose()

    async def __aenter__(self) -> AsyncHTTPConnection:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.aclose()
