"""HTTP proxies: forwarding in absolute form, and CONNECT tunnels.

``http://`` origins are forwarded (:class:`AsyncForwardHTTPConnection`): the
request goes to the proxy with an absolute-form target, over HTTP/1.1. Other
origins go through a CONNECT tunnel (:class:`AsyncTunnelHTTPConnection`), then
TLS to the origin inside it for ``https``/``wss``, where ALPN may choose
HTTP/2. An ``https://`` proxy is reached over TLS first, so the origin's TLS
runs inside the proxy's (TLS-in-TLS).

Unlike httpcore, ``sni_hostname`` applies to the origin's TLS inside the
tunnel, ``retries``, ``local_address`` and ``socket_options`` apply to the
connection to the proxy, and the CONNECT exchange is part of connecting: it
runs under the ``connect`` timeout (a proxy that never answers is a
:class:`ConnectTimeout`) and is retried like a failed connect.

Trace events: ``connection.connect_tcp`` / ``connection.start_tls`` for the
proxy, ``http11.*`` for the CONNECT exchange, ``proxy.start_tls`` for the
origin's TLS in the tunnel, then the origin connection's ``http11.*`` or
``http2.*``; the same on the ``aio.proxy`` logger at DEBUG.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable
from typing import Any

from sansio.errors import ProxyError
from sansio.headers import HeaderInput, Headers, has_header, normalize_headers
from sansio.proxy import absolute_form, connect_authority
from sansio.urls import URL, Origin

from .backends import SOCKET_OPTION, AsyncNetworkBackend
from .connection import TLS_SCHEMES, AsyncHTTPConnection, _shared_ssl_context
from .exceptions import (
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    WriteError,
    WriteTimeout,
)
from .http11 import AsyncHTTP11Connection
from .models import Request, Response, check_scheme
from .streams import AsyncNetworkStream, discard_stream

__all__ = ["AsyncForwardHTTPConnection", "AsyncTunnelHTTPConnection"]

logger = logging.getLogger(__name__)

# Extensions that concern the origin's request line and TLS, never the proxy's.
_ORIGIN_ONLY_EXTENSIONS = ("target", "sni_hostname")


def merge_headers(defaults: Headers, headers: Headers) -> Headers:
    """``defaults`` not overridden by a same-named field in ``headers``, then
    ``headers`` (a request's own Proxy-Authorization wins, as in httpcore)."""
    kept = [pair for pair in defaults if not has_header(headers, pair[0])]
    return kept + headers


def _proxy_tls_context(
    proxy_ssl_context: ssl.SSLContext | None,
) -> ssl.SSLContext:
    # The proxy is spoken to in HTTP/1.1 only (CONNECT and absolute form).
    if proxy_ssl_context is not None:
        return proxy_ssl_context
    return _shared_ssl_context(("http/1.1",))


class AsyncForwardHTTPConnection(AsyncHTTPConnection):
    """Requests for one ``http://`` origin, forwarded by an HTTP proxy.

    Args:
        proxy_origin: The proxy (``http`` or ``https``).
        remote_origin: The origin whose requests this connection carries.
        proxy_headers: Added to every request (e.g. ``Proxy-Authorization``).
        keepalive_expiry: Seconds an idle connection stays reusable.
        network_backend: Opens streams.
        socket_options: ``setsockopt`` triples for the proxy connection.
        proxy_ssl_context: TLS settings for an ``https`` proxy.
        retries, local_address, uds: As for :class:`AsyncHTTPConnection`,
            applied to the connection to the proxy.
    """

    def __init__(
        self,
        proxy_origin: Origin,
        remote_origin: Origin,
        proxy_headers: HeaderInput | None = None,
        keepalive_expiry: float | None = None,
        network_backend: AsyncNetworkBackend | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
        proxy_ssl_context: ssl.SSLContext | None = None,
        *,
        retries: int = 0,
        local_address: str | None = None,
        uds: str | None = None,
    ) -> None:
        super().__init__(
            origin=proxy_origin,
            ssl_context=_proxy_tls_context(proxy_ssl_context),
            keepalive_expiry=keepalive_expiry,
            http1=True,
            http2=False,
            retries=retries,
            local_address=local_address,
            uds=uds,
            network_backend=network_backend,
            socket_options=socket_options,
        )
        self._remote_origin = remote_origin
        self._proxy_headers = normalize_headers(proxy_headers)

    async def handle_async_request(self, request: Request) -> Response:
        """Send ``request`` to the proxy in absolute form (RFC 9112 §3.2.2).

        Raises:
            RuntimeError: ``request`` is for another origin.
            As :class:`AsyncHTTPConnection` otherwise.
        """
        check_scheme(request.url)
        if not self.can_handle_request(request.url.origin):
            raise RuntimeError(
                f"Attempted to send request to {request.url.origin} on connection "
                f"to {self._remote_origin}"
            )
        proxy = self._origin
        url = URL(
            scheme=proxy.scheme,
            host=proxy.host,
            port=proxy.port,
            target=absolute_form(request.url),
        )
        extensions = {
            key: value
            for key, value in request.extensions.items()
            if key not in _ORIGIN_ONLY_EXTENSIONS
        }
        forwarded = Request(
            request.method,
            url,
            headers=merge_headers(self._proxy_headers, request.headers),
            content=request.stream,
            extensions=extensions,
        )
        return await self._handle(forwarded)

    def _speaks_http2(self, stream: AsyncNetworkStream) -> bool:
        return False  # absolute-form requests are HTTP/1.1 (RFC 9113 §8.3.1)

    def can_handle_request(self, origin: Origin) -> bool:
        """Whether this connection forwards requests for ``origin``."""
        return origin == self._remote_origin


class AsyncTunnelHTTPConnection(AsyncHTTPConnection):
    """A connection to one origin through a CONNECT tunnel (RFC 9110 §9.3.6).

    Args:
        proxy_origin: The proxy (``http``, or ``https`` for TLS to the proxy).
        remote_origin: The origin at the far end of the tunnel.
        ssl_context: TLS settings for the origin; default: certifi, ALPN
            ``h2`` first when ``http2``.
        proxy_ssl_context: TLS settings for an ``https`` proxy.
        proxy_headers: Sent with the CONNECT (e.g. ``Proxy-Authorization``).
        keepalive_expiry, http1, http2, network_backend, socket_options,
        retries, local_address, uds: As for :class:`AsyncHTTPConnection`;
            the socket settings apply to the connection to the proxy.

    A non-2xx answer to the CONNECT raises :class:`ProxyError` with the
    status in its message and in ``.status`` (and ``.headers``, e.g. a 407's
    ``Proxy-Authenticate``); the connection is closed.
    """

    def __init__(
        self,
        proxy_origin: Origin,
        remote_origin: Origin,
        ssl_context: ssl.SSLContext | None = None,
        proxy_ssl_context: ssl.SSLContext | None = None,
        proxy_headers: HeaderInput | None = None,
        keepalive_expiry: float | None = None,
        http1: bool = True,
        http2: bool = False,
        network_backend: AsyncNetworkBackend | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
        *,
        retries: int = 0,
        local_address: str | None = None,
        uds: str | None = None,
    ) -> None:
        super().__init__(
            origin=remote_origin,
            ssl_context=ssl_context,
            keepalive_expiry=keepalive_expiry,
            http1=http1,
            http2=http2,
            retries=retries,
            local_address=local_address,
            uds=uds,
            network_backend=network_backend,
            socket_options=socket_options,
        )
        self._proxy_origin = proxy_origin
        self._proxy_ssl_context = proxy_ssl_context
        self._proxy_headers = normalize_headers(proxy_headers)

    async def _connect_once(
        self, request: Request, timeout: float | None, step: dict[str, Any]
    ) -> AsyncNetworkStream:
        proxy = self._proxy_origin
        stream = await self._open_stream(request, proxy, timeout, step)
        if proxy.scheme == b"https":
            stream = await self._start_tls(
                request,
                stream,
                timeout,
                step,
                ssl_context=_proxy_tls_context(self._proxy_ssl_context),
                server_hostname=proxy.host.decode("ascii"),
            )
        step.clear()
        stream = await self._open_tunnel(request, stream, timeout)
        if self._origin.scheme in TLS_SCHEMES:
            stream = await self._start_tls(
                request,
                stream,
                timeout,
                step,
                ssl_context=self._tls_context(),
                server_hostname=self._server_hostname(request),
                log=logger,
            )
        return stream

    async def _open_tunnel(
        self, request: Request, stream: AsyncNetworkStream, timeout: float | None
    ) -> AsyncNetworkStream:
        """Send CONNECT on ``stream``; return the tunnel once a 2xx arrived."""
        authority = connect_authority(self._origin)
        proxy = self._proxy_origin
        extensions: dict[str, Any] = {"timeout": {"read": timeout, "write": timeout}}
        if "trace" in request.extensions:
            extensions["trace"] = request.extensions["trace"]
        try:
            connect = Request(
                b"CONNECT",
                URL(scheme=proxy.scheme, host=proxy.host, port=proxy.port),
                headers=merge_headers(self._proxy_headers, [(b"Host", authority)]),
                extensions={**extensions, "target": authority},
            )
        except BaseException:
            discard_stream(stream)
            raise
        exchange = AsyncHTTP11Connection(origin=proxy, stream=stream)
        what = f"CONNECT {authority.decode('ascii')} through the proxy"
        try:
            response = await exchange.handle_async_request(connect)
        except (ReadTimeout, WriteTimeout) as exc:
            raise ConnectTimeout(f"{what} timed out after {timeout}s") from exc
        except (ReadError, WriteError) as exc:
            raise ConnectError(f"{what} failed: {exc}") from exc
        except RemoteProtocolError as exc:
            raise ProxyError(f"{what} failed: {exc}") from exc
        if not 200 <= response.status <= 299:
            exchange.abort()
            reason = response.extensions.get("reason_phrase", b"")
            raise ProxyError(
                f"{response.status} {reason.decode('ascii', errors='ignore')}",
                status=response.status,
                headers=response.headers,
            )
        # The exchange object is dropped without closing its response: from
        # here on the stream belongs to the tunnel.
        tunnel: AsyncNetworkStream = response.extensions["network_stream"]
        return tunnel
