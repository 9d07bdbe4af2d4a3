"""The request API shared by pools and connections, and the connection contract."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Self

from sansio.headers import HeaderInput, Headers, normalize_headers
from sansio.urls import URL, Origin, enforce_bytes, host_header_value

from .models import Content, Extensions, Request, Response, enforce_url
from .trace import UNTRACED, Trace

__all__ = [
    "AsyncConnectionInterface",
    "AsyncRequestInterface",
    "HTTPConnectionState",
    "ProtocolConnection",
    "ResponseBody",
]


class HTTPConnectionState(enum.IntEnum):
    """A connection's state as httpcore reports it in ``repr()`` and ``info()``."""

    NEW = 0
    ACTIVE = 1
    IDLE = 2
    CLOSED = 3


# The members as module constants (here and in the connections): on Python
# 3.11 every attribute of an Enum class goes through EnumType.__getattr__'s
# hook, several times slower than a global, and they are read on every request.
_NEW, _ACTIVE, _IDLE, _CLOSED = HTTPConnectionState

_NO_NAMES: frozenset[bytes] = frozenset()


def include_request_headers(headers: Headers, *, url: URL, content: Content) -> Headers:
    """Add ``Host`` first, and body framing when ``content`` is given.

    ``Content-Length`` for bytes, ``Transfer-Encoding: chunked`` for an
    iterator, unless the caller set either (httpcore's rule).
    """
    names = {name.lower() for name, _ in headers} if headers else _NO_NAMES
    if b"host" not in names:
        headers = [(b"Host", host_header_value(url)), *headers]
    if (
        content is not None
        and b"content-length" not in names
        and b"transfer-encoding" not in names
    ):
        headers.append(_framing(content))
    return headers


def _framing(content: Content) -> tuple[bytes, bytes]:
    """The framing field for a body of ``content`` (httpcore's rule)."""
    if isinstance(content, bytes):
        return (b"Content-Length", b"%d" % len(content))
    return (b"Transfer-Encoding", b"chunked")


class AsyncRequestInterface:
    """``request()`` and ``stream()`` on top of ``handle_async_request()``."""

    async def request(
        self,
        method: bytes | str,
        url: URL | bytes | str,
        *,
        headers: HeaderInput | None = None,
        content: Content = None,
        extensions: Extensions | None = None,
    ) -> Response:
        """Send a request and read the whole response; the connection is released.

        ``Host`` and body framing headers are added when missing.
        """
        request = self._build(method, url, headers, content, extensions)
        response = await self.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: bytes | str,
        url: URL | bytes | str,
        *,
        headers: HeaderInput | None = None,
        content: Content = None,
        extensions: Extensions | None = None,
    ) -> AsyncIterator[Response]:
        """Send a request and yield the response with its body unread.

        The response is closed when the block exits, however it exits.
        """
        request = self._build(method, url, headers, content, extensions)
        response = await self.handle_async_request(request)
        try:
            yield response
        finally:
            await response.aclose()

    @staticmethod
    def _build(
        method: bytes | str,
        url: URL | bytes | str,
        headers: HeaderInput | None,
        content: Content,
        extensions: Extensions | None,
    ) -> Request:
        url = enforce_url(url, name="url")
        return Request._with_checked_headers(
            enforce_bytes(method, name="method"),
            url,
            include_request_headers(
                normalize_headers(headers), url=url, content=content
            ),
            content,
            extensions,
        )

    async def handle_async_request(self, request: Request) -> Response:
        """Send ``request`` and return the response with its body unread."""
        raise NotImplementedError()  # pragma: no cover

    # The loop this object runs on, kept after the first ``_event_loop()``.
    _loop: asyncio.AbstractEventLoop | None = None

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, asked for again only when the one kept is no
        longer running (a pool may outlive an ``asyncio.run()``; like
        httpcore's, it serves one loop at a time): on Python
        3.11 every ``asyncio.get_running_loop()`` is a getpid() system call
        (checking for a fork), about a microsecond on a VM, which paths taken
        once per request (a stream's or a queued request's wait) should not
        pay."""
        loop = self._loop
        if loop is None or not loop.is_running():
            loop = self._loop = asyncio.get_running_loop()
        return loop


class AsyncConnectionInterface(AsyncRequestInterface):
    """What a pool needs to know about one connection."""

    async def aclose(self) -> None:
        """Close the connection."""
        raise NotImplementedError()  # pragma: no cover

    def info(self) -> str:
        """A one-line state summary (the body of ``repr()``)."""
        raise NotImplementedError()  # pragma: no cover

    def can_handle_request(self, origin: Origin) -> bool:
        """Whether this connection is for ``origin``."""
        raise NotImplementedError()  # pragma: no cover

    def is_available(self) -> bool:
        """Whether a new request may be sent on it now."""
        raise NotImplementedError()  # pragma: no cover

    def has_expired(self) -> bool:
        """Whether it should be closed: keep-alive expired or the server left."""
        raise NotImplementedError()  # pragma: no cover

    def is_idle(self) -> bool:
        """Whether no request is in flight."""
        raise NotImplementedError()  # pragma: no cover

    def is_closed(self) -> bool:
        """Whether it is closed for good."""
        raise NotImplementedError()  # pragma: no cover


class ProtocolConnection(AsyncConnectionInterface):
    """What the HTTP/1.1 and HTTP/2 connections share: their origin, state and
    request count, and the views and reprs httpcore shows for them."""

    # "HTTP/1.1" or "HTTP/2", as info() reports it.
    protocol_label = ""

    _origin: Origin
    _state: HTTPConnectionState
    _request_count: int

    def can_handle_request(self, origin: Origin) -> bool:
        """Whether this connection is for ``origin``."""
        return origin == self._origin

    def _serves(self, url: URL) -> bool:
        """``can_handle_request(url.origin)`` without making the Origin."""
        origin = self._origin
        return (
            url.origin_port == origin.port
            and url.host == origin.host
            and url.scheme == origin.scheme
        )

    def is_idle(self) -> bool:
        """Whether no request is in flight."""
        return self._state is _IDLE

    def is_closed(self) -> bool:
        """Whether it is closed for good."""
        return self._state is _CLOSED

    def info(self) -> str:
        """``'https://example.com:443', HTTP/1.1, IDLE, Request Count: 1``."""
        origin = str(self._origin)
        return (
            f"{origin!r}, {self.protocol_label}, {self._state.name}, "
            f"Request Count: {self._request_count}"
        )

    def __repr__(self) -> str:
        origin = str(self._origin)
        return (
            f"<{self.__class__.__name__} [{origin!r}, {self._state.name}, "
            f"Request Count: {self._request_count}]>"
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.aclose()


class Pending(enum.Enum):
    """What :meth:`ResponseBody._ready_chunk` says when it must read first."""

    PENDING = enum.auto()


PENDING = Pending.PENDING


class ResponseBody:
    """A connection's response body: iterated once, or read whole by
    ``_read_all`` (Response.aread's common case, without an async generator).

    Subclasses set ``_logger`` (its ``receive_response_body`` trace step),
    ``_request`` and ``_traced`` (whether anyone listens to that request's
    steps on ``_logger``, decided once per response: HTTP/1.1 when the request
    is sent, HTTP/2 when its head arrived), and give the next chunk
    (``_next_chunk``, None at the end; ``_ready_chunk`` too, when it can tell
    without reading) and what a failure or cancellation while reading does
    (``_failed``).
    Whichever way the body is closed, it goes through ``_close_with``.
    """

    _logger: logging.Logger
    _request: Request
    _traced: bool
    _closed: bool
    _iterated: bool
    # Called once when the body is closed, after the connection settled: the
    # pool sets it to give the request's place back.
    _on_close: Callable[[], None] | None = None

    async def _close_with(
        self, settle: Callable[[], None], kwargs: dict[str, Any] | None = None
    ) -> None:
        """Close once, however the body ends: ``settle`` the connection, trace
        ``response_closed`` (with ``kwargs``), and give the place back last."""
        if not self._closed:
            self._closed = True
            try:
                settle()
                if self._traced:
                    async with Trace(
                        "response_closed", self._logger, self._request, kwargs
                    ):
                        pass
            finally:
                on_close = self._on_close
                if on_close is not None:
                    self._on_close = None
                    on_close()

    def _next_chunk(self) -> Awaitable[bytes | None]:
        raise NotImplementedError

    def _ready_chunk(self) -> bytes | Pending | None:
        """The next chunk if it is known without reading, else PENDING."""
        return PENDING

    async def _failed(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Close the body and settle its connection; safe to call twice."""
        raise NotImplementedError

    def _trace_kwargs(self) -> dict[str, Any]:
        return {"request": self._request}

    def _trace(self) -> Trace:
        if not self._traced:  # decided once for all of this response's steps
            return UNTRACED
        return Trace(
            "receive_response_body", self._logger, self._request, self._trace_kwargs()
        )

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._start()
        try:
            async with self._trace():
                while (chunk := await self._next_chunk()) is not None:
                    yield chunk
        except BaseException:
            await self._failed()
            raise

    async def _read_all(self) -> bytes:
        """The whole body, as iterating would give it."""
        self._start()
        try:
            if self._traced:
                async with self._trace():
                    return await self._join_chunks()
            return await self._join_chunks()
        except BaseException:
            await self._failed()
            raise

    async def _join_chunks(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            # Chunks already known are taken without a coroutine each.
            chunk = self._ready_chunk()
            if chunk is PENDING:
                chunk = await self._next_chunk()
            if chunk is None:
                return b"".join(chunks)
            chunks.append(chunk)

    def _start(self) -> None:
        if self._iterated or self._closed:
            raise RuntimeError(
                "the response body can be iterated once, before the response closes"
            )
        self._iterated = True
