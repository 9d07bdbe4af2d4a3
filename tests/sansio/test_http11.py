"""Tests for sansio.http11: HTTP11State, bytes in and events out.

Response bytes come from a real h11 server fed with the bytes our client state
produced, so ordinary vectors are what a conforming server sends; malformed and
hostile input is written by hand in tables. Every parser test feeds its input
whole, one byte at a time and in a few seeded random splits, and checks that all
strategies give the same events (consecutive DataReceived merged, since how a
body is chunked follows how it was read).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import h11
import pytest

import sansio.http11
from sansio import (
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_HEADER_COUNT,
    DataReceived,
    Event,
    HTTP11ConnectionState,
    HTTP11State,
    InformationalResponse,
    LocalProtocolError,
    ProtocolSwitched,
    RemoteProtocolError,
    ResponseComplete,
    ResponseReceived,
    TrailersReceived,
)
from tests.sansio.splitting import SPLITTERS, Splitter, bytewise, merge_data, whole

IDLE = HTTP11ConnectionState.IDLE
ACTIVE = HTTP11ConnectionState.ACTIVE
SWITCHED = HTTP11ConnectionState.SWITCHED
CLOSED = HTTP11ConnectionState.CLOSED
ERROR = HTTP11ConnectionState.ERROR

HOST = (b"Host", b"example.com")


@pytest.fixture(autouse=True, params=["fast", "h11"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs twice: on the fast path (the default) and on h11
    alone, the reference; the same assertions hold for both (differential)."""
    monkeypatch.setattr(sansio.http11, "FAST_PATH", request.param == "fast")
    return str(request.param)


# Splitting strategies: tests/sansio/splitting.py.


def feed(state: HTTP11State, data: bytes, chunks: Splitter) -> list[Event]:
    """Feed ``data`` to ``state`` in the pieces ``chunks`` cuts it into."""
    pieces = chunks(data)
    assert b"".join(pieces) == data
    # An empty piece would be a different input (h11 reads b"" as EOF).
    assert all(pieces)
    events: list[Event] = []
    for piece in pieces:
        events.extend(state.receive_data(piece))
    return events


# -- a client state and an h11 server peer -------------------------------------


@dataclass
class Exchange:
    """One request, sent by a fresh HTTP11State and answered by an h11 server."""

    method: bytes = b"GET"
    target: bytes = b"/"
    headers: Sequence[tuple[bytes, bytes]] = (HOST,)
    body: bytes = b""
    limits: dict[str, int] = field(default_factory=dict)

    def start(self) -> HTTP11State:
        """A state that has sent the whole request and awaits the response."""
        state = HTTP11State(**self.limits)
        state.send_request(self.method, self.target, list(self.headers))
        state.send_body(self.body)
        state.end_request()
        state.data_to_send()
        return state

    @property
    def request_bytes(self) -> bytes:
        state = HTTP11State()
        state.send_request(self.method, self.target, list(self.headers))
        state.send_body(self.body)
        state.end_request()
        return state.data_to_send()

    def respond(self, *events: Any) -> bytes:
        """The bytes an h11 server writes for ``events`` after reading our request."""
        server = h11.Connection(h11.SERVER)
        server.receive_data(self.request_bytes)
        while server.next_event() not in (h11.NEED_DATA, h11.PAUSED):
            pass
        return b"".join(server.send(event) or b"" for event in events)


def feed_every_way(
    exchange: Exchange, data: bytes, *, eof: bool = False, tail: bytes = b""
) -> tuple[list[Event], HTTP11ConnectionState]:
    """Feed ``data`` every way and check all ways agree; return events and state.

    ``tail`` is appended to the last piece, as bytes that arrive in the same read
    as the end of ``data``; ``eof`` ends the input with ``receive_eof()``.
    """
    results = []
    for name, splitter in SPLITTERS.items():
        state = exchange.start()

        def chunks(buf: bytes, splitter: Splitter = splitter) -> list[bytes]:
            pieces = splitter(buf[: len(buf) - len(tail)])
            pieces[-1] += tail
            return pieces

        events = feed(state, data + tail, chunks)
        if eof:
            events.extend(state.receive_eof())
        results.append((name, merge_data(events), state.state))
    _, first_events, first_state = results[0]
    for name, events, final in results[1:]:
        assert events == first_events, name
        assert final is first_state, name
    return first_events, first_state


def errors_every_way(
    exchange: Exchange, data: bytes, *, eof: bool = False
) -> list[RemoteProtocolError]:
    """Feed ``data`` every way; each must raise RemoteProtocolError and go to ERROR."""
    errors = []
    for name, splitter in SPLITTERS.items():
        state = exchange.start()

        def run(state: HTTP11State = state, splitter: Splitter = splitter) -> None:
            feed(state, data, splitter)
            # Events complete before the error were returned; the error is
            # pending and comes with the next receive call, however split.
            if eof or state.pending_error is not None:
                state.receive_eof()

        with pytest.raises(RemoteProtocolError) as info:
            run()
        assert state.state is ERROR, name
        errors.append(info.value)
    return errors


def response_head(*lines: bytes, status: bytes = b"HTTP/1.1 200 OK") -> bytes:
    return b"".join(line + b"\r\n" for line in (status, *lines)) + b"\r\n"


GET = Exchange()


# -- request serialisation -----------------------------------------------------


def test_get_request_bytes() -> None:
    """A GET is serialised as its request line and fields, names' case kept."""
    state = HTTP11State()
    state.send_request(
        b"GET", b"/path?q=1", [HOST, (b"Accept", b"*/*"), (b"X-Custom-ID", b"7")]
    )
    state.end_request()
    assert state.data_to_send() == (
        b"GET /path?q=1 HTTP/1.1\r\n"
        b"Host: example.com\r\n"
        b"Accept: */*\r\n"
        b"X-Custom-ID: 7\r\n"
        b"\r\n"
    )


def test_post_content_length_body_bytes() -> None:
    """A Content-Length body follows the head verbatim, piece by piece."""
    state = HTTP11State()
    state.send_request(b"POST", b"/submit", [HOST, (b"Content-Length", b"11")])
    state.send_body(b"hello")
    state.send_body(b" world")
    state.end_request()
    assert state.data_to_send() == (
        b"POST /submit HTTP/1.1\r\n"
        b"Host: example.com\r\n"
        b"Content-Length: 11\r\n"
        b"\r\n"
        b"hello world"
    )


def test_post_chunked_body_bytes() -> None:
    """With Transfer-Encoding: chunked each piece is a hex-sized chunk, then 0."""
    state = HTTP11State()
    state.send_request(b"POST", b"/up", [HOST, (b"Transfer-Encoding", b"chunked")])
    state.send_body(b"hello")
    state.send_body(b"abcdefghijklmnopq")
    state.end_request()
    assert state.data_to_send() == (
        b"POST /up HTTP/1.1\r\n"
        b"Host: example.com\r\n"
        b"Transfer-Encoding: chunked\r\n"
        b"\r\n"
        b"5\r\nhello\r\n"
        b"11\r\nabcdefghijklmnopq\r\n"
        b"0\r\n\r\n"
    )


def test_request_bytes_parse_back_on_an_h11_server() -> None:
    """What the client writes an h11 server reads as the same request and body."""
    exchange = Exchange(
        method=b"PUT",
        target=b"/x",
        headers=[HOST, (b"Transfer-Encoding", b"chunked")],
        body=b"payload",
    )
    server = h11.Connection(h11.SERVER)
    server.receive_data(exchange.request_bytes)
    request = server.next_event()
    data = server.next_event()
    end = server.next_event()
    assert isinstance(request, h11.Request)
    assert (request.method, request.target) == (b"PUT", b"/x")
    assert request.headers.raw_items() == [
        (b"Host", b"example.com"),
        (b"Transfer-Encoding", b"chunked"),
    ]
    assert isinstance(data, h11.Data)
    assert data.data == b"payload"
    assert isinstance(end, h11.EndOfMessage)


def test_data_to_send_drains() -> None:
    """data_to_send returns queued bytes once, then nothing."""
    state = HTTP11State()
    assert state.data_to_send() == b""
    state.send_request(b"POST", b"/", [HOST, (b"Content-Length", b"2")])
    assert state.data_to_send() == (
        b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2\r\n\r\n"
    )
    assert state.data_to_send() == b""
    state.send_body(b"ok")
    state.end_request()
    assert state.data_to_send() == b"ok"
    assert state.data_to_send() == b""


def test_is_sending_body_tracks_request_body() -> None:
    """is_sending_body is true from send_request until end_request."""
    state = HTTP11State()
    assert state.is_sending_body is False
    state.send_request(b"POST", b"/", [HOST, (b"Content-Length", b"1")])
    assert state.is_sending_body is True
    state.send_body(b"x")
    assert state.is_sending_body is True
    state.end_request()
    assert state.is_sending_body is False


def test_send_request_moves_to_active_and_counts_streams() -> None:
    """send_request moves IDLE to ACTIVE and numbers the cycle from 1."""
    state = HTTP11State()
    assert (state.state, state.stream_id) == (IDLE, 0)
    state.send_request(b"GET", b"/", [HOST])
    assert (state.state, state.stream_id) == (ACTIVE, 1)


# -- commands in the wrong state -----------------------------------------------


BODY_COMMANDS = [("send_body", (b"x",)), ("end_request", ())]


@pytest.mark.parametrize(("command", "args"), BODY_COMMANDS)
def test_body_commands_refused_when_idle(command: str, args: tuple[bytes]) -> None:
    """send_body and end_request without a request in flight raise."""
    state = HTTP11State()
    with pytest.raises(LocalProtocolError, match="request body is not being sent"):
        getattr(state, command)(*args)
    assert state.state is IDLE
    assert state.data_to_send() == b""


@pytest.mark.parametrize(("command", "args"), BODY_COMMANDS)
def test_body_commands_refused_after_end_request(
    command: str, args: tuple[bytes]
) -> None:
    """Once the request ended, no more body and no second end are accepted."""
    state = GET.start()
    with pytest.raises(LocalProtocolError, match="request body is not being sent"):
        getattr(state, command)(*args)
    assert state.data_to_send() == b""


def test_send_request_refused_while_active() -> None:
    """A second request before the response completes raises (no pipelining)."""
    state = GET.start()
    with pytest.raises(LocalProtocolError, match="while the connection is ACTIVE"):
        state.send_request(b"GET", b"/again", [HOST])
    assert state.data_to_send() == b""
    assert state.stream_id == 1


def test_body_longer_than_content_length_refused() -> None:
    """More body than Content-Length declared raises and poisons the state."""
    state = HTTP11State()
    state.send_request(b"POST", b"/", [HOST, (b"Content-Length", b"3")])
    with pytest.raises(LocalProtocolError, match="invalid request"):
        state.send_body(b"four")
    assert state.state is ERROR


def test_body_shorter_than_content_length_refused() -> None:
    """end_request before Content-Length bytes were sent raises."""
    state = HTTP11State()
    state.send_request(b"POST", b"/", [HOST, (b"Content-Length", b"3")])
    state.send_body(b"ab")
    with pytest.raises(LocalProtocolError, match="invalid request"):
        state.end_request()
    assert state.state is ERROR


INVALID_REQUEST_HEADS = [
    # (method, target, headers)
    pytest.param(b"GET", b"/", [], id="missing-host"),
    pytest.param(b"GET", b"/", [HOST, HOST], id="two-hosts"),
    pytest.param(b"GE T", b"/", [HOST], id="space-in-method"),
    pytest.param(b"GET", b"/a b", [HOST], id="space-in-target"),
    pytest.param(b"GET", b"/", [HOST, (b"X-A", b"a\r\nb")], id="crlf-in-value"),
    pytest.param(b"GET", b"/", [HOST, (b"Bad Name", b"v")], id="space-in-name"),
    pytest.param(b"GET", b"/", [HOST, (b"X-A", b"a\x01b")], id="ctl-in-value"),
    pytest.param(b"GET", b"/", [HOST, (b"X-A", b"a\x7fb")], id="del-in-value"),
    pytest.param(
        b"GET", b"/", [HOST, (b"Upgrade", b"x\x1by")], id="ctl-on-the-h11-path"
    ),
    pytest.param(
        b"POST",
        b"/",
        [HOST, (b"Content-Length", b"1"), (b"Content-Length", b"2")],
        id="conflicting-content-length",
    ),
    pytest.param(
        b"POST", b"/", [HOST, (b"Transfer-Encoding", b"gzip")], id="te-not-chunked"
    ),
]


@pytest.mark.parametrize(("method", "target", "headers"), INVALID_REQUEST_HEADS)
def test_invalid_request_head_raises_local_protocol_error(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    """A request head h11 refuses raises sansio's LocalProtocolError, sends
    nothing and changes nothing: the connection still takes a valid request."""
    state = HTTP11State()
    with pytest.raises(
        LocalProtocolError, match=r"invalid (request|header name|value for header)"
    ):
        state.send_request(method, target, headers)
    assert state.data_to_send() == b""
    assert state.stream_id == 0
    assert state.state is IDLE
    state.send_request(b"GET", b"/", [HOST])
    assert state.data_to_send().startswith(b"GET / HTTP/1.1\r\n")


# -- simple responses ----------------------------------------------------------


def test_simple_response() -> None:
    """A Content-Length response gives head, body and a reusable completion."""
    data = GET.respond(
        h11.Response(
            status_code=200,
            reason=b"OK",
            headers=[(b"Content-Length", b"5"), (b"X-Custom-Header", b"v")],
        ),
        h11.Data(data=b"hello"),
        h11.EndOfMessage(),
    )
    events, final = feed_every_way(GET, data)
    assert events == [
        ResponseReceived(
            stream_id=1,
            status=200,
            http_version=b"HTTP/1.1",
            reason_phrase=b"OK",
            headers=[(b"Content-Length", b"5"), (b"X-Custom-Header", b"v")],
        ),
        DataReceived(stream_id=1, data=b"hello"),
        ResponseComplete(stream_id=1, reusable=True),
    ]
    assert final is IDLE


def test_response_head_only_then_body() -> None:
    """The head is reported as soon as it is complete, before any body byte."""
    state = GET.start()
    events = state.receive_data(response_head(b"Content-Length: 3"))
    assert events == [
        ResponseReceived(
            stream_id=1,
            status=200,
            http_version=b"HTTP/1.1",
            reason_phrase=b"OK",
            headers=[(b"Content-Length", b"3")],
        )
    ]
    assert state.state is ACTIVE
    assert state.receive_data(b"ab") == [DataReceived(stream_id=1, data=b"ab")]
    assert state.receive_data(b"c") == [
        DataReceived(stream_id=1, data=b"c"),
        ResponseComplete(stream_id=1, reusable=True),
    ]
    assert state.state is IDLE


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_status_completes_at_head(status: int) -> None:
    """204 and 304 have no body, whatever Content-Length says."""
    head = response_head(
        b"Content-Length: 100", status=b"HTTP/1.1 %d Whatever" % status
    )
    events, final = feed_every_way(GET, head)
    assert [type(e) for e in events] == [ResponseReceived, ResponseComplete]
    assert events[0].status == status  # type: ignore[union-attr]
    assert events[1] == ResponseComplete(stream_id=1, reusable=True)
    assert final is IDLE


def test_empty_reason_phrase() -> None:
    """A status line without a reason phrase gives an empty reason_phrase."""
    events, _ = feed_every_way(GET, b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n")
    assert events[0] == ResponseReceived(
        stream_id=1,
        status=200,
        http_version=b"HTTP/1.1",
        reason_phrase=b"",
        headers=[(b"Content-Length", b"0")],
    )


def test_stream_id_increments_per_cycle() -> None:
    """Each request/response cycle on a kept-alive connection gets the next id."""
    state = HTTP11State()
    reply = response_head(b"Content-Length: 2") + b"ok"
    for stream_id in (1, 2, 3):
        state.send_request(b"GET", b"/%d" % stream_id, [HOST])
        state.end_request()
        assert state.data_to_send() == (
            b"GET /%d HTTP/1.1\r\nHost: example.com\r\n\r\n" % stream_id
        )
        events = feed(state, reply, bytewise)
        assert merge_data(events) == [
            ResponseReceived(
                stream_id=stream_id,
                status=200,
                http_version=b"HTTP/1.1",
                reason_phrase=b"OK",
                headers=[(b"Content-Length", b"2")],
            ),
            DataReceived(stream_id=stream_id, data=b"ok"),
            ResponseComplete(stream_id=stream_id, reusable=True),
        ]
        assert (state.state, state.stream_id) == (IDLE, stream_id)


def test_connection_close_response_not_reusable() -> None:
    """A response with Connection: close completes not reusable and CLOSED."""
    data = GET.respond(
        h11.Response(
            status_code=200,
            headers=[(b"Content-Length", b"2"), (b"Connection", b"close")],
        ),
        h11.Data(data=b"hi"),
        h11.EndOfMessage(),
    )
    events, final = feed_every_way(GET, data)
    assert events[1:] == [
        DataReceived(stream_id=1, data=b"hi"),
        ResponseComplete(stream_id=1, reusable=False),
    ]
    assert final is CLOSED


def test_request_with_connection_close_not_reusable() -> None:
    """If we asked to close, the response is not reusable either."""
    exchange = Exchange(headers=[HOST, (b"Connection", b"close")])
    data = exchange.respond(
        h11.Response(status_code=200, headers=[(b"Content-Length", b"0")]),
        h11.EndOfMessage(),
    )
    events, final = feed_every_way(exchange, data)
    assert events[-1] == ResponseComplete(stream_id=1, reusable=False)
    assert final is CLOSED


def test_response_before_request_body_finished_not_reusable() -> None:
    """An early final response while our body is still open is not reusable."""
    state = HTTP11State()
    state.send_request(b"POST", b"/", [HOST, (b"Content-Length", b"10")])
    state.send_body(b"12345")
    events = state.receive_data(
        response_head(b"Content-Length: 0", status=b"HTTP/1.1 413 Too Large")
    )
    assert events[-1] == ResponseComplete(stream_id=1, reusable=False)
    assert state.state is CLOSED


@pytest.mark.parametrize(
    ("head", "version"),
    [
        pytest.param(b"HTTP/1.0 200 OK\r\n\r\n", b"HTTP/1.0", id="http-1.0"),
        pytest.param(
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n",
            b"HTTP/1.0",
            id="http-1.0-keep-alive",
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\n\r\n", b"HTTP/1.1", id="http-1.1"),
    ],
)
def test_response_read_to_eof(head: bytes, version: bytes) -> None:
    """A response without framing is body until EOF, then completes not reusable."""
    events, final = feed_every_way(GET, head + b"body bytes", eof=True)
    assert events[0].http_version == version  # type: ignore[union-attr]
    assert events[1:] == [
        DataReceived(stream_id=1, data=b"body bytes"),
        ResponseComplete(stream_id=1, reusable=False),
    ]
    assert final is CLOSED


def test_response_read_to_eof_completes_only_at_eof() -> None:
    """Without framing, no ResponseComplete is emitted until receive_eof."""
    state = GET.start()
    events = state.receive_data(b"HTTP/1.0 200 OK\r\n\r\nhello")
    assert [type(e) for e in events] == [ResponseReceived, DataReceived]
    assert state.state is ACTIVE
    assert state.receive_eof() == [ResponseComplete(stream_id=1, reusable=False)]
    assert state.state is CLOSED


def test_http10_content_length_response_not_reusable() -> None:
    """An HTTP/1.0 response is never reused, even with Content-Length."""
    data = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nhi"
    events, final = feed_every_way(GET, data)
    assert events == [
        ResponseReceived(
            stream_id=1,
            status=200,
            http_version=b"HTTP/1.0",
            reason_phrase=b"OK",
            headers=[(b"Content-Length", b"2"), (b"Connection", b"keep-alive")],
        ),
        DataReceived(stream_id=1, data=b"hi"),
        ResponseComplete(stream_id=1, reusable=False),
    ]
    assert final is CLOSED


# -- chunked responses and trailers --------------------------------------------


def test_chunked_response_with_trailers() -> None:
    """Chunked bodies are decoded and trailer fields become TrailersReceived."""
    data = GET.respond(
        h11.Response(status_code=200, headers=[(b"Content-Type", b"text/plain")]),
        h11.Data(data=b"hello "),
        h11.Data(data=b"world"),
        h11.EndOfMessage(headers=[(b"X-Checksum", b"abc"), (b"X-Count", b"2")]),
    )
    events, final = feed_every_way(GET, data)
    assert events == [
        ResponseReceived(
            stream_id=1,
            status=200,
            http_version=b"HTTP/1.1",
            reason_phrase=b"",
            headers=[
                (b"Content-Type", b"text/plain"),
                (b"Transfer-Encoding", b"chunked"),
            ],
        ),
        DataReceived(stream_id=1, data=b"hello world"),
        TrailersReceived(
            stream_id=1, headers=[(b"X-Checksum", b"abc"), (b"X-Count", b"2")]
        ),
        ResponseComplete(stream_id=1, reusable=True),
    ]
    assert final is IDLE


def test_chunked_response_without_trailers() -> None:
    """A chunked body without trailers emits no TrailersReceived."""
    data = (
        response_head(b"Transfer-Encoding: chunked")
        + b"3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n"
    )
    events, final = feed_every_way(GET, data)
    assert events[1:] == [
        DataReceived(stream_id=1, data=b"abc0123456789"),
        ResponseComplete(stream_id=1, reusable=True),
    ]
    assert final is IDLE


# -- informational responses ---------------------------------------------------


def test_100_continue_then_final_response() -> None:
    """100 Continue is an InformationalResponse, then the final response follows."""
    exchange = Exchange(
        method=b"POST",
        headers=[HOST, (b"Expect", b"100-continue"), (b"Content-Length", b"1")],
        body=b"x",
    )
    data = exchange.respond(
        h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"),
        h11.Response(status_code=201, headers=[(b"Content-Length", b"0")]),
        h11.EndOfMessage(),
    )
    events, final = feed_every_way(exchange, data)
    assert events == [
        InformationalResponse(
            stream_id=1, status=100, headers=[], reason_phrase=b"Continue"
        ),
        ResponseReceived(
            stream_id=1,
            status=201,
            http_version=b"HTTP/1.1",
            reason_phrase=b"",
            headers=[(b"Content-Length", b"0")],
        ),
        ResponseComplete(stream_id=1, reusable=True),
    ]
    assert final is IDLE


def test_103_early_hints_then_final_response() -> None:
    """Several 1xx heads each give an InformationalResponse with their fields."""
    data = GET.respond(
        h11.InformationalResponse(
            status_code=103, headers=[(b"Link", b"</a.css>; rel=preload")]
        ),
        h11.InformationalResponse(
            status_code=103, headers=[(b"Link", b"</b.js>; rel=preload")]
        ),
        h11.Response(status_code=200, headers=[(b"Content-Length", b"1")]),
        h11.Data(data=b"!"),
        h11.EndOfMessage(),
    )
    events, final = feed_every_way(GET, data)
    assert events == [
        InformationalResponse(
            stream_id=1, status=103, headers=[(b"Link", b"</a.css>; rel=preload")]
        ),
        InformationalResponse(
            stream_id=1, status=103, headers=[(b"Link", b"</b.js>; rel=preload")]
        ),
        ResponseReceived(
            stream_id=1,
            status=200,
            http_version=b"HTTP/1.1",
            reason_phrase=b"",
            headers=[(b"Content-Length", b"1")],
        ),
        DataReceived(stream_id=1, data=b"!"),
        ResponseComplete(stream_id=1, reusable=True),
    ]
    assert final is IDLE


# -- protocol switches ---------------------------------------------------------

UPGRADE = Exchange(
    headers=[HOST, (b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")]
)
CONNECT = Exchange(
    method=b"CONNECT",
    target=b"example.com:443",
    headers=[(b"Host", b"example.com:443")],
)


@pytest.mark.parametrize("tail", [b"", b"\x81\x05hello", b"\x81\x05hello\x88\x00"])
def test_101_upgrade_switches_protocol(tail: bytes) -> None:
    """101 gives ResponseReceived(101) and ProtocolSwitched with the bytes after it."""
    data = UPGRADE.respond(
        h11.InformationalResponse(
            status_code=101,
            reason=b"Switching Protocols",
            headers=[(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")],
        )
    )
    events, final = feed_every_way(UPGRADE, data, tail=tail)
    assert events == [
        ResponseReceived(
            stream_id=1,
            status=101,
            http_version=b"HTTP/1.1",
            reason_phrase=b"Switching Protocols",
            headers=[(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")],
        ),
        ProtocolSwitched(stream_id=1, buffered=tail),
    ]
    assert final is SWITCHED


def test_101_without_upgrade_request_is_remote_error() -> None:
    """A 101 to a request that proposed no upgrade is a protocol error."""
    errors = errors_every_way(GET, b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
    assert all(str(e).startswith("malformed response:") for e in errors)


@pytest.mark.parametrize("tail", [b"", b"\x16\x03\x01\x00\x05hello"])
def test_connect_200_switches_protocol(tail: bytes) -> None:
    """A 2xx answer to CONNECT hands the following bytes over as the tunnel's."""
    data = CONNECT.respond(
        h11.Response(status_code=200, reason=b"Connection established", headers=[])
    )
    events, final = feed_every_way(CONNECT, data, tail=tail)
    assert events == [
        ResponseReceived(
            stream_id=1,
            status=200,
            http_version=b"HTTP/1.1",
            reason_phrase=b"Connection established",
            headers=[],
        ),
        ProtocolSwitched(stream_id=1, buffered=tail),
    ]
    assert final is SWITCHED


def test_connect_407_is_a_normal_response() -> None:
    """A non-2xx answer to CONNECT is an ordinary response: body, no switch."""
    data = CONNECT.respond(
        h11.Response(
            status_code=407,
            reason=b"Proxy Authentication Required",
            headers=[
                (b"Proxy-Authenticate", b"Basic"),
                (b"Content-Length", b"6"),
            ],
        ),
        h11.Data(data=b"denied"),
        h11.EndOfMessage(),
    )
    events, final = feed_every_way(CONNECT, data)
    assert events == [
        ResponseReceived(
            stream_id=1,
            status=407,
            http_version=b"HTTP/1.1",
            reason_phrase=b"Proxy Authentication Required",
            headers=[(b"Proxy-Authenticate", b"Basic"), (b"Content-Length", b"6")],
        ),
        DataReceived(stream_id=1, data=b"denied"),
        ResponseComplete(stream_id=1, reusable=True),
    ]
    assert final is IDLE


def test_switched_state_refuses_http_input() -> None:
    """After a switch, receive_data and receive_eof raise; close() ends it."""
    state = CONNECT.start()
    state.receive_data(b"HTTP/1.1 200 OK\r\n\r\n")
    assert state.state is SWITCHED
    with pytest.raises(LocalProtocolError, match="switched protocols"):
        state.receive_data(b"more")
    with pytest.raises(LocalProtocolError, match="switched protocols"):
        state.receive_eof()
    with pytest.raises(LocalProtocolError, match="while the connection is SWITCHED"):
        state.send_request(b"GET", b"/", [HOST])
    state.close()
    assert state.state is CLOSED


# -- EOF -----------------------------------------------------------------------


def test_eof_before_any_byte() -> None:
    """EOF before any response byte raises httpcore's message and goes to ERROR."""
    state = GET.start()
    with pytest.raises(RemoteProtocolError) as info:
        state.receive_eof()
    assert str(info.value) == "Server disconnected without sending a response."
    assert state.state is ERROR


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Le", id="inside-head"),
        pytest.param(response_head(b"Content-Length: 10") + b"short", id="short-body"),
        pytest.param(response_head(b"Content-Length: 10"), id="no-body"),
        pytest.param(
            response_head(b"Transfer-Encoding: chunked") + b"5\r\nhel",
            id="inside-chunk",
        ),
        pytest.param(
            response_head(b"Transfer-Encoding: chunked") + b"5\r\nhello\r\n",
            id="no-last-chunk",
        ),
        pytest.param(
            b"HTTP/1.1 100 Continue\r\n\r\n", id="after-informational-response"
        ),
    ],
)
def test_eof_inside_response_is_remote_error(data: bytes) -> None:
    """EOF before the response is complete raises RemoteProtocolError."""
    errors_every_way(GET, data, eof=True)


def test_short_body_error_names_the_counts() -> None:
    """A body cut short reports how many bytes came of how many expected."""
    state = GET.start()
    state.receive_data(response_head(b"Content-Length: 10") + b"short")
    with pytest.raises(RemoteProtocolError, match="received 5 bytes, expected 10"):
        state.receive_eof()
    assert state.state is ERROR


def test_empty_receive_data_while_active_is_not_eof() -> None:
    """receive_data(b"") on an ACTIVE connection is a no-op, as it is when IDLE."""
    state = GET.start()
    assert state.receive_data(b"") == []
    assert state.state is ACTIVE
    events = state.receive_data(response_head(b"Content-Length: 0"))
    assert events[-1] == ResponseComplete(stream_id=1, reusable=True)


# -- malformed responses -------------------------------------------------------

MALFORMED = [
    # status lines
    pytest.param(b"HTTP/1.1 abc OK\r\n\r\n", id="status-not-digits"),
    pytest.param(b"HTTP/1.1 20 OK\r\n\r\n", id="status-two-digits"),
    pytest.param(b"HTTP/1.1 2000 OK\r\n\r\n", id="status-four-digits"),
    pytest.param(b"HTTP/1.1 099 Low\r\n\r\n", id="status-below-100"),
    pytest.param(b"HTTP/1.1 200OK\r\n\r\n", id="no-space-before-reason"),
    pytest.param(b"HTTP/1.1\r\n\r\n", id="no-status"),
    pytest.param(b"HTTP/2 200 OK\r\n\r\n", id="version-one-digit"),
    pytest.param(b"HTTPS/1.1 200 OK\r\n\r\n", id="wrong-protocol-name"),
    pytest.param(b"ICY 200 OK\r\n\r\n", id="shoutcast"),
    pytest.param(b"<html>hello</html>\r\n\r\n", id="html"),
    pytest.param(b" HTTP/1.1 200 OK\r\n\r\n", id="leading-space"),
    pytest.param(b"\x00HTTP/1.1 200 OK\r\n\r\n", id="leading-nul"),
    pytest.param(b"\r\nHTTP/1.1 200 OK\r\n\r\n", id="leading-crlf"),
    # header lines
    pytest.param(response_head(b"no-colon-here"), id="header-no-colon"),
    pytest.param(response_head(b"Bad Name: v"), id="header-space-in-name"),
    pytest.param(response_head(b"X-A : v"), id="header-space-before-colon"),
    pytest.param(response_head(b": no-name"), id="header-empty-name"),
    pytest.param(response_head(b"X-A: a\x00b"), id="header-nul-in-value"),
    pytest.param(response_head(b"X-A: a\rb"), id="header-cr-in-value"),
    pytest.param(response_head(b" X-A: folded"), id="continuation-first"),
    # framing
    pytest.param(
        response_head(b"Content-Length: 5", b"Content-Length: 6"),
        id="conflicting-content-length",
    ),
    pytest.param(response_head(b"Content-Length: 5, 6"), id="content-length-list"),
    pytest.param(response_head(b"Content-Length: -1"), id="content-length-negative"),
    pytest.param(response_head(b"Content-Length: abc"), id="content-length-text"),
    pytest.param(response_head(b"Content-Length: 0x10"), id="content-length-hex"),
    pytest.param(response_head(b"Transfer-Encoding: gzip"), id="te-unsupported"),
    pytest.param(
        response_head(b"Transfer-Encoding: gzip, chunked"), id="te-gzip-chunked"
    ),
    pytest.param(
        response_head(b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"),
        id="te-twice",
    ),
    pytest.param(
        response_head(b"Transfer-Encoding: chunked") + b"zz\r\nabc\r\n",
        id="chunk-size-not-hex",
    ),
    pytest.param(
        response_head(b"Transfer-Encoding: chunked") + b"3\r\nabcXY",
        id="chunk-missing-crlf",
    ),
]


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_response_is_remote_error(data: bytes) -> None:
    """Malformed status lines, header lines and framing raise and go to ERROR."""
    errors = errors_every_way(GET, data)
    assert all(str(e).startswith("malformed response:") for e in errors)


@pytest.mark.parametrize("data", MALFORMED[:3])
def test_error_state_refuses_everything(data: bytes) -> None:
    """After a protocol error every input and command raises; close() keeps ERROR."""
    state = GET.start()
    with pytest.raises(RemoteProtocolError):
        state.receive_data(data)
    assert state.state is ERROR
    with pytest.raises(RemoteProtocolError, match="ERROR"):
        state.receive_data(b"HTTP/1.1 200 OK\r\n\r\n")
    with pytest.raises(RemoteProtocolError, match="ERROR"):
        state.receive_eof()
    with pytest.raises(LocalProtocolError, match="ERROR"):
        state.send_request(b"GET", b"/", [HOST])
    with pytest.raises(LocalProtocolError, match="ERROR"):
        state.send_body(b"x")
    with pytest.raises(LocalProtocolError, match="ERROR"):
        state.end_request()
    state.close()
    assert state.state is ERROR
    assert state.data_to_send() == b""


# -- header limits -------------------------------------------------------------


def padded_head(size: int, *, status: bytes = b"HTTP/1.1 200 OK") -> bytes:
    """A response head of exactly ``size`` bytes (blank line included)."""
    base = response_head(b"Content-Length: 0", b"X-Pad: ", status=status)
    # response_head ended "X-Pad: \r\n\r\n"; the pad goes before that CRLF.
    pad = size - len(base)
    assert pad >= 1
    head = base[:-4] + b"a" * pad + b"\r\n\r\n"
    assert len(head) == size
    return head


LIMIT = 300


@pytest.mark.parametrize("size", [100, LIMIT - 1, LIMIT])
def test_head_up_to_max_header_bytes_accepted(size: int) -> None:
    """A head of at most max_header_bytes passes, however it is split."""
    exchange = Exchange(limits={"max_header_bytes": LIMIT})
    events, final = feed_every_way(exchange, padded_head(size))
    assert [type(e) for e in events] == [ResponseReceived, ResponseComplete]
    assert final is IDLE


@pytest.mark.parametrize("size", [LIMIT + 1, LIMIT + 2, 2 * LIMIT, 10 * LIMIT])
def test_head_over_max_header_bytes_rejected(size: int) -> None:
    """A head over max_header_bytes raises naming the limit, however it is split."""
    exchange = Exchange(limits={"max_header_bytes": LIMIT})
    errors = errors_every_way(exchange, padded_head(size))
    for error in errors:
        assert f"max_header_bytes={LIMIT}" in str(error)


def test_head_over_limit_whole_reports_exact_size() -> None:
    """A complete oversized head in one read reports its exact size."""
    state = Exchange(limits={"max_header_bytes": LIMIT}).start()
    with pytest.raises(RemoteProtocolError) as info:
        state.receive_data(padded_head(LIMIT + 1) + b"trailing")
    assert str(info.value) == (
        f"response head is {LIMIT + 1} bytes, more than max_header_bytes={LIMIT}"
    )
    assert state.state is ERROR


def test_head_over_limit_bytewise_fails_at_first_byte_over() -> None:
    """Read byte by byte, an oversized head fails on the first byte past the limit."""
    state = Exchange(limits={"max_header_bytes": LIMIT}).start()
    head = padded_head(2 * LIMIT)
    for byte in bytewise(head[:LIMIT]):
        assert state.receive_data(byte) == []
    with pytest.raises(RemoteProtocolError) as info:
        state.receive_data(head[LIMIT : LIMIT + 1])
    assert str(info.value) == (
        f"response head is still incomplete after {LIMIT + 1} bytes, more than "
        f"max_header_bytes={LIMIT}"
    )


@pytest.mark.parametrize("splitter", [whole, bytewise], ids=["whole", "bytewise"])
def test_default_max_header_bytes(splitter: Splitter) -> None:
    """The default limit (64 KiB) admits a head of exactly that size, not one more."""
    assert DEFAULT_MAX_HEADER_BYTES == 64 * 1024
    state = GET.start()
    events = feed(state, padded_head(DEFAULT_MAX_HEADER_BYTES), splitter)
    assert events[-1] == ResponseComplete(stream_id=1, reusable=True)
    state = GET.start()
    with pytest.raises(RemoteProtocolError, match="max_header_bytes=65536"):
        feed(state, padded_head(DEFAULT_MAX_HEADER_BYTES + 1), splitter)


def test_header_limit_applies_to_each_head_separately() -> None:
    """A 1xx head and the final head are each measured on their own."""
    exchange = Exchange(limits={"max_header_bytes": LIMIT})
    data = padded_head(LIMIT, status=b"HTTP/1.1 103 Early Hints")
    data += padded_head(LIMIT)
    events, final = feed_every_way(exchange, data)
    assert [type(e) for e in events] == [
        InformationalResponse,
        ResponseReceived,
        ResponseComplete,
    ]
    assert final is IDLE


def test_header_limit_applies_to_final_head_after_1xx() -> None:
    """After a 1xx the final head is still held to max_header_bytes."""
    exchange = Exchange(limits={"max_header_bytes": LIMIT})
    data = b"HTTP/1.1 100 Continue\r\n\r\n" + padded_head(LIMIT + 1)
    for error in errors_every_way(exchange, data):
        assert f"max_header_bytes={LIMIT}" in str(error)


def test_body_does_not_count_towards_header_limit() -> None:
    """Body bytes, however many, are not part of the head size."""
    exchange = Exchange(limits={"max_header_bytes": 64})
    body = bytes(range(256)) * 4
    data = response_head(b"Content-Length: %d" % len(body)) + body
    events, final = feed_every_way(exchange, data)
    assert events[1:] == [
        DataReceived(stream_id=1, data=body),
        ResponseComplete(stream_id=1, reusable=True),
    ]
    assert final is IDLE


def head_with_fields(count: int) -> bytes:
    return response_head(
        b"Content-Length: 0", *(b"X-Field-%d: v" % i for i in range(count - 1))
    )


@pytest.mark.parametrize("count", [1, 10, 19, 20])
def test_header_count_up_to_limit_accepted(count: int) -> None:
    """A head with at most max_header_count fields passes."""
    exchange = Exchange(limits={"max_header_count": 20})
    events, final = feed_every_way(exchange, head_with_fields(count))
    assert len(events[0].headers) == count  # type: ignore[union-attr]
    assert final is IDLE


@pytest.mark.parametrize("count", [21, 50])
def test_header_count_over_limit_rejected(count: int) -> None:
    """A head with more than max_header_count fields raises naming the limit."""
    exchange = Exchange(limits={"max_header_count": 20})
    for error in errors_every_way(exchange, head_with_fields(count)):
        assert str(error) == (
            f"response has {count} header fields, more than max_header_count=20"
        )


def test_default_max_header_count() -> None:
    """The default admits 100 fields and refuses 101."""
    assert DEFAULT_MAX_HEADER_COUNT == 100
    events, _ = feed_every_way(GET, head_with_fields(100))
    assert len(events[0].headers) == 100  # type: ignore[union-attr]
    for error in errors_every_way(GET, head_with_fields(101)):
        assert "max_header_count=100" in str(error)


# -- the desync guard ----------------------------------------------------------

FORGED = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"


@pytest.mark.parametrize("extra", [b"x", b"\r\n", FORGED])
def test_extra_bytes_after_response_not_reusable(extra: bytes) -> None:
    """Bytes in the same read after a complete response make it not reusable."""
    data = GET.respond(
        h11.Response(status_code=200, headers=[(b"Content-Length", b"2")]),
        h11.Data(data=b"ok"),
        h11.EndOfMessage(),
    )
    events, final = feed_every_way(GET, data, tail=extra)
    assert events[1:] == [
        DataReceived(stream_id=1, data=b"ok"),
        ResponseComplete(stream_id=1, reusable=False),
    ]
    assert final is CLOSED


@pytest.mark.parametrize("name", SPLITTERS)
def test_extra_bytes_in_a_later_read_close_connection(name: str) -> None:
    """Extra bytes after a response, read later, move the idle connection to CLOSED."""
    state = GET.start()
    events = feed(state, response_head(b"Content-Length: 0"), SPLITTERS[name])
    assert events[-1] == ResponseComplete(stream_id=1, reusable=True)
    assert feed(state, FORGED, SPLITTERS[name]) == []
    assert state.state is CLOSED


def test_content_length_and_transfer_encoding_not_reusable() -> None:
    """With both CL and TE the body is read chunked and the connection not reused."""
    data = (
        response_head(b"Content-Length: 100", b"Transfer-Encoding: chunked")
        + b"5\r\nhello\r\n0\r\n\r\n"
    )
    events, final = feed_every_way(GET, data)
    assert events == [
        ResponseReceived(
            stream_id=1,
            status=200,
            http_version=b"HTTP/1.1",
            reason_phrase=b"OK",
            headers=[
                (b"Content-Length", b"100"),
                (b"Transfer-Encoding", b"chunked"),
            ],
        ),
        DataReceived(stream_id=1, data=b"hello"),
        ResponseComplete(stream_id=1, reusable=False),
    ]
    assert final is CLOSED


def test_head_response_followed_by_body_not_reusable() -> None:
    """A body after a HEAD response (which has none) means the stream is off."""
    head = Exchange(method=b"HEAD")
    data = head.respond(
        h11.Response(status_code=200, headers=[(b"Content-Length", b"5")]),
        h11.EndOfMessage(),
    )
    assert data == b"HTTP/1.1 200 \r\nContent-Length: 5\r\n\r\n"
    events, final = feed_every_way(head, data, tail=b"hello")
    assert events == [
        ResponseReceived(
            stream_id=1,
            status=200,
            http_version=b"HTTP/1.1",
            reason_phrase=b"",
            headers=[(b"Content-Length", b"5")],
        ),
        ResponseComplete(stream_id=1, reusable=False),
    ]
    assert final is CLOSED


def test_head_response_alone_is_reusable() -> None:
    """A HEAD response with Content-Length but no body bytes is reusable."""
    head = Exchange(method=b"HEAD")
    events, final = feed_every_way(head, response_head(b"Content-Length: 5"))
    assert events[-1] == ResponseComplete(stream_id=1, reusable=True)
    assert final is IDLE


@pytest.mark.parametrize("cycles", [0, 1])
def test_unsolicited_bytes_while_idle_close(cycles: int) -> None:
    """Bytes on an idle connection answer no request: no events, and CLOSED."""
    state = HTTP11State()
    for _ in range(cycles):
        state.send_request(b"GET", b"/", [HOST])
        state.end_request()
        state.receive_data(response_head(b"Content-Length: 0"))
    assert state.state is IDLE
    assert state.receive_data(FORGED) == []
    assert state.state is CLOSED
    with pytest.raises(LocalProtocolError, match="while the connection is CLOSED"):
        state.send_request(b"GET", b"/", [HOST])


def test_empty_data_while_idle_keeps_idle() -> None:
    """receive_data(b"") on an idle connection changes nothing."""
    state = HTTP11State()
    assert state.receive_data(b"") == []
    assert state.state is IDLE


@pytest.mark.parametrize("cycles", [0, 1])
def test_eof_while_idle_closes(cycles: int) -> None:
    """EOF on an idle connection is no error: no events, and CLOSED."""
    state = HTTP11State()
    for _ in range(cycles):
        state.send_request(b"GET", b"/", [HOST])
        state.end_request()
        state.receive_data(response_head(b"Content-Length: 0"))
    assert state.receive_eof() == []
    assert state.state is CLOSED


def test_closed_state_absorbs_data_and_eof() -> None:
    """A CLOSED connection ignores further bytes and EOF and stays CLOSED."""
    state = HTTP11State()
    state.close()
    assert state.receive_data(b"junk") == []
    assert state.receive_eof() == []
    assert state.state is CLOSED


# -- close ---------------------------------------------------------------------


def idle_state() -> HTTP11State:
    return HTTP11State()


def active_state() -> HTTP11State:
    return GET.start()


def switched_state() -> HTTP11State:
    state = CONNECT.start()
    state.receive_data(b"HTTP/1.1 200 OK\r\n\r\n")
    return state


def closed_state() -> HTTP11State:
    state = HTTP11State()
    state.receive_eof()
    return state


def error_state() -> HTTP11State:
    state = GET.start()
    with pytest.raises(RemoteProtocolError):
        state.receive_data(b"garbage\r\n\r\n")
    return state


@pytest.mark.parametrize(
    ("make", "before", "after"),
    [
        (idle_state, IDLE, CLOSED),
        (active_state, ACTIVE, CLOSED),
        (switched_state, SWITCHED, CLOSED),
        (closed_state, CLOSED, CLOSED),
        (error_state, ERROR, ERROR),
    ],
)
def test_close_transitions(
    make: Callable[[], HTTP11State],
    before: HTTP11ConnectionState,
    after: HTTP11ConnectionState,
) -> None:
    """close() moves IDLE, ACTIVE and SWITCHED to CLOSED; CLOSED and ERROR stay."""
    state = make()
    assert state.state is before
    state.close()
    assert state.state is after
    state.close()
    assert state.state is after


def test_send_request_after_close_refused() -> None:
    """A closed connection refuses a new request without queueing bytes."""
    state = HTTP11State()
    state.close()
    with pytest.raises(LocalProtocolError, match="cannot send request"):
        state.send_request(b"GET", b"/", [HOST])
    assert state.data_to_send() == b""
    assert state.stream_id == 0


def test_events_before_an_error_are_delivered_then_the_error() -> None:
    """A valid head and body chunk followed by a broken chunk, in one read: the
    complete events come out, the error is pending and raised by the next call."""
    data = response_head(b"Transfer-Encoding: chunked") + b"5\r\nhello\r\nZZ\r\n"
    state = GET.start()
    events = state.receive_data(data)
    assert [type(event) for event in events] == [ResponseReceived, DataReceived]
    assert state.state is ERROR
    error = state.pending_error
    assert isinstance(error, RemoteProtocolError)
    with pytest.raises(RemoteProtocolError) as info:
        state.receive_data(b"more")
    assert info.value is error


def test_informational_flood_is_capped() -> None:
    """More than 100 1xx responses in one cycle is a RemoteProtocolError."""
    state = GET.start()
    events = state.receive_data(b"HTTP/1.1 103 Early Hints\r\n\r\n" * 100)
    assert len(events) == 100
    with pytest.raises(RemoteProtocolError, match="more than 100 informational"):
        state.receive_data(b"HTTP/1.1 103 Early Hints\r\n\r\n")
    assert state.state is ERROR


def test_response_started_counts_any_byte_of_this_cycle() -> None:
    """response_started: False until the first response byte of the current
    cycle, True from then on, False again when the next request goes out (a
    driver retries a request elsewhere only while it is False)."""
    state = GET.start()
    assert not state.response_started
    state.receive_data(b"H")
    assert state.response_started
    state.receive_data(b"TTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert state.state is IDLE
    state.send_request(b"GET", b"/", [HOST])
    assert not state.response_started
