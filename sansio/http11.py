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
from collections.abc import Sequence
from typing import Any

import h11

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


class HTTP11ConnectionState(enum.Enum):
    """Where one HTTP/1.1 client connection is in its life."""

    IDLE = "IDLE"  # no request in flight; may send one
    ACTIVE = "ACTIVE"  # a request is being sent or its response received
    SWITCHED = "SWITCHED"  # 101 / CONNECT succeeded: no longer HTTP
    CLOSED = "CLOSED"  # must not be used again; the socket should close
    ERROR = "ERROR"  # a protocol error happened; every call now raises


class _Input(enum.Enum):
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


class HTTP11State:
    """A client HTTP/1.1 connection with no I/O: commands in, bytes and events out.

    Args:
        max_header_bytes: Largest response head (status line, fields and the
            blank line) accepted, counted exactly whatever the read sizes.
        max_header_count: Most fields accepted in one response head.
    """

    def __init__(
        self,
        *,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
    ) -> None:
        self._max_header_bytes = max_header_bytes
        self._max_header_count = max_header_count
        # h11 bounds incomplete events by this; with the same number the only
        # incomplete event that can reach it in the head phase is the head.
        self._h11 = h11.Connection(
            h11.CLIENT, max_incomplete_event_size=max_header_bytes
        )
        self._state = HTTP11ConnectionState.IDLE
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

    # -- introspection -------------------------------------------------------

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
    def is_sending_body(self) -> bool:
        """Whether the request body may still be sent (its end not yet sent)."""
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
        self._state = HTTP11ConnectionState.ERROR

    # -- commands ------------------------------------------------------------

    def send_request(
        self, method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]]
    ) -> None:
        """Start a cycle with the request head; ``Host`` must be among ``headers``.

        Raises:
            LocalProtocolError: Not IDLE, or h11 refused the head (for example a
                missing Host header or an illegal field).
        """
        if self._state is not HTTP11ConnectionState.IDLE:
            self._move(_Input.SEND_REQUEST)
        self._send(h11.Request, method=method, target=target, headers=list(headers))
        self._move(_Input.SEND_REQUEST)
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
            self._send(h11.Data, data=data)

    def end_request(self) -> None:
        """Finish the request body (the last chunk, for chunked encoding).

        Raises:
            LocalProtocolError: No body is expected now, or fewer bytes were
                sent than the request's Content-Length.
        """
        self._require_sending("end request")
        self._send(h11.EndOfMessage)

    def close(self) -> None:
        """Mark the connection closed: the driver is about to drop the socket."""
        if self._state is not HTTP11ConnectionState.ERROR:
            self._move(_Input.CLOSE)

    def data_to_send(self) -> bytes:
        """Return, and forget, every byte the commands queued."""
        if not self._outgoing:
            return b""
        data = b"".join(self._outgoing)
        self._outgoing.clear()
        return data

    def _require_sending(self, what: str) -> None:
        if self._state is HTTP11ConnectionState.ERROR:
            raise LocalProtocolError(f"cannot {what}: connection is in ERROR state")
        if self._state is not HTTP11ConnectionState.ACTIVE or not self.is_sending_body:
            raise LocalProtocolError(
                f"cannot {what}: the request body is not being sent "
                f"(connection {self._state.value})"
            )

    def _send(self, event_type: Any, **fields: Any) -> None:
        # h11 validates both when an event is built and when it is sent: this is
        # the one place its LocalProtocolError becomes ours.
        try:
            pieces = self._h11.send_with_data_passthrough(event_type(**fields))
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
            if state is HTTP11ConnectionState.ERROR:
                return self._refuse_input()
            return []
        if state is HTTP11ConnectionState.ACTIVE:
            self._fed += len(data)
            self._response_started = True
            self._h11.receive_data(data)
            return self._events()
        if state is HTTP11ConnectionState.IDLE or state is _S.CLOSED:
            self._move(_Input.UNSOLICITED_DATA)
            return []
        return self._refuse_input()

    def receive_eof(self) -> list[Event]:
        """Tell the core the server closed its side; return the last events.

        Raises:
            RemoteProtocolError: The response was cut short, or never began
                ("Server disconnected without sending a response.").
        """
        state = self._state
        if state is HTTP11ConnectionState.ACTIVE:
            if not self._response_started:
                self._fail()
                raise RemoteProtocolError(_SERVER_DISCONNECTED)
            self._h11.receive_data(b"")
            events = self._events()
            if self._state is HTTP11ConnectionState.ACTIVE:
                # h11 read to EOF without completing the response.
                self._fail()
                raise RemoteProtocolError(
                    "Server disconnected before the response was complete."
                )
            return events
        if state is HTTP11ConnectionState.IDLE or state is _S.CLOSED:
            self._move(_Input.EOF)
            return []
        return self._refuse_input()

    def _refuse_input(self) -> list[Event]:
        if self._state is HTTP11ConnectionState.SWITCHED:
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
            if event is h11.NEED_DATA or event is h11.PAUSED:
                self._check_incomplete_head()
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
            elif type(event) is h11.InformationalResponse:
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
            else:  # h11.ConnectionClosed: only reachable after EOF
                return

    def _switch(self) -> ProtocolSwitched:
        self._move(_Input.SWITCH)
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
            self._move(_Input.COMPLETE_KEEP_ALIVE)
        else:
            self._move(_Input.COMPLETE_CLOSE)
        return ResponseComplete(stream_id=self._stream_id, reusable=reusable)

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

    def _check_incomplete_head(self) -> None:
        if self._head_start is not None:
            pending = self._fed - self._head_start
            if pending > self._max_header_bytes:
                self._fail()
                raise RemoteProtocolError(self._incomplete_head_message(pending))

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
