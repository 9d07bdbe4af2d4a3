"""HTTP/2 over one network stream: drives :class:`sansio.HTTP2State`.

One reader task per connection reads the socket and hands each event to the
stream it belongs to (a per-stream queue); requests never read the socket
themselves, so no request waits on another's reads (httpcore's "whoever holds
the read lock reads for everyone"). Writes are serialised under one lock, and
bytes are only ever taken from the core inside it, so nothing queued by one
request can be lost when another is cancelled.

Every per-stream state change is synchronous: a request cancelled at any point
leaves its stream reset (RST_STREAM CANCEL) and removed, its slot free, and the
connection usable by its siblings.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import AsyncIterable, Awaitable
from typing import Any

from sansio.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    InformationalResponse,
    ResponseComplete,
    ResponseReceived,
    SettingsChanged,
    StreamReset,
    WindowUpdated,
)
from sansio.http2 import ErrorCode, HTTP2ConnectionState, HTTP2State
from sansio.urls import Origin

from .exceptions import (
    ConnectionNotAvailable,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    WriteError,
    WriteTimeout,
)
from .interfaces import _ACTIVE, _CLOSED, _IDLE, _NEW, ProtocolConnection, ResponseBody
from .models import ByteStream, Request, Response, timeout_for
from .streams import (
    READ_NUM_BYTES,
    AsyncNetworkStream,
    await_with_timeout,
    discard_stream,
)
from .trace import Trace, tracing

__all__ = ["AsyncHTTP2Connection"]

logger = logging.getLogger(__name__)

# The protocol core's states as module constants, as in aio.interfaces (an Enum
# class attribute is several times slower to read on Python 3.11).
_CORE_OPEN = HTTP2ConnectionState.OPEN
_CORE_DRAINING = HTTP2ConnectionState.DRAINING

# Sends of one request after RST_STREAM(REFUSED_STREAM) before giving up.
MAX_REFUSED_RETRIES = 3


class _ServerDisconnected(RemoteProtocolError):
    """EOF from the server; each open stream gets its own message."""

    def __init__(self) -> None:
        super().__init__("Server disconnected.")


class _Stream:
    """The receiving end of one stream: events in order, then maybe an error."""

    __slots__ = (
        "error",
        "events",
        "finished",
        "loop",
        "request",
        "responded",
        "waiter",
    )

    def __init__(self, request: Request, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.loop = loop
        self.events: deque[Event] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.error: BaseException | None = None
        # The server ended (or reset) its side: stop uploading, nothing follows.
        self.finished = False
        self.responded = False  # a response head arrived

    def put(self, event: Event) -> None:
        self.events.append(event)
        self._wake()

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.finished = True
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self, timeout: float | None) -> Event:
        """The next event; events already received come before any error."""
        while not self.events:
            if self.error is not None:
                raise self.error
            self.waiter = self.loop.create_future()
            try:
                await await_with_timeout(self.waiter, timeout, ReadTimeout, "read")
            finally:
                self.waiter = None
        return self.events.popleft()


class AsyncHTTP2Connection(ProtocolConnection):
    """Many concurrent requests over one HTTP/2 connection.

    Args:
        origin: The origin this connection serves.
        stream: The open network stream (TLS with ALPN h2, or prior knowledge).
        keepalive_expiry: Seconds an idle connection stays reusable, or None.
    """

    protocol_label = "HTTP/2"

    def __init__(
        self,
        origin: Origin,
        stream: AsyncNetworkStream,
        keepalive_expiry: float | None = None,
    ) -> None:
        self._origin = origin
        self._network_stream = stream
        self._keepalive_expiry = keepalive_expiry
        self._h2 = HTTP2State()
        self._state = _NEW
        self._request_count = 0
        self._expire_at: float | None = None
        self._streams: dict[int, _Stream] = {}
        self._write_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        # Set (and replaced) whenever a stream slot may have opened or the
        # connection stopped taking streams; likewise for send windows.
        self._capacity = asyncio.Event()
        self._window = asyncio.Event()
        self._demand = asyncio.Event()
        self._failure: BaseException | None = None
        self._write_failure: WriteError | None = None
        self._slot_waiters = 0

    # -- requests ------------------------------------------------------------

    async def handle_async_request(self, request: Request) -> Response:
        """Open a stream for ``request`` and return once its head has arrived.

        Waits while the server's MAX_CONCURRENT_STREAMS is reached.

        Raises:
            RuntimeError: ``request`` is for another origin.
            ConnectionNotAvailable: The connection is closing (GOAWAY,
                failure): retry on another connection.
            ReadTimeout, WriteTimeout, ReadError, WriteError,
            RemoteProtocolError: I/O or protocol failures, or a stream the
                server refused MAX_REFUSED_RETRIES times (refused streams are
                sent again on this connection until then).

        Cancellation resets the stream; sibling streams carry on.
        """
        if not self.can_handle_request(request.url.origin):
            raise RuntimeError(
                f"Attempted to send request to {request.url.origin} on connection "
                f"to {self._origin}"
            )
        if not isinstance(request.stream, AsyncIterable):
            raise TypeError(
                "the request body must be bytes or an async iterable of bytes on "
                f"an async connection, not {type(request.stream).__name__}"
            )
        if self._state is _NEW:
            await self._send_connection_init(request)
        self._request_count += 1
        attempts = 0
        while True:
            await self._wait_for_stream_slot()
            try:
                return await self._exchange(request)
            except ConnectionNotAvailable as exc:
                # RFC 9113 §8.7: a refused stream, or one above a GOAWAY's last
                # stream id, was not processed: safe to send again, here or
                # (ConnectionNotAvailable) on another connection, but only if
                # the body can be replayed; a streamed one may be consumed.
                if not isinstance(request.stream, ByteStream):
                    raise RemoteProtocolError(
                        "the server did not process the request (GOAWAY or "
                        "REFUSED_STREAM), and its streamed body cannot be sent "
                        "again"
                    ) from exc
                if not isinstance(exc, _Refused):
                    raise
                attempts += 1
                if attempts >= MAX_REFUSED_RETRIES:
                    # Not ConnectionNotAvailable: the pool would requeue it on
                    # the next connection, which a server refusing every
                    # stream refuses too, for ever.
                    raise RemoteProtocolError(
                        f"the server refused the stream {attempts} times "
                        "(REFUSED_STREAM, RFC 9113 §8.7)"
                    ) from exc

    async def _exchange(self, request: Request) -> Response:
        """One attempt: open a stream, send the request, await the head."""
        h2 = self._h2
        has_body = any(
            name.lower() in (b"content-length", b"transfer-encoding")
            for name, _ in request.headers
        )
        url = request.url
        stream_id = h2.send_request(
            request.method,
            url.scheme,
            url.target,
            request.headers,
            end_stream=not has_body,
        )
        stream = self._streams[stream_id] = _Stream(request, self._event_loop())
        self._signal_demand()
        self._state = _ACTIVE
        self._expire_at = None
        kwargs = {"request": request, "stream_id": stream_id}
        try:
            try:
                async with Trace("send_request_headers", logger, request, kwargs):
                    # One turn of the loop first, so the heads that other tasks
                    # queue in this turn go out in the same write: 100
                    # concurrent requests cost one TLS record and one send
                    # instead of 100 (the first flush takes every queued byte,
                    # the others find nothing left to write).
                    await asyncio.sleep(0)
                    await self._flush(request)
                self._start_reader()
                async with Trace("send_request_body", logger, request, kwargs):
                    if has_body:
                        await self._send_body(request, stream_id, stream)
            except WriteError:
                # The server may have closed after a GOAWAY, or after answering
                # early: what it said about this stream is in the bytes still
                # to be read, so read them rather than report the write.
                self._start_reader()
            async with Trace(
                "receive_response_headers", logger, request, kwargs
            ) as trace:
                head = await self._receive_head(request, stream)
                trace.return_value = (head.status, head.headers)
        except BaseException:
            self._release_stream(stream_id)
            async with Trace(
                "response_closed", logger, request, {"stream_id": stream_id}
            ):
                pass
            raise
        return Response._from_wire(
            head.status,
            head.headers,
            HTTP2ConnectionByteStream(self, request, stream_id, stream),
            {
                "http_version": b"HTTP/2",
                "network_stream": self._network_stream,
                "stream_id": stream_id,
            },
        )

    async def _send_connection_init(self, request: Request) -> None:
        self._state = _IDLE
        self._h2.initiate()
        async with Trace("send_connection_init", logger, request, {"request": request}):
            await self._flush(request)

    async def _wait_for_stream_slot(self) -> None:
        h2 = self._h2
        while not h2.can_open_stream or self._write_failure is not None:
            if (
                self._failure is not None
                or self._write_failure is not None
                or h2.state is not _CORE_OPEN
            ):
                raise ConnectionNotAvailable()
            event = self._capacity
            # A waiter needs the reader awake: the SETTINGS that open a slot
            # may arrive while no stream is reading.
            self._slot_waiters += 1
            self._signal_demand()
            try:
                await event.wait()
            finally:
                self._slot_waiters -= 1

    def _signal_demand(self) -> None:
        self._demand.set()
        self._demand = asyncio.Event()

    def _awaiting_events(self) -> bool:
        return self._slot_waiters > 0 or any(
            not stream.finished for stream in self._streams.values()
        )

    def _signal_capacity(self) -> None:
        self._capacity.set()
        self._capacity = asyncio.Event()

    def _signal_window(self) -> None:
        self._window.set()
        self._window = asyncio.Event()

    async def _send_body(
        self, request: Request, stream_id: int, stream: _Stream
    ) -> None:
        body = request.stream
        if type(body) is ByteStream:
            # A bytes body is sent without iterating it (no async generator).
            if body.content and not await self._send_chunk(
                request, stream_id, stream, body.content
            ):
                return
        else:
            assert isinstance(body, AsyncIterable)
            async for chunk in body:
                if not await self._send_chunk(request, stream_id, stream, chunk):
                    return
        if not stream.finished:
            self._h2.end_request(stream_id)
            await self._flush(request)

    async def _send_chunk(
        self, request: Request, stream_id: int, stream: _Stream, chunk: bytes
    ) -> bool:
        """Send ``chunk`` as flow control allows; False once the server has
        answered (or reset) the stream, so the rest need not be sent."""
        h2 = self._h2
        view = memoryview(chunk)
        while view:
            if stream.finished:
                return False
            window = h2.available_window(stream_id)
            if window == 0:
                await self._wait_for_window(timeout_for(request, "write"))
                continue
            h2.send_body(stream_id, bytes(view[:window]))
            view = view[window:]
            await self._flush(request)
        return True

    async def _wait_for_window(self, timeout: float | None) -> None:
        # Woken by WINDOW_UPDATE and SETTINGS, and by anything that ends the
        # wait otherwise: the stream finishing or reset, GOAWAY, failure, close.
        if self._failure is not None:
            raise self._failure
        event = self._window
        try:
            async with asyncio.timeout(timeout) as scope:
                await event.wait()
        except TimeoutError as exc:
            if scope.expired():
                raise WriteTimeout(
                    f"flow-control window stayed closed for {timeout}s"
                ) from exc
            raise

    async def _receive_head(
        self, request: Request, stream: _Stream
    ) -> ResponseReceived:
        while True:
            # Each wait gets what is left of ``total``: 1xx answers cannot
            # keep the request alive past it.
            event = await stream.get(timeout_for(request, "read"))
            if type(event) is ResponseReceived:
                return event
            if type(event) is StreamReset:
                raise _reset_error(event)
            # InformationalResponse (1xx) is skipped, as httpcore does.
            assert type(event) is InformationalResponse, event

    async def _next_chunk(
        self, request: Request, stream_id: int, stream: _Stream
    ) -> bytes | None:
        """The next piece of a stream's body, or None at its end."""
        timeout = timeout_for(request, "read")
        while True:
            event = await stream.get(timeout)
            kind = type(event)
            if kind is DataReceived:
                assert isinstance(event, DataReceived)
                # The application has the bytes now: open the window again.
                self._h2.acknowledge_data(stream_id, len(event.data))
                self._schedule_flush()
                return event.data
            if kind is ResponseComplete:
                return None
            if kind is StreamReset:
                assert isinstance(event, StreamReset)
                raise _reset_error(event)
            # TrailersReceived: httpcore does not surface trailers either.

    def _release_stream(self, stream_id: int) -> None:
        """Forget a stream synchronously, resetting it if still open."""
        stream = self._streams.pop(stream_id, None)
        if stream is not None and self._failure is None:
            # Data the application never read still counts against the
            # connection window: give it back, or the connection starves.
            unread = sum(
                len(event.data)
                for event in stream.events
                if type(event) is DataReceived
            )
            self._h2.acknowledge_data(stream_id, unread)
        if self._failure is None:
            if stream is not None and not _completed(stream):
                self._h2.reset_stream(stream_id, ErrorCode.CANCEL)
            elif stream is not None:
                # Ended on the server's side; if our body did not finish, the
                # stream is half-closed and still occupies a slot.
                self._h2.reset_stream(stream_id, ErrorCode.NO_ERROR)
            self._schedule_flush()
        self._signal_capacity()
        if not self._streams and self._state is _ACTIVE:
            self._state = _IDLE
            if self._keepalive_expiry is not None:
                self._expire_at = time.monotonic() + self._keepalive_expiry

    # -- writing -------------------------------------------------------------

    async def _flush(self, request: Request | None = None) -> None:
        timeout = None
        if request is not None:
            timeout = timeout_for(request, "write")
        lock = self._write_lock
        if lock.locked() and timeout is not None:
            # Waiting for another writer is part of this write's time.
            try:
                async with asyncio.timeout(timeout) as scope:
                    await lock.acquire()
            except TimeoutError as exc:
                if scope.expired():
                    raise WriteTimeout(
                        f"write timed out after {timeout}s waiting for the "
                        "connection's other writers"
                    ) from exc
                raise
        else:
            await lock.acquire()
        try:
            await self._flush_locked(timeout)
        finally:
            lock.release()

    async def _flush_locked(self, timeout: float | None) -> None:
        # Bytes are taken from the core only here, under the lock: a writer
        # cancelled while waiting for the lock leaves its frames queued for the
        # next one, in order.
        if self._write_failure is not None:
            raise WriteError(str(self._write_failure)) from self._write_failure
        data = self._h2.data_to_send()
        if data:
            try:
                await self._network_stream.write(data, timeout)
            except WriteError as exc:
                # No more writes; the reader still drains what arrived and
                # settles every stream when it reaches EOF.
                self._write_failure = exc
                raise

    def _schedule_flush(self) -> None:
        """Flush in the background: for acks and resets, which nobody awaits."""
        if self._flusher is None or self._flusher.done():
            self._flusher = self._event_loop().create_task(self._background_flush())

    async def _background_flush(self) -> None:
        # Loop until nothing is pending: bytes queued while this task was busy
        # writing must not wait for some later flush (a stalled download's
        # WINDOW_UPDATE, say). A failed write is recorded by _flush; the reader
        # settles the streams.
        with contextlib.suppress(WriteError, WriteTimeout):
            while self._h2.has_data_to_send and self._write_failure is None:
                await self._flush()

    # -- reading -------------------------------------------------------------

    def _start_reader(self) -> None:
        # Started only once a request is on the wire: a server (or mock) may
        # close right after its last response, and reading earlier would see
        # that EOF before the request that the response answers.
        if (
            self._reader is None
            and self._failure is None
            and self._state is not _CLOSED
        ):
            self._reader = self._event_loop().create_task(self._read_loop())

    async def _read_loop(self) -> None:
        h2 = self._h2
        try:
            while True:
                # Read only while a stream waits for something. An idle
                # connection is left unread, as httpcore leaves it: frames for
                # streams not yet opened (a scripted server's next answer) and
                # an EOF after the last response stay where they are until a
                # request needs them.
                while not self._awaiting_events():
                    await self._demand.wait()
                data = await self._network_stream.read(READ_NUM_BYTES)
                if not data:
                    h2.receive_eof()
                    raise _ServerDisconnected()
                for event in h2.receive_data(data):
                    await self._dispatch(event)
                self._schedule_flush()
                if h2.pending_error is not None:
                    # Events before the error were dispatched; now fail.
                    raise h2.pending_error
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail_connection(exc)

    async def _dispatch(self, event: Event) -> None:
        kind = type(event)
        if kind is WindowUpdated:
            self._signal_window()
        elif kind is SettingsChanged:
            self._signal_capacity()
            self._signal_window()  # INITIAL_WINDOW_SIZE may have grown
            # Traced on the oldest request in flight, as httpcore traces it on
            # the request whose read brought the frame in.
            stream = next(iter(self._streams.values()), None)
            if stream is not None:
                async with Trace(
                    "receive_remote_settings", logger, stream.request
                ) as trace:
                    trace.return_value = event
        elif kind is ConnectionTerminated:
            assert isinstance(event, ConnectionTerminated)
            for stream_id in event.retry_stream_ids:
                stream = self._streams.get(stream_id)
                if stream is not None:
                    stream.fail(ConnectionNotAvailable())
            self._signal_capacity()
            self._signal_window()
        else:
            stream = self._streams.get(event.stream_id)
            if stream is None:
                if kind is DataReceived:
                    # A stream we abandoned: its bytes still count against
                    # the connection window.
                    assert isinstance(event, DataReceived)
                    self._h2.acknowledge_data(event.stream_id, len(event.data))
                return
            if kind is ResponseReceived:
                stream.responded = True
            elif kind is ResponseComplete or kind is StreamReset:
                stream.finished = True
                self._signal_window()  # an upload waiting for window stops
            stream.put(event)

    def _fail_connection(self, exc: BaseException) -> None:
        """The connection is unusable: fail every stream, close synchronously."""
        if self._failure is None:
            if isinstance(exc, OSError):
                exc = ReadError(str(exc))
            self._failure = exc
        for stream in self._streams.values():
            if isinstance(self._failure, _ServerDisconnected):
                stream.fail(
                    RemoteProtocolError(
                        "Server disconnected before the response was complete."
                        if stream.responded
                        else "Server disconnected without sending a response."
                    )
                )
            else:
                stream.fail(self._failure)
        self._state = _CLOSED
        self._signal_capacity()
        self._signal_window()
        discard_stream(self._network_stream)

    # -- lifecycle -----------------------------------------------------------

    def abort(self) -> None:
        """Close now, synchronously: every stream fails (for the pool)."""
        self._fail_connection(ConnectionNotAvailable())
        for task in (self._reader, self._flusher):
            if task is not None and not task.done():
                task.cancel()

    async def aclose(self) -> None:
        """Say GOAWAY, stop reading and close the stream.

        Streams still open fail with ConnectionNotAvailable; the socket is
        closed even if this is cancelled.
        """
        if self._state is _CLOSED and self._reader is None:
            return
        try:
            if self._failure is None and self._state is not _NEW:
                self._h2.close()
            self._failure = self._failure or ConnectionNotAvailable()
            for stream in self._streams.values():
                stream.fail(self._failure)
            self._state = _CLOSED
            self._signal_capacity()
            self._signal_window()
            tasks = [
                task
                for task in (self._reader, self._flusher)
                if task is not None and not task.done()
            ]
            for task in tasks:
                task.cancel()
            self._reader = None
            data = self._h2.data_to_send()
            if data and not self._write_lock.locked():
                # A polite GOAWAY, best effort: the stream closes either way.
                with contextlib.suppress(Exception):
                    await self._network_stream.write(data, timeout=0.1)
            if tasks:
                await asyncio.wait(tasks, timeout=1.0)
        finally:
            await self._network_stream.aclose()

    # -- the pool's view -----------------------------------------------------

    def is_available(self) -> bool:
        """Whether another stream may be opened now."""
        if (
            self._state is _CLOSED
            or self._failure is not None
            or self._write_failure is not None
        ):
            return False
        if self._state is _NEW:
            return True
        return self._h2.can_open_stream

    def stream_capacity(self) -> int:
        """Streams the server allows at once now; 0 once it takes no new ones."""
        if (
            self._failure is not None
            or self._write_failure is not None
            or self._h2.state is not _CORE_OPEN
        ):
            return 0
        return self._h2.max_concurrent_streams

    def has_expired(self) -> bool:
        """Whether keep-alive expired or the connection failed or was told to go."""
        if self._failure is not None or self._write_failure is not None:
            return True
        if self._h2.state is _CORE_DRAINING and not self._streams:
            return True
        return self._expire_at is not None and time.monotonic() > self._expire_at


def _completed(stream: _Stream) -> bool:
    return stream.finished and stream.error is None


class _Refused(ConnectionNotAvailable):
    """RST_STREAM(REFUSED_STREAM): the server did no work on the stream."""


def _reset_error(event: StreamReset) -> Exception:
    if event.error_code == ErrorCode.REFUSED_STREAM:
        # RFC 9113 §8.7: the server did no work on a refused stream.
        return _Refused()
    if not event.remote:
        return RemoteProtocolError(
            f"malformed response on stream {event.stream_id}: the stream was "
            "reset (PROTOCOL_ERROR, RFC 9113 §8.1.1)"
        )
    try:
        name = ErrorCode(event.error_code).name
    except ValueError:
        name = hex(event.error_code)
    return RemoteProtocolError(f"the server reset stream {event.stream_id} ({name})")


class HTTP2ConnectionByteStream(ResponseBody):
    """One response body; ``aclose()`` resets the stream if it did not end."""

    _logger = logger

    def __init__(
        self,
        connection: AsyncHTTP2Connection,
        request: Request,
        stream_id: int,
        stream: _Stream,
    ) -> None:
        self._connection = connection
        self._request = request
        self._stream_id = stream_id
        self._stream = stream
        self._traced = tracing(request, logger)
        self._closed = False
        self._iterated = False

    def _trace_kwargs(self) -> dict[str, Any]:
        return {"request": self._request, "stream_id": self._stream_id}

    async def _failed(self) -> None:
        await self.aclose()

    def _next_chunk(self) -> Awaitable[bytes | None]:
        return self._connection._next_chunk(
            self._request, self._stream_id, self._stream
        )

    async def aclose(self) -> None:
        """Release the stream (RST_STREAM CANCEL if the body did not end)."""
        await self._close_with(
            functools.partial(self._connection._release_stream, self._stream_id),
            {"stream_id": self._stream_id},
        )
