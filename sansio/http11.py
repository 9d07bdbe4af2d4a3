"""HTTP/1.1 client connection state, on top of h11.

Theory of operation
-------------------
``HTTP11State`` is one client connection, one request/response cycle at a time
(no pipelining). The driver calls *commands* (``send_request``, ``send_body``,
``end_request``, ``close``) which serialise into an outgoing buffer, drains it
with ``data_to_send()``, and feeds whatever the socket returns to
``receive_data()`` / ``receive_eof()``, which return :mod:`sansio.events`.

The connection is in one of the :class:`HTTP11ConnectionState` states and moves
only along ``_TRANSITIONS``; anything else is a bug in the caller and raises.
Any protocol error moves it to ``ERROR`` and every later call raises: a
connection that saw garbage never carries another request.

Policy that h11 leaves to us, and why:

* **Header limits that do not depend on chunking.** h11 only bounds *incomplete*
  events (so a 1 MB header block in one read is accepted, the same block in two
  reads is not). We count the exact size of each response head, however the
  bytes were split, and its number of fields.
* **The desync guard.** Bytes left over after a complete response (a forged
  second response, or the body of a HEAD answer) and a response framed by both
  Content-Length and Transfer-Encoding (RFC 9112 §6.3: "ought to be handled as an
  error") both mean the connection is not reused.
* **Protocol switches.** After a 101 or a 2xx answer to CONNECT the bytes h11
  buffered past the head belong to the new protocol and are handed over in
  :class:`~sansio.events.ProtocolSwitched`.
* **A clear error for an empty answer.** EOF before any response byte raises
  httpcore's "Server disconnected without sending a response."
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence
from typing import Any, cast

import h11

from ._memo import remember
from .errors import LocalProtocolError, RemoteProtocolError
from .events import (
    DataReceived,
    Event,
    InformationalResponse,
    ProtocolSwitched,
    ResponseComplete,
    ResponseReceived,
    TrailersReceived,
)
from .headers import _METHODS, _TARGET, _TOKEN, TCHAR, validate_field

__all__ = [
    "DEFAULT_MAX_HEADER_BYTES",
    "DEFAULT_MAX_HEADER_COUNT",
    "HTTP11ConnectionState",
    "HTTP11State",
]

# 64 KiB for a whole response head: above nginx's largest default header buffer
# set (4 x 8 KiB) and Node's 16 KiB default, below curl's 100 KiB hard limit.
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
# 100 fields: the limit CPython's http.client (and so urllib3 and requests) has
# enforced for years (http.client._MAXHEADERS), so real servers stay below it.
DEFAULT_MAX_HEADER_COUNT = 100

# RFC 9110 §15.2 sets no limit on 1xx responses; a server trickling them could
# keep a request alive forever, beating every read timeout. No real exchange
# needs more than a handful (100 Continue, a few 103 Early Hints).
MAX_INFORMATIONAL_RESPONSES = 100

_SERVER_DISCONNECTED = "Server disconnected without sending a response."

# The fast path makes its events positionally (see sansio._frozen.quick_init).
_response_received: Callable[..., ResponseReceived] = ResponseReceived._positional  # type: ignore[attr-defined]
_data_received: Callable[[int, bytes], DataReceived] = DataReceived._positional  # type: ignore[attr-defined]
_response_complete: Callable[[int, bool], ResponseComplete] = (
    ResponseComplete._positional  # type: ignore[attr-defined]
)


class HTTP11ConnectionState(enum.Enum):
    """Where one HTTP/1.1 client connection is in its life."""

    IDLE = "IDLE"  # no request in flight; may send one
    ACTIVE = "ACTIVE"  # a request is being sent or its response received
    SWITCHED = "SWITCHED"  # 101 / CONNECT succeeded: no longer HTTP
    CLOSED = "CLOSED"  # must not be used again; the socket should close
    ERROR = "ERROR"  # a protocol error happened; every call now raises

    __hash__ = object.__hash__  # as for _Input below


class _Input(enum.Enum):
    # Members are singletons: hashing by identity (C) rather than by name
    # (Enum.__hash__, Python) makes each transition lookup cheaper.
    __hash__ = object.__hash__

    SEND_REQUEST = enum.auto()
    COMPLETE_KEEP_ALIVE = enum.auto()
    COMPLETE_CLOSE = enum.auto()
    SWITCH = enum.auto()
    UNSOLICITED_DATA = enum.auto()
    EOF = enum.auto()
    CLOSE = enum.auto()


_S = HTTP11ConnectionState
_TRANSITIONS: dict[tuple[HTTP11ConnectionState, _Input], HTTP11ConnectionState] = {
    (_S.IDLE, _Input.SEND_REQUEST): _S.ACTIVE,
    # Bytes on an idle connection answer no request: the stream is out of sync.
    (_S.IDLE, _Input.UNSOLICITED_DATA): _S.CLOSED,
    (_S.IDLE, _Input.EOF): _S.CLOSED,
    (_S.IDLE, _Input.CLOSE): _S.CLOSED,
    (_S.ACTIVE, _Input.COMPLETE_KEEP_ALIVE): _S.IDLE,
    (_S.ACTIVE, _Input.COMPLETE_CLOSE): _S.CLOSED,
    (_S.ACTIVE, _Input.SWITCH): _S.SWITCHED,
    (_S.ACTIVE, _Input.CLOSE): _S.CLOSED,
    (_S.SWITCHED, _Input.CLOSE): _S.CLOSED,
    (_S.CLOSED, _Input.UNSOLICITED_DATA): _S.CLOSED,
    (_S.CLOSED, _Input.EOF): _S.CLOSED,
    (_S.CLOSED, _Input.CLOSE): _S.CLOSED,
    (_S.ERROR, _Input.CLOSE): _S.ERROR,
}


# The members as module constants, for the code below: on Python 3.11 every
# attribute of an Enum class is looked up through EnumType.__getattr__'s hook,
# several times slower than a global.
_IDLE, _ACTIVE, _SWITCHED, _CLOSED, _ERROR = (
    _S.IDLE,
    _S.ACTIVE,
    _S.SWITCHED,
    _S.CLOSED,
    _S.ERROR,
)
(
    _SEND_REQUEST,
    _COMPLETE_KEEP_ALIVE,
    _COMPLETE_CLOSE,
    _SWITCH,
    _UNSOLICITED_DATA,
    _EOF,
    _CLOSE,
) = _Input


class HTTP11State:
    """A client HTTP/1.1 connection with no I/O: commands in, bytes and events out.

    Args:
        max_header_bytes: Largest response head (status line, fields and the
            blank line) accepted, counted exactly whatever the read sizes.
        max_header_count: Most fields accepted in one response head.
        fast_path: Run common exchanges without h11 (see "The fast path"
            below); None means the module default, :data:`FAST_PATH`.
    """

    def __init__(
        self,
        *,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
        fast_path: bool | None = None,
    ) -> None:
        self._fast_path = FAST_PATH if fast_path is None else fast_path
        self._max_header_bytes = max_header_bytes
        self._max_header_count = max_header_count
        # Made on first use: a connection that only ever takes the fast path
        # never builds one (less memory per pooled connection).
        self._h11_connection: h11.Connection | None = None
        self._state = _IDLE
        self._outgoing: list[bytes] = []
        self._stream_id = 0
        # Byte accounting for the header limits: total fed to h11 so far, and
        # where the head we are waiting for starts in that count (None when the
        # head already arrived).
        self._fed = 0
        self._head_start: int | None = None
        self._response_started = False
        self._ambiguous_framing = False
        self._informational = 0
        self._pending_error: RemoteProtocolError | None = None
        # The current cycle when it runs on the fast path (None: on h11), and
        # whether the last fast cycle ended with its body unfinished (None
        # when the last cycle ran on h11).
        self._fast: _FastCycle | None = None
        self._fast_sending: bool | None = None

    # -- introspection -------------------------------------------------------

    @property
    def _h11(self) -> h11.Connection:
        connection = self._h11_connection
        if connection is None:
            # h11 bounds incomplete events by this; with the same number the
            # only incomplete event that can reach it in the head phase is
            # the head.
            connection = self._h11_connection = h11.Connection(
                h11.CLIENT, max_incomplete_event_size=self._max_header_bytes
            )
        return connection

    @property
    def state(self) -> HTTP11ConnectionState:
        """The connection's lifecycle state."""
        return self._state

    @property
    def stream_id(self) -> int:
        """The id of the current (or last) request/response cycle, from 1."""
        return self._stream_id

    @property
    def pending_error(self) -> RemoteProtocolError | None:
        """A protocol error found after events that were already returned.

        The connection is ERROR; the driver should raise this rather than wait
        for more bytes. Every later ``receive_*`` call raises it too.
        """
        return self._pending_error

    @property
    def response_started(self) -> bool:
        """Whether any byte of the current cycle's response has arrived."""
        return self._response_started

    @property
    def is_sending_body(self) -> bool:
        """Whether the request body may still be sent (its end not yet sent)."""
        if self._fast is not None:
            return not self._fast.request_done
        if self._fast_sending is not None:  # the last cycle ran on the fast path
            return self._fast_sending
        return self._h11.our_state is h11.SEND_BODY

    def _move(self, event: _Input) -> None:
        try:
            self._state = _TRANSITIONS[(self._state, event)]
        except KeyError:
            raise LocalProtocolError(
                f"cannot {event.name.lower().replace('_', ' ')} "
                f"while the connection is {self._state.value}"
            ) from None

    def _fail(self) -> None:
        self._state = _ERROR

    # -- commands ------------------------------------------------------------

    def send_request(
        self, method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]]
    ) -> None:
        """Start a cycle with the request head; ``Host`` must be among ``headers``.

        Raises:
            LocalProtocolError: Not IDLE, or h11 refused the head (for example a
                missing Host header or an illegal field).
        """
        if self._state is not _IDLE:
            self._move(_SEND_REQUEST)
        fast = None
        self._fast_sending = None
        if self._fast_path and (
            self._h11_connection is None or self._h11.our_state is h11.IDLE
        ):
            fast = _FastCycle.start(method, target, headers)
        if fast is not None:
            self._outgoing.append(fast.head)
            self._fast = fast
        else:
            # h11 lets control bytes other than CR, LF and NUL through in field
            # values; the fields get the rules HTTP2State applies (the fast
            # path's own checks are those rules already).
            for name, value in headers:
                validate_field(name, value)
            self._send(h11.Request, method=method, target=target, headers=list(headers))
        self._move(_SEND_REQUEST)
        self._stream_id += 1
        self._head_start = self._fed
        self._response_started = False
        self._ambiguous_framing = False
        self._informational = 0

    def send_body(self, data: bytes) -> None:
        """Queue a piece of the request body (framed by Content-Length or chunks).

        Raises:
            LocalProtocolError: No body is expected now, or more bytes than the
                request's Content-Length.
        """
        if data:
            self._require_sending("send body")
            if self._fast is not None:
                self._fast_send_body(data)
            else:
                self._send(h11.Data, data=data)

    def end_request(self) -> None:
        """Finish the request body (the last chunk, for chunked encoding).

        Raises:
            LocalProtocolError: No body is expected now, or fewer bytes were
                sent than the request's Content-Length.
        """
        fast = self._fast
        if (
            fast is not None
            and fast.remaining == 0
            and not fast.request_done
            and self._state is _ACTIVE
        ):
            # Every byte Content-Length (or its absence) asked for is sent
            # (the usual GET), and nothing else stands in the way.
            fast.request_done = True
            return
        self._require_sending("end request")
        if fast is not None:
            self._fast_end_request()
        else:
            self._send(h11.EndOfMessage)

    def close(self) -> None:
        """Mark the connection closed: the driver is about to drop the socket."""
        if self._state is not _ERROR:
            self._move(_CLOSE)

    def data_to_send(self) -> bytes:
        """Return, and forget, every byte the commands queued."""
        if not self._outgoing:
            return b""
        data = b"".join(self._outgoing)
        self._outgoing.clear()
        return data

    def _require_sending(self, what: str) -> None:
        if self._state is _ERROR:
            raise LocalProtocolError(f"cannot {what}: connection is in ERROR state")
        if self._state is not _ACTIVE or not self.is_sending_body:
            raise LocalProtocolError(
                f"cannot {what}: the request body is not being sent "
                f"(connection {self._state.value})"
            )

    def _send(self, event_type: Any, **fields: Any) -> None:
        # h11 validates both when an event is built and when it is sent: this is
        # the one place its LocalProtocolError becomes ours. An event refused
        # as it is built changed nothing, so the connection stays as it was.
        try:
            event = event_type(**fields)
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(f"invalid request: {exc}") from exc
        try:
            pieces = self._h11.send_with_data_passthrough(event)
        except h11.LocalProtocolError as exc:
            self._fail()
            raise LocalProtocolError(f"invalid request: {exc}") from exc
        if pieces:
            self._outgoing.extend(pieces)

    # -- input ---------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the server; return the events they complete.

        Raises:
            RemoteProtocolError: The server broke HTTP/1.1 (malformed head,
                oversized head, bad framing...). The connection is now ERROR.
        """
        state = self._state
        if not data:
            # EOF is receive_eof(); an empty read here means nothing arrived.
            if state is _ERROR:
                return self._refuse_input()
            return []
        if state is _ACTIVE:
            self._fed += len(data)
            self._response_started = True
            fast = self._fast
            if fast is not None:
                if fast.in_head:
                    return self._fast_head(data)
                return self._fast_body(data)
            self._h11.receive_data(data)
            return self._events()
        if state is _IDLE or state is _CLOSED:
            self._move(_UNSOLICITED_DATA)
            return []
        return self._refuse_input()

    def receive_eof(self) -> list[Event]:
        """Tell the core the server closed its side; return the last events.

        Raises:
            RemoteProtocolError: The response was cut short, or never began
                ("Server disconnected without sending a response.").
        """
        state = self._state
        if state is _ACTIVE:
            if not self._response_started:
                self._fail()
                raise RemoteProtocolError(_SERVER_DISCONNECTED)
            if self._fast is not None:
                if not self._fast.in_head:
                    return self._fast_receive_eof()
                # Still in a head without its blank line, which makes no event
                # in h11 either: h11 words the error.
                replayed = self._fall_back()
                assert not replayed, replayed
            self._h11.receive_data(b"")
            events = self._events()
            # After EOF h11 has either completed the response (read to EOF)
            # or raised: the cycle is over.
            assert self._state is not _ACTIVE, self._state
            return events
        if state is _IDLE or state is _CLOSED:
            self._move(_EOF)
            return []
        return self._refuse_input()

    def _refuse_input(self) -> list[Event]:
        if self._state is _SWITCHED:
            raise LocalProtocolError(
                "the connection switched protocols: its bytes are no longer HTTP"
            )
        if self._pending_error is not None:
            raise self._pending_error
        raise RemoteProtocolError(
            "cannot receive data: connection is in ERROR after a protocol error"
        )

    def _events(self) -> list[Event]:
        events: list[Event] = []
        try:
            self._parse(events)
        except RemoteProtocolError as exc:
            if not events:
                raise
            # Hand out what was complete before the error and raise it on the
            # next call, exactly as if the bytes had arrived in two reads.
            self._pending_error = exc
        return events

    def _parse(self, events: list[Event]) -> None:
        conn = self._h11
        stream_id = self._stream_id
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._fail()
                raise RemoteProtocolError(self._describe(exc)) from exc
            if (
                event is h11.NEED_DATA
                or event is h11.PAUSED
                # Never seen here in practice: a cycle is over at EndOfMessage.
                or type(event) is h11.ConnectionClosed
            ):
                return
            if type(event) is h11.Data:
                # h11 hands out bytearray slices of its buffer; events carry bytes.
                events.append(DataReceived(stream_id=stream_id, data=bytes(event.data)))
            elif type(event) is h11.Response:
                self._check_head(event)
                self._ambiguous_framing = _has_cl_and_te(event.headers)
                events.append(
                    ResponseReceived(
                        stream_id=stream_id,
                        status=event.status_code,
                        http_version=b"HTTP/" + event.http_version,
                        reason_phrase=event.reason,
                        headers=event.headers.raw_items(),
                    )
                )
                if conn.their_state is h11.SWITCHED_PROTOCOL:  # 2xx to CONNECT
                    events.append(self._switch())
                    return
            elif type(event) is h11.EndOfMessage:
                if event.headers:
                    self._check_trailers(event.headers)
                    events.append(
                        TrailersReceived(
                            stream_id=stream_id, headers=event.headers.raw_items()
                        )
                    )
                events.append(self._complete())
                return
            else:
                assert type(event) is h11.InformationalResponse, event
                self._check_head(event)
                if event.status_code == 101:
                    events.append(
                        ResponseReceived(
                            stream_id=stream_id,
                            status=101,
                            http_version=b"HTTP/" + event.http_version,
                            reason_phrase=event.reason,
                            headers=event.headers.raw_items(),
                        )
                    )
                    events.append(self._switch())
                    return
                self._informational += 1
                if self._informational > MAX_INFORMATIONAL_RESPONSES:
                    self._fail()
                    raise RemoteProtocolError(
                        f"more than {MAX_INFORMATIONAL_RESPONSES} informational "
                        "(1xx) responses before the final response"
                    )
                self._head_start = self._fed - len(conn.trailing_data[0])
                events.append(
                    InformationalResponse(
                        stream_id=stream_id,
                        status=event.status_code,
                        headers=event.headers.raw_items(),
                        reason_phrase=event.reason,
                    )
                )

    def _switch(self) -> ProtocolSwitched:
        self._move(_SWITCH)
        buffered, _closed = self._h11.trailing_data
        return ProtocolSwitched(stream_id=self._stream_id, buffered=buffered)

    def _complete(self) -> ResponseComplete:
        conn = self._h11
        leftover, peer_closed = conn.trailing_data
        reusable = (
            conn.our_state is h11.DONE
            and conn.their_state is h11.DONE
            and not leftover
            and not peer_closed  # a body delimited by EOF (RFC 9112 §6.3 rule 8)
            and not self._ambiguous_framing
        )
        if reusable:
            conn.start_next_cycle()
            self._move(_COMPLETE_KEEP_ALIVE)
        else:
            self._move(_COMPLETE_CLOSE)
        return ResponseComplete(stream_id=self._stream_id, reusable=reusable)

    # -- the fast path -------------------------------------------------------
    #
    # h11 is the reference and costs about half of a small request's CPU. A
    # cycle whose request is plain (no CONNECT, Upgrade or Expect; one Host;
    # framing by one Content-Length, chunked, or none) is serialised here, and
    # its response is parsed here while the head is strict (CRLF lines, a
    # HTTP/1.x status line, token names, visible-ASCII values) and the body is
    # framed by Content-Length, by EOF, or absent. At the first thing outside
    # that (a 1xx, chunked or other transfer codings, obs-fold, bare LF,
    # obs-text, an oversized head...), before any event of the response was
    # returned, the cycle is replayed into the untouched h11 connection (the
    # request head, the body's length, the response bytes so far) and h11
    # carries on. The differential tests run every HTTP/1.1 vector, and
    # hypothesis-made responses in random splits, through both paths.

    def _fast_send_body(self, data: bytes) -> None:
        fast = self._fast
        assert fast is not None
        if fast.remaining is not None:
            if len(data) > fast.remaining:
                self._fail()
                raise LocalProtocolError(
                    "invalid request: Too much data for declared Content-Length"
                )
            fast.remaining -= len(data)
            self._outgoing.append(data)
        else:
            self._outgoing += (b"%x\r\n" % len(data), data, b"\r\n")
        fast.sent += len(data)

    def _fast_end_request(self) -> None:
        fast = self._fast
        assert fast is not None
        # A body complete by its Content-Length ended in end_request() itself.
        if fast.remaining:
            self._fail()
            raise LocalProtocolError(
                "invalid request: Too little data for declared Content-Length"
            )
        assert fast.remaining is None
        self._outgoing.append(b"0\r\n\r\n")
        fast.request_done = True

    def _fast_head(self, data: bytes) -> list[Event]:
        fast = self._fast
        assert fast is not None
        # The pieces are kept as they came: a replay must split them as the
        # network did (h11's results depend on it). Only the new bytes are
        # searched, so a head fed byte by byte costs O(n).
        fast.raw.append(data)
        buffer = fast.buffer
        start = len(buffer)
        if not start:
            if data[0] < 0x21:
                # No status line starts with a control byte or space (a TLS
                # alert, say): h11 refuses that at once, not at a blank line.
                return self._fall_back()
            buffer = fast.buffer = data  # the usual whole head in one read: no copy
        else:
            if type(buffer) is bytes:
                buffer = fast.buffer = bytearray(buffer)
            buffer += data
        end = buffer.find(b"\r\n\r\n", start - 3 if start > 3 else 0)
        if end < 0:
            # Bare LFs matter in the head only (h11 also ends lines and heads
            # at one): every new LF must end a CRLF, so there are as many LFs
            # as CRLFs ending at or after ``start`` (two counts in C, not a
            # loop per line). A complete head is checked whole by the parser.
            if buffer.count(b"\n", start) != buffer.count(
                b"\r\n", start - 1 if start else 0
            ):
                return self._fall_back()
            if len(buffer) > self._max_header_bytes:
                return self._fall_back()  # h11's limit checks report it
            return []
        # Slices of the usual bytes buffer are bytes already; of a bytearray,
        # copied once.
        if type(buffer) is bytes:
            raw_head, rest = buffer[: end + 2], buffer[end + 4 :]
        else:
            raw_head, rest = bytes(buffer[: end + 2]), bytes(buffer[end + 4 :])
        head = _parse_head(raw_head, self._max_header_count)
        if head is None or end + 4 > self._max_header_bytes or head[1] < 200:
            return self._fall_back()
        http_version, status, reason, headers, length, keep_alive = head
        stream_id = self._stream_id
        received = _response_received(stream_id, status, http_version, reason, headers)
        self._head_start = None
        fast.keep_alive = fast.keep_alive and keep_alive
        if (
            length is not None
            and len(rest) == length
            and status not in (204, 304)
            and fast.method != b"HEAD"
        ):
            # The usual small response: its head and whole body in one read.
            if length:
                data_received = _data_received(stream_id, rest)
                return [received, data_received, self._fast_complete(leftover=False)]
            return [received, self._fast_complete(leftover=False)]
        events: list[Event] = [received]
        fast.raw = []
        fast.buffer = b""
        fast.in_head = False
        if fast.method == b"HEAD" or status in (204, 304):
            fast.body_left = 0
        elif length is not None:
            fast.body_left = fast.body_expected = length
        else:
            fast.body_to_eof = True
        return self._fast_body(rest, events)

    def _fast_body(self, data: bytes, events: list[Event] | None = None) -> list[Event]:
        fast = self._fast
        assert fast is not None
        if events is None:
            events = []
        left = fast.body_left
        if left is None:  # delimited by EOF
            if data:
                events.append(_data_received(self._stream_id, data))
            return events
        if data and left:
            take = data if len(data) <= left else data[:left]
            fast.body_left = left = left - len(take)
            events.append(_data_received(self._stream_id, take))
            data = data[len(take) :]
        if not left:
            events.append(self._fast_complete(leftover=bool(data)))
        return events

    def _fast_complete(self, *, leftover: bool, eof: bool = False) -> ResponseComplete:
        fast = self._fast
        assert fast is not None
        self._fast = None
        self._fast_sending = not fast.request_done
        reusable = fast.request_done and fast.keep_alive and not leftover and not eof
        self._move(_COMPLETE_KEEP_ALIVE if reusable else _COMPLETE_CLOSE)
        return _response_complete(self._stream_id, reusable)

    def _fast_receive_eof(self) -> list[Event]:
        fast = self._fast
        assert fast is not None
        if fast.body_to_eof:
            return [self._fast_complete(leftover=False, eof=True)]
        received = fast.body_expected - (fast.body_left or 0)
        self._fail()
        raise RemoteProtocolError(  # h11's words
            "malformed response: peer closed connection without sending complete "
            f"message body (received {received} bytes, expected "
            f"{fast.body_expected})"
        )

    def _fall_back(self) -> list[Event]:
        """Replay the cycle so far into the (idle) h11 connection; return the
        events h11 makes of the response bytes received so far."""
        fast = self._fast
        assert fast is not None
        self._fast = None
        conn = self._h11
        conn.send(
            h11.Request(method=fast.method, target=fast.target, headers=fast.headers)
        )
        if fast.sent:
            # h11 only counts body bytes; an object of the right len() stands
            # in for the body we no longer hold.
            stand_in = cast(bytes, _Length(fast.sent))
            conn.send_with_data_passthrough(h11.Data(data=stand_in))
        if fast.request_done:
            conn.send(h11.EndOfMessage())
        # Piece by piece, as they came: h11's results depend on the splits.
        events: list[Event] = []
        fed = self._fed
        self._fed -= sum(map(len, fast.raw))
        # Only the last piece can complete a head or hold an error h11 sees
        # (the fast path hands over at the first read that ends a head or is
        # not plain), so its _events() hands out events and any pending error.
        for piece in fast.raw:
            self._fed += len(piece)
            conn.receive_data(piece)
            events += self._events()
        self._fed = fed
        return events

    # -- header limits -------------------------------------------------------

    def _check_head(self, event: h11.Response | h11.InformationalResponse) -> None:
        start = self._head_start if self._head_start is not None else self._fed
        size = self._fed - len(self._h11.trailing_data[0]) - start
        self._head_start = None
        if size > self._max_header_bytes:
            self._fail()
            raise RemoteProtocolError(
                f"response head is {size} bytes, more than max_header_bytes="
                f"{self._max_header_bytes}"
            )
        count = len(event.headers)
        if count > self._max_header_count:
            self._fail()
            raise RemoteProtocolError(
                f"response has {count} header fields, more than max_header_count="
                f"{self._max_header_count}"
            )

    def _check_trailers(self, headers: Sequence[tuple[bytes, bytes]]) -> None:
        # Trailers share the head's limits (RFC 9110 §6.5: they are fields too).
        # h11 does not expose their raw size, so count name, ": ", value, CRLF.
        count = len(headers)
        size = sum(len(name) + len(value) + 4 for name, value in headers)
        if count > self._max_header_count or size > self._max_header_bytes:
            self._fail()
            raise RemoteProtocolError(
                f"response trailers have {count} fields in about {size} bytes, more "
                f"than max_header_count={self._max_header_count} or "
                f"max_header_bytes={self._max_header_bytes}"
            )

    def _incomplete_head_message(self, pending: int) -> str:
        return (
            f"response head is still incomplete after {pending} bytes, more than "
            f"max_header_bytes={self._max_header_bytes}"
        )

    def _describe(self, exc: h11.RemoteProtocolError) -> str:
        if self._head_start is not None:
            pending = self._fed - self._head_start
            if pending > self._max_header_bytes:
                return self._incomplete_head_message(pending)
        return f"malformed response: {exc}"


def _has_cl_and_te(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    names = {name for name, _ in headers}
    return b"content-length" in names and b"transfer-encoding" in names


#: Whether new :class:`HTTP11State` objects use the fast path by default.
FAST_PATH = True

# RFC 9112 §4 status line and §5 field lines, narrowed to what the fast path
# handles: anything else falls back to h11 rather than being refused here.
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: ([\x20-\x7e]*))?")
# A field line is ``token ":" OWS value OWS`` (§5.1): checked per line with
# bytes.partition and by deleting the allowed bytes (bytes.translate), two C
# calls, after one pass over the whole head allowed only HTAB, CR, LF and
# visible ASCII or space (no CTL, no obs-text: h11 takes those heads): what
# is left once HTAB, space and visible ASCII are deleted must be CRLFs only.
_LINE_BYTES = bytes([0x09, *range(0x20, 0x7F)])
_DIGITS = re.compile(rb"[0-9]{1,18}")
# Field values without obs-text (h11 takes those: it accepts more than this).
_VALUE = re.compile(rb"(?:[\x21-\x7e](?:[ \t]*[\x21-\x7e])*)?")


class _Length:
    """Stands in for body bytes that h11 only measures (see ``_fall_back``)."""

    __slots__ = ("_length",)

    def __init__(self, length: int) -> None:
        self._length = length

    def __len__(self) -> int:
        return self._length


def _says_close(value: bytes) -> bool:
    """Whether a Connection field value lists ``close`` (as h11 reads it)."""
    return any(part.strip().lower() == b"close" for part in value.split(b","))


# A response head the fast path parsed strictly: the status line's version,
# code and reason, the fields, Content-Length (None: none) and whether neither
# the version nor a Connection field rules out keep-alive.
_FastHead = tuple[bytes, int, bytes, list[tuple[bytes, bytes]], int | None, bool]


def _parse_head(raw: bytes, max_count: int) -> _FastHead | None:
    """``raw`` is the head through the last field line's CRLF; None when it
    is not strictly the common shape (h11 then parses it), a
    Transfer-Encoding included (any coding is h11's business)."""
    lines = raw.split(b"\r\n")
    lines.pop()  # the empty string after the last CRLF
    # Only visible ASCII, space and HTAB in lines that end in CRLF: a bare
    # CR or LF (h11 ends a line at a bare LF) is h11's to judge. A line
    # remembered below came from a head that passed this check, so a head
    # made only of remembered lines needs none: it runs at the first new one.
    line_count = len(lines)
    status_line = lines[0]
    status = _STATUS_LINES.get(status_line)
    checked = False
    if status is None:
        if not _plain_lines(raw, line_count):
            return None
        checked = True
        match = _STATUS_LINE.fullmatch(status_line)
        if match is None:
            return None
        minor, code, reason = match.groups()
        status = (b"HTTP/1." + minor, int(code), reason or b"")
        if len(status_line) <= _REMEMBER_LINE_MAX:
            remember(_STATUS_LINES, status_line, status, _REMEMBER_MAX)
    del lines[0]
    if len(lines) > max_count:
        return None
    # h11: HTTP/1.0 is never kept alive.
    keep_alive = status[0] == b"HTTP/1.1"
    content_length = None
    headers: list[tuple[bytes, bytes]] = []
    append = headers.append
    known = _FIELD_LINES.get
    for line in lines:
        field = known(line)
        if field is None:
            if not checked:
                if not _plain_lines(raw, line_count):
                    return None
                checked = True
            field = _parse_field_line(line)
            if field is None:
                return None
            if len(line) <= _REMEMBER_LINE_MAX and not _is_secret(field[0][0]):
                remember(_FIELD_LINES, line, field, _REMEMBER_MAX)
        pair, kind = field
        if kind:
            if kind == _CONTENT_LENGTH:
                if content_length is not None:
                    return None  # repeated: h11 decides
                content_length = int(pair[1])
            elif kind == _TRANSFER_ENCODING:
                return None
            else:
                keep_alive = False  # Connection: close
        append(pair)
    return (*status, headers, content_length, keep_alive)


def _plain_lines(raw: bytes, count: int) -> bool:
    """Whether ``raw`` is ``count`` lines of visible ASCII, space and HTAB, each
    ended by CRLF (what is left once those bytes are deleted)."""
    return raw.translate(None, _LINE_BYTES) == b"\r\n" * count


# Field kinds the fast path acts on (0: any other field).
_CONTENT_LENGTH = 1
_TRANSFER_ENCODING = 2
_CONNECTION_CLOSE = 3


def _parse_field_line(line: bytes) -> tuple[tuple[bytes, bytes], int] | None:
    """``((name, value), kind)`` for a strictly well-formed field line, or None."""
    name, colon, value = line.partition(b":")
    if not colon or not name or name.translate(None, TCHAR):
        return None  # no colon, an empty name, or not a token
    value = value.strip(b" \t")
    lower = name.lower()
    kind = 0
    if lower == b"content-length":
        if not _DIGITS.fullmatch(value):
            return None  # unusual: h11 decides
        kind = _CONTENT_LENGTH
    elif lower == b"transfer-encoding":
        kind = _TRANSFER_ENCODING
    elif lower == b"connection" and _says_close(value):
        kind = _CONNECTION_CLOSE
    return (name, value), kind


# Status and field lines parsed before, by their bytes: a server repeats most
# of them from one response to the next (the status line, Server,
# Content-Type, Connection...), and a parsed line is immutable, so a repeat is
# one dict lookup. Shared by every connection; bounded in entries and in the
# length of a line kept, and emptied when full.
_STATUS_LINES: dict[bytes, tuple[bytes, int, bytes]] = {}
# The same for request fields: ``(name, value)`` to its serialised line and
# lower-cased name (a client sends the same few fields again and again).
_REQUEST_FIELDS: dict[tuple[bytes, bytes], tuple[bytes, bytes]] = {}
# And request lines, by ``(method, target)`` (none with a query): one a plain
# request may use.
_REQUEST_LINES: dict[tuple[bytes, bytes], bytes] = {}
_FIELD_LINES: dict[bytes, tuple[tuple[bytes, bytes], int]] = {}
_REMEMBER_MAX = 512
_REMEMBER_LINE_MAX = 256


# Credentials are never remembered: they are not kept beyond their own
# request and response (the names h2 never indexes, and Set-Cookie).
_SECRET_NAMES = frozenset(
    {b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"}
)


def _is_secret(name: bytes) -> bool:
    return name.lower() in _SECRET_NAMES


class _FastCycle:
    """One request/response cycle on the fast path.

    Not slotted: the fields that start every cycle the same way are class
    attributes until a cycle changes them, so a new cycle sets only seven.
    """

    request_done = False
    sent = 0  # body bytes sent, for a replay into h11
    # The response pieces received before the head was complete, joined (the
    # first piece itself until a second one comes).
    buffer: bytes | bytearray = b""
    in_head = True  # the final response head has not been parsed
    body_left: int | None = None  # Content-Length still due
    body_expected = 0
    body_to_eof = False

    def __init__(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        head: bytes,
        remaining: int | None,
        keep_alive: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.head = head  # the serialised request head
        self.remaining = remaining  # body bytes still due; None when chunked
        self.keep_alive = keep_alive  # neither side said Connection: close
        self.raw: list[bytes] = []  # the same pieces as ``buffer``, as they came

    @classmethod
    def start(
        cls, method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]]
    ) -> _FastCycle | None:
        """The cycle for a plain request (its head serialised as h11 does), or
        None when h11 should take it."""
        try:
            request_line = _REQUEST_LINES.get((method, target))
        except (TypeError, ValueError):  # a bytearray, a writable memoryview
            request_line = None
        if request_line is None:
            if (
                method == b"CONNECT"
                or (
                    # The usual methods skip the token regex.
                    (type(method) is not bytes or method not in _METHODS)
                    and _TOKEN.fullmatch(method) is None
                )
                or _TARGET.fullmatch(target) is None
            ):
                return None
            request_line = b"%s %s HTTP/1.1\r\n" % (method, target)
            if (
                type(method) is bytes
                and type(target) is bytes
                and len(method) + len(target) <= _REMEMBER_LINE_MAX
                # A query may carry a token (?api_key=...): never kept.
                and b"?" not in target
            ):
                remember(_REQUEST_LINES, (method, target), request_line, _REMEMBER_MAX)
        host: list[bytes] = []
        others: list[bytes] = []
        length = None
        chunked = False
        keep_alive = True
        for field in headers:
            try:
                known = _REQUEST_FIELDS.get(field)
                hashable = True
            except (TypeError, ValueError):  # a list, a bytearray, a writable
                # memoryview: served, not remembered
                known = None
                hashable = False
            if known is None:
                name, value = field
                if _TOKEN.fullmatch(name) is None or _VALUE.fullmatch(value) is None:
                    return None
                known = (b"%s: %s\r\n" % (name, value), name.lower())
                if (
                    hashable
                    and len(name) + len(value) <= _REMEMBER_LINE_MAX
                    and known[1] not in _SECRET_NAMES
                ):
                    remember(_REQUEST_FIELDS, field, known, _REMEMBER_MAX)
            line, lower = known
            value = field[1]
            if lower == b"host":
                host.append(line)
                continue
            others.append(line)
            if lower == b"content-length":
                if length is not None or _DIGITS.fullmatch(value) is None:
                    return None
                length = int(value)
            elif lower == b"transfer-encoding":
                if chunked or value != b"chunked":
                    return None
                chunked = True
            elif lower in (b"upgrade", b"expect"):
                return None
            elif lower == b"connection" and _says_close(value):
                keep_alive = False
        if len(host) != 1 or (chunked and length is not None):
            return None
        # h11 writes Host first (RFC 9110 §7.2), then the rest in order.
        head = b"".join([request_line, host[0], *others, b"\r\n"])
        remaining = None if chunked else (length or 0)
        return cls(method, target, list(headers), head, remaining, keep_alive)
