"""Properties of the HTTP/1.1 core (hypothesis), beyond the vector tables.

1. Chunking invariance: a generated conversation (1xx before the final
   response, Content-Length, chunked bodies with extensions and trailers, HEAD,
   204/304, HTTP/1.0 and read-to-EOF, several cycles on one kept-alive
   connection), valid or corrupted by a flipped, inserted or cut byte, gives the
   same events, error (class and message) and final state whether it is fed
   whole, byte by byte or in drawn pieces, the error raised by the piece that
   holds the byte that raised it byte by byte; the fast path and h11 give the
   same events, errors and states. Valid conversations give exactly the events
   the generator predicts. Where h11's wording depends on the reads, the
   property normalises it and an xfail BUG test pins the case.
2. Header round trips with a real h11 server: the request fields we serialise
   parse back as sent (Host first, case and order kept); the fields an h11
   server serves come out of ResponseReceived unchanged; CR, LF, NUL and
   non-token names are refused before a byte is queued.
3. The transition table: every (state, input) pair is driven through public
   calls and either moves where ``_TRANSITIONS`` says, or is refused with the
   state untouched, or cannot happen (the public call that would carry the
   input delivers another one, or a protocol error and ERROR). After ERROR every
   call but close() raises.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sansio import (
    DataReceived,
    Event,
    HTTP11ConnectionState,
    HTTP11State,
    InformationalResponse,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    ResponseComplete,
    ResponseReceived,
    TrailersReceived,
)
from sansio.http11 import _TRANSITIONS, _Input
from tests.sansio.splitting import bytewise, merge_data, whole

S = HTTP11ConnectionState
HOST = (b"Host", b"example.com")
Fields = list[tuple[bytes, bytes]]

# -- alphabets (RFC 9110 §5.6.2 tchar, §5.5 field-content) -------------------

TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VISIBLE = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))  # VCHAR, obs-text
FRAMING = {b"content-length", b"transfer-encoding", b"connection", b"host"}


def _join(codes: Sequence[int]) -> bytes:
    return bytes(codes)


tokens = st.lists(st.sampled_from(TCHAR), min_size=1, max_size=10).map(_join)
field_values = (
    st.lists(st.sampled_from(VISIBLE + b" \t"), max_size=16)
    .map(_join)
    .map(lambda value: value.strip(b" \t"))
)
plain_names = tokens.filter(lambda name: name.lower() not in FRAMING)
plain_fields = st.lists(st.tuples(plain_names, field_values), max_size=5)
reasons = st.lists(st.sampled_from(VISIBLE + b" \t"), max_size=12).map(_join)


# -- generated conversations -------------------------------------------------


@dataclass
class Cycle:
    """One request (GET or HEAD) and the response bytes the server sends."""

    method: bytes
    response: bytes
    eof: bool  # the server closes after the response (read to EOF)
    expected: list[Event]  # merged events, for a valid response


@st.composite
def heads(draw: st.DrawFn, status: int, version: bytes, fields: Fields) -> bytes:
    """A status line with a drawn reason and ``fields``, then the blank line."""
    reason = draw(reasons)
    lines = [b"HTTP/%s %d %s" % (version, status, reason)]
    lines += [b"%s: %s" % pair for pair in fields]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _reason(head: bytes) -> bytes:
    return head.split(b"\r\n", 1)[0].split(b" ", 2)[2]


@st.composite
def chunked_bodies(draw: st.DrawFn) -> tuple[bytes, bytes, Fields]:
    """(wire bytes, body, trailers) of a chunked body: drawn chunk sizes, size
    digits in either case with leading zeros, extensions and trailer fields."""
    chunks = draw(st.lists(st.binary(min_size=1, max_size=40), max_size=4))
    extension = st.one_of(
        st.just(b""),
        tokens.map(lambda name: b";" + name),
        st.tuples(tokens, tokens).map(lambda pair: b";%s=%s" % pair),
        st.tuples(tokens, field_values).map(
            lambda pair: b';%s="%s"' % (pair[0], pair[1].translate(None, b'"\\'))
        ),
    )
    wire = b""
    for chunk in [*chunks, b""]:
        digits = b"%x" % len(chunk)
        if draw(st.booleans()):
            digits = digits.upper()
        digits = b"0" * draw(st.integers(0, 3)) + digits
        wire += digits + draw(extension) + b"\r\n"
        if chunk:
            wire += chunk + b"\r\n"
    trailers = draw(plain_fields)
    wire += b"".join(b"%s: %s\r\n" % pair for pair in trailers) + b"\r\n"
    return wire, b"".join(chunks), trailers


@st.composite
def cycles(draw: st.DrawFn, *, stream_id: int, last: bool) -> Cycle:
    """A valid response; only the last cycle may end the connection."""
    events: list[Event] = []
    response = b""
    for _ in range(draw(st.integers(0, 2))):
        status = draw(st.sampled_from([100, 102, 103]))
        fields = draw(plain_fields)
        head = draw(heads(status, b"1.1", fields))
        response += head
        events.append(
            InformationalResponse(
                stream_id=stream_id,
                status=status,
                headers=fields,
                reason_phrase=_reason(head),
            )
        )
    framings = ["length", "chunked", "head", "bodiless"]
    if last:
        framings += ["eof", "http10-eof", "http10-length", "close"]
    framing = draw(st.sampled_from(framings))
    status = draw(
        st.sampled_from([204, 304])
        if framing == "bodiless"
        else st.integers(200, 599).filter(lambda code: code not in (204, 304))
    )
    fields = draw(plain_fields)
    body = draw(st.binary(max_size=60))
    wire_body = body
    trailers: Fields = []
    framing_fields: Fields = []
    if framing in ("length", "head", "http10-length", "close"):
        framing_fields.append((b"Content-Length", b"%d" % len(body)))
    if framing == "close":
        framing_fields.append((b"Connection", b"close"))
    if framing == "chunked":
        framing_fields.append((b"Transfer-Encoding", b"chunked"))
        wire_body, body, trailers = draw(chunked_bodies())
    if framing == "bodiless":
        body = wire_body = b""
    for pair in framing_fields:
        fields.insert(draw(st.integers(0, len(fields))), pair)
    version = b"1.0" if framing.startswith("http10") else b"1.1"
    head = draw(heads(status, version, fields))
    method = b"HEAD" if framing == "head" else b"GET"
    response += head + (b"" if method == b"HEAD" else wire_body)
    events.append(
        ResponseReceived(
            stream_id=stream_id,
            status=status,
            http_version=b"HTTP/" + version,
            reason_phrase=_reason(head),
            headers=fields,
        )
    )
    if body and method == b"GET":
        events.append(DataReceived(stream_id=stream_id, data=body))
    if trailers:
        events.append(TrailersReceived(stream_id=stream_id, headers=trailers))
    reusable = framing in ("length", "chunked", "head", "bodiless")
    events.append(ResponseComplete(stream_id=stream_id, reusable=reusable))
    eof = framing in ("eof", "http10-eof") or (last and draw(st.booleans()))
    return Cycle(method, response, eof, events)


@st.composite
def conversations(draw: st.DrawFn) -> list[Cycle]:
    """One to three cycles on one connection."""
    count = draw(st.integers(1, 3))
    return [
        draw(cycles(stream_id=index + 1, last=index + 1 == count))
        for index in range(count)
    ]


@st.composite
def corrupted(draw: st.DrawFn) -> list[Cycle]:
    """A valid conversation with one response flipped, extended or cut."""
    conversation = draw(conversations())
    victim = draw(st.sampled_from(conversation))
    data = victim.response
    position = draw(st.integers(0, len(data)))
    how = draw(st.sampled_from(["flip", "insert", "truncate"]))
    if how == "flip" and position < len(data):
        mask = draw(st.integers(1, 255))
        data = data[:position] + bytes([data[position] ^ mask]) + data[position + 1 :]
    elif how == "insert":
        extra = draw(
            st.one_of(
                st.sampled_from([b"\r\n", b"\n", b"\r", b"\x00", b" ", b":", b"0"]),
                st.binary(min_size=1, max_size=3),
            )
        )
        data = data[:position] + extra + data[position:]
    else:
        data = data[:position]
        victim.eof = True
    victim.response = data
    return conversation


# -- running a conversation ----------------------------------------------------

Split = Callable[[bytes], list[bytes]]


@dataclass
class Outcome:
    """What one engine made of a conversation fed one way."""

    events: list[list[Event]]  # merged, per cycle
    state: HTTP11ConnectionState
    error: tuple[type[Exception], str] | None = None
    # Where the connection went to ERROR: (cycle, start, end) of the piece
    # being fed, with end = len + 1 for the EOF.
    error_at: tuple[int, int, int] | None = None


def _reusable_as_driven(events: list[Event], reusable: bool) -> list[Event]:
    """ResponseComplete.reusable and-ed with "the state was IDLE after the
    cycle's bytes": bytes after a complete response close the connection, in
    the same read (reusable=False) or the next one (IDLE -> CLOSED), which only
    differ in when they are seen (test_http11's extra-bytes tests pin both)."""
    return [
        ResponseComplete(
            stream_id=event.stream_id, reusable=event.reusable and reusable
        )
        if isinstance(event, ResponseComplete)
        else event
        for event in events
    ]


def run(conversation: Sequence[Cycle], *, fast: bool, split: Split) -> Outcome:
    """Send each request and feed its response as ``split`` cuts it."""
    state = HTTP11State(fast_path=fast)
    outcome = Outcome([], state.state)
    for index, cycle in enumerate(conversation):
        if state.state is not S.IDLE:
            break
        state.send_request(cycle.method, b"/", [HOST])
        state.end_request()
        state.data_to_send()
        events: list[Event] = []
        pieces = split(cycle.response) if cycle.response else []
        start = 0
        for piece in [*pieces, b""] if cycle.eof else pieces:
            end = start + len(piece) if piece else len(cycle.response) + 1
            if not piece:  # the EOF, after the response bytes
                events = _reusable_as_driven(events, state.state is S.IDLE)
            try:
                events += state.receive_data(piece) if piece else state.receive_eof()
            except ProtocolError as exc:
                outcome.error = (type(exc), str(exc))
            if state.state is S.ERROR:
                error = state.pending_error
                if outcome.error is None and error is not None:
                    outcome.error = (type(error), str(error))
                outcome.error_at = (index, start, end)
                break
            start = end
        if not cycle.eof:
            events = _reusable_as_driven(events, state.state is S.IDLE)
        outcome.events.append(merge_data(events))
        if outcome.error_at is not None:
            break
    outcome.state = state.state
    return outcome


def drawn_split(cuts: list[int]) -> Split:
    """Cut at the given fractions (per mille) of the length."""

    def split(data: bytes) -> list[bytes]:
        bounds = sorted({0, len(data), *(len(data) * cut // 1000 for cut in cuts)})
        return [data[a:b] for a, b in itertools.pairwise(bounds)]

    return split


# h11 words a few errors after the read that revealed them, so their text
# depends on the splits (the BUG tests below pin each): normalised here so the
# property checks everything else.
_SPLIT_DEPENDENT = [
    # A first byte below 0x21 alone in a read is h11's "obviously invalid"
    # early check; with the line complete it is one of the other two.
    (
        re.compile(
            r"malformed response: (illegal request line|no response line "
            r"received|illegal status line).*",
            re.S,
        ),
        "<bad status line>",
    ),
    # The message quotes the bytes of the read that held the bad footer.
    (re.compile(r"(malformed response: malformed chunk footer): .*", re.S), r"\1"),
]


def normalised(error: tuple[type[Exception], str] | None) -> object:
    if error is None:
        return None
    kind, message = error
    for pattern, replacement in _SPLIT_DEPENDENT:
        message = pattern.sub(replacement, message)
    return kind, message


def same(outcome: Outcome, reference: Outcome) -> None:
    assert outcome.events == reference.events
    assert normalised(outcome.error) == normalised(reference.error)
    assert outcome.state is reference.state


def check_invariance(conversation: Sequence[Cycle], cuts: list[int]) -> Outcome:
    """Per engine, every way of feeding gives one outcome with the error raised
    by the piece holding the byte that raised it byte by byte; both engines
    give the same events, error and state, and raise at the same byte."""
    references = []
    for fast in (True, False):
        reference = run(conversation, fast=fast, split=bytewise)
        for split in (whole, drawn_split(cuts)):
            outcome = run(conversation, fast=fast, split=split)
            same(outcome, reference)
            if reference.error_at is not None:
                assert outcome.error_at is not None
                cycle, _, byte_end = reference.error_at
                index, start, end = outcome.error_at
                assert index == cycle
                assert start < byte_end <= end
        references.append(reference)
    fast_path, h11_path = references
    same(fast_path, h11_path)
    assert fast_path.error_at == h11_path.error_at  # byte by byte: the same byte
    return h11_path


PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
cut_lists = st.lists(st.integers(1, 999), max_size=6)


@given(conversations(), cut_lists)
@PROPERTY
def test_valid_conversation_every_way(
    conversation: list[Cycle], cuts: list[int]
) -> None:
    """A valid conversation gives the predicted events, whatever the splits."""
    outcome = check_invariance(conversation, cuts)
    assert outcome.error is None
    assert outcome.events == [cycle.expected for cycle in conversation]
    last = conversation[-1].expected[-1]
    assert isinstance(last, ResponseComplete)
    reusable = last.reusable and not conversation[-1].eof
    assert outcome.state is (S.IDLE if reusable else S.CLOSED)


@given(corrupted(), cut_lists)
@settings(PROPERTY, max_examples=200)
def test_corrupted_conversation_every_way(
    conversation: list[Cycle], cuts: list[int]
) -> None:
    """A corrupted conversation: the same events, error and error byte every
    way; only RemoteProtocolError escapes, and only with the state in ERROR."""
    outcome = check_invariance(conversation, cuts)
    if outcome.error is not None:
        assert outcome.error[0] is RemoteProtocolError
        assert outcome.state is S.ERROR
    else:
        assert outcome.state in (S.IDLE, S.CLOSED, S.ACTIVE)


# -- trailer limits ---------------------------------------------------------------


def _trailer_outcome(
    data: bytes, split: Split, fast: bool, **limits: int
) -> tuple[list[Event], str | None]:
    state = HTTP11State(fast_path=fast, **limits)
    state.send_request(b"GET", b"/", [HOST])
    state.end_request()
    events: list[Event] = []
    try:
        for piece in split(data):
            events += state.receive_data(piece)
            if state.pending_error is not None:
                raise state.pending_error
    except RemoteProtocolError as exc:
        assert state.state is S.ERROR
        return merge_data(events), str(exc)
    return merge_data(events), None


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"


@given(
    trailers=st.lists(st.tuples(plain_names, field_values), min_size=1, max_size=8),
    limit=st.integers(1, 8),
    cuts=cut_lists,
    fast=st.booleans(),
)
@PROPERTY
def test_trailer_count_limit_every_way(
    trailers: Fields, limit: int, cuts: list[int], fast: bool
) -> None:
    """Trailers share max_header_count with the head (RFC 9110 §6.5): more
    fields than that is a RemoteProtocolError, with the same events before it
    and the same message whatever the splits."""
    data = CHUNKED_HEAD + b"".join(b"%s: %s\r\n" % pair for pair in trailers) + b"\r\n"
    outcomes = [
        _trailer_outcome(data, split, fast, max_header_count=limit)
        for split in (whole, bytewise, drawn_split(cuts))
    ]
    assert outcomes[1:] == outcomes[:1] * 2
    events, error = outcomes[0]
    assert events[1] == DataReceived(stream_id=1, data=b"a")
    if len(trailers) > limit:
        assert error is not None
        assert error.startswith(f"response trailers have {len(trailers)} fields")
        assert len(events) == 2
    else:
        assert error is None
        assert events[2] == TrailersReceived(stream_id=1, headers=trailers)


@pytest.mark.xfail(
    strict=True,
    reason="BUG: trailers over max_header_bytes are reported as 'response "
    "trailers have ...' when whole, as h11's 'Receive buffer too long' when "
    "they arrive in pieces",
)
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "h11"])
def test_trailer_size_limit_message_does_not_depend_on_splits(fast: bool) -> None:
    """The same oversized trailer gives the same message, whole or bytewise."""
    data = CHUNKED_HEAD + b"X-T: " + b"v" * 300 + b"\r\n\r\n"
    limits = {"max_header_bytes": 200}
    assert _trailer_outcome(data, bytewise, fast, **limits) == _trailer_outcome(
        data, whole, fast, **limits
    )


# -- the split-dependent corners, pinned ----------------------------------------


def _first_error(fast: bool, pieces: Sequence[bytes]) -> tuple[int, str]:
    """(index of the piece that raised, message) for a GET answered by pieces."""
    state = HTTP11State(fast_path=fast)
    state.send_request(b"GET", b"/", [HOST])
    state.end_request()
    for index, piece in enumerate(pieces):
        try:
            state.receive_data(piece)
        except RemoteProtocolError as exc:
            return index, str(exc)
        if state.pending_error is not None:  # raised by the next call
            return index, str(state.pending_error)
    raise AssertionError("no error")


@pytest.mark.xfail(
    strict=True,
    reason="BUG: h11 words a status line that starts with CR as 'illegal request "
    "line' when the CR comes alone, 'no response line received' otherwise",
)
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "h11"])
def test_leading_cr_error_does_not_depend_on_splits(fast: bool) -> None:
    """The same bytes give the same message, whole or byte by byte."""
    data = b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    whole_error = _first_error(fast, [data])[1]
    assert _first_error(fast, bytewise(data))[1] == whole_error


@pytest.mark.xfail(
    strict=True,
    reason="BUG: h11's 'malformed chunk footer' message quotes the bytes of the "
    "read that held the bad footer, so it depends on the splits",
)
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "h11"])
def test_chunk_footer_error_does_not_depend_on_splits(fast: bool) -> None:
    """The same bytes give the same message, whole or byte by byte."""
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\rX"
    whole_error = _first_error(fast, [data])[1]
    assert _first_error(fast, bytewise(data))[1] == whole_error


def test_fast_path_refuses_garbage_as_early_as_h11() -> None:
    """A TLS alert (0x15...) answering plain HTTP: h11 raises on its first
    byte; the fast path should not wait for a blank line that never comes."""
    data = b"\x15\x03\x01\x00\x02\x02\x46"
    assert _first_error(False, bytewise(data))[0] == 0
    state = HTTP11State(fast_path=True)
    state.send_request(b"GET", b"/", [HOST])
    state.end_request()
    with pytest.raises(RemoteProtocolError, match="illegal request line"):
        state.receive_data(data)


# -- header round trips with an h11 server --------------------------------------

request_fields = st.lists(st.tuples(plain_names, field_values), max_size=8)


@given(
    before=request_fields,
    after=request_fields,
    host=field_values.filter(bool),
    method=tokens,
    fast=st.booleans(),
)
@PROPERTY
def test_request_fields_round_trip_through_h11_server(
    before: Fields, after: Fields, host: bytes, method: bytes, fast: bool
) -> None:
    """An h11 server reads our request head as given: Host first (h11's and
    our order, RFC 9110 §7.2), the other fields in order, names' case kept."""
    state = HTTP11State(fast_path=fast)
    state.send_request(method, b"/t?q", [*before, (b"Host", host), *after])
    state.end_request()
    server = h11.Connection(h11.SERVER)
    server.receive_data(state.data_to_send())
    request = server.next_event()
    assert isinstance(request, h11.Request)
    assert (request.method, request.target) == (method, b"/t?q")
    expected = [(b"Host", host), *before, *after]
    assert request.headers.raw_items() == expected
    assert list(request.headers) == [(n.lower(), v) for n, v in expected]
    assert isinstance(server.next_event(), h11.EndOfMessage)


@given(
    fields=st.lists(st.tuples(plain_names, field_values), max_size=8),
    reason=reasons.map(lambda value: value.strip(b" \t")),
    status=st.integers(200, 599).filter(lambda code: code not in (204, 304)),
    body=st.binary(max_size=30),
    fast=st.booleans(),
)
@PROPERTY
def test_response_fields_served_by_h11_arrive_unchanged(
    fields: Fields, reason: bytes, status: int, body: bytes, fast: bool
) -> None:
    """What an h11 server serves is what ResponseReceived carries."""
    state = HTTP11State(fast_path=fast)
    state.send_request(b"GET", b"/", [HOST])
    state.end_request()
    server = h11.Connection(h11.SERVER)
    server.receive_data(state.data_to_send())
    while server.next_event() is not h11.NEED_DATA:
        pass
    served = [*fields, (b"Content-Length", b"%d" % len(body))]
    wire = server.send(h11.Response(status_code=status, reason=reason, headers=served))
    wire += server.send(h11.Data(data=body)) + server.send(h11.EndOfMessage())
    events = merge_data(state.receive_data(wire))
    head = events[0]
    assert isinstance(head, ResponseReceived)
    assert (head.status, head.reason_phrase, head.headers) == (status, reason, served)
    assert events[-1] == ResponseComplete(stream_id=1, reusable=True)
    assert b"".join(e.data for e in events if isinstance(e, DataReceived)) == body


def assert_unchanged(state: HTTP11State) -> None:
    """A refused head queued nothing and changed nothing: a valid request
    still goes out as the connection's first."""
    assert state.data_to_send() == b""
    assert (state.state, state.stream_id) == (S.IDLE, 0)
    state.send_request(b"GET", b"/", [HOST])
    assert state.data_to_send().startswith(b"GET / HTTP/1.1\r\nHost: example.com\r\n")


def _with_forbidden(value: bytes, position: int, bad: bytes) -> bytes:
    position = min(position, len(value))
    return value[:position] + bad + value[position:]


@given(
    name=tokens,
    value=field_values,
    position=st.integers(0, 16),
    bad=st.sampled_from([b"\r", b"\n", b"\r\n", b"\x00", b"\r\nX-Injected: 1"]),
    in_name=st.booleans(),
    fast=st.booleans(),
)
@PROPERTY
def test_injection_refused_before_any_byte(
    name: bytes, value: bytes, position: int, bad: bytes, in_name: bool, fast: bool
) -> None:
    """CR, LF or NUL in a field name or value raises LocalProtocolError,
    queues nothing and leaves the connection usable."""
    if in_name:
        name = _with_forbidden(name, position, bad)
    else:
        value = _with_forbidden(value, position, bad)
    state = HTTP11State(fast_path=fast)
    with pytest.raises(LocalProtocolError, match=REFUSED_FIELD):
        state.send_request(b"GET", b"/", [HOST, (name, value)])
    assert_unchanged(state)


NON_TCHAR = bytes(code for code in range(256) if code not in TCHAR)
# sansio's words for a refused field, or h11's (after "invalid request: ").
REFUSED_FIELD = r"invalid (request|header name|value for header)"


@given(
    name=tokens,
    position=st.integers(0, 10),
    bad=st.sampled_from(NON_TCHAR).map(lambda code: bytes([code])),
    fast=st.booleans(),
)
@PROPERTY
def test_non_token_name_refused_before_any_byte(
    name: bytes, position: int, bad: bytes, fast: bool
) -> None:
    """A field name with any byte outside tchar (or an empty one) is refused."""
    name = _with_forbidden(name, position, bad) if position < 10 else b""
    state = HTTP11State(fast_path=fast)
    with pytest.raises(LocalProtocolError, match=REFUSED_FIELD):
        state.send_request(b"GET", b"/", [HOST, (name, b"v")])
    assert_unchanged(state)


# -- the transition table over every (state, input) pair --------------------------

UPGRADE = [HOST, (b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")]


def reach(target: HTTP11ConnectionState, via: _Input) -> HTTP11State:
    """A connection in ``target`` through public calls only (ACTIVE with an
    Upgrade request when the input to apply is the switch)."""
    state = HTTP11State()
    if target is S.ACTIVE:
        state.send_request(b"GET", b"/", UPGRADE if via is _Input.SWITCH else [HOST])
        state.end_request()
    elif target is S.SWITCHED:
        state.send_request(b"CONNECT", b"example.com:443", [HOST])
        state.end_request()
        state.receive_data(b"HTTP/1.1 200 OK\r\n\r\n")
    elif target is S.CLOSED:
        state.close()
    elif target is S.ERROR:
        state.send_request(b"GET", b"/", [HOST])
        state.end_request()
        with pytest.raises(RemoteProtocolError):
            state.receive_data(b"garbage\r\n\r\n")
    state.data_to_send()
    assert state.state is target
    return state


#: The public call that carries each input (where the state lets it).
ACTIONS: dict[_Input, Callable[[HTTP11State], object]] = {
    _Input.SEND_REQUEST: lambda s: s.send_request(b"GET", b"/", [HOST]),
    _Input.COMPLETE_KEEP_ALIVE: lambda s: s.receive_data(
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    ),
    _Input.COMPLETE_CLOSE: lambda s: s.receive_data(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    ),
    _Input.SWITCH: lambda s: s.receive_data(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\n\r\n"
    ),
    _Input.UNSOLICITED_DATA: lambda s: s.receive_data(b"x"),
    _Input.EOF: lambda s: s.receive_eof(),
    _Input.CLOSE: lambda s: s.close(),
}

#: Pairs no public call can produce, and what the call above does instead.
UNREACHABLE: dict[tuple[HTTP11ConnectionState, _Input], str] = {
    # A response completes or switches only while a request is ACTIVE: the
    # same bytes in IDLE or CLOSED are unsolicited data, in SWITCHED and ERROR
    # they are refused.
    **{
        (state, event): "other input"
        for state in (S.IDLE, S.CLOSED)
        for event in (_Input.COMPLETE_KEEP_ALIVE, _Input.COMPLETE_CLOSE, _Input.SWITCH)
    },
    **{
        (state, event): "raises"
        for state in (S.SWITCHED, S.ERROR)
        for event in (
            _Input.COMPLETE_KEEP_ALIVE,
            _Input.COMPLETE_CLOSE,
            _Input.SWITCH,
            _Input.UNSOLICITED_DATA,
            _Input.EOF,
        )
    },
    # While ACTIVE, bytes are the response (a lone "x" is an incomplete head)...
    (S.ACTIVE, _Input.UNSOLICITED_DATA): "stays",
    # ...and EOF ends it: a complete-close or, here, a protocol error.
    (S.ACTIVE, _Input.EOF): "raises",
}
PAIRS = list(itertools.product(HTTP11ConnectionState, _Input))


def test_every_pair_is_classified() -> None:
    """Each pair is in the table, unreachable (listed), or refused: the three
    sets cover the product and do not overlap."""
    assert not set(UNREACHABLE) & set(_TRANSITIONS)
    refused = set(PAIRS) - set(UNREACHABLE) - set(_TRANSITIONS)
    assert refused == {
        (state, _Input.SEND_REQUEST)
        for state in (S.ACTIVE, S.SWITCHED, S.CLOSED, S.ERROR)
    }


def assert_dead(state: HTTP11State) -> None:
    """ERROR: every later command and receive raises; close() keeps ERROR."""
    assert state.state is S.ERROR
    calls: list[tuple[type[Exception], Callable[[], object]]] = [
        (LocalProtocolError, lambda: state.send_request(b"GET", b"/", [HOST])),
        (LocalProtocolError, lambda: state.send_body(b"x")),
        (LocalProtocolError, state.end_request),
        (RemoteProtocolError, lambda: state.receive_data(b"x")),
        (RemoteProtocolError, lambda: state.receive_data(b"")),
        (RemoteProtocolError, state.receive_eof),
    ]
    for kind, call in calls:
        with pytest.raises(kind):
            call()
        assert state.state is S.ERROR
    state.close()
    assert state.state is S.ERROR
    assert state.data_to_send() == b""


@pytest.mark.parametrize(
    ("before", "event"),
    PAIRS,
    ids=[f"{state.name}-{event.name.lower()}" for state, event in PAIRS],
)
def test_transition_table_pair(
    before: HTTP11ConnectionState, event: _Input, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Legal pairs move where the table says; refused ones raise and leave the
    state as it was; unreachable ones deliver something else."""
    state = reach(before, event)
    delivered: list[tuple[HTTP11ConnectionState, _Input]] = []
    move = HTTP11State._move

    def spy(self: HTTP11State, given: _Input) -> None:
        delivered.append((self.state, given))
        move(self, given)

    monkeypatch.setattr(HTTP11State, "_move", spy)
    error: ProtocolError | None = None
    try:
        ACTIONS[event](state)
    except ProtocolError as exc:
        error = exc
    pair = (before, event)
    if pair in _TRANSITIONS:
        assert error is None
        # close() in ERROR stays put without looking the table up (its row
        # says the same); every other legal pair goes through it.
        assert pair in delivered or pair == (S.ERROR, _Input.CLOSE)
        assert state.state is _TRANSITIONS[pair]
    elif pair in UNREACHABLE:
        assert pair not in delivered
        # Whatever was delivered instead was a legal move.
        assert all(move_ in _TRANSITIONS for move_ in delivered)
        how = UNREACHABLE[pair]
        if how == "other input":
            assert error is None
            assert delivered == [(before, _Input.UNSOLICITED_DATA)]
            assert state.state is S.CLOSED
        elif how == "stays":
            assert (error, delivered, state.state) == (None, [], S.ACTIVE)
        else:
            assert error is not None
            if before is S.SWITCHED:  # HTTP/1.1 input on a tunnel: our misuse
                assert isinstance(error, LocalProtocolError)
                assert state.state is S.SWITCHED
            else:
                assert isinstance(error, RemoteProtocolError)
    else:
        assert delivered == [pair]
        assert isinstance(error, LocalProtocolError)
        assert f"while the connection is {before.value}" in str(error)
        assert state.state is before
        assert state.data_to_send() == b""
    if state.state is S.ERROR:
        assert_dead(state)
