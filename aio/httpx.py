"""An httpx transport on wireline: ``AsyncTransport`` for httpx and httpx2.

::

    import httpx  # or: import httpx2 as httpx
    from aio.httpx import AsyncTransport

    async with httpx.AsyncClient(transport=AsyncTransport(http2=True)) as client:
        response = await client.get("https://example.org/")

One class serves both libraries: httpx (0.28) and its maintained fork httpx2
(module ``httpx2``). Each request says which library it belongs to: the
response, its body stream and every exception are built from the library
whose ``Request`` class the request is an instance of, so the same transport
may even be mounted on an httpx client and an httpx2 client at once (and
``httpx2.alias_httpx()`` changes nothing). Importing this module imports
neither library, and having only one of them installed is enough: the
library is found among the modules already imported, since a request of it
exists. ``aio/__init__`` does not import this module.

Both clients only call ``handle_async_request``, ``aclose``, ``__aenter__``
and ``__aexit__`` on a transport, so at run time ``AsyncTransport`` subclasses
neither library's ``AsyncBaseTransport`` (that would import both). For type
checkers it subclasses both, which is what ``AsyncClient(transport=...)`` is
annotated with; ``isinstance(t, httpx.AsyncBaseTransport)`` is False at run
time.

Constructor options, as httpx's ``AsyncHTTPTransport`` takes them, mapped onto
:class:`aio.AsyncConnectionPool`:

``verify``, ``cert``, ``trust_env``
    The ``ssl_context`` is built as httpx builds it: ``True`` trusts certifi's
    bundle (or ``$SSL_CERT_FILE`` / ``$SSL_CERT_DIR`` when ``trust_env``),
    ``False`` is ``CERT_NONE`` without hostname checks, a path (``str`` or
    ``os.PathLike``: a CA file, or a directory) trusts what it names, with no
    ``DeprecationWarning``; ``cert`` (a file with both, or ``(certfile,
    keyfile[, password])``) is loaded into that context. Contexts built here
    offer ALPN ``h2`` (with ``http2``) then ``http/1.1`` (with ``http1``). An
    ``ssl.SSLContext`` passed as ``verify`` is used as it is: like all of aio
    (and unlike httpcore) its ALPN list is left alone, so with ``http2=True``
    call ``ctx.set_alpn_protocols(["h2", "http/1.1"])`` yourself; ``cert`` is
    loaded into it, as httpx does. httpx2 trusts the system store by default:
    pass ``verify=ctx`` for that. Environment proxies are the client's
    business (``trust_env`` on the client; a client with ``transport=`` ignores
    them, as with httpx's own transport).
``http1``, ``http2``, ``uds``, ``local_address``, ``retries``, ``socket_options``
    Passed to the pool. With a proxy, ``retries``, ``local_address``,
    ``socket_options`` (and ``uds``) apply to the connection to the proxy;
    httpx drops some of them with a proxy.
``limits``
    An ``httpx.Limits`` / ``httpx2.Limits`` (or any object with its three
    attributes): ``max_connections``, ``max_keepalive_connections`` and
    ``keepalive_expiry``; default httpx's 100 / 20 / 5.0.
``proxy``
    A URL (``str``, ``httpx.URL``) or an ``httpx.Proxy`` / ``httpx2.Proxy``
    (or an :class:`aio.Proxy`): ``http://``, ``https://`` (TLS to the proxy,
    with the proxy's ``ssl_context``), ``socks5://`` or ``socks5h://``;
    credentials in the URL or in ``auth`` become ``Proxy-Authorization``
    (HTTP) or RFC 1929 authentication (SOCKS5), ``headers`` go to an HTTP
    proxy. A proxy URL with another scheme raises ``ValueError``, as httpx.

Requests become :class:`aio.Request` with the raw URL parts
(``url.raw_path`` keeps the percent-encoding of path and query), the raw
header pairs and the extensions as they are (``timeout``, ``trace``,
``sni_hostname``, ``target``). A body already in memory (``content=bytes``,
``json=``, ``data=``) is sent as ``bytes``, so an idempotent request that
meets a dead kept-alive connection is retried by the pool; anything else
streams from the request's async iterator. Responses keep aio's extensions
(``http_version``, ``reason_phrase``, ``network_stream``, ``stream_id`` on
HTTP/2) and are never decoded here: httpx decodes ``Content-Encoding`` itself.
``network_stream`` (after a ``101`` or a 2xx ``CONNECT``, see the README) is
aio's stream behind a thin wrapper raising httpcore's exceptions for httpx
and httpcore2's for httpx2, which is what its users catch (httpx2's
``client.websocket()`` works over this transport).

Every aio exception becomes the library's exception of the same name
(``ConnectTimeout``, ``ReadTimeout``, ``WriteTimeout``, ``PoolTimeout``,
``ConnectError``, ``ReadError``, ``WriteError``, ``ProxyError``,
``UnsupportedProtocol``, ``LocalProtocolError``, ``RemoteProtocolError`` and
their bases), raised ``from`` the original with its message and with
``request`` set, whether it happens while sending, while reading the body or
when closing it. aio's ``ProxyError.status`` / ``.headers`` stay on
``__cause__``. Anything else (``RuntimeError`` from a closed pool,
cancellation) passes through unchanged.
"""

from __future__ import annotations

import functools
import importlib
import os
import ssl
import sys
import urllib.parse
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, Self, cast, overload

import certifi

from .backends import SOCKET_OPTION
from .exceptions import (
    ConnectError,
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
from .models import URL, Proxy, Request
from .pool import AsyncConnectionPool
from .streams import AsyncNetworkStream

if TYPE_CHECKING:
    import httpx
    import httpx2

    # What both clients' ``transport=`` is annotated with; see the module
    # docstring. The two bases disagree on their own request types, which
    # AsyncTransport reconciles with overloads.
    class _TransportBase(  # type: ignore[misc]
        httpx.AsyncBaseTransport, httpx2.AsyncBaseTransport
    ):
        pass

    URLTypes = str | httpx.URL | httpx2.URL
    ProxyTypes = URLTypes | httpx.Proxy | httpx2.Proxy | Proxy
    LimitsTypes = httpx.Limits | httpx2.Limits
    HTTPXRequest = httpx.Request | httpx2.Request
    HTTPXResponse = httpx.Response | httpx2.Response
else:
    _TransportBase = object

__all__ = ["AsyncTransport"]

CertTypes = str | tuple[str, str] | tuple[str, str, str]
VerifyTypes = ssl.SSLContext | str | os.PathLike[str] | bool


class _Limits(NamedTuple):
    max_connections: int | None
    max_keepalive_connections: int | None
    keepalive_expiry: float | None


#: httpx's ``DEFAULT_LIMITS`` (with ``Limits``' default keepalive_expiry).
DEFAULT_LIMITS = _Limits(
    max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0
)

#: aio exception -> the name of the library's exception for it. Looked up
#: along the raised exception's MRO, so the most specific class wins.
_ERROR_NAMES: dict[type[BaseException], str] = {
    TimeoutException: "TimeoutException",
    ConnectTimeout: "ConnectTimeout",
    ReadTimeout: "ReadTimeout",
    WriteTimeout: "WriteTimeout",
    PoolTimeout: "PoolTimeout",
    NetworkError: "NetworkError",
    ConnectError: "ConnectError",
    ReadError: "ReadError",
    WriteError: "WriteError",
    ProxyError: "ProxyError",
    UnsupportedProtocol: "UnsupportedProtocol",
    ProtocolError: "ProtocolError",
    LocalProtocolError: "LocalProtocolError",
    RemoteProtocolError: "RemoteProtocolError",
}

_PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")

#: What a module must have to be taken for httpx or a fork of it.
_LIBRARY_NAMES = (
    "AsyncBaseTransport",
    "AsyncByteStream",
    "ByteStream",
    "Response",
    *_ERROR_NAMES.values(),
)


#: httpx-compatible library -> the httpcore it is built on. Code that uses
#: the ``network_stream`` extension (httpx2's websockets, httpx-ws) catches
#: that module's exceptions, so the stream raises those.
_CORE_MODULES = {"httpx": "httpcore", "httpx2": "httpcore2"}


class _Library:
    """What the adapter takes from one httpx-compatible library module."""

    __slots__ = (
        "_core_errors",
        "byte_stream",
        "errors",
        "module",
        "response",
        "response_stream",
    )

    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self._core_errors: dict[type[BaseException], Callable[..., Exception]] | None
        self._core_errors = None
        self.response: type[Any] = module.Response
        self.byte_stream: type[Any] = module.ByteStream
        self.errors: dict[type[BaseException], Callable[..., Exception]] = {
            aio_error: getattr(module, name) for aio_error, name in _ERROR_NAMES.items()
        }
        # The client asserts ``isinstance(response.stream, AsyncByteStream)``
        # of its own library, so each library gets its own subclass.
        self.response_stream: type[_ResponseStream] = type(
            f"{module.__name__}ResponseStream",
            (_ResponseStream, module.AsyncByteStream),
            {"__module__": __name__, "__doc__": _ResponseStream.__doc__},
        )

    def map_error(self, exc: Exception, request: Any) -> Exception | None:
        """The library's counterpart of ``exc`` (request set), or None."""
        for cls in type(exc).__mro__:
            target = self.errors.get(cls)
            if target is not None:
                return target(str(exc), request=request)
        return None

    def map_core_error(self, exc: Exception) -> Exception | None:
        """httpcore's (httpcore2's) counterpart of ``exc``, or None.

        The module is imported on the first error only: the library depends
        on it, but a request that never fails never needs it.
        """
        if self._core_errors is None:
            self._core_errors = {}
            name = _CORE_MODULES.get(self.module.__name__)
            try:
                core = importlib.import_module(name) if name else None
            except ImportError:  # pragma: no cover - a broken install
                core = None
            if core is not None:
                for aio_error, error_name in _ERROR_NAMES.items():
                    target = getattr(core, error_name, None)
                    if target is not None:
                        self._core_errors[aio_error] = target
        for cls in type(exc).__mro__:
            target = self._core_errors.get(cls)
            if target is not None:
                return target(str(exc))
        return None


#: Request class -> its library, filled on first use of each class.
_LIBRARIES: dict[type, _Library] = {}


def _library_of(request: object) -> _Library:
    """The library ``request`` belongs to: the module whose ``Request`` it is.

    Raises:
        TypeError: ``request`` is no httpx-compatible ``Request``.
    """
    request_type = type(request)
    library = _LIBRARIES.get(request_type)
    if library is not None:
        return library
    for cls in request_type.__mro__:
        module = sys.modules.get(cls.__module__.partition(".")[0])
        if (
            module is not None
            and getattr(module, "Request", None) is cls
            and all(hasattr(module, name) for name in _LIBRARY_NAMES)
        ):
            library = _LIBRARIES[request_type] = _Library(module)
            return library
    raise TypeError(
        "AsyncTransport handles httpx.Request and httpx2.Request objects, "
        f"not {request_type.__module__}.{request_type.__qualname__}"
    )


class _ResponseStream:
    """A response body from aio, with aio's errors raised as the library's."""

    def __init__(
        self,
        stream: AsyncIterable[bytes],
        library: _Library,
        request: Any,
    ) -> None:
        self._stream = stream
        self._library = library
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        iterator = aiter(self._stream)
        try:
            try:
                async for chunk in iterator:
                    yield chunk
            finally:
                # At once when the consumer stops early and closes us.
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    await aclose()
        except Exception as exc:
            mapped = self._library.map_error(exc, self._request)
            if mapped is None:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        """Close the body and release its connection to the pool."""
        aclose = getattr(self._stream, "aclose", None)
        if aclose is None:
            return
        try:
            await aclose()
        except Exception as exc:
            mapped = self._library.map_error(exc, self._request)
            if mapped is None:
                raise
            raise mapped from exc


class _NetworkStream(AsyncNetworkStream):
    """The ``network_stream`` extension: aio's stream, raising httpcore's
    (httpcore2's) exceptions as the library's own transport would."""

    __slots__ = ("_library", "_stream")

    def __init__(self, stream: AsyncNetworkStream, library: _Library) -> None:
        self._stream = stream
        self._library = library

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Return up to ``max_bytes`` bytes, or ``b""`` at EOF."""
        try:
            return await self._stream.read(max_bytes, timeout)
        except Exception as exc:
            self._raise(exc)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Send all of ``buffer``."""
        try:
            await self._stream.write(buffer, timeout)
        except Exception as exc:
            self._raise(exc)

    async def aclose(self) -> None:
        """Close the stream."""
        try:
            await self._stream.aclose()
        except Exception as exc:
            self._raise(exc)

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        """Run a TLS handshake over this stream and return the TLS stream."""
        try:
            stream = await self._stream.start_tls(ssl_context, server_hostname, timeout)
        except Exception as exc:
            self._raise(exc)
        return _NetworkStream(stream, self._library)

    def get_extra_info(self, info: str) -> Any:
        """Transport details: ``ssl_object``, ``server_addr``, ``socket``..."""
        return self._stream.get_extra_info(info)

    def _raise(self, exc: Exception) -> NoReturn:
        mapped = self._library.map_core_error(exc)
        if mapped is None:
            raise exc
        raise mapped from exc

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} {self._stream!r}>"


class AsyncTransport(_TransportBase):
    """An ``httpx`` / ``httpx2`` async transport on :class:`aio.AsyncConnectionPool`.

    Args:
        verify: ``True`` (certifi, or ``$SSL_CERT_FILE`` / ``$SSL_CERT_DIR``
            with ``trust_env``), ``False`` (no verification), a CA file or
            directory path, or an ``ssl.SSLContext`` used as it is.
        cert: Client certificate: a file with certificate and key, or
            ``(certfile, keyfile)`` / ``(certfile, keyfile, password)``.
        trust_env: Read ``$SSL_CERT_FILE`` / ``$SSL_CERT_DIR`` for ``verify=True``.
        http1: Allow HTTP/1.1.
        http2: Allow HTTP/2 (ALPN ``h2`` first; prior knowledge in clear text
            with ``http1=False``).
        limits: ``httpx.Limits`` or ``httpx2.Limits``; default 100 connections,
            20 kept alive, 5 s keep-alive expiry.
        proxy: Proxy URL or ``Proxy`` (http, https, socks5, socks5h).
        uds: Connect every request to this Unix socket.
        local_address: Local IP to bind.
        retries: Extra connection attempts after a connect failure.
        socket_options: ``setsockopt`` triples applied before connect.

    Raises:
        ValueError: A proxy URL whose scheme is not one of the four.
        ssl.SSLError, OSError: ``verify`` or ``cert`` files that cannot be loaded.
    """

    def __init__(
        self,
        verify: VerifyTypes = True,
        cert: CertTypes | None = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: LimitsTypes | _Limits = DEFAULT_LIMITS,
        proxy: ProxyTypes | None = None,
        uds: str | None = None,
        local_address: str | None = None,
        retries: int = 0,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> None:
        self._pool = AsyncConnectionPool(
            ssl_context=_ssl_context(
                verify, cert, trust_env=trust_env, http1=http1, http2=http2
            ),
            proxy=_proxy(proxy),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=http1,
            http2=http2,
            retries=retries,
            local_address=local_address,
            uds=uds,
            socket_options=socket_options,
        )

    @property
    def pool(self) -> AsyncConnectionPool:
        """The connection pool the requests go through."""
        return self._pool

    @overload
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response: ...

    @overload
    async def handle_async_request(
        self, request: httpx2.Request
    ) -> httpx2.Response: ...

    async def handle_async_request(self, request: HTTPXRequest) -> HTTPXResponse:
        """Send ``request``; return its response once the head arrived.

        The response's library (httpx or httpx2) is the request's. Its body
        streams from the connection; close it (the client does) to release
        the connection.

        Raises:
            TypeError: ``request`` is neither an httpx nor an httpx2 Request.
            httpx.TransportError: Any of aio's errors, as the request's
                library's exception of the same name (``ConnectError``,
                ``ReadTimeout``, ``RemoteProtocolError``...).
        """
        library = _library_of(request)
        try:
            response = await self._pool.handle_async_request(
                _aio_request(request, library)
            )
        except Exception as exc:
            mapped = library.map_error(exc, request)
            if mapped is None:
                raise
            raise mapped from exc
        stream = response.stream
        assert isinstance(stream, AsyncIterable)
        extensions = response.extensions
        network_stream = extensions.get("network_stream")
        if network_stream is not None:
            extensions = dict(extensions)
            extensions["network_stream"] = _NetworkStream(network_stream, library)
        return cast(
            "HTTPXResponse",
            library.response(
                status_code=response.status,
                headers=response.headers,
                stream=library.response_stream(stream, library, request),
                extensions=extensions,
                request=request,
            ),
        )

    async def aclose(self) -> None:
        """Close every connection of the pool."""
        await self._pool.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} {self._pool!r}>"


def _aio_request(request: HTTPXRequest, library: _Library) -> Request:
    """``request`` as an :class:`aio.Request` (errors raised as aio's)."""
    url = request.url
    stream: Any = request.stream
    # In memory (content=, json=, data=): bytes, which the pool may replay.
    content = b"".join(stream) if isinstance(stream, library.byte_stream) else stream
    return Request(
        request.method,
        URL(
            scheme=url.raw_scheme,
            host=url.raw_host,
            port=url.port,
            target=url.raw_path,
        ),
        headers=request.headers.raw,
        content=content,
        extensions=request.extensions,
    )


def _ssl_context(
    verify: VerifyTypes,
    cert: CertTypes | None,
    *,
    trust_env: bool,
    http1: bool,
    http2: bool,
) -> ssl.SSLContext:
    """The pool's ``ssl_context``, built as httpx's ``create_ssl_context``."""
    alpn = (("h2",) if http2 else ()) + (("http/1.1",) if http1 else ())
    if isinstance(verify, ssl.SSLContext):
        context = verify  # the caller's: no ALPN set on it
    elif verify is True:
        if trust_env and os.environ.get("SSL_CERT_FILE"):
            context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
        elif trust_env and os.environ.get("SSL_CERT_DIR"):
            context = ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
        elif cert is None:
            return _certifi_context(alpn)  # shared: built once per ALPN list
        else:
            context = ssl.create_default_context(cafile=certifi.where())
        context.set_alpn_protocols(list(alpn))
    elif verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(list(alpn))
    elif isinstance(verify, str | os.PathLike):
        if os.path.isdir(verify):
            context = ssl.create_default_context(capath=verify)
        else:
            context = ssl.create_default_context(cafile=verify)
        context.set_alpn_protocols(list(alpn))
    else:
        raise TypeError(
            "verify must be a bool, a CA file or directory path, or an "
            f"ssl.SSLContext, not {type(verify).__name__}"
        )
    if cert:
        if isinstance(cert, str):
            context.load_cert_chain(cert)
        else:
            context.load_cert_chain(*cert)
    return context


@functools.cache
def _certifi_context(alpn: tuple[str, ...]) -> ssl.SSLContext:
    # Parsing the bundle costs tens of milliseconds; transports share it.
    context = ssl.create_default_context(cafile=certifi.where())
    context.set_alpn_protocols(list(alpn))
    return context


def _proxy(proxy: ProxyTypes | None) -> Proxy | None:
    """``proxy`` as an :class:`aio.Proxy`.

    Raises:
        ValueError: The URL's scheme is not http, https, socks5 or socks5h.
    """
    if proxy is None or isinstance(proxy, Proxy):
        return proxy
    if isinstance(proxy, str):
        return _proxy_from_url(proxy)
    if not hasattr(proxy, "raw_auth"):  # an httpx.URL / httpx2.URL
        return _proxy_from_url(str(proxy))
    # An httpx.Proxy / httpx2.Proxy: credentials already out of its URL.
    proxy_object = cast("httpx.Proxy", proxy)
    url = proxy_object.url
    _check_proxy_scheme(url.scheme)
    return Proxy(
        URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=b"/"),
        auth=proxy_object.raw_auth,
        headers=proxy_object.headers.raw,
        ssl_context=proxy_object.ssl_context,
    )


def _proxy_from_url(value: str) -> Proxy:
    """A proxy URL, its ``user:password@`` (percent-decoded) as credentials."""
    parts = urllib.parse.urlsplit(value)
    _check_proxy_scheme(parts.scheme.lower())
    auth = None
    if parts.username or parts.password:
        auth = (
            urllib.parse.unquote(parts.username or ""),
            urllib.parse.unquote(parts.password or ""),
        )
    url = URL(value)  # host and port only: the userinfo is dropped
    scheme = parts.scheme.lower().encode("ascii")
    return Proxy(URL(scheme=scheme, host=url.host, port=url.port), auth=auth)


def _check_proxy_scheme(scheme: str) -> None:
    # The URL itself is not quoted: it may hold a password.
    if scheme not in _PROXY_SCHEMES:
        raise ValueError(
            f"Unknown scheme for proxy URL: {scheme!r}; use http://, https://, "
            "socks5:// or socks5h://"
        )
