"""Request, Response and body streams, shaped like httpcore's.

``URL`` and ``Origin`` come from the sans-IO core. A ``Request`` is validated when
it is built (method, target, every header, Host, the ``target`` and
``sni_hostname`` extensions), so a request that could inject bytes into the wire
fails before any socket opens.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from typing import Any

from sansio.headers import (
    HeaderInput,
    Headers,
    normalize_headers,
    validate_method,
    validate_target,
)
from sansio.proxy import basic_proxy_authorization, validate_socks5_credentials
from sansio.urls import URL, Origin, enforce_bytes, validate_sni_hostname

from .exceptions import (
    ConnectTimeout,
    PoolTimeout,
    ReadTimeout,
    TimeoutException,
    UnsupportedProtocol,
    WriteTimeout,
)

__all__ = [
    "URL",
    "ByteStream",
    "Origin",
    "Proxy",
    "Request",
    "Response",
    "check_scheme",
    "enforce_url",
]

Extensions = dict[str, Any]


def check_scheme(url: URL) -> None:
    """Refuse URLs whose scheme this transport does not speak (httpcore's wording).

    Raises:
        UnsupportedProtocol: The scheme is missing or not http/https/ws/wss.
    """
    scheme = url.scheme
    if scheme not in _SCHEMES:
        if not scheme:
            raise UnsupportedProtocol(
                "Request URL is missing an 'http://' or 'https://' protocol."
            )
        raise UnsupportedProtocol(
            f"Request URL has an unsupported protocol '{scheme.decode('ascii')}://'."
        )


_SCHEMES = frozenset({b"http", b"https", b"ws", b"wss"})


def enforce_url(value: URL | bytes | str, *, name: str) -> URL:
    """Return ``value`` as a :class:`URL`, with httpcore's TypeError otherwise."""
    if isinstance(value, (bytes, str)):
        return URL(value)
    if isinstance(value, URL):
        return value
    seen = type(value).__name__
    raise TypeError(f"{name} must be a URL, bytes, or str, but got {seen}.")


class ByteStream:
    """A body that is a single ``bytes`` value, iterable sync and async."""

    __slots__ = ("_content",)

    def __init__(self, content: bytes) -> None:
        self._content = content

    @property
    def content(self) -> bytes:
        """The whole body (drivers send it without iterating)."""
        return self._content

    def __iter__(self) -> Iterator[bytes]:
        yield self._content

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._content

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} [{len(self._content)} bytes]>"


Content = bytes | AsyncIterable[bytes] | Iterable[bytes] | None

# The body of every request and response without content: a ByteStream holds
# nothing that changes, so one serves them all.
_EMPTY = ByteStream(b"")


def _enforce_stream(
    content: Content, *, name: str
) -> AsyncIterable[bytes] | Iterable[bytes]:
    if content is None:
        return _EMPTY
    if isinstance(content, bytes):
        return ByteStream(content)
    return content


class Request:
    """An HTTP request.

    Args:
        method: ``b"GET"``, ``"POST"``... (bytes or ASCII str; an RFC 9110 token).
        url: A :class:`URL`, or bytes / str to parse.
        headers: A mapping or a sequence of ``(name, value)`` pairs.
        content: ``bytes``, an async iterable of ``bytes``, or None.
        extensions: ``timeout``, ``trace``, ``sni_hostname``, ``target``.

    Raises:
        TypeError: A value of the wrong type or a non-ASCII str.
        LocalProtocolError: A method, target, header, host or ``sni_hostname``
            that would put CR, LF, NUL or other illegal bytes on the wire.
    """

    __slots__ = ("_deadline", "extensions", "headers", "method", "stream", "url")

    def __init__(
        self,
        method: bytes | str,
        url: URL | bytes | str,
        *,
        headers: HeaderInput | None = None,
        content: Content = None,
        extensions: Extensions | None = None,
    ) -> None:
        self._setup(
            enforce_bytes(method, name="method"),
            enforce_url(url, name="url"),
            normalize_headers(headers),
            content,
            extensions,
        )

    @classmethod
    def _with_checked_headers(
        cls,
        method: bytes,
        url: URL,
        headers: Headers,
        content: Content,
        extensions: Extensions | None,
    ) -> Request:
        """A request whose ``headers`` came from ``normalize_headers()`` (so they
        are not validated twice on the ``request()`` / ``stream()`` path)."""
        request = cls.__new__(cls)
        request._setup(method, url, headers, content, extensions)
        return request

    def _setup(
        self,
        method: bytes,
        url: URL,
        headers: Headers,
        content: Content,
        extensions: Extensions | None,
    ) -> None:
        self.method: bytes = validate_method(method)
        self.url: URL = url
        self.headers: Headers = headers
        self.stream = _enforce_stream(content, name="content")
        self.extensions: Extensions = {} if extensions is None else extensions
        # When the ``total`` timeout runs out (time.monotonic()), once sent.
        self._deadline: float | None = None
        if "target" in self.extensions:
            self.url = URL(
                scheme=self.url.scheme,
                host=self.url.host,
                port=self.url.port,
                target=enforce_bytes(self.extensions["target"], name="target"),
            )
        validate_target(self.url.target)
        sni_hostname = self.extensions.get("sni_hostname")
        if sni_hostname is not None:
            validate_sni_hostname(sni_hostname)

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} [{self.method!r}]>"


def start_deadline(request: Request, *, again: bool) -> None:
    """Fix when the request's ``total`` timeout runs out, counting from now.

    The pool calls this for every request it is given (``again``: a Request
    object sent twice gets a fresh deadline each time); a connection used on
    its own calls it only for a request that has none yet.
    """
    if again or request._deadline is None:
        timeouts = request.extensions.get("timeout")
        total = None if not timeouts else timeouts.get("total")
        request._deadline = None if total is None else time.monotonic() + total


def time_left(request: Request) -> float | None:
    """Seconds before the request's ``total`` deadline (None: it has none)."""
    deadline = request._deadline
    return None if deadline is None else deadline - time.monotonic()


def timeout_for(request: Request, operation: str) -> float | None:
    """The ``timeout`` extension's limit for ``operation`` (``"connect"``,
    ``"read"``, ``"write"``, ``"pool"``), shortened to the time left before
    the request's ``total`` deadline when it has one.

    Raises:
        ConnectTimeout, ReadTimeout, WriteTimeout, PoolTimeout: The total
            deadline has passed (the class is the operation's), so that even
            an operation that would not wait (bytes already buffered) stops.
    """
    timeouts = request.extensions.get("timeout")
    if not timeouts:
        return None
    timeout: float | None = timeouts.get(operation)
    left = time_left(request)
    if left is None:
        return timeout
    if left <= 0:
        raise _TIMEOUTS[operation](
            f"the request's total timeout of {timeouts['total']}s ran out"
        )
    return left if timeout is None or left < timeout else timeout


_TIMEOUTS: dict[str, type[TimeoutException]] = {
    "connect": ConnectTimeout,
    "read": ReadTimeout,
    "write": WriteTimeout,
    "pool": PoolTimeout,
}


def read_whole(stream: AsyncIterable[bytes]) -> Awaitable[bytes]:
    """What to await for all of ``stream``: its own ``_read_all`` when it has
    one (our bodies: no async generator, and no coroutine of ours around it),
    else an iteration of it."""
    read_all: Callable[[], Awaitable[bytes]] | None = getattr(stream, "_read_all", None)
    if read_all is not None:
        return read_all()
    return _join(stream)


async def _join(stream: AsyncIterable[bytes]) -> bytes:
    return b"".join([part async for part in stream])


class Response:
    """An HTTP response whose body is read with ``aread()`` or ``aiter_stream()``.

    Args:
        status: The status code.
        headers: A mapping or a sequence of ``(name, value)`` pairs.
        content: ``bytes``, an async iterable of ``bytes``, or None.
        extensions: ``http_version``, ``reason_phrase``, ``network_stream``
            (and ``stream_id`` on HTTP/2).
    """

    def __init__(
        self,
        status: int,
        *,
        headers: HeaderInput | None = None,
        content: Content = None,
        extensions: Extensions | None = None,
    ) -> None:
        self._setup(
            status,
            normalize_headers(headers),
            _enforce_stream(content, name="content"),
            {} if extensions is None else extensions,
        )

    def _setup(
        self,
        status: int,
        headers: Headers,
        stream: AsyncIterable[bytes] | Iterable[bytes],
        extensions: Extensions,
    ) -> None:
        self.status = status
        self.headers = headers
        self.stream = stream
        self.extensions = extensions
        self._stream_consumed = False
        self._content: bytes | None = None

    @classmethod
    def _from_wire(
        cls,
        status: int,
        headers: Headers,
        stream: AsyncIterable[bytes],
        extensions: Extensions,
    ) -> Response:
        """A response whose head the protocol parser already validated."""
        response = cls.__new__(cls)
        response._setup(status, headers, stream, extensions)
        return response

    @property
    def content(self) -> bytes:
        """The body, once ``aread()`` has read it.

        Raises:
            RuntimeError: The body has not been read yet.
        """
        if self._content is None:
            raise RuntimeError(
                "Attempted to access 'response.content' on a streaming response. "
                "Call 'await response.aread()' first."
            )
        return self._content

    async def aread(self) -> bytes:
        """Read the whole body (once; later calls return the same bytes)."""
        if self._content is None:
            self._check_streamable()
            self._stream_consumed = True
            self._content = await read_whole(self.stream)  # type: ignore[arg-type]
        return self._content

    async def aiter_stream(self) -> AsyncIterator[bytes]:
        """Yield the body as it arrives.

        Raises:
            RuntimeError: The body was already iterated, or is sync-only.
        """
        self._check_streamable()
        self._stream_consumed = True
        async for chunk in self.stream:  # type: ignore[union-attr]
            yield chunk

    def _check_streamable(self) -> None:
        # hasattr, not isinstance(AsyncIterable): the ABC check costs more
        # than the rest of a small response's aread().
        if not hasattr(self.stream, "__aiter__"):
            raise RuntimeError(
                "Attempted to stream a synchronous response using 'async for ... "
                "in response.aiter_stream()'. You should use a sync request instead."
            )
        if self._stream_consumed:
            raise RuntimeError(
                "Attempted to call 'async for ... in response.aiter_stream()' "
                "more than once."
            )

    async def aclose(self) -> None:
        """Release the connection the response was read from."""
        aclose = getattr(self.stream, "aclose", None)
        if aclose is not None:
            await aclose()

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} [{self.status}]>"


_PROXY_SCHEMES = (b"http", b"https", b"socks5", b"socks5h")


class Proxy:
    """A proxy for :class:`~aio.AsyncConnectionPool`'s ``proxy=`` argument.

    Args:
        url: ``http://`` or ``https://`` (an HTTP proxy, reached over TLS for
            https), ``socks5://`` (names resolved here) or ``socks5h://``
            (names resolved by the proxy).
        auth: ``(username, password)``. For HTTP proxies a
            ``Proxy-Authorization: Basic`` header is added in front of
            ``headers``; for SOCKS5 it is RFC 1929 authentication.
        headers: Sent to an HTTP proxy with every forwarded request and CONNECT.
        ssl_context: TLS settings for an ``https://`` proxy itself (the
            origin's TLS uses the pool's ``ssl_context``).

    Raises:
        UnsupportedProtocol: The URL's scheme is none of the four above.
        TypeError: A value of the wrong type or a non-ASCII str.
        LocalProtocolError: Credentials or headers that cannot be sent: CR,
            LF, NUL or other control characters, ``:`` in an HTTP username,
            SOCKS5 credentials outside 1-255 bytes.
    """

    def __init__(
        self,
        url: URL | bytes | str,
        auth: tuple[bytes | str, bytes | str] | None = None,
        headers: HeaderInput | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.url = enforce_url(url, name="url")
        if self.url.scheme not in _PROXY_SCHEMES:
            raise UnsupportedProtocol(
                f"Proxy URL has an unsupported protocol '{self.url.scheme.decode()}"
                "://'; use http://, https://, socks5:// or socks5h://."
            )
        if not self.url.host:
            raise UnsupportedProtocol(f"Proxy URL {bytes(self.url)!r} has no host.")
        self.headers: Headers = normalize_headers(headers)
        self.ssl_context = ssl_context
        self.auth: tuple[bytes, bytes] | None = None
        if auth is not None:
            username = enforce_bytes(auth[0], name="auth")
            password = enforce_bytes(auth[1], name="auth")
            self.auth = (username, password)
            if self.is_socks:
                validate_socks5_credentials(username, password)
            else:
                authorization = basic_proxy_authorization(username, password)
                self.headers = [(b"Proxy-Authorization", authorization), *self.headers]

    @property
    def is_socks(self) -> bool:
        """Whether this is a SOCKS5 proxy."""
        return self.url.scheme in (b"socks5", b"socks5h")

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} [{bytes(self.url).decode('ascii')!r}]>"
