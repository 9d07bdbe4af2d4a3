"""HTTP/1.1 over one network stream: drives :class:`sansio.HTTP11State`.

This module moves bytes and awaits; it never parses or frames HTTP. Every state
change happens synchronously before the first ``await`` of any cleanup path, so
a cancellation at any point leaves the connection either reusable (the response
completed) or closed, never half-way.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import AsyncIterable

from sansio.events import (
    DataReceived,
    Event,
    ProtocolSwitched,
    ResponseComplete,
    ResponseReceived,
)
from sansio.http11 import HTTP11ConnectionState, HTTP11State
from sansio.urls import Origin

from .exceptions import ConnectionNotAvailable, ReadError, WriteError
from .interfaces import (
    _ACTIVE,
    _CLOSED,
    _IDLE,
    _NEW,
    PENDING,
    Pending,
    ProtocolConnection,
    ResponseBody,
)
from .models import ByteStream, Request, Response, timeout_for
from .streams import (
    READ_NUM_BYTES,
    AsyncNetworkStream,
    AsyncPrefixedStream,
    discard_stream,
)
from .trace import Trace, tracing

__all__ = ["AsyncHTTP11Connection"]

logger = logging.getLogger(__name__)

# A head goes out in one write with a bytes body up to this size; joining them
# copies the body, so a larger one is written after the head, as it is.
COALESCE_MAX_BODY = 64 * 1024


# The protocol core's states as module constants, as in aio.interfaces.
_CORE_IDLE = HTTP11ConnectionState.IDLE
_CORE_ACTIVE = HTTP11ConnectionState.ACTIVE
_CORE_SWITCHED = HTTP11ConnectionState.SWITCHED


class AsyncHTTP11Connection(ProtocolConnection):
    """One HTTP/1.1 connection over an already-open stream.

    Args:
        origin: The origin this connection serves.
        stream: The open network stream (TCP, Unix or TLS).
        keepalive_expiry: Seconds an idle connection stays reusable, or None.
    """

    protocol_label = "HTTP/1.1"

    def __init__(
        self,
        origin: Origin,
        stream: AsyncNetworkStream,
        keepalive_expiry: float | None = None,
    ) -> None:
        self._origin = origin
        self._network_stream = stream
        self._keepalive_expiry = keepalive_expiry
        self._h11 = HTTP11State()
        self._state = _NEW
        self._request_count = 0
        self._expire_at: float | None = None
        self._events: deque[Event] = deque()

    async def handle_async_request(self, request: Request) -> Response:
        """Send ``request`` and return once the response head has arrived.

        Raises:
            RuntimeError: ``request`` is for another origin.
            ConnectionNotAvailable: A request is already in flight, or the
                connection is closed.
            WriteTimeout, WriteError, ReadTimeout, ReadError: I/O failed.
            RemoteProtocolError: The server broke HTTP/1.1.

        On any failure, cancellation included, the connection is closed.
        """
        if not self._serves(request.url):
            raise RuntimeError(
                f"Attempted to send request to {request.url.origin} on connection "
                f"to {self._origin}"
            )
        stream = request.stream
        if type(stream) is not ByteStream and not hasattr(stream, "__aiter__"):
            raise TypeError(
                "the request body must be bytes or an async iterable of bytes on "
                f"an async connection, not {type(request.stream).__name__}"
            )
        if self._state not in (_NEW, _IDLE):
            raise ConnectionNotAvailable()
        if self._state is _IDLE and self._network_stream.get_extra_info("is_readable"):
            # Bytes (or EOF) on an idle connection answer no request: the server
            # closed it or is out of sync. Never let them pass for our response.
            self._discard()
            raise ConnectionNotAvailable()
        was = (self._state, self._expire_at, self._h11.stream_id)
        self._state = _ACTIVE
        self._request_count += 1
        self._expire_at = None

        traced = tracing(request, logger)
        try:
            if traced:
                head, switched = await self._exchange_traced(request)
            else:
                try:
                    content = self._queue_head(request, traced=False)
                    if content is None:
                        await self._flush(request)
                        await self._send_request_body(request)
                    else:
                        self._queue_content(content)
                        await self._flush(request)
                except WriteError:
                    pass  # as in _exchange_traced
                while (received := self._take_head()) is None:
                    await self._read_events(request)
                head, switched = received
        except BaseException:
            if self._h11.state is _CORE_IDLE and self._h11.stream_id == was[2]:
                # Refused before a byte was queued (a Request whose fields were
                # changed after its checks, a failing trace callback): the
                # connection is as it was.
                self._state, self._expire_at, _ = was
                self._request_count -= 1
            else:
                self._discard()
            if traced:
                async with Trace("response_closed", logger, request):
                    pass
            raise

        network_stream: AsyncNetworkStream = self._network_stream
        if switched is not None:
            network_stream = AsyncPrefixedStream(network_stream, switched.buffered)
        return Response._from_wire(
            head.status,
            head.headers,
            HTTP11ConnectionByteStream(self, request, traced),
            {
                "http_version": head.http_version,
                "reason_phrase": head.reason_phrase,
                "network_stream": network_stream,
            },
        )

    async def _exchange_traced(
        self, request: Request
    ) -> tuple[ResponseReceived, ProtocolSwitched | None]:
        """Send ``request`` and read its response head, each step traced."""
        kwargs = {"request": request}
        try:
            async with Trace("send_request_headers", logger, request, kwargs):
                self._queue_head(request, traced=True)
                await self._flush(request)
            async with Trace("send_request_body", logger, request, kwargs):
                await self._send_request_body(request)
        except WriteError:
            # The server may close its side early and still answer (a 413
            # while we upload, say): read that answer rather than the error.
            pass
        async with Trace("receive_response_headers", logger, request, kwargs) as trace:
            head, switched = await self._receive_response_headers(request)
            trace.return_value = (
                head.http_version,
                head.status,
                head.reason_phrase,
                head.headers,
            )
        return head, switched

    # -- sending -------------------------------------------------------------

    def _queue_head(self, request: Request, *, traced: bool) -> bytes | None:
        """Queue the request head; return the body when it goes out with the
        head, in one write (a small bytes body, or none), else None: the head
        is written first. A traced request keeps the steps apart, as their
        events say.
        """
        self._h11.send_request(request.method, request.url.target, request.headers)
        stream = request.stream
        if type(stream) is ByteStream and not traced:
            content = stream.content
            if len(content) <= COALESCE_MAX_BODY:
                return content
        return None

    async def _send_request_body(self, request: Request) -> None:
        stream = request.stream
        if type(stream) is ByteStream:
            # The common case, without an async generator per request.
            self._queue_content(stream.content)
        else:
            assert isinstance(stream, AsyncIterable)  # checked before sending
            async for chunk in stream:
                self._h11.send_body(chunk)
                await self._flush(request)
            self._h11.end_request()
        await self._flush(request)

    def _queue_content(self, content: bytes) -> None:
        """Queue a bytes body and its end."""
        if content:
            self._h11.send_body(content)
        self._h11.end_request()

    async def _flush(self, request: Request) -> None:
        data = self._h11.data_to_send()
        if data:
            timeout = timeout_for(request, "write")
            await self._network_stream.write(data, timeout=timeout)

    # -- receiving -----------------------------------------------------------

    async def _read_events(self, request: Request) -> None:
        """Read until the protocol core has events for us."""
        events = self._events
        h11 = self._h11
        while not events:
            if h11.state is not _CORE_ACTIVE:
                # Nothing more can arrive for this cycle: an error found after
                # events already handed out, or a caller reading past the end.
                if h11.pending_error is not None:
                    raise h11.pending_error
                if self._state is _CLOSED:
                    raise ReadError(
                        "the connection was closed while the response was read"
                    )
                raise RuntimeError("no response is in progress on this connection")
            timeout = timeout_for(request, "read")
            data = await self._network_stream.read(READ_NUM_BYTES, timeout=timeout)
            if data:
                events.extend(h11.receive_data(data))
            else:
                events.extend(h11.receive_eof())

    async def _receive_response_headers(
        self, request: Request
    ) -> tuple[ResponseReceived, ProtocolSwitched | None]:
        while (received := self._take_head()) is None:
            await self._read_events(request)
        return received

    def _take_head(self) -> tuple[ResponseReceived, ProtocolSwitched | None] | None:
        """The final response head from the events read so far (and the
        switch that follows a 101), or None: read more."""
        events = self._events
        while events:
            event = events.popleft()
            if type(event) is ResponseReceived:
                switched = None
                if events and type(events[0]) is ProtocolSwitched:
                    switched = events.popleft()
                assert switched is None or isinstance(switched, ProtocolSwitched)
                return event, switched
            # Informational 1xx responses are skipped, as httpcore does.
        return None

    # -- lifecycle -----------------------------------------------------------

    def _response_closed(self) -> None:
        """Settle the connection after its response closed: reuse or discard."""
        if self._h11.state is _CORE_IDLE and not self._events:
            self._state = _IDLE
            if self._keepalive_expiry is not None:
                self._expire_at = time.monotonic() + self._keepalive_expiry
        else:
            self._discard()

    def _discard(self) -> None:
        """Close synchronously: safe in any state, at any cancellation point."""
        self._state = _CLOSED
        self._h11.close()
        discard_stream(self._network_stream)

    def abort(self) -> None:
        """Close now, synchronously, whatever state it is in (for the pool)."""
        self._discard()

    async def aclose(self) -> None:
        """Close the connection and its stream."""
        self._state = _CLOSED
        self._h11.close()
        await self._network_stream.aclose()

    # -- the pool's view -----------------------------------------------------

    def response_started(self) -> bool:
        """Whether the last request got any response byte (a failure before
        that may be retried elsewhere: the server did not answer it)."""
        return self._h11.response_started

    def is_available(self) -> bool:
        """Whether a request may be sent now (HTTP/1.1: one at a time)."""
        return self._state is _IDLE

    def has_expired(self) -> bool:
        """Whether keep-alive expired, or the server closed (or wrote to) it
        while it was idle."""
        if self._expire_at is not None and time.monotonic() > self._expire_at:
            return True
        return self._state is _IDLE and bool(
            self._network_stream.get_extra_info("is_readable")
        )


class HTTP11ConnectionByteStream(ResponseBody):
    """The response body: iterate it once, then ``aclose()`` releases the
    connection (for reuse when the response completed, closed otherwise)."""

    _logger = logger

    def __init__(
        self, connection: AsyncHTTP11Connection, request: Request, traced: bool
    ) -> None:
        self._connection = connection
        self._request = request
        self._traced = traced
        self._closed = False
        self._iterated = False

    def _ready_chunk(self) -> bytes | Pending | None:
        """The next piece as far as the queued events tell (usually all of a
        small response's): bytes, None at the end, or PENDING."""
        connection = self._connection
        events = connection._events
        while events:
            event = events.popleft()
            if type(event) is DataReceived:
                return event.data
            if type(event) is ResponseComplete:
                return None
        if connection._h11.state is _CORE_SWITCHED:
            return None  # the bytes after a 101 / CONNECT belong to network_stream
        return PENDING

    async def _next_chunk(self) -> bytes | None:
        """The next piece of the body, or None at its end."""
        while (chunk := self._ready_chunk()) is PENDING:
            await self._connection._read_events(self._request)
        return chunk

    async def _failed(self) -> None:
        # Whatever broke the body (I/O, protocol, cancellation, or the
        # consumer leaving), the connection cannot carry another request.
        await self._close_with(self._connection._discard)

    async def aclose(self) -> None:
        """Release the connection; safe to call more than once."""
        await self._close_with(self._connection._response_closed)
