"""Tests for sansio.http2: HTTP2State, bytes in and events out.

The peer is a real h2 server (``H2Connection(client_side=False)``) that reads
what our client state wrote and answers; what h2 will not produce (a
PUSH_PROMISE to a client that disabled push, garbage, a GOAWAY followed by more
frames) is built by hand or reordered from real server output. Every receive
test feeds the server's bytes whole, one byte at a time and in seeded random
splits, and checks that all ways give the same events (consecutive
DataReceived of one stream merged), the same state and the same reply bytes;
then it feeds them once more to ``HTTP2State(reference=True)`` (stock h2 with
every check on), which must agree with the default engine's faster paths.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack.exceptions
import hpack.hpack
import hpack.huffman_table
import pytest
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    PingFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from sansio import (
    DEFAULT_MAX_HEADER_LIST_SIZE,
    ConnectionTerminated,
    DataReceived,
    ErrorCode,
    Event,
    HTTP2ConnectionState,
    HTTP2State,
    InformationalResponse,
    LocalProtocolError,
    RemoteProtocolError,
    ResponseComplete,
    ResponseReceived,
    SettingsChanged,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from tests.sansio.splitting import SPLITTERS, Splitter, merge_data, whole

NEW = HTTP2ConnectionState.NEW
OPEN = HTTP2ConnectionState.OPEN
DRAINING = HTTP2ConnectionState.DRAINING
CLOSED = HTTP2ConnectionState.CLOSED
ERROR = HTTP2ConnectionState.ERROR

Codes = h2.settings.SettingCodes
Server = h2.connection.H2Connection

HOST = (b"Host", b"example.com")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MIB = 1024 * 1024
# What sansio.http2 opens the receive windows to (its STREAM_WINDOW and
# CONNECTION_WINDOW), as the server must see them on the wire.
STREAM_WINDOW = MIB
CONNECTION_WINDOW = 16 * MIB
# RFC 9113 §6.5.2 / §6.9.2 defaults, which the server keeps unless told.
DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384
# h2 batches WINDOW_UPDATE: one goes out once half the window was consumed.
STREAM_UPDATE_THRESHOLD = STREAM_WINDOW // 2
UNLIMITED_STREAMS = 2**32 + 1  # h2's "no MAX_CONCURRENT_STREAMS received yet"

# Splitting strategies: tests/sansio/splitting.py.


def feed(state: HTTP2State, data: bytes, chunks: Splitter, into: list[Event]) -> None:
    """Feed ``data`` in the pieces ``chunks`` cuts it into, collecting events."""
    pieces = chunks(data)
    assert b"".join(pieces) == data
    assert all(pieces)
    for piece in pieces:
        into.extend(state.receive_data(piece))


# -- frames on the wire --------------------------------------------------------


def frames(data: bytes) -> list[Frame]:
    """Parse ``data`` (after an optional client preface) into whole frames."""
    view = memoryview(data.removeprefix(PREFACE))
    parsed = []
    while view:
        frame, length = Frame.parse_frame_header(view[:9])
        frame.parse_body(view[9 : 9 + length])
        parsed.append(frame)
        view = view[9 + length :]
    return parsed


def window_updates(data: bytes) -> list[tuple[int, int]]:
    """(stream id, increment) of each WINDOW_UPDATE frame in ``data``."""
    return [
        (frame.stream_id, frame.window_increment)
        for frame in frames(data)
        if isinstance(frame, WindowUpdateFrame)
    ]


def goaways(data: bytes) -> list[tuple[int, int]]:
    """(last stream id, error code) of each GOAWAY frame in ``data``."""
    return [
        (frame.last_stream_id, frame.error_code)
        for frame in frames(data)
        if isinstance(frame, GoAwayFrame)
    ]


# -- a client state and an h2 server peer --------------------------------------


def new_server(settings: Mapping[int, int] | None = None) -> Server:
    """An h2 server whose first SETTINGS carry ``settings``."""
    config = h2.config.H2Configuration(client_side=False, header_encoding=None)
    server = Server(config=config)
    if settings:
        server.local_settings = h2.settings.Settings(
            client=False,
            initial_values={Codes(code): value for code, value in settings.items()},
        )
        # h2 reads its frame limit from the settings only when they change.
        server.max_inbound_frame_size = server.local_settings.max_frame_size
    return server


@dataclass
class Pair:
    """Our client state and the h2 server it talks to, wired by hand."""

    client: HTTP2State
    server: Server

    def to_server(self) -> list[h2.events.Event]:
        """Deliver what the client queued; return what the server made of it."""
        return list(self.server.receive_data(self.client.data_to_send()))

    def to_client(self) -> list[Event]:
        """Deliver what the server queued, whole; return the client's events."""
        return self.client.receive_data(self.server.data_to_send())

    def request(self, *, end_stream: bool = True) -> int:
        """Send a GET for / and deliver it to the server."""
        stream_id = self.client.send_request(
            b"GET", b"https", b"/", [HOST], end_stream=end_stream
        )
        self.to_server()
        return stream_id


# Whether connect() builds the reference engine: set only by on_reference().
_REFERENCE = [False]


def connect(
    server_settings: Mapping[int, int] | None = None, **client_options: Any
) -> Pair:
    """A client and a server that exchanged prefaces, SETTINGS and their ACKs."""
    client = HTTP2State(reference=_REFERENCE[0], **client_options)
    pair = Pair(client, new_server(server_settings))
    pair.client.initiate()
    pair.server.initiate_connection()
    pair.to_server()
    pair.to_client()
    pair.to_server()
    return pair


Setup = Callable[[], Pair]


def requested(
    count: int = 1,
    *,
    end_stream: bool = True,
    server_settings: Mapping[int, int] | None = None,
    **client_options: Any,
) -> Setup:
    """A setup with ``count`` GETs sent and read by the server (streams 1, 3...)."""

    def setup() -> Pair:
        pair = connect(server_settings, **client_options)
        for _ in range(count):
            pair.request(end_stream=end_stream)
        return pair

    return setup


def server_says(setup: Setup, respond: Callable[[Server], object]) -> bytes:
    """The bytes the server of a fresh ``setup`` writes for ``respond``."""
    pair = setup()
    respond(pair.server)
    return bytes(pair.server.data_to_send())


@dataclass
class Outcome:
    """What feeding the server's bytes did, the same for every way of feeding."""

    events: list[Event]
    state: HTTP2ConnectionState
    reply: bytes  # what the client queued in answer (ACKs, WINDOW_UPDATEs...)
    pair: Pair  # the pair that was fed whole, for the test's next steps


def snapshot(client: HTTP2State) -> tuple[object, ...]:
    return (client.state, client.open_streams, client.can_open_stream)


def on_reference(setup: Setup) -> Pair:
    """``setup`` with the reference engine (stock h2) as the client."""
    _REFERENCE[0] = True
    try:
        return setup()
    finally:
        _REFERENCE[0] = False


def whole_then_eof(setup: Setup, data: bytes, *, eof: bool) -> tuple[object, ...]:
    """Everything one whole feed of ``data`` (then EOF) shows of the client."""
    client = setup().client
    events: list[Event] = []
    error = None
    try:
        feed(client, data, whole, events)
        if eof:
            events.extend(client.receive_eof())
    except RemoteProtocolError as exc:
        error = str(exc)
    return (merge_data(events), error, snapshot(client), client.data_to_send())


def agrees_with_reference(setup: Setup, data: bytes, *, eof: bool = False) -> None:
    """The default engine and stock h2 make the same of ``data``."""
    fast = whole_then_eof(setup, data, eof=eof)
    assert whole_then_eof(lambda: on_reference(setup), data, eof=eof) == fast


def feed_every_way(setup: Setup, data: bytes) -> Outcome:
    """Feed ``data`` to a fresh ``setup`` every way; all ways must agree, and
    agree with the reference engine."""
    agrees_with_reference(setup, data)
    results = []
    for name, splitter in SPLITTERS.items():
        pair = setup()
        events: list[Event] = []
        feed(pair.client, data, splitter, events)
        reply = pair.client.data_to_send()
        results.append((name, merge_data(events), snapshot(pair.client), reply, pair))
    _, events, first, reply, pair = results[0]
    for name, other_events, other, other_reply, _ in results[1:]:
        assert other_events == events, name
        assert other == first, name
        assert other_reply == reply, name
    return Outcome(events, pair.client.state, reply, pair)


def exchange(setup: Setup, respond: Callable[[Server], object]) -> Outcome:
    """Have the server ``respond`` and feed its bytes to the client every way."""
    return feed_every_way(setup, server_says(setup, respond))


@dataclass
class Failure:
    """One way of feeding that ended in RemoteProtocolError."""

    way: str
    events: list[Event]  # returned before the error was raised
    error: RemoteProtocolError
    client: HTTP2State


def feed_then_eof(
    state: HTTP2State, data: bytes, chunks: Splitter, into: list[Event]
) -> None:
    """Feed ``data`` as ``feed`` does, then end the input with EOF."""
    feed(state, data, chunks, into)
    into.extend(state.receive_eof())


def errors_every_way(setup: Setup, data: bytes) -> list[Failure]:
    """Feed ``data`` every way; each must raise RemoteProtocolError, go to ERROR.

    The error may come from the receive that completed the bad frame or, with
    the events before it returned first, from the next call: here the EOF.
    """
    agrees_with_reference(setup, data, eof=True)
    failures = []
    for name, splitter in SPLITTERS.items():
        client = setup().client
        events: list[Event] = []
        with pytest.raises(RemoteProtocolError) as info:
            feed_then_eof(client, data, splitter, events)
        assert client.state is ERROR, name
        failures.append(Failure(name, merge_data(events), info.value, client))
    return failures


def respond_ok(
    body: bytes = b"", headers: Sequence[tuple[bytes, bytes]] = ()
) -> Callable[[Server], None]:
    """A complete 200 response on stream 1."""

    def respond(server: Server) -> None:
        server.send_headers(1, [(b":status", b"200"), *headers], end_stream=not body)
        if body:
            server.send_data(1, body, end_stream=True)

    return respond


def ok_events(stream_id: int = 1, body: bytes = b"") -> list[Event]:
    """The events of a 200 with no fields and ``body`` on ``stream_id``."""
    events: list[Event] = [
        ResponseReceived(
            stream_id=stream_id,
            status=200,
            http_version=b"HTTP/2",
            reason_phrase=b"",
            headers=[],
        )
    ]
    if body:
        events.append(DataReceived(stream_id=stream_id, data=body))
    events.append(ResponseComplete(stream_id=stream_id, reusable=True))
    return events


# -- initiate ------------------------------------------------------------------


def test_initiate_queues_preface_settings_and_window_update() -> None:
    """initiate() queues the preface, our SETTINGS and a connection WINDOW_UPDATE."""
    client = HTTP2State()
    assert client.state is NEW
    client.initiate()
    assert client.state is OPEN
    data = client.data_to_send()
    assert data.startswith(PREFACE)
    settings, update = frames(data)
    assert isinstance(settings, SettingsFrame)
    assert settings.stream_id == 0
    assert "ACK" not in settings.flags
    assert dict(settings.settings) == {
        Codes.HEADER_TABLE_SIZE: 4096,
        Codes.ENABLE_PUSH: 0,
        Codes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
        Codes.MAX_FRAME_SIZE: DEFAULT_MAX_FRAME,
        Codes.ENABLE_CONNECT_PROTOCOL: 0,
        Codes.MAX_CONCURRENT_STREAMS: 100,
        Codes.MAX_HEADER_LIST_SIZE: DEFAULT_MAX_HEADER_LIST_SIZE,
    }
    assert isinstance(update, WindowUpdateFrame)
    assert (update.stream_id, update.window_increment) == (
        0,
        CONNECTION_WINDOW - DEFAULT_WINDOW,
    )
    assert client.data_to_send() == b""


@pytest.mark.parametrize("limit", [DEFAULT_MAX_HEADER_LIST_SIZE, 1000, 1 << 20])
def test_server_decodes_our_settings(limit: int) -> None:
    """An h2 server reads push off, our header list limit and 1 MiB windows."""
    client = HTTP2State(max_header_list_size=limit)
    client.initiate()
    server = new_server()
    server.initiate_connection()
    events = server.receive_data(client.data_to_send())
    settings, update = events
    assert isinstance(settings, h2.events.RemoteSettingsChanged)
    new_values = {
        code: change.new_value for code, change in settings.changed_settings.items()
    }
    assert new_values[Codes.ENABLE_PUSH] == 0
    assert new_values[Codes.MAX_HEADER_LIST_SIZE] == limit
    assert new_values[Codes.INITIAL_WINDOW_SIZE] == STREAM_WINDOW
    assert isinstance(update, h2.events.WindowUpdated)
    assert (update.stream_id, update.delta) == (0, CONNECTION_WINDOW - DEFAULT_WINDOW)
    assert server.outbound_flow_control_window == CONNECTION_WINDOW


def test_server_may_send_a_full_stream_window() -> None:
    """After the handshake the server may send 1 MiB on a new stream."""
    pair = requested()()
    assert pair.server.local_flow_control_window(1) == STREAM_WINDOW


def opened() -> HTTP2State:
    client = HTTP2State()
    client.initiate()
    return client


def closed_before_initiate() -> HTTP2State:
    client = HTTP2State()
    client.close()
    return client


def draining() -> HTTP2State:
    pair = connect()
    pair.server.close_connection()
    pair.to_client()
    return pair.client


def errored() -> HTTP2State:
    pair = requested()()
    with pytest.raises(RemoteProtocolError):
        pair.client.receive_data(push_promise(pair.server))
    return pair.client


@pytest.mark.parametrize(
    ("make", "state"),
    [
        (opened, OPEN),
        (draining, DRAINING),
        (closed_before_initiate, CLOSED),
        (errored, ERROR),
    ],
)
def test_initiate_only_once(
    make: Callable[[], HTTP2State], state: HTTP2ConnectionState
) -> None:
    """initiate() after the first, or after close, raises and queues nothing."""
    client = make()
    client.data_to_send()
    with pytest.raises(LocalProtocolError, match=f"cannot initiate .* {state.value}"):
        client.initiate()
    assert client.state is state
    assert client.data_to_send() == b""


def test_server_preface_every_way() -> None:
    """The server's SETTINGS become SettingsChanged (listing only the settings
    whose value changed) and are ACKed, however split."""

    def setup() -> Pair:
        pair = Pair(HTTP2State(), new_server({Codes.MAX_CONCURRENT_STREAMS: 7}))
        pair.client.initiate()
        pair.server.initiate_connection()
        pair.to_server()
        return pair

    outcome = exchange(setup, lambda server: None)
    assert outcome.events == [
        SettingsChanged(
            stream_id=0,
            changed={Codes.MAX_CONCURRENT_STREAMS: 7},
            max_concurrent_streams=7,
        )
    ]
    assert outcome.state is OPEN
    (ack,) = frames(outcome.reply)
    assert isinstance(ack, SettingsFrame)
    assert "ACK" in ack.flags
    assert outcome.pair.client.max_concurrent_streams == 7


def test_max_concurrent_streams_is_100_until_the_server_says() -> None:
    """Before the server's SETTINGS we assume 100 streams, the minimum RFC 9113
    §6.5.2 recommends (the protocol's "unlimited" would overrun small servers)."""
    state = opened()
    assert state.max_concurrent_streams == 100
    for _ in range(100):
        state.send_request(b"GET", b"https", b"/", [(b"host", b"h")], end_stream=True)
    assert not state.can_open_stream


# -- request heads -------------------------------------------------------------


def sent_head(
    headers: Sequence[tuple[bytes, bytes]],
    *,
    method: bytes = b"GET",
    scheme: bytes = b"https",
    target: bytes = b"/",
) -> list[tuple[bytes, bytes]]:
    """The header list an h2 server decodes from our request head."""
    pair = connect()
    pair.client.send_request(method, scheme, target, list(headers), end_stream=True)
    received = pair.to_server()[0]
    assert isinstance(received, h2.events.RequestReceived)
    return [(bytes(name), bytes(value)) for name, value in received.headers or ()]


def test_pseudo_headers_first_in_order() -> None:
    """:method, :authority (from Host), :scheme, :path, then fields lowercased."""
    headers = [HOST, (b"Accept", b"*/*"), (b"X-Custom-ID", b"7")]
    assert sent_head(headers, method=b"POST", scheme=b"http", target=b"/p?q=1") == [
        (b":method", b"POST"),
        (b":authority", b"example.com"),
        (b":scheme", b"http"),
        (b":path", b"/p?q=1"),
        (b"accept", b"*/*"),
        (b"x-custom-id", b"7"),
    ]


def test_host_anywhere_becomes_authority() -> None:
    """Host is taken wherever it is in the list, in any case."""
    headers = [(b"accept", b"*/*"), (b"HOST", b"example.org:8443")]
    assert sent_head(headers)[:2] == [
        (b":method", b"GET"),
        (b":authority", b"example.org:8443"),
    ]


@pytest.mark.parametrize(
    "name",
    [
        b"Connection",
        b"connection",
        b"Keep-Alive",
        b"Proxy-Connection",
        b"Transfer-Encoding",
        b"Upgrade",
    ],
)
def test_connection_specific_fields_dropped(name: bytes) -> None:
    """Connection-specific fields never reach the wire (RFC 9113 §8.2.2)."""
    value = b"chunked" if name.lower() == b"transfer-encoding" else b"x"
    headers = [HOST, (b"x-before", b"1"), (name, value), (b"x-after", b"2")]
    assert sent_head(headers)[4:] == [(b"x-before", b"1"), (b"x-after", b"2")]


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        (b"trailers", [(b"te", b"trailers")]),
        (b"Trailers", [(b"te", b"trailers")]),
        (b"gzip", []),
        (b"trailers, deflate", []),
        (b"", []),
    ],
)
def test_te_only_trailers_kept(value: bytes, sent: list[tuple[bytes, bytes]]) -> None:
    """TE: trailers is kept (normalised); any other TE value is dropped."""
    assert sent_head([HOST, (b"TE", value)])[4:] == sent


def test_missing_host_refused() -> None:
    """Without Host there is no :authority: LocalProtocolError, nothing sent."""
    pair = connect()
    with pytest.raises(LocalProtocolError, match="missing mandatory Host header"):
        pair.client.send_request(
            b"GET", b"https", b"/", [(b"accept", b"*/*")], end_stream=True
        )
    assert pair.client.data_to_send() == b""
    assert pair.client.open_streams == 0
    assert pair.request() == 1


def test_stream_ids_are_odd_and_increasing() -> None:
    """Client streams are numbered 1, 3, 5..."""
    pair = connect()
    assert [pair.request() for _ in range(4)] == [1, 3, 5, 7]
    assert pair.client.open_streams == 4


@pytest.mark.parametrize("end_stream", [True, False])
def test_end_stream_flag_seen_by_server(end_stream: bool) -> None:
    """end_stream=True ends the request with the head; False leaves it open."""
    pair = connect()
    pair.client.send_request(b"GET", b"https", b"/", [HOST], end_stream=end_stream)
    kinds = [type(event) for event in pair.to_server()]
    if end_stream:
        assert kinds == [h2.events.RequestReceived, h2.events.StreamEnded]
    else:
        assert kinds == [h2.events.RequestReceived]
        pair.client.end_request(1)
        # h2 ends a stream with an empty DATA frame carrying END_STREAM.
        assert [type(event) for event in pair.to_server()] == [
            h2.events.DataReceived,
            h2.events.StreamEnded,
        ]


@pytest.mark.parametrize(
    "make", [HTTP2State, closed_before_initiate, draining, errored]
)
def test_send_request_refused_unless_open(make: Callable[[], HTTP2State]) -> None:
    """send_request before initiate, after close, GOAWAY or an error raises."""
    client = make()
    client.data_to_send()
    with pytest.raises(LocalProtocolError, match="cannot open a stream"):
        client.send_request(b"GET", b"https", b"/", [HOST], end_stream=True)
    assert client.data_to_send() == b""


# A head that h2 refuses part-way through encoding it.
REFUSED_HEADS = [
    pytest.param([HOST, (b"x-trace", b"1"), (b":path", b"/again")], id="second-path"),
    pytest.param([HOST, (b"x-trace", b"1"), (b":foo", b"x")], id="unknown-pseudo"),
    pytest.param([HOST, (b"x-trace", b"1"), (b"", b"v")], id="empty-name"),
]


@pytest.mark.parametrize("headers", REFUSED_HEADS)
def test_refused_head_leaves_connection_usable(
    headers: list[tuple[bytes, bytes]],
) -> None:
    """A head h2 refuses raises LocalProtocolError and leaves HPACK in step."""
    pair = connect()
    with pytest.raises(LocalProtocolError):
        pair.client.send_request(b"GET", b"https", b"/", headers, end_stream=True)
    assert pair.client.data_to_send() == b""
    pair.client.send_request(
        b"GET", b"https", b"/", [HOST, (b"x-trace", b"1")], end_stream=True
    )
    received = pair.to_server()[0]
    assert isinstance(received, h2.events.RequestReceived)
    assert list(received.headers or ())[4:] == [(b"x-trace", b"1")]


MALFORMED_HEADS = [
    pytest.param(b"GET", b"/", [HOST, (b"x-a", b"a\r\nb")], id="crlf-in-value"),
    pytest.param(b"GET", b"/", [HOST, (b"x-a", b"a\x00b")], id="nul-in-value"),
    pytest.param(b"GET", b"/", [HOST, (b"x-a", b" a")], id="leading-space"),
    pytest.param(b"GET", b"/", [HOST, (b"bad name", b"v")], id="space-in-name"),
    pytest.param(b"GE T", b"/", [HOST], id="space-in-method"),
    pytest.param(b"GET", b"/a b", [HOST], id="space-in-path"),
    pytest.param(b"GET", b"", [HOST], id="empty-path"),
]


@pytest.mark.parametrize(("method", "target", "headers"), MALFORMED_HEADS)
def test_malformed_head_refused(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    """Fields RFC 9113 §8.2.1 forbids raise LocalProtocolError, nothing sent."""
    pair = connect()
    with pytest.raises(LocalProtocolError):
        pair.client.send_request(method, b"https", target, headers, end_stream=True)
    assert pair.client.data_to_send() == b""


def test_connect_refused_and_connection_still_usable() -> None:
    """CONNECT cannot be expressed here (RFC 9113 §8.5: no :scheme, no :path); it
    is refused before h2 encodes anything, so streams already open carry on."""
    pair = connect()
    first = pair.request()
    with pytest.raises(LocalProtocolError, match="CONNECT is not supported"):
        pair.client.send_request(
            b"CONNECT", b"https", b"example.com:443", [HOST], end_stream=False
        )
    assert pair.client.data_to_send() == b""
    assert pair.client.state is OPEN
    assert pair.client.open_streams == 1
    assert pair.request() == first + 2


def test_head_refused_mid_encoding_fails_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should h2 refuse a head after HPACK encoded part of it, the server's
    decoder no longer matches ours: the connection is ERROR, not reused."""
    pair = connect()

    def refuse(*args: object, **kwargs: object) -> None:
        raise h2.exceptions.ProtocolError("refused half-way")

    monkeypatch.setattr(pair.client._h2, "send_headers", refuse)
    with pytest.raises(LocalProtocolError, match="refused half-way"):
        pair.client.send_request(b"GET", b"https", b"/", [HOST], end_stream=True)
    assert pair.client.state is ERROR
    with pytest.raises(LocalProtocolError, match="ERROR"):
        pair.client.send_request(b"GET", b"https", b"/", [HOST], end_stream=True)


def test_has_data_to_send_peeks_without_taking() -> None:
    """has_data_to_send says whether data_to_send() would return bytes."""
    client = HTTP2State()
    assert not client.has_data_to_send
    client.initiate()
    assert client.has_data_to_send
    assert client.has_data_to_send  # peeking twice takes nothing
    assert client.data_to_send().startswith(PREFACE)
    assert not client.has_data_to_send


# -- request bodies and flow control -------------------------------------------


@pytest.mark.parametrize(
    ("server_settings", "window"),
    [
        ({}, DEFAULT_WINDOW),
        ({Codes.INITIAL_WINDOW_SIZE: 1000}, 1000),
        ({Codes.INITIAL_WINDOW_SIZE: 0}, 0),
        # The connection window (65,535 until the server raises it) caps it.
        ({Codes.INITIAL_WINDOW_SIZE: 100_000}, DEFAULT_WINDOW),
    ],
)
def test_available_window_follows_server_settings(
    server_settings: dict[int, int], window: int
) -> None:
    """available_window is the smaller of the stream and connection windows."""
    pair = requested(end_stream=False, server_settings=server_settings)()
    assert pair.client.available_window(1) == window


def test_available_window_unknown_stream_is_zero() -> None:
    """A stream never opened has no window."""
    pair = requested(end_stream=False)()
    assert pair.client.available_window(3) == 0
    assert pair.client.available_window(2) == 0


@pytest.mark.parametrize(
    ("server_settings", "size"),
    [
        ({}, DEFAULT_WINDOW + 1),
        ({Codes.INITIAL_WINDOW_SIZE: 1000}, 1001),
        ({Codes.INITIAL_WINDOW_SIZE: 0}, 1),
        ({Codes.INITIAL_WINDOW_SIZE: 100_000}, DEFAULT_WINDOW + 1),
    ],
)
def test_send_body_over_window_refused(
    server_settings: dict[int, int], size: int
) -> None:
    """More than available_window raises naming flow control; nothing queued."""
    pair = requested(end_stream=False, server_settings=server_settings)()
    before = pair.client.available_window(1)
    with pytest.raises(LocalProtocolError, match="flow control"):
        pair.client.send_body(1, b"x" * size)
    assert pair.client.data_to_send() == b""
    assert pair.client.available_window(1) == before
    pair.client.send_body(1, b"x" * before)
    assert pair.client.available_window(1) == 0


@pytest.mark.parametrize(
    ("max_frame", "size", "sizes"),
    [
        (DEFAULT_MAX_FRAME, 40_000, [16_384, 16_384, 7_232]),
        (DEFAULT_MAX_FRAME, DEFAULT_MAX_FRAME, [16_384]),
        (DEFAULT_MAX_FRAME, DEFAULT_MAX_FRAME + 1, [16_384, 1]),
        (20_000, 40_000, [20_000, 20_000]),
        (DEFAULT_MAX_FRAME, 1, [1]),
    ],
)
def test_send_body_split_to_max_frame_size(
    max_frame: int, size: int, sizes: list[int]
) -> None:
    """Body frames are no larger than the server's MAX_FRAME_SIZE."""
    pair = requested(
        end_stream=False, server_settings={Codes.MAX_FRAME_SIZE: max_frame}
    )()
    body = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    pair.client.send_body(1, body)
    pair.client.end_request(1)
    data = pair.client.data_to_send()
    data_frames = [frame for frame in frames(data) if isinstance(frame, DataFrame)]
    assert [len(frame.data) for frame in data_frames] == [*sizes, 0]
    assert "END_STREAM" in data_frames[-1].flags
    events = pair.server.receive_data(data)
    received = [e for e in events if isinstance(e, h2.events.DataReceived)]
    assert b"".join(bytes(event.data or b"") for event in received) == body
    assert isinstance(events[-1], h2.events.StreamEnded)


def test_send_empty_body_queues_nothing() -> None:
    """send_body with no bytes sends no frame."""
    pair = requested(end_stream=False)()
    pair.client.send_body(1, b"")
    assert pair.client.data_to_send() == b""


@pytest.mark.parametrize(
    ("stream_id", "delta", "window"),
    [
        (1, 500, 500),  # the stream's own window opens
        (0, 500, 0),  # the connection's opens, but the stream's is still 0
    ],
)
def test_window_update_grows_window(stream_id: int, delta: int, window: int) -> None:
    """A WINDOW_UPDATE becomes WindowUpdated and widens available_window."""

    def setup() -> Pair:
        pair = requested(
            end_stream=False, server_settings={Codes.INITIAL_WINDOW_SIZE: 1000}
        )()
        pair.client.send_body(1, b"x" * 1000)
        pair.to_server()
        assert pair.client.available_window(1) == 0
        return pair

    outcome = exchange(
        setup,
        lambda server: server.increment_flow_control_window(
            delta, stream_id=stream_id or None
        ),
    )
    assert outcome.events == [WindowUpdated(stream_id=stream_id, delta=delta)]
    assert outcome.pair.client.available_window(1) == window


def test_connection_window_limits_every_stream() -> None:
    """Once the connection window is spent, no stream may send until it grows."""

    def setup() -> Pair:
        pair = requested(
            2, end_stream=False, server_settings={Codes.INITIAL_WINDOW_SIZE: 50_000}
        )()
        pair.client.send_body(1, b"x" * 50_000)
        assert pair.client.available_window(3) == DEFAULT_WINDOW - 50_000
        pair.client.send_body(3, b"y" * (DEFAULT_WINDOW - 50_000))
        pair.to_server()
        return pair

    outcome = exchange(setup, lambda server: server.increment_flow_control_window(10))
    assert outcome.events == [WindowUpdated(stream_id=0, delta=10)]
    assert outcome.pair.client.available_window(1) == 0
    assert outcome.pair.client.available_window(3) == 10


def test_server_initial_window_change_applies_to_open_streams() -> None:
    """A new INITIAL_WINDOW_SIZE from the server resizes open stream windows."""
    setup = requested(end_stream=False)
    outcome = exchange(
        setup, lambda server: server.update_settings({Codes.INITIAL_WINDOW_SIZE: 10})
    )
    assert outcome.events == [
        SettingsChanged(
            stream_id=0,
            changed={Codes.INITIAL_WINDOW_SIZE: 10},
            max_concurrent_streams=100,
        )
    ]
    assert outcome.pair.client.available_window(1) == 10
    (ack,) = frames(outcome.reply)
    assert isinstance(ack, SettingsFrame)
    assert "ACK" in ack.flags


@pytest.mark.parametrize("command", ["end_request", "send_body"])
def test_body_commands_after_end_request_refused(command: str) -> None:
    """Body or a second end after the request ended raise LocalProtocolError."""
    pair = requested(end_stream=True)()
    args = (1, b"x") if command == "send_body" else (1,)
    with pytest.raises(LocalProtocolError):
        getattr(pair.client, command)(*args)
    assert pair.client.data_to_send() == b""


def closed_by_response() -> Pair:
    pair = requested(end_stream=True)()
    respond_ok()(pair.server)
    pair.to_client()
    return pair


def closed_by_reset() -> Pair:
    pair = requested(end_stream=False)()
    pair.server.reset_stream(1, ErrorCode.NO_ERROR)
    pair.to_client()
    return pair


@pytest.mark.parametrize("command", ["end_request", "send_body"])
@pytest.mark.parametrize("make", [closed_by_response, closed_by_reset])
def test_body_commands_on_closed_stream_refused(
    make: Callable[[], Pair], command: str
) -> None:
    """On a closed stream body commands raise sansio's LocalProtocolError."""
    pair = make()
    args = (1, b"x") if command == "send_body" else (1,)
    with pytest.raises(LocalProtocolError):
        getattr(pair.client, command)(*args)
    assert pair.client.data_to_send() == b""


# -- responses -----------------------------------------------------------------


def test_simple_response() -> None:
    """Head, body and end become ResponseReceived, DataReceived, ResponseComplete."""
    outcome = exchange(
        requested(),
        respond_ok(b"hello", [(b"content-length", b"5"), (b"x-custom", b"v")]),
    )
    assert outcome.events == [
        ResponseReceived(
            stream_id=1,
            status=200,
            http_version=b"HTTP/2",
            reason_phrase=b"",
            headers=[(b"content-length", b"5"), (b"x-custom", b"v")],
        ),
        DataReceived(stream_id=1, data=b"hello"),
        ResponseComplete(stream_id=1, reusable=True),
    ]
    assert outcome.state is OPEN
    client = outcome.pair.client
    assert (client.open_streams, client.can_open_stream) == (0, True)


def test_response_in_many_data_frames() -> None:
    """A body in several DATA frames arrives whole and in order."""
    body = bytes(range(256)) * 200

    def respond(server: Server) -> None:
        server.send_headers(1, [(b":status", b"200")])
        for start in range(0, len(body), 10_000):
            server.send_data(1, body[start : start + 10_000])
        server.end_stream(1)

    outcome = exchange(requested(), respond)
    assert outcome.events == ok_events(body=body)


def test_interleaved_responses_keep_their_streams() -> None:
    """Frames of two streams interleaved give events tagged with each stream."""

    def respond(server: Server) -> None:
        server.send_headers(3, [(b":status", b"404")])
        server.send_headers(1, [(b":status", b"200")])
        server.send_data(3, b"not ")
        server.send_data(1, b"one")
        server.send_data(3, b"found", end_stream=True)
        server.end_stream(1)

    outcome = exchange(requested(2), respond)
    assert outcome.events == [
        ResponseReceived(
            stream_id=3,
            status=404,
            http_version=b"HTTP/2",
            reason_phrase=b"",
            headers=[],
        ),
        ResponseReceived(
            stream_id=1,
            status=200,
            http_version=b"HTTP/2",
            reason_phrase=b"",
            headers=[],
        ),
        DataReceived(stream_id=3, data=b"not "),
        DataReceived(stream_id=1, data=b"one"),
        DataReceived(stream_id=3, data=b"found"),
        ResponseComplete(stream_id=3, reusable=True),
        ResponseComplete(stream_id=1, reusable=True),
    ]


def test_trailers() -> None:
    """A HEADERS block after the body becomes TrailersReceived, then the end."""

    def respond(server: Server) -> None:
        server.send_headers(1, [(b":status", b"200"), (b"trailer", b"x-checksum")])
        server.send_data(1, b"body")
        server.send_headers(1, [(b"x-checksum", b"abc")], end_stream=True)

    outcome = exchange(requested(), respond)
    assert outcome.events == [
        ResponseReceived(
            stream_id=1,
            status=200,
            http_version=b"HTTP/2",
            reason_phrase=b"",
            headers=[(b"trailer", b"x-checksum")],
        ),
        DataReceived(stream_id=1, data=b"body"),
        TrailersReceived(stream_id=1, headers=[(b"x-checksum", b"abc")]),
        ResponseComplete(stream_id=1, reusable=True),
    ]


@pytest.mark.parametrize(
    "informational",
    [
        [(100, [])],
        [(103, [(b"link", b"</style.css>; rel=preload")])],
        [(100, []), (103, [(b"link", b"</a.js>")])],
    ],
)
def test_informational_responses(
    informational: list[tuple[int, list[tuple[bytes, bytes]]]],
) -> None:
    """1xx heads become InformationalResponse, before the final response."""

    def respond(server: Server) -> None:
        for status, headers in informational:
            server.send_headers(1, [(b":status", str(status).encode()), *headers])
        server.send_headers(1, [(b":status", b"204")], end_stream=True)

    outcome = exchange(requested(), respond)
    assert outcome.events == [
        *(
            InformationalResponse(stream_id=1, status=status, headers=headers)
            for status, headers in informational
        ),
        ResponseReceived(
            stream_id=1,
            status=204,
            http_version=b"HTTP/2",
            reason_phrase=b"",
            headers=[],
        ),
        ResponseComplete(stream_id=1, reusable=True),
    ]


@pytest.mark.parametrize("padded", [True, False])
def test_padding_is_acknowledged_automatically(padded: bool) -> None:
    """Padding counts against our window and is returned without the driver.

    The driver acknowledges only the body bytes; with the padding returned by
    the core the stream reaches h2's batching threshold and a WINDOW_UPDATE
    goes out, without padding the same acknowledgement does not reach it.
    """
    padded_frames = 2
    padding = padded_frames * 256  # pad length 255 plus the Pad Length octet
    padded_size = DEFAULT_MAX_FRAME - 256
    body_size = STREAM_UPDATE_THRESHOLD - padding
    body = b"p" * body_size

    def respond(server: Server) -> None:
        server.send_headers(1, [(b":status", b"200")])
        plain = body_size - padded_frames * padded_size
        for start in range(0, plain, DEFAULT_MAX_FRAME):
            server.send_data(1, body[start : start + DEFAULT_MAX_FRAME])
        for _ in range(padded_frames):
            pad_length = 255 if padded else None
            server.send_data(1, b"p" * padded_size, pad_length=pad_length)

    outcome = exchange(requested(), respond)
    assert outcome.events == [
        ResponseReceived(
            stream_id=1,
            status=200,
            http_version=b"HTTP/2",
            reason_phrase=b"",
            headers=[],
        ),
        DataReceived(stream_id=1, data=body),
    ]
    assert outcome.reply == b""
    client = outcome.pair.client
    client.acknowledge_data(1, body_size)
    expected = [(1, STREAM_UPDATE_THRESHOLD)] if padded else []
    assert window_updates(client.data_to_send()) == expected


def test_acknowledge_data_batches_stream_window_updates() -> None:
    """WINDOW_UPDATE for a stream goes out once half its window was consumed."""
    pair = requested()()
    pair.server.send_headers(1, [(b":status", b"200")])
    for _ in range(STREAM_UPDATE_THRESHOLD // DEFAULT_MAX_FRAME):
        pair.server.send_data(1, b"d" * DEFAULT_MAX_FRAME)
    pair.to_client()
    assert pair.client.data_to_send() == b""
    pair.client.acknowledge_data(1, STREAM_UPDATE_THRESHOLD - 1)
    assert pair.client.data_to_send() == b""
    pair.client.acknowledge_data(1, 1)
    data = pair.client.data_to_send()
    assert window_updates(data) == [(1, STREAM_UPDATE_THRESHOLD)]
    (update,) = pair.server.receive_data(data)
    assert isinstance(update, h2.events.WindowUpdated)
    assert (update.stream_id, update.delta) == (1, STREAM_UPDATE_THRESHOLD)


def test_acknowledge_data_batches_connection_window_updates() -> None:
    """The connection window is returned once half of it (8 MiB) was consumed."""
    streams = CONNECTION_WINDOW // 2 // STREAM_WINDOW
    pair = requested(streams)()
    for stream_id in range(1, 2 * streams, 2):
        pair.server.send_headers(stream_id, [(b":status", b"200")])
        for _ in range(STREAM_WINDOW // DEFAULT_MAX_FRAME):
            pair.server.send_data(stream_id, bytes(DEFAULT_MAX_FRAME))
    pair.to_client()
    assert pair.client.data_to_send() == b""
    for stream_id in range(1, 2 * streams - 2, 2):
        pair.client.acknowledge_data(stream_id, STREAM_WINDOW)
        assert window_updates(pair.client.data_to_send()) == [
            (stream_id, STREAM_WINDOW)
        ]
    last = 2 * streams - 1
    pair.client.acknowledge_data(last, STREAM_WINDOW)
    assert sorted(window_updates(pair.client.data_to_send())) == [
        (0, CONNECTION_WINDOW // 2),
        (last, STREAM_WINDOW),
    ]


def test_acknowledge_data_after_stream_end_returns_connection_window() -> None:
    """Bytes acknowledged after the stream ended still count for the connection."""
    pair = requested(9)()
    for stream_id in range(1, 18, 2):
        pair.server.send_headers(stream_id, [(b":status", b"200")])
        for _ in range(STREAM_WINDOW // DEFAULT_MAX_FRAME - 1):
            pair.server.send_data(stream_id, bytes(DEFAULT_MAX_FRAME))
        pair.server.send_data(stream_id, bytes(DEFAULT_MAX_FRAME), end_stream=True)
    events = pair.to_client()
    assert events.count(ResponseComplete(stream_id=17, reusable=True)) == 1
    for stream_id in range(1, 18, 2):
        pair.client.acknowledge_data(stream_id, STREAM_WINDOW)
    # Closed streams get no update of their own; the connection gets its bytes.
    assert window_updates(pair.client.data_to_send()) == [(0, CONNECTION_WINDOW // 2)]


@pytest.mark.parametrize("make", [HTTP2State, closed_before_initiate])
def test_acknowledge_data_ignored_when_not_open(
    make: Callable[[], HTTP2State],
) -> None:
    """acknowledge_data before initiate or after close queues nothing."""
    client = make()
    client.acknowledge_data(1, 100)
    assert client.data_to_send() == b""


def test_acknowledge_negative_size_refused() -> None:
    """h2's ValueError for a negative acknowledgement becomes LocalProtocolError."""
    pair = connect()
    stream_id = pair.request()
    with pytest.raises(LocalProtocolError, match="invalid HTTP/2 command"):
        pair.client.acknowledge_data(stream_id, -1)
    assert pair.client.state is OPEN


# -- settings and stream slots -------------------------------------------------


def test_settings_changed_carries_max_concurrent_streams() -> None:
    """A lower MAX_CONCURRENT_STREAMS is reported with the limit now in force."""
    outcome = exchange(
        requested(2),
        lambda server: server.update_settings({Codes.MAX_CONCURRENT_STREAMS: 2}),
    )
    assert outcome.events == [
        SettingsChanged(
            stream_id=0,
            changed={Codes.MAX_CONCURRENT_STREAMS: 2},
            max_concurrent_streams=2,
        )
    ]
    client = outcome.pair.client
    assert (client.open_streams, client.max_concurrent_streams) == (2, 2)
    assert client.can_open_stream is False
    with pytest.raises(LocalProtocolError, match="2 of 2 streams open"):
        client.send_request(b"GET", b"https", b"/", [HOST], end_stream=True)
    assert client.data_to_send() == b""


def lowered_to_two() -> Pair:
    pair = requested(2)()
    pair.server.update_settings({Codes.MAX_CONCURRENT_STREAMS: 2})
    pair.to_client()
    pair.to_server()
    assert pair.client.can_open_stream is False
    return pair


def end_stream_one(server: Server) -> None:
    server.send_headers(1, [(b":status", b"200")], end_stream=True)


def reset_stream_one(server: Server) -> None:
    server.reset_stream(1, ErrorCode.CANCEL)


def raise_limit(server: Server) -> None:
    server.update_settings({Codes.MAX_CONCURRENT_STREAMS: 3})


@pytest.mark.parametrize(
    ("relief", "open_streams", "limit"),
    [(end_stream_one, 1, 2), (reset_stream_one, 1, 2), (raise_limit, 2, 3)],
)
def test_stream_slot_frees_up(
    relief: Callable[[Server], None], open_streams: int, limit: int
) -> None:
    """can_open_stream turns True when a stream ends or the limit rises."""
    outcome = exchange(lowered_to_two, relief)
    client = outcome.pair.client
    assert (client.open_streams, client.max_concurrent_streams) == (open_streams, limit)
    assert client.can_open_stream is True
    assert client.send_request(b"GET", b"https", b"/", [HOST], end_stream=True) == 5


def test_response_end_before_request_end_keeps_the_slot() -> None:
    """A stream whose response ended but whose request did not still counts."""
    outcome = exchange(requested(2, end_stream=False), end_stream_one)
    client = outcome.pair.client
    assert outcome.events == ok_events()
    assert client.open_streams == 2
    client.end_request(1)
    assert client.open_streams == 1


def test_max_concurrent_streams_zero() -> None:
    """A server that allows no streams leaves can_open_stream False."""
    pair = connect({Codes.MAX_CONCURRENT_STREAMS: 0})
    assert pair.client.can_open_stream is False
    with pytest.raises(LocalProtocolError, match="0 of 0 streams open"):
        pair.client.send_request(b"GET", b"https", b"/", [HOST], end_stream=True)


# -- resets --------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [ErrorCode.CANCEL, ErrorCode.REFUSED_STREAM, ErrorCode.INTERNAL_ERROR, 0x1234],
)
def test_server_reset_is_stream_reset(code: int) -> None:
    """RST_STREAM from the server becomes StreamReset(remote=True) and frees it."""
    outcome = exchange(requested(), lambda server: server.reset_stream(1, code))
    assert outcome.events == [StreamReset(stream_id=1, error_code=code, remote=True)]
    assert outcome.state is OPEN
    assert outcome.pair.client.open_streams == 0


def test_reset_after_response_head() -> None:
    """A reset after the head and some body ends the stream's events."""

    def respond(server: Server) -> None:
        server.send_headers(1, [(b":status", b"200")])
        server.send_data(1, b"part")
        server.reset_stream(1, ErrorCode.INTERNAL_ERROR)

    outcome = exchange(requested(), respond)
    assert outcome.events == [
        ResponseReceived(
            stream_id=1,
            status=200,
            http_version=b"HTTP/2",
            reason_phrase=b"",
            headers=[],
        ),
        DataReceived(stream_id=1, data=b"part"),
        StreamReset(stream_id=1, error_code=ErrorCode.INTERNAL_ERROR, remote=True),
    ]


@pytest.mark.parametrize(
    ("args", "code"),
    [((), ErrorCode.CANCEL), ((ErrorCode.NO_ERROR,), ErrorCode.NO_ERROR)],
)
def test_reset_stream_sends_rst_stream(args: tuple[int, ...], code: int) -> None:
    """reset_stream sends RST_STREAM (CANCEL unless told) the server sees."""
    pair = requested(end_stream=False)()
    pair.client.reset_stream(1, *args)
    data = pair.client.data_to_send()
    (frame,) = frames(data)
    assert isinstance(frame, RstStreamFrame)
    assert (frame.stream_id, frame.error_code) == (1, code)
    (reset,) = pair.server.receive_data(data)
    assert isinstance(reset, h2.events.StreamReset)
    assert (reset.stream_id, reset.error_code, reset.remote_reset) == (1, code, True)
    assert pair.client.open_streams == 0


def test_reset_stream_after_response_end_frees_half_closed_stream() -> None:
    """Resetting a stream whose response ended frees its slot."""
    pair = requested(end_stream=False)()
    end_stream_one(pair.server)
    pair.to_client()
    assert pair.client.open_streams == 1
    pair.client.reset_stream(1, ErrorCode.NO_ERROR)
    (frame,) = frames(pair.client.data_to_send())
    assert isinstance(frame, RstStreamFrame)
    assert pair.client.open_streams == 0


@pytest.mark.parametrize(
    "make",
    [closed_by_response, closed_by_reset],
)
def test_reset_stream_noop_for_closed_stream(make: Callable[[], Pair]) -> None:
    """reset_stream on a stream closed on both sides sends nothing."""
    pair = make()
    pair.client.reset_stream(1)
    assert pair.client.data_to_send() == b""
    pair.client.reset_stream(1)
    assert pair.client.data_to_send() == b""


@pytest.mark.parametrize("stream_id", [3, 99, 2])
def test_reset_stream_noop_for_unknown_stream(stream_id: int) -> None:
    """reset_stream on a stream that was never opened sends nothing."""
    pair = requested()()
    pair.client.reset_stream(stream_id)
    assert pair.client.data_to_send() == b""
    assert pair.client.state is OPEN


def test_frames_for_a_stream_we_reset_are_dropped() -> None:
    """A response still in flight when we reset its stream yields no events."""

    def setup() -> Pair:
        pair = requested()()
        pair.client.reset_stream(1)
        # Not delivered: the server answers before it reads our RST_STREAM.
        pair.client.data_to_send()
        return pair

    outcome = exchange(setup, respond_ok(b"late"))
    assert outcome.events == []
    assert outcome.state is OPEN


# -- GOAWAY --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last_stream_id", "retry"),
    [(0, (1, 3, 5)), (1, (3, 5)), (3, (5,)), (5, ())],
)
def test_goaway_names_streams_to_retry(
    last_stream_id: int, retry: tuple[int, ...]
) -> None:
    """GOAWAY lists open streams above last_stream_id, moves to DRAINING."""
    outcome = exchange(
        requested(3),
        lambda server: server.close_connection(last_stream_id=last_stream_id),
    )
    assert outcome.events == [
        ConnectionTerminated(
            stream_id=0,
            error_code=ErrorCode.NO_ERROR,
            last_stream_id=last_stream_id,
            retry_stream_ids=retry,
            additional_data=b"",
        )
    ]
    assert outcome.state is DRAINING
    client = outcome.pair.client
    assert client.can_open_stream is False
    with pytest.raises(LocalProtocolError, match="DRAINING"):
        client.send_request(b"GET", b"https", b"/", [HOST], end_stream=True)


def test_goaway_error_code_and_debug_data() -> None:
    """GOAWAY's error code and debug data are passed on."""
    outcome = exchange(
        requested(),
        lambda server: server.close_connection(
            ErrorCode.ENHANCE_YOUR_CALM, last_stream_id=0, additional_data=b"slow down"
        ),
    )
    assert outcome.events == [
        ConnectionTerminated(
            stream_id=0,
            error_code=ErrorCode.ENHANCE_YOUR_CALM,
            last_stream_id=0,
            retry_stream_ids=(1,),
            additional_data=b"slow down",
        )
    ]


def test_goaway_skips_completed_streams() -> None:
    """Streams whose response completed are not offered for retry."""

    def respond(server: Server) -> None:
        server.send_headers(3, [(b":status", b"200")], end_stream=True)
        server.close_connection(last_stream_id=0)

    outcome = exchange(requested(2), respond)
    assert outcome.events == [
        *ok_events(stream_id=3),
        ConnectionTerminated(
            stream_id=0,
            error_code=0,
            last_stream_id=0,
            retry_stream_ids=(1,),
            additional_data=b"",
        ),
    ]


def test_second_goaway_lowers_last_stream_id() -> None:
    """A second GOAWAY with a lower last_stream_id names the newly cut streams."""

    def respond(server: Server) -> None:
        server.close_connection(last_stream_id=5)
        server.close_connection(last_stream_id=1)

    outcome = exchange(requested(3), respond)
    assert outcome.events == [
        ConnectionTerminated(
            stream_id=0,
            error_code=0,
            last_stream_id=last_stream_id,
            retry_stream_ids=retry,
            additional_data=b"",
        )
        for last_stream_id, retry in [(5, ()), (1, (3, 5))]
    ]
    assert outcome.state is DRAINING


def test_streams_below_last_stream_id_finish_after_goaway() -> None:
    """After GOAWAY the streams the server kept complete normally (§6.8)."""
    setup = requested(2)

    def data() -> bytes:
        # h2 will not write after its own GOAWAY, so take the response it
        # wrote first and send it after the GOAWAY, as nginx does.
        pair = setup()
        respond_ok(b"done")(pair.server)
        response = pair.server.data_to_send()
        pair.server.close_connection(last_stream_id=1)
        return pair.server.data_to_send() + response

    outcome = feed_every_way(setup, data())
    assert outcome.events == [
        ConnectionTerminated(
            stream_id=0,
            error_code=0,
            last_stream_id=1,
            retry_stream_ids=(3,),
            additional_data=b"",
        ),
        *ok_events(body=b"done"),
    ]
    assert outcome.state is DRAINING
    # Commands on the streams that survived still work while DRAINING.
    client = outcome.pair.client
    client.acknowledge_data(1, 4)
    client.reset_stream(3)
    (frame,) = frames(client.data_to_send())
    assert isinstance(frame, RstStreamFrame)


def test_goaway_keeps_bytes_queued_before_it() -> None:
    """Body queued but not yet drained when a GOAWAY arrives is still sent."""
    setup = requested(end_stream=False)
    data = server_says(setup, lambda server: server.close_connection(last_stream_id=1))
    for name, splitter in SPLITTERS.items():
        pair = setup()
        pair.client.send_body(1, b"abc")
        events: list[Event] = []
        feed(pair.client, data, splitter, events)
        assert events == [
            ConnectionTerminated(
                stream_id=0,
                error_code=0,
                last_stream_id=1,
                retry_stream_ids=(),
                additional_data=b"",
            )
        ], name
        pair.client.end_request(1)
        sent = frames(pair.client.data_to_send())
        data_frames = [frame for frame in sent if isinstance(frame, DataFrame)]
        assert data_frames == sent, name
        assert [bytes(frame.data) for frame in data_frames] == [b"abc", b""], name


def test_close_after_goaway_sends_our_goaway() -> None:
    """close() while DRAINING queues our GOAWAY and closes."""
    client = draining()
    client.close()
    assert goaways(client.data_to_send()) == [(0, ErrorCode.NO_ERROR)]
    assert client.state is CLOSED


# -- protocol errors -----------------------------------------------------------


def push_promise(server: Server) -> bytes:
    """A PUSH_PROMISE for stream 2 on stream 1, which h2 will not send to us."""
    block = server.encoder.encode(
        [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"example.com"),
            (b":path", b"/pushed.css"),
        ]
    )
    frame = PushPromiseFrame(1, promised_stream_id=2, data=block)
    frame.flags.add("END_HEADERS")
    return bytes(frame.serialize())


def test_push_promise_is_connection_error() -> None:
    """PUSH_PROMISE with push disabled: RemoteProtocolError, ERROR, GOAWAY."""
    setup = requested()
    data = push_promise(setup().server)
    for failure in errors_every_way(setup, data):
        assert failure.events == [], failure.way
        assert "push" in str(failure.error).lower(), failure.way
        assert goaways(failure.client.data_to_send()) == [
            (0, ErrorCode.PROTOCOL_ERROR)
        ], failure.way


def test_error_state_refuses_everything() -> None:
    """After a protocol error commands and input raise; close() keeps ERROR."""
    pair = requested(end_stream=False)()
    with pytest.raises(RemoteProtocolError):
        pair.client.receive_data(push_promise(pair.server))
    client = pair.client
    client.data_to_send()
    with pytest.raises(RemoteProtocolError, match="ERROR"):
        client.receive_data(b"\x00")
    with pytest.raises(LocalProtocolError, match="ERROR"):
        client.send_request(b"GET", b"https", b"/", [HOST], end_stream=True)
    with pytest.raises(LocalProtocolError, match="ERROR"):
        client.send_body(1, b"x")
    with pytest.raises(LocalProtocolError, match="ERROR"):
        client.end_request(1)
    with pytest.raises(LocalProtocolError, match="ERROR"):
        client.initiate()
    assert client.can_open_stream is False
    client.close()
    assert client.state is ERROR
    assert client.data_to_send() == b""


def test_events_before_a_protocol_error_are_delivered() -> None:
    """A response completed before a protocol error is reported however split."""
    setup = requested()

    def data() -> bytes:
        server = setup().server
        respond_ok(b"done")(server)
        return bytes(server.data_to_send()) + push_promise(server)

    for failure in errors_every_way(setup, data()):
        assert failure.events == ok_events(body=b"done"), failure.way


def test_ping_is_answered() -> None:
    """A PING is answered with a PING ACK carrying the same data; no event."""
    outcome = exchange(requested(), lambda server: server.ping(b"8 octets"))
    assert outcome.events == []
    (ack,) = frames(outcome.reply)
    assert isinstance(ack, PingFrame)
    assert (ack.stream_id, "ACK" in ack.flags, ack.opaque_data) == (
        0,
        True,
        b"8 octets",
    )


def big_head(size: int) -> list[tuple[bytes, bytes]]:
    """A response head whose HPACK list size (RFC 7541 §4.1) is ``size``."""
    # :status 200 is 7 + 3 + 32 octets, x-pad: is 5 + 32 plus the value.
    return [(b":status", b"200"), (b"x-pad", b"a" * (size - 42 - 37))]


def headers_then(
    size: int, *, client_limit: int | None = None, acked: bool = True
) -> tuple[Setup, bytes]:
    """A setup and the bytes of a response head of list size ``size``.

    Unless ``acked``, the server's preface and its ACK of our SETTINGS come in
    the same bytes, before the head: the limit must hold before the ACK too.
    """
    options: dict[str, Any] = {}
    if client_limit is not None:
        options["max_header_list_size"] = client_limit

    def setup() -> Pair:
        if acked:
            return requested(**options)()
        pair = Pair(HTTP2State(**options), new_server())
        pair.client.initiate()
        pair.client.send_request(b"GET", b"https", b"/", [HOST], end_stream=True)
        pair.server.initiate_connection()
        pair.to_server()
        return pair

    data = server_says(
        setup, lambda server: server.send_headers(1, big_head(size), end_stream=True)
    )
    return setup, data


@pytest.mark.parametrize("acked", [True, False])
@pytest.mark.parametrize(
    ("limit", "size"),
    [(1000, 1000), (DEFAULT_MAX_HEADER_LIST_SIZE, DEFAULT_MAX_HEADER_LIST_SIZE)],
)
def test_header_list_up_to_limit_accepted(limit: int, size: int, acked: bool) -> None:
    """A response head exactly at max_header_list_size is accepted."""
    client_limit = None if limit == DEFAULT_MAX_HEADER_LIST_SIZE else limit
    setup, data = headers_then(size, client_limit=client_limit, acked=acked)
    outcome = feed_every_way(setup, data)
    head = outcome.events[-2]
    assert isinstance(head, ResponseReceived)
    assert head.headers == big_head(size)[1:]
    assert outcome.events[-1] == ResponseComplete(stream_id=1, reusable=True)


@pytest.mark.parametrize("acked", [True, False])
@pytest.mark.parametrize(
    ("limit", "size"),
    [
        (1000, 1001),
        (DEFAULT_MAX_HEADER_LIST_SIZE, DEFAULT_MAX_HEADER_LIST_SIZE + 1),
        (DEFAULT_MAX_HEADER_LIST_SIZE, 200_000),
    ],
)
def test_header_list_over_limit_is_connection_error(
    limit: int, size: int, acked: bool
) -> None:
    """A response head over max_header_list_size: RemoteProtocolError, GOAWAY."""
    client_limit = None if limit == DEFAULT_MAX_HEADER_LIST_SIZE else limit
    setup, data = headers_then(size, client_limit=client_limit, acked=acked)
    for failure in errors_every_way(setup, data):
        assert f"larger than {limit}" in str(failure.error), failure.way
        assert goaways(failure.client.data_to_send()) == [
            (0, ErrorCode.ENHANCE_YOUR_CALM)
        ], failure.way


MALFORMED_STATUSES = [b"abc", b"", b"2_00", b"+200", b"20", b"2000"]


@pytest.mark.parametrize(
    ("status", "end_stream"),
    [
        *[(status, False) for status in MALFORMED_STATUSES],
        *[(status, True) for status in MALFORMED_STATUSES],
        # h2 takes a leading "1" as informational, which END_STREAM may not end.
        (b"1x0", False),
        (b"1000", False),
    ],
)
def test_malformed_status_is_a_stream_error(status: bytes, end_stream: bool) -> None:
    """A :status that is not three digits (final or informational, as h2 sorts
    them by the leading "1") resets that stream with PROTOCOL_ERROR (RFC 9113
    §8.1.1: a stream error) and leaves the connection OPEN; an END_STREAM on the
    same head is swallowed with it."""
    setup = requested()
    data = server_says(
        setup,
        lambda server: server.send_headers(
            1, [(b":status", status)], end_stream=end_stream
        ),
    )
    outcome = feed_every_way(setup, data)
    assert outcome.events == [
        StreamReset(stream_id=1, error_code=ErrorCode.PROTOCOL_ERROR, remote=False)
    ]
    assert outcome.state is OPEN
    resets = [f for f in frames(outcome.reply) if isinstance(f, RstStreamFrame)]
    # A stream already closed both ways (END_STREAM each side) needs no RST.
    expected = [] if end_stream else [(1, ErrorCode.PROTOCOL_ERROR)]
    assert [(f.stream_id, f.error_code) for f in resets] == expected


def opened_pair() -> Pair:
    pair = Pair(HTTP2State(), new_server())
    pair.client.initiate()
    pair.client.data_to_send()
    return pair


GARBAGE_PREFACES = [
    pytest.param(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n", id="http1"),
    pytest.param(b"\x15\x03\x03\x00\x02\x02\x46" + b"\x00" * 9, id="tls-alert"),
    pytest.param(PingFrame(0, opaque_data=b"12345678").serialize(), id="ping-first"),
    pytest.param(
        WindowUpdateFrame(0, window_increment=1).serialize(), id="window-update-first"
    ),
]


@pytest.mark.parametrize("data", GARBAGE_PREFACES)
def test_garbage_instead_of_server_preface(data: bytes) -> None:
    """The server must start with SETTINGS (RFC 9113 §3.4); else a RemoteError."""
    errors_every_way(opened_pair, data)


def test_oversized_frame_rejected_from_its_header() -> None:
    """A frame longer than our MAX_FRAME_SIZE fails on its header, not 16 MiB on."""
    header = b"\xff\xff\xff\x00\x00\x00\x00\x00\x01"
    errors_every_way(requested(), header + b"\x00" * 100)


# -- EOF and close -------------------------------------------------------------


def closed_by_eof() -> HTTP2State:
    client = opened()
    client.receive_eof()
    return client


@pytest.mark.parametrize(
    "make", [opened, lambda: requested(3)().client, draining, closed_by_eof]
)
def test_receive_eof_closes(make: Callable[[], HTTP2State]) -> None:
    """EOF from OPEN, with streams, DRAINING or CLOSED moves to CLOSED quietly."""
    client = make()
    client.data_to_send()
    assert client.receive_eof() == []
    assert client.state is CLOSED
    assert client.can_open_stream is False
    assert client.data_to_send() == b""


def test_closed_state_absorbs_input() -> None:
    """After EOF or close, bytes are ignored and no request may start."""
    client = closed_by_eof()
    assert client.receive_data(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00") == []
    with pytest.raises(LocalProtocolError, match="CLOSED"):
        client.send_request(b"GET", b"https", b"/", [HOST], end_stream=True)


@pytest.mark.parametrize(
    "code", [ErrorCode.NO_ERROR, ErrorCode.INTERNAL_ERROR, ErrorCode.CANCEL]
)
def test_close_queues_goaway(code: int) -> None:
    """close() queues a GOAWAY the server sees, and the state is CLOSED."""
    pair = requested(2)()
    pair.client.close(code)
    assert pair.client.state is CLOSED
    data = pair.client.data_to_send()
    assert goaways(data) == [(0, code)]
    (terminated,) = pair.server.receive_data(data)
    assert isinstance(terminated, h2.events.ConnectionTerminated)
    assert (terminated.error_code, terminated.last_stream_id) == (code, 0)
    pair.client.close()
    assert pair.client.state is CLOSED
    assert pair.client.data_to_send() == b""


def test_close_before_initiate_sends_nothing() -> None:
    """close() on a NEW connection closes without a byte."""
    client = HTTP2State()
    client.close()
    assert client.state is CLOSED
    assert client.data_to_send() == b""


def test_data_to_send_drains() -> None:
    """data_to_send returns queued bytes once, then nothing."""
    pair = connect()
    pair.client.send_request(b"GET", b"https", b"/", [HOST], end_stream=True)
    assert pair.client.data_to_send() != b""
    assert pair.client.data_to_send() == b""


def test_error_after_events_waits_in_pending_error() -> None:
    """Events completed before a protocol error in the same read are returned;
    the error waits in ``pending_error`` and every later receive raises it."""
    setup = requested()
    # SETTINGS_ENABLE_PUSH may only be 0 or 1 (RFC 9113 §6.5.2).
    bad_settings = SettingsFrame(0, settings={Codes.ENABLE_PUSH: 2}).serialize()
    data = server_says(setup, respond_ok()) + bad_settings
    client = setup().client
    assert client.pending_error is None
    assert client.receive_data(data) == ok_events()
    error = client.pending_error
    assert isinstance(error, RemoteProtocolError)
    assert client.state is ERROR
    for receive in (lambda: client.receive_data(b"more"), client.receive_eof):
        with pytest.raises(RemoteProtocolError) as info:
            receive()
        assert info.value is error


@pytest.mark.parametrize(
    ("method", "status", "length", "malformed"),
    [
        pytest.param(b"GET", b"200", b"10", True, id="get-200-promises-10"),
        pytest.param(b"GET", b"404", b"1", True, id="get-404-promises-1"),
        pytest.param(b"GET", b"200", b"0", False, id="get-200-length-0"),
        pytest.param(b"HEAD", b"200", b"10", False, id="head"),
        pytest.param(b"GET", b"304", b"10", False, id="not-modified"),
        pytest.param(b"GET", b"204", b"10", False, id="no-content"),
    ],
)
def test_head_ending_the_stream_must_not_promise_a_body(
    method: bytes, status: bytes, length: bytes, malformed: bool
) -> None:
    """A head with END_STREAM and a non-zero content-length never sends the body
    it announced: malformed (RFC 9113 §8.1.1), a stream error, not an empty body.
    HEAD answers, 204 and 304 announce a length without a body."""

    def setup() -> Pair:
        pair = connect()
        pair.client.send_request(method, b"https", b"/", [HOST], end_stream=True)
        pair.to_server()
        return pair

    head = [(b":status", status), (b"content-length", length)]
    data = server_says(
        setup, lambda server: server.send_headers(1, head, end_stream=True)
    )
    outcome = feed_every_way(setup, data)
    if malformed:
        assert outcome.events == [
            StreamReset(stream_id=1, error_code=ErrorCode.PROTOCOL_ERROR, remote=False)
        ]
    else:
        assert outcome.events == [
            ResponseReceived(
                stream_id=1,
                status=int(status),
                http_version=b"HTTP/2",
                reason_phrase=b"",
                headers=[(b"content-length", length)],
            ),
            ResponseComplete(stream_id=1, reusable=True),
        ]
    assert outcome.state is OPEN
    assert outcome.pair.client.open_streams == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_memoised_huffman_decoding_is_hpack_s_own(value: bytes) -> None:
    """sansio memoises hpack's Huffman decoder (a pure function): it returns
    what the original returns, for fresh and for cached inputs alike."""
    encoded = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH).encode(value)
    assert hpack.hpack.decode_huffman is not hpack.huffman_table.decode_huffman
    for _ in range(2):
        assert hpack.hpack.decode_huffman(encoded) == value
        assert hpack.huffman_table.decode_huffman(encoded) == value


def test_memoised_huffman_decoding_still_refuses_bad_codes() -> None:
    """Invalid Huffman data raises every time: errors are not cached."""
    bad = b"\xff\xff\xff\xff"  # EOS inside the string (RFC 7541 §5.2)
    for _ in range(2):
        with pytest.raises(hpack.exceptions.HPACKDecodingError):
            hpack.hpack.decode_huffman(bad)


def test_frame_for_a_stream_never_opened_is_named() -> None:
    """DATA on a stream we never opened: a connection error whose message says
    what was wrong, not only the stream id."""
    setup = requested()
    data = DataFrame(3, data=b"x").serialize()
    for failure in errors_every_way(setup, data):
        assert str(failure.error) == (
            "HTTP/2 protocol error: a frame for stream 3, which is closed or was "
            "never opened (RFC 9113 §5.1)"
        ), failure.way


def test_long_huffman_strings_are_not_cached() -> None:
    """Only short encoded strings are memoised: a server cannot pin memory in
    the process-wide cache with long values."""
    from sansio.http2 import HUFFMAN_CACHE_MAX_INPUT, _decode_short_huffman

    encoder = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
    short, long = encoder.encode(b"nginx/1.22.1"), encoder.encode(b"x" * 500)
    assert len(short) <= HUFFMAN_CACHE_MAX_INPUT < len(long)
    before = _decode_short_huffman.cache_info()
    assert hpack.hpack.decode_huffman(long) == b"x" * 500
    assert _decode_short_huffman.cache_info() == before
    assert hpack.hpack.decode_huffman(short) == b"nginx/1.22.1"
    after = _decode_short_huffman.cache_info()
    assert after.hits + after.misses == before.hits + before.misses + 1
