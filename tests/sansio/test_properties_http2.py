"""Properties of the HTTP/2 core (hypothesis), beyond the vector tables.

1. Chunking invariance: a real h2 server answers one to three requests with a
   drawn script (1xx, HEADERS large enough for CONTINUATION frames, DATA with
   and without padding, trailers, RST_STREAM, WINDOW_UPDATE, SETTINGS, PING,
   GOAWAY); its bytes, as sent or with a byte flipped, inserted or cut, give
   the same events, error (class and message, raised by the piece holding the
   byte that raised it byte by byte), state and reply bytes whether fed whole,
   byte by byte or in drawn pieces. Valid scripts give exactly the events the
   script predicts; corrupted ones let only RemoteProtocolError escape.
2. Header round trips with a real h2 server: the request head we send is read
   as the pseudo-headers (:method, :authority from Host, :scheme, :path) then
   the fields lowercased, in order, connection-specific ones dropped; response
   fields come out of our events as served; CR, LF, NUL and non-token names are
   refused before a byte is queued, and the connection stays usable.
3. The transition table: every (state, input) pair is driven through public
   calls and either moves where ``_TRANSITIONS`` says, or is refused with the
   state untouched, or cannot happen. After ERROR every call raises, except
   the ones documented as no-ops.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from hyperframe.frame import GoAwayFrame, SettingsFrame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sansio import (
    ConnectionTerminated,
    DataReceived,
    Event,
    HTTP2ConnectionState,
    HTTP2State,
    InformationalResponse,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    ResponseComplete,
    ResponseReceived,
    SettingsChanged,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from sansio.http2 import _TRANSITIONS, _Input
from tests.sansio.splitting import bytewise, merge_data, whole
from tests.sansio.test_http2 import Pair, new_server

S = HTTP2ConnectionState
Server = h2.connection.H2Connection
Codes = h2.settings.SettingCodes
Fields = list[tuple[bytes, bytes]]
HOST = (b"Host", b"example.com")

# -- alphabets (RFC 9110 §5.6.2 tchar, §5.5 field-content) -------------------

TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VISIBLE = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))  # VCHAR, obs-text
# RFC 9113 §8.2.2: never in an HTTP/2 message (TE only as "trailers").
CONNECTION_SPECIFIC = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"upgrade",
]
RESERVED = {*CONNECTION_SPECIFIC, b"host", b"te"}


def _join(codes: Sequence[int]) -> bytes:
    return bytes(codes)


tokens = st.lists(st.sampled_from(TCHAR), min_size=1, max_size=10).map(_join)
field_values = (
    st.lists(st.sampled_from(VISIBLE + b" \t"), max_size=16)
    .map(_join)
    .map(lambda value: value.strip(b" \t"))
)
names = tokens.filter(lambda name: name.lower() not in RESERVED)
# What a server may put in a response: lowercase names (RFC 9113 §8.2.1), and
# now and then one value too big for one frame (16,384 bytes): CONTINUATION.
# "~" costs 13 bits in HPACK's Huffman code, so the value is sent as is.
BIG_FIELD = (b"x-big", b"~" * 16_500)
response_fields = st.tuples(
    st.lists(st.tuples(names.map(bytes.lower), field_values), max_size=4),
    st.sampled_from([False] * 9 + [True]),
).map(lambda drawn: [*drawn[0], BIG_FIELD] if drawn[1] else drawn[0])


# -- a client and an h2 server -----------------------------------------------------


def connect(requests: int = 0) -> Pair:
    """Prefaces, SETTINGS and ACKs exchanged, then ``requests`` GETs read by
    the server (streams 1, 3, 5...)."""
    pair = Pair(HTTP2State(), new_server())
    pair.client.initiate()
    pair.server.initiate_connection()
    pair.to_server()
    pair.to_client()
    pair.to_server()
    for _ in range(requests):
        pair.client.send_request(b"GET", b"https", b"/", [HOST], end_stream=True)
        pair.to_server()
    pair.client.data_to_send()
    return pair


# -- server scripts ----------------------------------------------------------------


@dataclass(frozen=True)
class Info:
    stream: int  # index of the request: stream id 2 * stream + 1
    status: int
    fields: Fields


@dataclass(frozen=True)
class Headers:
    stream: int
    status: int
    fields: Fields
    end: bool


@dataclass(frozen=True)
class Data:
    stream: int
    data: bytes
    pad: int | None
    end: bool


@dataclass(frozen=True)
class Trailers:
    stream: int
    fields: Fields


@dataclass(frozen=True)
class Reset:
    stream: int
    code: int


@dataclass(frozen=True)
class Window:
    delta: int


@dataclass(frozen=True)
class SettingsUpdate:
    max_concurrent_streams: int
    initial_window_size: int


@dataclass(frozen=True)
class Ping:
    data: bytes


Action = Info | Headers | Data | Trailers | Reset | Window | SettingsUpdate | Ping


@st.composite
def stream_plans(draw: st.DrawFn, index: int) -> list[Action]:
    """One stream's response: 1xx, HEADERS, DATA (padded or not), then an end
    (END_STREAM on DATA, trailers, or RST_STREAM), or nothing yet."""
    plan: list[Action] = [
        Info(index, status, fields)
        for status, fields in draw(
            st.lists(
                st.tuples(st.sampled_from([100, 103]), response_fields), max_size=2
            )
        )
    ]
    status = draw(st.integers(200, 599))
    ending = draw(st.sampled_from(["data", "trailers", "reset", "headers", "open"]))
    plan.append(Headers(index, status, draw(response_fields), ending == "headers"))
    pads = st.none() | st.integers(0, 255)
    for data, pad in draw(
        st.lists(st.tuples(st.binary(max_size=50), pads), max_size=3)
    ):
        plan.append(Data(index, data, pad, end=False))
    if ending == "data":
        plan.append(Data(index, draw(st.binary(max_size=50)), draw(pads), end=True))
    elif ending == "trailers":
        plan.append(Trailers(index, draw(response_fields.filter(bool))))
    elif ending == "reset":
        plan.insert(
            draw(st.integers(0, len(plan))),
            Reset(index, draw(st.sampled_from([0, 1, 2, 7, 8, 0xD]))),
        )
    return plan


connection_actions = st.one_of(
    st.builds(Window, st.integers(1, 2**20)),
    st.builds(SettingsUpdate, st.integers(0, 200), st.integers(0, 2**20)),
    st.builds(Ping, st.binary(min_size=8, max_size=8)),
)


@dataclass
class Script:
    """What the server does after ``streams`` requests, and the events and
    final state that predicts for the client."""

    streams: int
    actions: list[Action]
    goaway: tuple[int, int, bytes] | None  # error code, last stream id, data
    expected: list[Event] = field(default_factory=list)
    state: HTTP2ConnectionState = S.OPEN


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    """Each stream's plan and some connection frames, interleaved."""
    streams = draw(st.integers(1, 3))
    queues = [draw(stream_plans(index)) for index in range(streams)]
    queues.append(draw(st.lists(connection_actions, max_size=4)))
    steps: list[Action] = []
    while any(queues):
        choice = draw(st.integers(0, len(queues) - 1))
        queue = next(q for q in queues[choice:] + queues[:choice] if q)
        steps.append(queue.pop(0))
    goaway = None
    if draw(st.booleans()):
        goaway = (
            draw(st.sampled_from([0, 1, 2, 11])),
            draw(st.sampled_from([0, 1, 3, 5])),
            draw(st.binary(max_size=8)),
        )
    return Script(streams, steps, goaway)


class Player:
    """Plays a script on an h2 server, predicting the client's events.

    Actions the protocol forbids at that point (DATA before HEADERS, anything
    on a finished stream) are skipped, so the bytes are always valid.
    """

    def __init__(self, server: Server, streams: int) -> None:
        self.server = server
        self.phase = ["idle"] * streams  # -> "open" -> "done"
        self.expected: list[Event] = []
        # The server's settings as the client knows them (h2's defaults).
        self.settings = {
            Codes.MAX_CONCURRENT_STREAMS: 100,
            Codes.INITIAL_WINDOW_SIZE: 65_535,
        }

    def end(self, index: int) -> None:
        self.expected.append(ResponseComplete(stream_id=2 * index + 1, reusable=True))
        self.phase[index] = "done"

    def play(self, action: Action) -> None:
        server, expect = self.server, self.expected.append
        match action:
            case Info(index, status, fields) if self.phase[index] == "idle":
                sid = 2 * index + 1
                server.send_headers(sid, [(b":status", b"%d" % status), *fields])
                expect(
                    InformationalResponse(stream_id=sid, status=status, headers=fields)
                )
            case Headers(index, status, fields, end) if self.phase[index] == "idle":
                sid = 2 * index + 1
                head = [(b":status", b"%d" % status), *fields]
                server.send_headers(sid, head, end_stream=end)
                expect(
                    ResponseReceived(
                        stream_id=sid,
                        status=status,
                        http_version=b"HTTP/2",
                        reason_phrase=b"",
                        headers=fields,
                    )
                )
                self.phase[index] = "open"
                if end:
                    self.end(index)
            case Data(index, data, pad, end) if self.phase[index] == "open":
                sid = 2 * index + 1
                server.send_data(sid, data, end_stream=end, pad_length=pad)
                if data:
                    expect(DataReceived(stream_id=sid, data=data))
                if end:
                    self.end(index)
            case Trailers(index, fields) if self.phase[index] == "open":
                self.server.send_headers(2 * index + 1, fields, end_stream=True)
                expect(TrailersReceived(stream_id=2 * index + 1, headers=fields))
                self.end(index)
            case Reset(index, code) if self.phase[index] != "done":
                server.reset_stream(2 * index + 1, code)
                expect(
                    StreamReset(stream_id=2 * index + 1, error_code=code, remote=True)
                )
                self.phase[index] = "done"
            case Window(delta):
                server.increment_flow_control_window(delta)
                expect(WindowUpdated(stream_id=0, delta=delta))
            case SettingsUpdate(streams, window):
                new = {
                    Codes.MAX_CONCURRENT_STREAMS: streams,
                    Codes.INITIAL_WINDOW_SIZE: window,
                }
                server.update_settings(new)
                changed = {
                    int(code): value
                    for code, value in new.items()
                    if value != self.settings[code]
                }
                self.settings = new
                expect(
                    SettingsChanged(
                        stream_id=0, changed=changed, max_concurrent_streams=streams
                    )
                )
            case Ping(data):
                server.ping(data)

    def goaway(self, code: int, last: int, extra: bytes) -> None:
        self.server.close_connection(code, additional_data=extra, last_stream_id=last)
        retry = tuple(
            2 * index + 1
            for index, phase in enumerate(self.phase)
            if phase != "done" and 2 * index + 1 > last
        )
        self.expected.append(
            ConnectionTerminated(
                stream_id=0,
                error_code=code,
                last_stream_id=last,
                retry_stream_ids=retry,
                additional_data=extra,
            )
        )


def play(script: Script) -> bytes:
    """The server's bytes for ``script``; fills in the predicted events."""
    player = Player(connect(script.streams).server, script.streams)
    for action in script.actions:
        player.play(action)
    if script.goaway is not None:
        player.goaway(*script.goaway)
        script.state = S.DRAINING
    script.expected = merge_data(player.expected)
    return bytes(player.server.data_to_send())


def corrupt(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with one byte flipped, a few bytes inserted, or cut short."""
    position = draw(st.integers(0, len(data)))
    how = draw(st.sampled_from(["flip", "insert", "truncate"]))
    if how == "flip" and position < len(data):
        mask = draw(st.integers(1, 255))
        return data[:position] + bytes([data[position] ^ mask]) + data[position + 1 :]
    if how == "insert":
        return (
            data[:position] + draw(st.binary(min_size=1, max_size=4)) + data[position:]
        )
    return data[:position]


# -- feeding the client every way --------------------------------------------------

Split = Callable[[bytes], list[bytes]]


@dataclass
class Outcome:
    """What the client made of the server's bytes, fed one way."""

    events: list[Event]  # merged
    state: HTTP2ConnectionState
    reply: bytes  # what the client queued in answer
    error: tuple[type[Exception], str] | None = None
    error_at: tuple[int, int] | None = None  # (start, end) of the piece


def run(streams: int, data: bytes, split: Split) -> Outcome:
    client = connect(streams).client
    events: list[Event] = []
    outcome = Outcome(events, client.state, b"")
    start = 0
    for piece in split(data) if data else []:
        try:
            events += client.receive_data(piece)
        except ProtocolError as exc:
            outcome.error = (type(exc), str(exc))
        if client.state is S.ERROR:
            error = client.pending_error
            if outcome.error is None and error is not None:
                outcome.error = (type(error), str(error))
            outcome.error_at = (start, start + len(piece))
            break
        start += len(piece)
    outcome.events = merge_data(events)
    outcome.state = client.state
    outcome.reply = client.data_to_send()
    return outcome


def drawn_split(cuts: list[int]) -> Split:
    """Cut at the given fractions (per mille) of the length."""

    def split(data: bytes) -> list[bytes]:
        bounds = sorted({0, len(data), *(len(data) * cut // 1000 for cut in cuts)})
        return [data[a:b] for a, b in itertools.pairwise(bounds)]

    return split


def normalised(error: tuple[type[Exception], str] | None) -> object:
    """The error as compared: class and exact message (sansio words h2's and
    hpack's errors so the same bytes always give the same message)."""
    return error


def check_invariance(streams: int, data: bytes, cuts: list[int]) -> Outcome:
    """Every way of feeding gives one outcome; an error is raised by the piece
    that holds the byte that raised it byte by byte."""
    reference = run(streams, data, bytewise)
    for split in (whole, drawn_split(cuts)):
        outcome = run(streams, data, split)
        assert outcome.events == reference.events
        assert normalised(outcome.error) == normalised(reference.error)
        assert outcome.state is reference.state
        assert outcome.reply == reference.reply
        if reference.error_at is not None:
            assert outcome.error_at is not None
            start, end = outcome.error_at
            assert start < reference.error_at[1] <= end
    return reference


PROPERTY = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
cut_lists = st.lists(st.integers(1, 999), max_size=8)


@given(scripts(), cut_lists)
@PROPERTY
def test_valid_server_script_every_way(script: Script, cuts: list[int]) -> None:
    """A valid script gives the predicted events and state, whatever the splits."""
    data = play(script)
    outcome = check_invariance(script.streams, data, cuts)
    assert outcome.error is None
    assert outcome.events == script.expected
    assert outcome.state is script.state


@given(scripts(), cut_lists, st.data())
@settings(PROPERTY, max_examples=120)
def test_corrupted_server_script_every_way(
    script: Script, cuts: list[int], data: st.DataObject
) -> None:
    """Corrupted bytes: one outcome every way; only RemoteProtocolError
    escapes, with the state ERROR and a GOAWAY queued for the server."""
    wire = corrupt(data.draw, play(script))
    outcome = check_invariance(script.streams, wire, cuts)
    if outcome.error is not None:
        assert outcome.error[0] is RemoteProtocolError
        assert outcome.state is S.ERROR


# -- header round trips with an h2 server -----------------------------------------

request_names = st.one_of(names, names, st.sampled_from(CONNECTION_SPECIFIC))
request_fields = st.lists(st.tuples(request_names, field_values), max_size=8)
# RFC 9110 §9.1 methods are tokens; CONNECT has its own HTTP/2 form (§8.5).
methods = tokens.filter(lambda method: method != b"CONNECT")
targets = st.lists(st.sampled_from(bytes(range(0x21, 0x7F))), max_size=20).map(
    lambda codes: b"/" + bytes(codes)
)


@given(
    before=request_fields,
    after=request_fields,
    host=field_values.filter(bool),
    method=methods,
    target=targets,
    te=st.sampled_from([None, b"trailers", b"gzip"]),
)
@PROPERTY
def test_request_head_round_trips_through_h2_server(
    before: Fields,
    after: Fields,
    host: bytes,
    method: bytes,
    target: bytes,
    te: bytes | None,
) -> None:
    """An h2 server reads the pseudo-headers, Host as :authority, then our
    fields lowercased and in order, minus connection-specific ones (RFC 9113
    §8.2.2) and a TE other than "trailers"."""
    pair = connect()
    extra = [] if te is None else [(b"TE", te)]
    headers = [*before, (b"Host", host), *extra, *after]
    stream_id = pair.client.send_request(
        method, b"https", target, headers, end_stream=True
    )
    (received, *_) = pair.to_server()
    assert isinstance(received, h2.events.RequestReceived)
    assert received.stream_id == stream_id
    kept = [
        (name.lower(), value)
        for name, value in [*before, *extra, *after]
        if name.lower() not in CONNECTION_SPECIFIC
        and (name.lower() != b"te" or value == b"trailers")
    ]
    assert received.headers == [
        (b":method", method),
        (b":authority", host),
        (b":scheme", b"https"),
        (b":path", target),
        *kept,
    ]


@given(fields=response_fields, status=st.integers(200, 599))
@PROPERTY
def test_response_fields_served_by_h2_arrive_unchanged(
    fields: Fields, status: int
) -> None:
    """What an h2 server serves (HPACK, CONTINUATION and all) is what
    ResponseReceived carries, :status apart."""
    pair = connect(1)
    pair.server.send_headers(
        1, [(b":status", b"%d" % status), *fields], end_stream=True
    )
    assert pair.to_client() == [
        ResponseReceived(
            stream_id=1,
            status=status,
            http_version=b"HTTP/2",
            reason_phrase=b"",
            headers=fields,
        ),
        ResponseComplete(stream_id=1, reusable=True),
    ]


def _with_forbidden(value: bytes, position: int, bad: bytes) -> bytes:
    position = min(position, len(value))
    return value[:position] + bad + value[position:]


NON_TCHAR = bytes(code for code in range(256) if code not in TCHAR)
# RFC 9110 §5.5: no CR, LF or NUL, and no other control character either.
CONTROLS = bytes([*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F])


@given(
    name=names,
    value=field_values,
    position=st.integers(0, 16),
    bad_name=st.sampled_from(NON_TCHAR).map(lambda code: bytes([code])),
    bad_value=st.sampled_from(CONTROLS).map(lambda code: bytes([code]))
    | st.just(b"\r\nx-injected: 1"),
    in_name=st.booleans(),
)
@PROPERTY
def test_invalid_field_refused_before_any_byte(
    name: bytes,
    value: bytes,
    position: int,
    bad_name: bytes,
    bad_value: bytes,
    in_name: bool,
) -> None:
    """A non-token name or a value with a control character raises
    LocalProtocolError, queues nothing, and leaves the connection usable
    (HPACK state untouched: the next request round-trips)."""
    if in_name:
        name = _with_forbidden(name, position, bad_name)
    else:
        value = _with_forbidden(value, position, bad_value)
    pair = connect()
    with pytest.raises(LocalProtocolError, match="invalid"):
        pair.client.send_request(
            b"GET", b"https", b"/", [HOST, (name, value)], end_stream=True
        )
    assert pair.client.data_to_send() == b""
    assert pair.client.state is S.OPEN
    pair.client.send_request(b"GET", b"https", b"/", [HOST], end_stream=True)
    (received, *_) = pair.to_server()
    assert isinstance(received, h2.events.RequestReceived)
    assert received.stream_id == 1


# -- the transition table over every (state, input) pair --------------------------

# A SETTINGS frame (the server preface when it comes first) and a GOAWAY.
GOAWAY_BYTES = (
    SettingsFrame(0).serialize() + GoAwayFrame(0, last_stream_id=0).serialize()
)


def reach(target: HTTP2ConnectionState) -> HTTP2State:
    """A connection in ``target`` through public calls only."""
    if target is S.NEW:
        client = HTTP2State()
    elif target is S.CLOSED:
        client = HTTP2State()
        client.close()
    else:
        pair = connect(1)
        client = pair.client
        if target is S.DRAINING:
            pair.server.close_connection(last_stream_id=1)
            pair.to_client()
        elif target is S.ERROR:
            with pytest.raises(RemoteProtocolError):
                client.receive_data(b"\x00\x00\x04\x09\x00\x00\x00\x00\x01garb")
    client.data_to_send()
    assert client.state is target
    return client


ACTIONS: dict[_Input, Callable[[HTTP2State], object]] = {
    _Input.INITIATE: lambda c: c.initiate(),
    _Input.GOAWAY: lambda c: c.receive_data(GOAWAY_BYTES),
    _Input.EOF: lambda c: c.receive_eof(),
    _Input.CLOSE: lambda c: c.close(),
}

#: Pairs no public call can produce, and what the call above does instead.
UNREACHABLE: dict[tuple[HTTP2ConnectionState, _Input], str] = {
    # Bytes after EOF or close() are ignored, GOAWAY or not.
    (S.CLOSED, _Input.GOAWAY): "ignored",
    # In ERROR, receives raise the error again.
    (S.ERROR, _Input.GOAWAY): "raises",
    (S.ERROR, _Input.EOF): "raises",
    # Bytes before initiate() are our misuse, refused before h2 sees them.
    (S.NEW, _Input.GOAWAY): "refused",
}
PAIRS = list(itertools.product(HTTP2ConnectionState, _Input))
REFUSED = set(PAIRS) - set(UNREACHABLE) - set(_TRANSITIONS)


def test_every_pair_is_classified() -> None:
    """Each pair is in the table, unreachable (listed), or refused."""
    assert not set(UNREACHABLE) & set(_TRANSITIONS)
    assert {
        *(
            (state, _Input.INITIATE)
            for state in (S.OPEN, S.DRAINING, S.CLOSED, S.ERROR)
        ),
    } == REFUSED


def assert_dead(client: HTTP2State) -> None:
    """ERROR: every command and receive raises, but the three documented as
    no-ops outside OPEN and DRAINING (acknowledge_data, reset_stream, close)."""
    calls: list[tuple[type[Exception], Callable[[], object]]] = [
        (LocalProtocolError, client.initiate),
        (
            LocalProtocolError,
            lambda: client.send_request(
                b"GET", b"https", b"/", [HOST], end_stream=True
            ),
        ),
        (LocalProtocolError, lambda: client.send_body(1, b"x")),
        (LocalProtocolError, lambda: client.end_request(1)),
        (RemoteProtocolError, lambda: client.receive_data(b"\x00")),
        (RemoteProtocolError, lambda: client.receive_data(b"")),
        (RemoteProtocolError, client.receive_eof),
    ]
    for kind, call in calls:
        with pytest.raises(kind):
            call()
        assert client.state is S.ERROR
    client.acknowledge_data(1, 10)
    client.reset_stream(1)
    client.close()
    assert client.state is S.ERROR
    assert client.data_to_send() == b""


@pytest.mark.parametrize(
    ("before", "event"),
    PAIRS,
    ids=[f"{state.name}-{event.name.lower()}" for state, event in PAIRS],
)
def test_transition_table_pair(
    before: HTTP2ConnectionState, event: _Input, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Legal pairs move where the table says; refused ones raise and leave the
    state and the outgoing bytes as they were; unreachable ones do not reach
    the table."""
    client = reach(before)
    delivered: list[tuple[HTTP2ConnectionState, _Input]] = []
    move = HTTP2State._move

    def spy(self: HTTP2State, given: _Input) -> None:
        delivered.append((self.state, given))
        move(self, given)

    monkeypatch.setattr(HTTP2State, "_move", spy)
    error: ProtocolError | None = None
    try:
        ACTIONS[event](client)
    except ProtocolError as exc:
        error = exc
    pair = (before, event)
    if pair in _TRANSITIONS:
        assert error is None
        assert delivered == [pair]
        assert client.state is _TRANSITIONS[pair]
    elif pair in UNREACHABLE:
        assert delivered == []
        if UNREACHABLE[pair] == "ignored":
            assert error is None
        elif UNREACHABLE[pair] == "refused":
            assert isinstance(error, LocalProtocolError)
            assert f"while the connection is {before.value}" in str(error)
            assert client.data_to_send() == b""
        else:
            assert isinstance(error, RemoteProtocolError)
        assert client.state is before
    else:
        assert delivered == [pair]
        assert isinstance(error, LocalProtocolError)
        assert f"while the connection is {before.value}" in str(error)
        assert client.state is before
        assert client.data_to_send() == b""
    if client.state is S.ERROR:
        assert_dead(client)


def test_receive_before_initiate_queues_nothing() -> None:
    """Server bytes before initiate() are our misuse: refused at once with
    LocalProtocolError, and nothing is queued (a SETTINGS ACK sent before the
    preface would break RFC 9113 §3.4)."""
    server = new_server()
    server.initiate_connection()
    client = HTTP2State()
    with pytest.raises(LocalProtocolError):
        client.receive_data(server.data_to_send())
    assert client.data_to_send() == b""
    assert client.state is S.NEW


def test_hpack_error_message_is_deterministic() -> None:
    """A header block cut inside an HPACK integer (0xff wants more bytes):
    the same bytes give the same message, with no object address in it."""
    frame = b"\x00\x00\x01\x01\x05\x00\x00\x00\x01\xff"  # HEADERS, END_*
    messages = []
    for _ in range(2):
        client = connect(1).client
        with pytest.raises(RemoteProtocolError, match="HPACK") as info:
            client.receive_data(frame)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert "0x" not in messages[0]
