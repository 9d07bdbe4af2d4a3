"""HTTP/2 client connection state, on top of h2.

Theory of operation
-------------------
``HTTP2State`` has the same shape as :class:`sansio.http11.HTTP11State`:
commands (``initiate``, ``send_request``, ``send_body``, ``end_request``,
``acknowledge_data``, ``reset_stream``, ``close``) queue bytes, ``data_to_send()``
drains them, and ``receive_data()`` / ``receive_eof()`` turn the peer's bytes into
:mod:`sansio.events`, every one carrying its ``stream_id`` (0 for the connection).
HTTP/2 input causes output (SETTINGS and PING acks, RST_STREAM, GOAWAY), so the
driver drains ``data_to_send()`` after receives as well as after commands.

The connection moves through :class:`HTTP2ConnectionState` along ``_TRANSITIONS``:
NEW until the preface is queued, OPEN while streams may be started, DRAINING once
a GOAWAY was received or sent (streams in flight may finish, none may start),
CLOSED after EOF or ``close()``, ERROR after a protocol error, where every later
call raises. Whether it is idle is not a state: it is ``open_streams == 0``.

Policy the core owns, so every driver gets it:

* **Request heads.** ``Host`` becomes ``:authority``, the target ``:path``;
  connection-specific fields are dropped (RFC 9113 §8.2.2) and names lowercased.
* **Flow control.** ``available_window()`` is what may be sent on a stream now;
  ``send_body`` splits data into frames no larger than the peer allows. Inbound
  data is acknowledged (WINDOW_UPDATE) only when the driver says the application
  consumed it, so a slow reader applies back-pressure to the server.
* **Stream accounting.** ``can_open_stream`` follows the peer's
  MAX_CONCURRENT_STREAMS as it changes, up or down, counting streams as the peer
  counts them (until both END_STREAMs or a reset).
* **GOAWAY.** :class:`~sansio.events.ConnectionTerminated` names the streams above
  ``last_stream_id``, which the server promises it never processed.
* **Push is refused** (SETTINGS_ENABLE_PUSH = 0; a PUSH_PROMISE is then a
  connection error), and PINGs are answered by h2 itself.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import re
from collections.abc import Iterable, Sequence
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack.hpack
import hpack.huffman_table

from .errors import LocalProtocolError, RemoteProtocolError
from .events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    InformationalResponse,
    ResponseComplete,
    ResponseReceived,
    SettingsChanged,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from .h2fast import CountingH2Connection, SizeUpdatingEncoder, secure_fields
from .headers import validate_field, validate_method, validate_target

__all__ = [
    "DEFAULT_MAX_HEADER_LIST_SIZE",
    "ErrorCode",
    "HTTP2ConnectionState",
    "HTTP2State",
]

ErrorCode = h2.errors.ErrorCodes

# Largest decoded response header list accepted (SETTINGS_MAX_HEADER_LIST_SIZE,
# RFC 9113 §6.5.2): the same 64 KiB as the HTTP/1.1 head limit.
DEFAULT_MAX_HEADER_LIST_SIZE = 64 * 1024
# Per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE). RFC 9113's default of
# 65,535 bytes caps a download at one window per round trip; 1 MiB keeps a
# 100 ms path busy at 80 Mbit/s while bounding what one unread stream buffers.
STREAM_WINDOW = 1024 * 1024
# The connection-level window we open up to at start (RFC 9113 §6.9.2 lets us
# raise it with WINDOW_UPDATE on stream 0): room for 16 streams' full windows.
CONNECTION_WINDOW = 16 * STREAM_WINDOW

# RFC 9113 §8.2.2: "An endpoint MUST NOT generate an HTTP/2 message containing
# connection-specific header fields"; Host travels as :authority (§8.3.1).
# Streams we open before the server's first SETTINGS say how many it allows:
# RFC 9113 §6.5.2 recommends that limit be "no smaller than 100".
INITIAL_MAX_CONCURRENT_STREAMS = 100

# RFC 9113 §6.5: SETTINGS is frame type 0x4; its ACK flag is 0x1.
_SETTINGS_FRAME = 0x4
_HEADERS_FRAME = 0x1
_ACK = 0x1

_SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9+\-.]*")

_DROPPED_FIELDS = frozenset(
    {
        b"connection",
        b"host",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
    }
)


# HPACK: nginx and most servers send response fields as Huffman-coded literals
# not added to the dynamic table, so the same few values (server, date,
# content-type, ...) are decoded again on every response, and hpack's
# pure-Python decoder was a fifth of the client's CPU with 100 streams in
# flight. Its decode_huffman is a pure function of the bytes it is given (a
# bytes object: hpack converts views first), so the results for short strings
# are memoised in a bounded cache: at most HUFFMAN_CACHE_SIZE entries of at
# most HUFFMAN_CACHE_MAX_INPUT encoded bytes, so a server cannot pin memory
# with long values; longer strings are decoded as before. Errors are not
# cached. This replaces the function hpack's decoder looks up, for every hpack
# decoder in the process: the results are the same, only faster.
HUFFMAN_CACHE_SIZE = 1024
HUFFMAN_CACHE_MAX_INPUT = 64
_decode_huffman = hpack.huffman_table.decode_huffman
_decode_short_huffman = functools.lru_cache(maxsize=HUFFMAN_CACHE_SIZE)(_decode_huffman)


def _memoised_decode_huffman(data: bytes) -> bytes:
    if len(data) <= HUFFMAN_CACHE_MAX_INPUT:
        return _decode_short_huffman(data)
    return _decode_huffman(data)


_hpack_decoder_module: Any = hpack.hpack  # the module whose global hpack calls
_hpack_decoder_module.decode_huffman = _memoised_decode_huffman


class HTTP2ConnectionState(enum.Enum):
    """Where one HTTP/2 client connection is in its life."""

    NEW = "NEW"  # preface not yet queued
    OPEN = "OPEN"  # streams may be started
    DRAINING = "DRAINING"  # GOAWAY seen or sent: no new streams
    CLOSED = "CLOSED"  # EOF or close(): nothing more
    ERROR = "ERROR"  # a protocol error happened; every call now raises

    __hash__ = object.__hash__  # as for _Input below


class _Input(enum.Enum):
    # Members are singletons: hashing by identity (C) rather than by name
    # (Enum.__hash__, Python) makes each transition lookup cheaper.
    __hash__ = object.__hash__

    INITIATE = enum.auto()
    GOAWAY = enum.auto()
    EOF = enum.auto()
    CLOSE = enum.auto()


_S = HTTP2ConnectionState
_TRANSITIONS: dict[tuple[HTTP2ConnectionState, _Input], HTTP2ConnectionState] = {
    (_S.NEW, _Input.INITIATE): _S.OPEN,
    (_S.NEW, _Input.CLOSE): _S.CLOSED,
    (_S.NEW, _Input.EOF): _S.CLOSED,
    (_S.OPEN, _Input.GOAWAY): _S.DRAINING,
    (_S.OPEN, _Input.EOF): _S.CLOSED,
    (_S.OPEN, _Input.CLOSE): _S.CLOSED,
    (_S.DRAINING, _Input.GOAWAY): _S.DRAINING,
    (_S.DRAINING, _Input.EOF): _S.CLOSED,
    (_S.DRAINING, _Input.CLOSE): _S.CLOSED,
    (_S.CLOSED, _Input.EOF): _S.CLOSED,
    (_S.CLOSED, _Input.CLOSE): _S.CLOSED,
    (_S.ERROR, _Input.CLOSE): _S.ERROR,
}


class _GracefulGoawayStateMachine(h2.connection.H2ConnectionStateMachine):
    """h2's connection state machine, minus one reaction to a received GOAWAY.

    h2 moves its whole connection to CLOSED when a GOAWAY arrives and then
    rejects every later frame, so the streams the server promised to finish
    (RFC 9113 §6.8: streams "lower than or equal to the last stream identifier
    might still complete successfully") fail with a protocol error; nginx sends
    exactly that GOAWAY after ``keepalive_requests`` (python-hyper/h2#1199, open).
    Here h2 stays open for those streams; our DRAINING state is what stops new
    ones.
    """

    def process_input(self, input_: h2.connection.ConnectionInputs) -> Any:
        if (
            input_ is h2.connection.ConnectionInputs.RECV_GOAWAY
            and self.state is h2.connection.ConnectionState.CLIENT_OPEN
        ):
            return []
        return super().process_input(input_)


class HTTP2State:
    """A client HTTP/2 connection with no I/O: commands in, bytes and events out.

    Args:
        max_header_list_size: Largest decoded response header list accepted.
        reference: Run stock h2 with all its header checks instead of the
            faster paths of :mod:`sansio.h2fast`; the differential tests
            compare the two. Same events, errors and bytes, only slower.
            (Both engines take h2fast.SizeUpdatingEncoder, a fix to hpack.)
    """

    def __init__(
        self,
        *,
        max_header_list_size: int = DEFAULT_MAX_HEADER_LIST_SIZE,
        reference: bool = False,
    ):
        self._fast = not reference
        if reference:
            config = h2.config.H2Configuration(client_side=True, header_encoding=None)
            self._h2 = h2.connection.H2Connection(config=config)
            self._h2.encoder.__class__ = SizeUpdatingEncoder
        else:
            # Received fields are checked by h2fast.received_fields_error, in
            # h2's place, and request fields by send_request: h2 checks
            # neither again.
            config = h2.config.H2Configuration(
                client_side=True,
                header_encoding=None,
                validate_inbound_headers=False,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
            self._h2 = CountingH2Connection(config=config)
        self._h2.state_machine = _GracefulGoawayStateMachine()
        self._max_header_list_size = max_header_list_size
        self._state = HTTP2ConnectionState.NEW
        # Our own outgoing buffer: h2 empties its buffer when a GOAWAY arrives,
        # which would lose frames already queued for streams that may finish.
        self._outgoing = bytearray()
        # Bytes received but not yet a whole frame; h2 gets one frame at a time.
        self._inbound = bytearray()
        self._preface_received = False
        self._remote_settings_received = False
        self._pending_error: RemoteProtocolError | None = None
        # Streams whose request we sent and whose response has not ended.
        self._streams: dict[int, bytes] = {}  # stream id -> request method

    # -- introspection -------------------------------------------------------

    @property
    def state(self) -> HTTP2ConnectionState:
        """The connection's lifecycle state."""
        return self._state

    @property
    def open_streams(self) -> int:
        """Streams counted against the peer's MAX_CONCURRENT_STREAMS."""
        return int(self._h2.open_outbound_streams)

    @property
    def max_concurrent_streams(self) -> int:
        """The peer's current MAX_CONCURRENT_STREAMS.

        Until its first SETTINGS arrive the protocol says "unlimited"; we assume
        100, the minimum RFC 9113 §6.5.2 recommends servers allow, so a burst of
        requests at connection start does not overrun a small server limit.
        """
        limit = int(self._h2.remote_settings.max_concurrent_streams)
        if not self._remote_settings_received:
            return min(limit, INITIAL_MAX_CONCURRENT_STREAMS)
        return limit

    @property
    def can_open_stream(self) -> bool:
        """Whether ``send_request`` may start a stream now."""
        return (
            self._state is HTTP2ConnectionState.OPEN
            and self.open_streams < self.max_concurrent_streams
            and self._h2.highest_outbound_stream_id
            < h2.connection.H2Connection.HIGHEST_ALLOWED_STREAM_ID - 2
        )

    def available_window(self, stream_id: int) -> int:
        """Bytes of body that may be sent on ``stream_id`` now (stream and
        connection windows both counted); 0 means wait for WindowUpdated."""
        try:
            return max(0, int(self._h2.local_flow_control_window(stream_id)))
        except h2.exceptions.H2Error:
            return 0

    def _move(self, event: _Input) -> None:
        try:
            self._state = _TRANSITIONS[(self._state, event)]
        except KeyError:
            raise LocalProtocolError(
                f"cannot {event.name.lower()} while the connection is "
                f"{self._state.value}"
            ) from None

    # -- commands ------------------------------------------------------------

    def initiate(self) -> None:
        """Queue the connection preface and our SETTINGS (RFC 9113 §3.4).

        Push is disabled, the header list bounded, and the receive windows
        opened wider than the protocol's 64 KiB default.
        """
        if self._state is not HTTP2ConnectionState.NEW:
            self._move(_Input.INITIATE)
        codes = h2.settings.SettingCodes
        self._h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                codes.ENABLE_PUSH: 0,
                codes.MAX_CONCURRENT_STREAMS: 100,
                codes.MAX_HEADER_LIST_SIZE: self._max_header_list_size,
                codes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            },
        )
        self._command(self._h2.initiate_connection)
        self._command(
            self._h2.increment_flow_control_window,
            CONNECTION_WINDOW - self._h2.inbound_flow_control_window,
        )
        # h2 applies the decoder limit only once the peer acknowledges our
        # SETTINGS; until then hold the server to the same bound.
        self._h2.decoder.max_header_list_size = self._max_header_list_size
        self._move(_Input.INITIATE)

    def send_request(
        self,
        method: bytes,
        scheme: bytes,
        target: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        *,
        end_stream: bool,
    ) -> int:
        """Start a stream with the request head and return its id.

        ``headers`` must include ``Host``, which becomes ``:authority``.

        Raises:
            LocalProtocolError: No stream may be opened now (see
                ``can_open_stream``), no Host, or h2 refused the head.
        """
        if not self.can_open_stream:
            raise LocalProtocolError(
                f"cannot open a stream: connection {self._state.value}, "
                f"{self.open_streams} of {self.max_concurrent_streams} streams open"
            )
        # Validate everything before h2 sees it: h2 encodes fields as it checks
        # them, so a field refused half-way would leave HPACK state the server
        # never saw, breaking every later request (RFC 9113 §8.2.1).
        validate_method(method)
        if method == b"CONNECT":
            # §8.5: a CONNECT stream is a tunnel with no :scheme or :path, which
            # this request API cannot express; refused before h2 sees it, so the
            # connection's other streams carry on.
            raise LocalProtocolError(
                "CONNECT is not supported over HTTP/2 (RFC 9113 §8.5); "
                "tunnels use HTTP/1.1"
            )
        validate_target(target)
        if _SCHEME.fullmatch(scheme) is None:
            raise LocalProtocolError(
                f"invalid scheme {scheme!r}: a letter, then letters, digits, "
                "'+', '-' or '.' (RFC 3986 §3.1)"
            )
        authority = None
        fields: list[tuple[bytes, bytes]] = []
        for name, value in headers:
            if name.startswith(b":"):
                raise LocalProtocolError(
                    f"invalid header name {name!r}: pseudo-header fields are "
                    "derived from the request, not given (RFC 9113 §8.3)"
                )
            validate_field(name, value)
            lowered = name.lower()
            if lowered == b"host":
                authority = value
            elif lowered == b"te":
                # §8.2.2: TE may only carry "trailers" in HTTP/2.
                if value.strip().lower() == b"trailers":
                    fields.append((b"te", b"trailers"))
            elif lowered not in _DROPPED_FIELDS:
                fields.append((lowered, value))
        if authority is None:
            raise LocalProtocolError("invalid request: missing mandatory Host header")
        if self._fast:
            secure_fields(fields)
        stream_id = int(self._h2.get_next_available_stream_id())
        head = [
            (b":method", method),
            (b":authority", authority),
            (b":scheme", scheme),
            (b":path", target),
            *fields,
        ]
        try:
            self._command(self._h2.send_headers, stream_id, head, end_stream=end_stream)
        except LocalProtocolError:
            # h2 refused after encoding part of the head: HPACK state is no
            # longer shared with the server, so the connection cannot go on.
            self._state = HTTP2ConnectionState.ERROR
            raise
        self._streams[stream_id] = method
        return stream_id

    def send_body(self, stream_id: int, data: bytes) -> None:
        """Queue ``data`` on ``stream_id`` in frames the peer accepts.

        Raises:
            LocalProtocolError: More than ``available_window()``, or the stream
                is not sending.
        """
        window = self.available_window(stream_id)
        if len(data) > window:
            raise LocalProtocolError(
                f"cannot send {len(data)} bytes on stream {stream_id}: only "
                f"{window} allowed by flow control (RFC 9113 §5.2)"
            )
        frame = int(self._h2.max_outbound_frame_size)
        view = memoryview(data)
        for start in range(0, len(data), frame):
            self._command(self._h2.send_data, stream_id, view[start : start + frame])

    def end_request(self, stream_id: int) -> None:
        """Send END_STREAM: the request body is complete."""
        self._command(self._h2.end_stream, stream_id)

    def acknowledge_data(self, stream_id: int, size: int) -> None:
        """Tell the peer ``size`` received bytes were consumed (WINDOW_UPDATE).

        Also after the stream ended: the connection window counts those bytes.
        """
        if size and self._state in (_S.OPEN, _S.DRAINING):
            self._command(self._h2.acknowledge_received_data, size, stream_id)

    def reset_stream(self, stream_id: int, error_code: int = ErrorCode.CANCEL) -> None:
        """Abandon ``stream_id`` with RST_STREAM (CANCEL by default).

        Also used when the response ended before our request body did: the
        stream is half-closed and still counts against the peer's limit. A
        stream that is already closed on both sides is left alone.
        """
        self._streams.pop(stream_id, None)
        stream = self._h2.streams.get(stream_id)
        if (
            self._state in (_S.OPEN, _S.DRAINING)
            and stream is not None
            and not stream.closed
        ):
            self._command(self._h2.reset_stream, stream_id, error_code)

    def close(self, error_code: int = ErrorCode.NO_ERROR) -> None:
        """Queue a GOAWAY and close: no stream continues."""
        if self._state in (HTTP2ConnectionState.OPEN, HTTP2ConnectionState.DRAINING):
            self._command(self._h2.close_connection, error_code)
        self._streams.clear()
        self._move(_Input.CLOSE)

    def data_to_send(self) -> bytes:
        """Return, and forget, every byte queued by commands and receives."""
        self._take_h2_output()
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    @property
    def has_data_to_send(self) -> bool:
        """Whether ``data_to_send()`` would return bytes (without taking them)."""
        self._take_h2_output()
        return bool(self._outgoing)

    def _take_h2_output(self) -> None:
        self._outgoing += self._h2.data_to_send()

    def _command(self, call: Any, *args: Any, **kwargs: Any) -> None:
        # The one place h2's exceptions from commands become ours.
        if self._state is HTTP2ConnectionState.ERROR:
            raise LocalProtocolError("connection is in ERROR after a protocol error")
        try:
            call(*args, **kwargs)
        except h2.exceptions.StreamClosedError as exc:
            raise LocalProtocolError(
                f"stream {exc.stream_id} is closed: the response ended or the "
                "server reset it"
            ) from exc
        except h2.exceptions.ProtocolError as exc:
            raise LocalProtocolError(f"invalid HTTP/2 command: {exc}") from exc
        except (h2.exceptions.H2Error, ValueError, IndexError) as exc:
            raise LocalProtocolError(f"invalid HTTP/2 command: {exc!r}") from exc
        self._take_h2_output()

    # -- input ---------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the server; return the events they complete.

        Frames are handed to h2 one at a time, so the events of frames before a
        protocol error are returned and the error is raised by the next call,
        however the bytes were split.

        Raises:
            RemoteProtocolError: The server broke HTTP/2 (the connection is now
                ERROR; a GOAWAY is waiting in ``data_to_send()``).
            LocalProtocolError: Called before ``initiate()``.
        """
        if self._state is HTTP2ConnectionState.ERROR:
            return self._refuse_input()
        if self._state is HTTP2ConnectionState.NEW:
            # Our misuse, refused before h2 sees a byte: h2 would queue its
            # SETTINGS ACK ahead of our preface (RFC 9113 §3.4).
            raise LocalProtocolError(
                "cannot receive data while the connection is NEW: initiate() first"
            )
        if not data or self._state is HTTP2ConnectionState.CLOSED:
            return []
        self._inbound += data
        events: list[Event] = []
        try:
            while (frame := self._next_frame()) is not None:
                events.extend(self._receive_frame(frame))
        except RemoteProtocolError as exc:
            self._state = HTTP2ConnectionState.ERROR
            self._take_h2_output()  # h2's GOAWAY, if it queued one
            if not events:
                raise
            self._pending_error = exc
        return events

    def _next_frame(self) -> bytes | None:
        """Cut one whole frame off the inbound buffer, checking its header first.

        RFC 9113 §4.2: a frame longer than our SETTINGS_MAX_FRAME_SIZE is an
        error as soon as its length is known, not after it was buffered.
        §3.4: the server's preface is a SETTINGS frame, which also tells an
        HTTP/1.1 answer or a TLS alert apart from HTTP/2 within a few bytes.
        """
        buffer = self._inbound
        if len(buffer) >= 3:
            length = int.from_bytes(buffer[:3], "big")
            if length > self._h2.max_inbound_frame_size:
                self._connection_error(
                    ErrorCode.FRAME_SIZE_ERROR,
                    f"frame of {length} bytes is larger than SETTINGS_MAX_FRAME_SIZE="
                    f"{self._h2.max_inbound_frame_size} (RFC 9113 §4.2)",
                )
            if not self._preface_received and len(buffer) >= 5:
                stream_id = int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
                is_settings = buffer[3] == _SETTINGS_FRAME and not buffer[4] & _ACK
                if not is_settings or (len(buffer) >= 9 and stream_id):
                    self._connection_error(
                        ErrorCode.PROTOCOL_ERROR,
                        "the server did not start with a SETTINGS frame; it may "
                        f"not speak HTTP/2 (got {bytes(buffer[:16])!r}, RFC 9113 §3.4)",
                    )
            end = 9 + length
            if len(buffer) >= 9 and buffer[3] == _HEADERS_FRAME:
                stream_id = int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
                if stream_id and not stream_id & 1:
                    # h2 would take it for a request to us and report it as
                    # one (RequestReceived) to a client.
                    self._connection_error(
                        ErrorCode.PROTOCOL_ERROR,
                        f"HEADERS on stream {stream_id}: a server opens no stream "
                        "but by PUSH_PROMISE, which we refuse (RFC 9113 §5.1.1)",
                    )
            if len(buffer) >= end:
                frame = bytes(buffer[:end])
                del buffer[:end]
                self._preface_received = True
                return frame
        return None

    def _receive_frame(self, frame: bytes) -> list[Event]:
        # The one place h2's exceptions from received bytes become ours. Our
        # own output is taken first, since a GOAWAY makes h2 drop its buffer.
        self._take_h2_output()
        try:
            h2_events = self._h2.receive_data(frame)
        except h2.exceptions.ProtocolError as exc:
            # Every error h2 raises on input is a ProtocolError (its other
            # H2Errors come from commands only).
            raise RemoteProtocolError(_input_error_message(exc)) from exc
        events = self._translate(h2_events)
        self._take_h2_output()
        return events

    def _connection_error(self, code: int, message: str) -> None:
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._h2.close_connection(code)
        raise RemoteProtocolError(message)

    def _refuse_input(self) -> list[Event]:
        if self._pending_error is not None:
            raise self._pending_error
        raise RemoteProtocolError(
            "cannot receive data: connection is in ERROR after a protocol error"
        )

    @property
    def pending_error(self) -> RemoteProtocolError | None:
        """A protocol error found after events that were already returned.

        The connection is ERROR; the driver should raise this rather than wait
        for more bytes. Every later ``receive_*`` call raises it too.
        """
        return self._pending_error

    def receive_eof(self) -> list[Event]:
        """The server closed the connection: nothing more will arrive.

        Streams still open are the driver's to fail; the core only closes.

        Raises:
            RemoteProtocolError: The connection is already in ERROR.
        """
        if self._state is HTTP2ConnectionState.ERROR:
            return self._refuse_input()
        self._move(_Input.EOF)
        self._streams.clear()
        return []

    def _translate(self, h2_events: Iterable[h2.events.Event]) -> list[Event]:
        events: list[Event] = []
        reset_here: set[int] = set()  # streams this batch reset as malformed
        for event in h2_events:
            kind = type(event)
            if reset_here and getattr(event, "stream_id", None) in reset_here:
                continue
            if kind is h2.events.DataReceived:
                assert isinstance(event, h2.events.DataReceived)
                stream_id = int(event.stream_id)
                data = bytes(event.data or b"")
                padding = (event.flow_controlled_length or 0) - len(data)
                if padding:
                    # Padding is never consumed by anyone: return it at once.
                    self._h2.acknowledge_received_data(padding, stream_id)
                if data:
                    events.append(DataReceived(stream_id=stream_id, data=data))
            elif kind is h2.events.ResponseReceived:
                assert isinstance(event, h2.events.ResponseReceived)
                stream_id = int(event.stream_id)
                split = _split_status(event.headers)
                if split is None:
                    reset_here.add(stream_id)
                    events.append(self._malformed(stream_id))
                    continue
                status, headers = split
                if event.stream_ended is not None and _body_missing(
                    self._streams.get(stream_id), status, headers
                ):
                    reset_here.add(stream_id)
                    events.append(self._malformed(stream_id))
                    continue
                events.append(
                    ResponseReceived(
                        stream_id=stream_id,
                        status=status,
                        http_version=b"HTTP/2",
                        reason_phrase=b"",
                        headers=headers,
                    )
                )
            elif kind is h2.events.StreamEnded:
                stream_id = int(event.stream_id)  # type: ignore[attr-defined]
                self._streams.pop(stream_id, None)
                events.append(ResponseComplete(stream_id=stream_id, reusable=True))
            elif kind is h2.events.WindowUpdated:
                assert isinstance(event, h2.events.WindowUpdated)
                events.append(
                    WindowUpdated(
                        stream_id=int(event.stream_id), delta=int(event.delta or 0)
                    )
                )
            elif kind is h2.events.TrailersReceived:
                assert isinstance(event, h2.events.TrailersReceived)
                events.append(
                    TrailersReceived(
                        stream_id=int(event.stream_id),
                        headers=_plain_headers(event.headers),
                    )
                )
            elif kind is h2.events.InformationalResponseReceived:
                assert isinstance(event, h2.events.InformationalResponseReceived)
                stream_id = int(event.stream_id)
                split = _split_status(event.headers)
                if split is None:
                    reset_here.add(stream_id)
                    events.append(self._malformed(stream_id))
                    continue
                status, headers = split
                events.append(
                    InformationalResponse(
                        stream_id=stream_id, status=status, headers=headers
                    )
                )
            elif kind is h2.events.StreamReset:
                assert isinstance(event, h2.events.StreamReset)
                stream_id = int(event.stream_id)
                self._streams.pop(stream_id, None)
                events.append(
                    StreamReset(
                        stream_id=stream_id,
                        error_code=int(event.error_code or 0),
                        remote=bool(event.remote_reset),
                    )
                )
            elif kind is h2.events.RemoteSettingsChanged:
                assert isinstance(event, h2.events.RemoteSettingsChanged)
                self._remote_settings_received = True
                events.append(
                    SettingsChanged(
                        stream_id=0,
                        changed={
                            int(code): int(setting.new_value)
                            for code, setting in event.changed_settings.items()
                            if setting.original_value != setting.new_value
                        },
                        max_concurrent_streams=self.max_concurrent_streams,
                    )
                )
            elif kind is h2.events.ConnectionTerminated:
                assert isinstance(event, h2.events.ConnectionTerminated)
                events.append(self._goaway(event))
            # PingReceived (h2 answers it), acks, priority and unknown frames
            # need nothing from the driver.
        return events

    def _malformed(self, stream_id: int) -> StreamReset:
        # RFC 9113 §8.1.1: a malformed response is a stream error: reset that
        # stream (PROTOCOL_ERROR) and let its siblings carry on.
        self._streams.pop(stream_id, None)
        with contextlib.suppress(h2.exceptions.H2Error):
            self._h2.reset_stream(stream_id, ErrorCode.PROTOCOL_ERROR)
        return StreamReset(
            stream_id=stream_id, error_code=ErrorCode.PROTOCOL_ERROR, remote=False
        )

    def _goaway(self, event: h2.events.ConnectionTerminated) -> ConnectionTerminated:
        last = int(event.last_stream_id or 0)
        retry = tuple(sorted(sid for sid in self._streams if sid > last))
        for stream_id in retry:
            del self._streams[stream_id]
        self._move(_Input.GOAWAY)  # input arrives only while OPEN or DRAINING
        return ConnectionTerminated(
            stream_id=0,
            error_code=int(event.error_code or 0),
            last_stream_id=last,
            retry_stream_ids=retry,
            additional_data=bytes(event.additional_data or b""),
        )


def _plain_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    return [(bytes(name), bytes(value)) for name, value in headers or ()]


def _input_error_message(exc: h2.exceptions.ProtocolError) -> str:
    """Our words for h2's error on received bytes: the same bytes always give
    the same message (hpack quotes a buffer's repr, with its address)."""
    if isinstance(exc, h2.exceptions.NoSuchStreamError):
        # h2 says only the stream id.
        return (
            f"HTTP/2 protocol error: a frame for stream {exc.stream_id}, which is "
            "closed or was never opened (RFC 9113 §5.1)"
        )
    return "HTTP/2 protocol error: " + _OBJECT_ADDRESS.sub("", str(exc))


_OBJECT_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _body_missing(
    method: bytes | None, status: int, headers: list[tuple[bytes, bytes]]
) -> bool:
    """Whether a head that ended its stream promised a body it never sent.

    RFC 9113 §8.1.1: a response whose content-length differs from the DATA it
    carries is malformed; h2 checks DATA frames, not a head with END_STREAM.
    A HEAD answer, 204 and 304 carry no body whatever their content-length.
    """
    if method == b"HEAD" or status in (204, 304):
        return False
    return any(name == b"content-length" and int(value) for name, value in headers)


def _split_status(headers: Any) -> tuple[int, list[tuple[bytes, bytes]]] | None:
    """The status and the regular fields; None when ``:status`` is malformed.

    h2 has already refused, as a connection error, a head without ``:status``
    or with any other pseudo-header field, and pseudo-header fields come
    first: the head is ``:status`` and then regular fields.
    """
    (name, value), *rest = headers
    assert name == b":status", name
    # RFC 9110 §15: a status code is exactly three digits.
    if len(value) != 3 or not value.isdigit():
        return None
    return int(value), [(bytes(name), bytes(value)) for name, value in rest]
