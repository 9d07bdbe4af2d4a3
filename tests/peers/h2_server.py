"""An in-process HTTP/2 server (h2, server side) whose behaviour a test scripts.

It runs on the test's own event loop, so it works unchanged under asyncio and
uvloop, over TLS (ALPN ``h2``) or cleartext with prior knowledge::

    async with h2_server(tls=server_ssl_context) as server:
        ...  # connect a client to server.url
    assert server.requests == [(1, [(b":method", b"GET"), ...])]

Every request runs ``await handler(ctl, request)`` in its own task, where ``ctl``
(an :class:`H2Control`) scripts the connection the request came on: respond (in
several DATA frames, with delays, with trailers), GOAWAY, RST_STREAM, SETTINGS,
PING, PUSH_PROMISE, withholding WINDOW_UPDATE. The default handler reads the
request body and answers 200 with ``content-length`` and ``b"hello " + path``.
Handler factories (``respond_with``, ``hold_until``) and ``big_headers`` cover the
common scripts in one line.

Every h2 call is followed by writing ``conn.data_to_send()``. Received DATA is
acknowledged (WINDOW_UPDATE) at once unless ``withhold_window`` is set. A client
going away (RST_STREAM or a lost connection) raises :class:`StreamGone` in the
handler, which ends it quietly; any other handler exception resets its stream
with INTERNAL_ERROR and is re-raised when the context manager exits. On exit the
listener closes, every transport is aborted and every handler task is cancelled
and awaited, so nothing leaks. A client that breaks the protocol gets h2's GOAWAY
and is recorded in ``.protocol_errors`` (not raised: tests assert on it).

Only 127.0.0.1, ::1 and Unix sockets are ever bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import cast

import h2.events
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame, PushPromiseFrame

Header = tuple[bytes, bytes]
HeaderLike = tuple[bytes | str, bytes | str]
Handler = Callable[["H2Control", "H2Request"], Awaitable[None]]

LOOPBACK_HOSTS = ("127.0.0.1", "::1")
WAIT_TIMEOUT = 5.0  # wait_for / wait_ack give up after this many seconds
MAX_HEADER_LIST_SIZE = H2Connection.DEFAULT_MAX_HEADER_LIST_SIZE  # h2's 64 KiB


class StreamGone(Exception):
    """The client reset the stream or the connection is gone."""


def _b(value: bytes | str) -> bytes:
    """Encode ``value`` as UTF-8 unless it already is bytes."""
    return value if isinstance(value, bytes) else value.encode()


def _headers(headers: Iterable[HeaderLike]) -> list[Header]:
    """Normalise header pairs to bytes."""
    return [(_b(name), _b(value)) for name, value in headers]


def big_headers(total: int = 200_000, *, value_size: int = 1000) -> list[Header]:
    """Return ``x-big-N: aaa...`` headers adding up to about ``total`` bytes."""
    count = max(1, total // value_size)
    return [(b"x-big-%d" % i, b"a" * value_size) for i in range(count)]


@dataclass(eq=False)
class H2Request:
    """One request stream as the server saw it; updated as frames arrive."""

    connection: int  # index into H2Server.controls (accept order)
    stream_id: int
    headers: list[Header]
    body: bytearray = field(default_factory=bytearray)
    trailers: list[Header] | None = None
    ended: bool = False  # END_STREAM received
    reset_code: int | None = None  # RST_STREAM received from the client
    _done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def header(self, name: bytes | str) -> bytes | None:
        """The first value of header ``name`` (pseudo-headers too), or None."""
        wanted = _b(name).lower()
        return next((v for n, v in self.headers if n == wanted), None)

    @property
    def method(self) -> bytes:
        """``:method``."""
        return self.header(b":method") or b""

    @property
    def path(self) -> bytes:
        """``:path``."""
        return self.header(b":path") or b""

    async def read_body(self) -> bytes:
        """Wait for END_STREAM and return the body; StreamGone if reset or lost."""
        await self._done.wait()
        if not self.ended:
            raise StreamGone(self.stream_id)
        return bytes(self.body)


async def default_handler(ctl: H2Control, request: H2Request) -> None:
    """Read the body, answer 200 ``hello <path>`` with content-length."""
    await request.read_body()
    await ctl.respond(request.stream_id, body=b"hello " + request.path)


def respond_with(
    status: int = 200,
    headers: Sequence[HeaderLike] = (),
    body: bytes | Sequence[bytes] = b"",
    *,
    delay: float = 0.0,
    trailers: Sequence[HeaderLike] | None = None,
    content_length: bool = True,
) -> Handler:
    """A handler that reads the body and sends this response (see ``respond``)."""

    async def handler(ctl: H2Control, request: H2Request) -> None:
        await request.read_body()
        await ctl.respond(
            request.stream_id,
            status,
            headers,
            body,
            delay=delay,
            trailers=trailers,
            content_length=content_length,
        )

    return handler


def hold_until(event: asyncio.Event, then: Handler = default_handler) -> Handler:
    """A handler that waits for ``event`` (set by the test), then runs ``then``."""

    async def handler(ctl: H2Control, request: H2Request) -> None:
        await event.wait()
        await then(ctl, request)

    return handler


@dataclass(eq=False)
class H2Server:
    """A running scripted HTTP/2 server: where it listens and what it saw."""

    host: str
    port: int
    uds_path: str | None
    tls: bool
    requests: list[tuple[int, list[Header]]] = field(default_factory=list)
    streams: list[H2Request] = field(default_factory=list)  # same order, richer
    resets: list[tuple[int, int]] = field(default_factory=list)
    goaways: list[tuple[int, int]] = field(default_factory=list)  # (last_id, code)
    client_settings: list[dict[int, int]] = field(default_factory=list)
    protocol_errors: list[tuple[int, ProtocolError]] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)
    controls: list[H2Control] = field(default_factory=list)
    _activity: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def connections(self) -> int:
        """How many connections have been accepted (TLS: handshake completed)."""
        return len(self.controls)

    @property
    def url(self) -> str:
        """Origin URL, e.g. ``https://127.0.0.1:1234`` or ``http://[::1]:1234``."""
        scheme = "https" if self.tls else "http"
        if self.uds_path is not None:
            return f"{scheme}://localhost"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, re-checking after any server activity.

        Gives up with ``TimeoutError`` after ``WAIT_TIMEOUT`` seconds.
        """
        async with asyncio.timeout(WAIT_TIMEOUT):
            while not predicate():
                self._activity.clear()
                await self._activity.wait()


class H2Control:
    """Scripts one server connection; every method flushes what h2 queued.

    ``conn`` is the raw ``H2Connection`` for anything not wrapped here (call
    ``flush()`` after using it). Setting ``withhold_window`` stops acknowledging
    received DATA (the client's send windows shrink to zero); ``release_window``
    acknowledges everything withheld so far and stops withholding.
    """

    def __init__(
        self,
        server: H2Server,
        index: int,
        transport: asyncio.Transport,
        conn: H2Connection,
        *,
        withhold_window: bool,
    ) -> None:
        self.server = server
        self.index = index
        self.transport = transport
        self.conn = conn
        self.withhold_window = withhold_window
        self.withheld: list[tuple[int, int]] = []  # (stream_id, bytes) not acked
        self.streams: dict[int, H2Request] = {}
        self.ping_acks: list[bytes] = []
        self.settings_acks = 0
        self.closed = False  # transport lost (or closed by us)
        ssl_object = transport.get_extra_info("ssl_object")
        self.alpn: str | None = (
            ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        )
        self._changed = asyncio.Event()

    # -- plumbing ------------------------------------------------------------

    def flush(self) -> None:
        """Write whatever h2 has queued."""
        data = self.conn.data_to_send()
        if data and not self.closed:
            self.transport.write(data)

    def _write_raw(self, data: bytes) -> None:
        """Flush h2's queue, then write hand-built frame bytes after it."""
        self.flush()
        if not self.closed:
            self.transport.write(data)

    def _notify(self) -> None:
        self._changed.set()
        self.server._activity.set()

    async def wait(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds (checked on any event on this
        connection); StreamGone if the connection goes, TimeoutError after 5 s."""
        async with asyncio.timeout(WAIT_TIMEOUT):
            while not predicate():
                if self.closed:
                    raise StreamGone(0)
                self._changed.clear()
                await self._changed.wait()

    def _check_open(self, stream_id: int) -> None:
        request = self.streams.get(stream_id)
        if self.closed or (request is not None and request.reset_code is not None):
            raise StreamGone(stream_id)

    # -- responses -----------------------------------------------------------

    async def send_headers(
        self,
        stream_id: int,
        status: int = 200,
        headers: Sequence[HeaderLike] = (),
        *,
        end_stream: bool = False,
    ) -> None:
        """Send a HEADERS block ``:status`` + ``headers`` (1xx allowed)."""
        self._check_open(stream_id)
        block = [(b":status", str(status).encode()), *_headers(headers)]
        try:
            self.conn.send_headers(stream_id, block, end_stream=end_stream)
        except StreamClosedError as exc:
            raise StreamGone(stream_id) from exc
        self.flush()

    async def send_data(
        self, stream_id: int, data: bytes, *, end_stream: bool = False
    ) -> None:
        """Send ``data``, waiting for the client's flow-control window as needed."""
        view = memoryview(data)
        while True:
            self._check_open(stream_id)
            try:
                if not view:
                    if end_stream:
                        self.conn.send_data(stream_id, b"", end_stream=True)
                        self.flush()
                    return
                window = self.conn.local_flow_control_window(stream_id)
                if window <= 0:
                    self._changed.clear()
                    await self._changed.wait()
                    continue
                size = min(window, self.conn.max_outbound_frame_size, len(view))
                chunk, view = view[:size], view[size:]
                last = end_stream and not view
                self.conn.send_data(stream_id, bytes(chunk), end_stream=last)
            except StreamClosedError as exc:
                raise StreamGone(stream_id) from exc
            self.flush()
            if not view:
                return

    async def send_trailers(
        self, stream_id: int, trailers: Sequence[HeaderLike]
    ) -> None:
        """Send a trailing HEADERS block with END_STREAM."""
        self._check_open(stream_id)
        try:
            self.conn.send_headers(stream_id, _headers(trailers), end_stream=True)
        except StreamClosedError as exc:
            raise StreamGone(stream_id) from exc
        self.flush()

    async def respond(
        self,
        stream_id: int,
        status: int = 200,
        headers: Sequence[HeaderLike] = (),
        body: bytes | Sequence[bytes] = b"",
        *,
        delay: float = 0.0,
        trailers: Sequence[HeaderLike] | None = None,
        content_length: bool = True,
    ) -> None:
        """Send a whole response.

        ``body`` as a list of chunks sends one DATA frame per chunk (bigger ones
        are split by frame size/window), sleeping ``delay`` seconds before each.
        ``content-length`` (the total) is added unless ``headers`` has one or
        ``content_length`` is False; ``trailers`` end the stream.
        """
        chunks = [body] if isinstance(body, bytes | bytearray) else list(body)
        chunks = [bytes(chunk) for chunk in chunks if chunk]
        all_headers = _headers(headers)
        if content_length and all(name != b"content-length" for name, _ in all_headers):
            total = sum(len(chunk) for chunk in chunks)
            all_headers.append((b"content-length", str(total).encode()))
        await self.send_headers(
            stream_id,
            status,
            all_headers,
            end_stream=not chunks and trailers is None,
        )
        for i, chunk in enumerate(chunks):
            if delay:
                await asyncio.sleep(delay)
            last = i == len(chunks) - 1 and trailers is None
            await self.send_data(stream_id, chunk, end_stream=last)
        if trailers is not None:
            await self.send_trailers(stream_id, trailers)

    async def reset(self, stream_id: int, error_code: int = ErrorCodes.CANCEL) -> None:
        """Send RST_STREAM (default CANCEL)."""
        self._check_open(stream_id)
        try:
            self.conn.reset_stream(stream_id, error_code)
        except StreamClosedError as exc:
            raise StreamGone(stream_id) from exc
        self.flush()

    # -- connection-level frames -------------------------------------------

    async def goaway(
        self,
        error_code: int = ErrorCodes.NO_ERROR,
        *,
        last_stream_id: int | None = None,
        debug_data: bytes = b"",
        close: bool = False,
    ) -> None:
        """Send GOAWAY; ``last_stream_id`` defaults to the highest stream seen.

        The frame is built by hand, so h2 still lets this connection finish the
        streams at or below ``last_stream_id`` (GOAWAY then respond); new
        client streams are still accepted and recorded (tests may assert there
        are none). ``close`` closes the transport right after it.
        """
        frame = GoAwayFrame(0)
        frame.last_stream_id = (
            self.conn.highest_inbound_stream_id
            if last_stream_id is None
            else last_stream_id
        )
        frame.error_code = int(error_code)
        frame.additional_data = debug_data
        self._write_raw(frame.serialize())
        if close:
            self.close()

    async def update_settings(
        self, settings: Mapping[SettingCodes | int, int], *, wait_ack: bool = True
    ) -> None:
        """Send SETTINGS; with ``wait_ack`` wait (5 s) until the client ACKs.

        h2 enforces a new local value (e.g. MAX_CONCURRENT_STREAMS) on
        incoming frames only once it is acknowledged.
        """
        acks = self.settings_acks
        self.conn.update_settings(dict(settings))
        self.flush()
        if wait_ack:
            await self.wait(lambda: self.settings_acks > acks)

    async def ping(self, data: bytes = b"wl-ping!", *, wait_ack: bool = True) -> None:
        """Send PING (8 bytes); with ``wait_ack`` wait (5 s) for the client's ACK."""
        self.conn.ping(data)
        self.flush()
        if wait_ack:
            await self.wait(lambda: data in self.ping_acks)

    def _push_headers(self, stream_id: int, path: bytes | str) -> list[Header]:
        parent = self.streams.get(stream_id)
        authority = (parent.header(b":authority") if parent else None) or b"localhost"
        return [
            (b":method", b"GET"),
            (b":scheme", b"https" if self.server.tls else b"http"),
            (b":authority", authority),
            (b":path", _b(path)),
        ]

    async def push(
        self,
        stream_id: int,
        path: bytes | str,
        *,
        status: int = 200,
        headers: Sequence[HeaderLike] = (),
        body: bytes = b"",
        respond: bool = True,
    ) -> int:
        """Send PUSH_PROMISE for ``GET path`` on ``stream_id``; return the promised
        stream id, and (``respond``) answer on it. h2 refuses (ProtocolError) if
        the client disabled push: use ``push_promise_raw`` to send it anyway."""
        self._check_open(stream_id)
        promised = self.conn.get_next_available_stream_id()
        self.conn.push_stream(stream_id, promised, self._push_headers(stream_id, path))
        self.flush()
        if respond:
            await self.respond(promised, status, headers, body)
        return promised

    async def push_promise_raw(self, stream_id: int, path: bytes | str) -> int:
        """Send a hand-built PUSH_PROMISE that h2 does not track (even when the
        client set ENABLE_PUSH=0, a protocol violation); return its stream id."""
        promised = max(self.conn.highest_outbound_stream_id, 0) + 2
        self.conn.highest_outbound_stream_id = promised
        frame = PushPromiseFrame(stream_id)
        frame.promised_stream_id = promised
        frame.data = self.conn.encoder.encode(self._push_headers(stream_id, path))
        frame.flags.add("END_HEADERS")
        self._write_raw(frame.serialize())
        return promised

    def release_window(self) -> None:
        """Acknowledge all withheld DATA (WINDOW_UPDATE) and stop withholding."""
        self.withhold_window = False
        withheld, self.withheld = self.withheld, []
        for stream_id, size in withheld:
            self.conn.acknowledge_received_data(size, stream_id)
        self.flush()

    def close(self) -> None:
        """Close the transport after writing what is buffered."""
        self.flush()
        self.closed = True
        self.transport.close()
        self._notify()

    def abort(self) -> None:
        """Drop the connection at once (TCP RST-ish; no TLS close_notify)."""
        self.closed = True
        self.transport.abort()
        self._notify()


class _H2Protocol(asyncio.Protocol):
    """Feeds bytes to h2, records events, starts one handler task per request."""

    def __init__(self, runner: _Runner) -> None:
        self.runner = runner
        self.ctl: H2Control | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        runner = self.runner
        runner.protocols.add(self)
        transport = cast(asyncio.Transport, transport)
        if runner.closing:  # arrived (or finished TLS) after shutdown began
            transport.abort()
            return
        conn = H2Connection(
            config=H2Configuration(client_side=False, header_encoding=None)
        )
        state = runner.state
        ctl = H2Control(
            state,
            len(state.controls),
            transport,
            conn,
            withhold_window=runner.withhold_window,
        )
        self.ctl = ctl
        state.controls.append(ctl)
        # The preface SETTINGS goes out via update_settings (not the frame
        # initiate_connection builds), so h2 applies the values only once the
        # client ACKs them (RFC 9113 6.5.3): a client that sends DATA under the
        # default 65535 window before it has seen INITIAL_WINDOW_SIZE is fine.
        conn.initiate_connection()
        conn.clear_outbound_data_buffer()
        conn.update_settings(
            {
                SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
                **runner.settings,
            }
        )
        ctl.flush()
        ctl._notify()

    def data_received(self, data: bytes) -> None:
        ctl = self.ctl
        if ctl is None or ctl.closed:
            return
        try:
            events = ctl.conn.receive_data(data)
        except ProtocolError as exc:
            self.runner.state.protocol_errors.append((ctl.index, exc))
            ctl.close()  # flushes h2's GOAWAY first
            return
        for event in events:
            self._dispatch(ctl, event)
        ctl.flush()
        ctl._notify()

    def _dispatch(self, ctl: H2Control, event: h2.events.Event) -> None:
        state = self.runner.state
        if isinstance(event, h2.events.RequestReceived):
            assert event.stream_id is not None
            headers = list(cast(list[Header], event.headers or []))
            new_request = H2Request(ctl.index, event.stream_id, headers)
            ctl.streams[event.stream_id] = new_request
            state.requests.append((event.stream_id, headers))
            state.streams.append(new_request)
            task = asyncio.get_running_loop().create_task(
                self._handle(ctl, new_request)
            )
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif isinstance(event, h2.events.DataReceived):
            assert event.stream_id is not None
            assert event.data is not None
            size = event.flow_controlled_length or 0
            if (request := ctl.streams.get(event.stream_id)) is not None:
                request.body += event.data
            if ctl.withhold_window:
                ctl.withheld.append((event.stream_id, size))
            elif size:
                ctl.conn.acknowledge_received_data(size, event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            if (request := ctl.streams.get(event.stream_id or 0)) is not None:
                request.trailers = list(cast(list[Header], event.headers or []))
        elif isinstance(event, h2.events.StreamEnded):
            if (request := ctl.streams.get(event.stream_id or 0)) is not None:
                request.ended = True
                request._done.set()
        elif isinstance(event, h2.events.StreamReset):
            assert event.stream_id is not None
            code = int(event.error_code or 0)
            if event.remote_reset:
                state.resets.append((event.stream_id, code))
            if (request := ctl.streams.get(event.stream_id)) is not None:
                request.reset_code = code
                request._done.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            state.goaways.append(
                (event.last_stream_id or 0, int(event.error_code or 0))
            )
        elif isinstance(event, h2.events.PingAckReceived):
            ctl.ping_acks.append(bytes(event.ping_data or b""))
        elif isinstance(event, h2.events.SettingsAcknowledged):
            ctl.settings_acks += 1
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            changed = {int(k): v.new_value for k, v in event.changed_settings.items()}
            state.client_settings.append(changed)

    async def _handle(self, ctl: H2Control, request: H2Request) -> None:
        """Run the handler for one request; record (not raise) its failure."""
        try:
            await self.runner.handler(ctl, request)
        except (StreamGone, ConnectionError):
            pass
        except Exception as exc:
            state = self.runner.state
            state.errors.append(exc)
            state._activity.set()
            with contextlib.suppress(Exception):  # don't leave the client hanging
                await ctl.reset(request.stream_id, ErrorCodes.INTERNAL_ERROR)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ctl is not None:
            self.ctl.closed = True
            for request in self.ctl.streams.values():
                request._done.set()
            self.ctl._notify()
        for task in self.tasks:
            task.cancel()
        if not self.lost.done():
            self.lost.set_result(None)


@dataclass(eq=False)
class _Runner:
    """Server-wide configuration and bookkeeping shared by the protocols."""

    state: H2Server
    handler: Handler
    settings: dict[SettingCodes | int, int]
    withhold_window: bool
    closing: bool = False
    protocols: set[_H2Protocol] = field(default_factory=set)


@contextlib.asynccontextmanager
async def h2_server(
    handler: Handler | None = None,
    *,
    tls: ssl.SSLContext | None = None,
    settings: Mapping[SettingCodes | int, int] | None = None,
    initial_window: int | None = None,
    withhold_window: bool = False,
    alpn: Sequence[str] | None = ("h2",),
    host: str = "127.0.0.1",
    uds_path: str | os.PathLike[str] | None = None,
) -> AsyncIterator[H2Server]:
    """Serve HTTP/2 until exit, running ``await handler(ctl, request)`` per request.

    ``tls`` is a server context (its ALPN list is set to ``alpn`` unless that is
    None); without it the server speaks cleartext h2 with prior knowledge.
    ``settings`` go in the server's first SETTINGS frame; ``initial_window`` is
    shorthand for SETTINGS_INITIAL_WINDOW_SIZE. ``withhold_window`` starts every
    connection withholding WINDOW_UPDATE (see ``H2Control.release_window``).
    Handler exceptions are re-raised on exit.
    """
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"h2_server only binds {LOOPBACK_HOSTS}, not {host!r}")
    all_settings: dict[SettingCodes | int, int] = dict(settings or {})
    if initial_window is not None:
        all_settings[SettingCodes.INITIAL_WINDOW_SIZE] = initial_window
    if tls is not None and alpn is not None:
        tls.set_alpn_protocols(list(alpn))
    state = H2Server(host=host, port=0, uds_path=None, tls=tls is not None)
    runner = _Runner(state, handler or default_handler, all_settings, withhold_window)
    loop = asyncio.get_running_loop()

    server: asyncio.Server | None = None
    try:
        if uds_path is not None:
            state.uds_path = os.fspath(uds_path)
            state.host = "localhost"
            server = await loop.create_unix_server(
                lambda: _H2Protocol(runner), state.uds_path, ssl=tls
            )
        else:
            server = await loop.create_server(
                lambda: _H2Protocol(runner), host, 0, ssl=tls
            )
            state.port = server.sockets[0].getsockname()[1]
        yield state
    finally:
        runner.closing = True
        if server is not None:
            server.close()
        for protocol in runner.protocols:
            if protocol.ctl is not None:  # even if closing: TLS shutdown may stall
                protocol.ctl.abort()
            for task in protocol.tasks:
                task.cancel()
        await asyncio.sleep(0)  # let just-accepted connections start and register
        tasks = [task for protocol in runner.protocols for task in protocol.tasks]
        await asyncio.gather(*tasks, return_exceptions=True)
        lost = [protocol.lost for protocol in runner.protocols]
        if lost:
            try:
                async with asyncio.timeout(WAIT_TIMEOUT):
                    await asyncio.gather(*lost)
            except TimeoutError:
                raise RuntimeError("h2_server: connections still open") from None
        if server is not None:
            await server.wait_closed()
        if state.uds_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(state.uds_path)
    if state.errors:
        raise state.errors[0]
