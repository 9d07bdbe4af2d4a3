"""The HTTP/1.1 fast path against h11, the reference: the same request bytes,
and for any response, fed in any split, the same events, errors and states.

``test_http11.py`` runs all its vectors on both paths; this module adds
hypothesis-made exchanges (valid, odd and hostile) and checks that the fast
path really carries the common case without h11.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sansio import (
    DataReceived,
    Event,
    HTTP11ConnectionState,
    HTTP11State,
    LocalProtocolError,
    RemoteProtocolError,
    ResponseComplete,
    ResponseReceived,
    http11,
)
from tests.sansio.splitting import merge_data

HOST = (b"Host", b"example.com")


@dataclass
class Outcome:
    """What one engine made of an exchange."""

    sent: bytes
    events: list[Event]
    error: tuple[type[Exception], str] | None
    state: HTTP11ConnectionState
    sending: bool  # is_sending_body at the end


def run(
    *,
    fast: bool,
    method: bytes,
    headers: list[tuple[bytes, bytes]],
    body: list[bytes],
    response: bytes,
    cuts: list[int],
    eof: bool,
    early: bool,
) -> Outcome:
    """Send the request, feed ``response`` cut at ``cuts`` (then EOF)."""
    state = HTTP11State(fast_path=fast)
    events: list[Event] = []
    error = None
    sent = b""
    try:
        state.send_request(method, b"/", headers)
        for piece in body:
            state.send_body(piece)
        if not early:
            state.end_request()
        sent = state.data_to_send()
        bounds = [0, *sorted(set(cuts)), len(response)]
        for start, end in itertools.pairwise(bounds):
            if end > start:
                events.extend(state.receive_data(response[start:end]))
        if eof:
            events.extend(state.receive_eof())
    except (LocalProtocolError, RemoteProtocolError) as exc:
        error = (type(exc), str(exc))
        sent = sent or state.data_to_send()
    if error is None and state.pending_error is not None:
        # Found after events that were returned: raised on the next call.
        error = (type(state.pending_error), str(state.pending_error))
    return Outcome(sent, merge_data(events), error, state.state, state.is_sending_body)


STATUS_LINES = [
    b"HTTP/1.1 200 OK",
    b"HTTP/1.1 200 ",
    b"HTTP/1.1 200",
    b"HTTP/1.0 200 OK",
    b"HTTP/1.1 204 No Content",
    b"HTTP/1.1 304 Not Modified",
    b"HTTP/1.1 404 Not Found",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK",
    b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK",
    b"HTTP/1.1 101 Switching Protocols",
    b"HTTP/2.0 200 OK",
    b"HTTP/1.1 099 Low",
    b"HTTP/1.1 2000 Long",
    b"HTTP/1.1 200 R\xe9sum\xe9",
    b"HTTP/1.1 200 tab\there",
    b"HTTP/1.1  200 OK",
    b"garbage",
    b"",
]
FIELDS = [
    b"Content-Type: text/plain",
    b"X-Empty:",
    b"X-Spaces:   padded   ",
    b"X-Tab:\tvalue",
    b"Connection: close",
    b"Connection: keep-alive",
    b"connection: Keep-Alive, CLOSE",
    b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: gzip, chunked",
    b"Content-Length: 0",
    b"Content-Length: 5",
    b"Content-Length: 12",
    b"Content-Length: 5, 5",
    b"Content-Length: +5",
    b"Content-Length: 99999999999999999999999",
    b"X-Obs: a\r\n folded",
    b"X-Bare-LF: a\nX-Next: b",
    b"X-Latin: caf\xe9",
    b"X-Nul: a\x00b",
    b"Bad Name: x",
    b": no name",
    b"no-colon",
]


@st.composite
def exchanges(draw: st.DrawFn) -> dict[str, object]:
    """A request and a response, valid or not, with a way to cut it."""
    method = draw(st.sampled_from([b"GET", b"HEAD", b"POST"]))
    headers = [HOST]
    body: list[bytes] = []
    if method == b"POST":
        kind = draw(st.sampled_from(["length", "chunked", "none"]))
        pieces = draw(st.lists(st.binary(min_size=1, max_size=5), max_size=3))
        if kind == "length":
            headers.append((b"Content-Length", b"%d" % sum(map(len, pieces))))
            body = pieces
        elif kind == "chunked":
            headers.append((b"Transfer-Encoding", b"chunked"))
            body = pieces
    if draw(st.booleans()):
        headers.append((b"Connection", draw(st.sampled_from([b"close", b"x"]))))
    status = draw(st.sampled_from(STATUS_LINES))
    fields = draw(st.lists(st.sampled_from(FIELDS), max_size=4))
    payload = draw(st.binary(max_size=20))
    if b"Transfer-Encoding: chunked" in fields and draw(st.booleans()):
        payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
    head = b"\r\n".join([status, *fields]) + b"\r\n\r\n"
    if draw(st.booleans()):
        head = head.replace(b"\r\n", b"\n")
    response = head + payload + draw(st.sampled_from([b"", b"HTTP/1.1 200 OK\r\n"]))
    cuts = draw(st.lists(st.integers(0, len(response)), max_size=6))
    return {
        "method": method,
        "headers": headers,
        "body": body,
        "response": response,
        "cuts": cuts,
        "eof": draw(st.booleans()),
        "early": draw(st.booleans()),  # the response comes before end_request
    }


@given(exchanges())
@settings(max_examples=2000, deadline=None)
def test_fast_path_agrees_with_h11(exchange: dict[str, object]) -> None:
    """Same bytes on the wire, same events, same error, same final state."""
    fast = run(fast=True, **exchange)  # type: ignore[arg-type]
    reference = run(fast=False, **exchange)  # type: ignore[arg-type]
    assert fast == reference


# -- the fast path is really taken ---------------------------------------------


def test_common_exchange_never_touches_h11() -> None:
    """A GET and a POST with Content-Length, answered with Content-Length, on a
    kept-alive connection: h11 stays idle throughout."""
    state = HTTP11State()
    for method, body in ((b"GET", b""), (b"POST", b"hello")):
        headers = [HOST, (b"Content-Length", b"%d" % len(body))] if body else [HOST]
        state.send_request(method, b"/p", headers)
        state.send_body(body)
        state.end_request()
        assert state.data_to_send().startswith(method + b" /p HTTP/1.1\r\nHost:")
        # A body with bare LFs (as most text bodies have), in the head's read.
        events = state.receive_data(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\na\nb\n\n"
        )
        assert [type(event) for event in events] == [
            ResponseReceived,
            DataReceived,
            ResponseComplete,
        ]
        assert state.state is HTTP11ConnectionState.IDLE
        assert state._h11_connection is None  # h11 was never even built


def test_chunked_response_falls_back_before_any_event() -> None:
    """A chunked response is h11's: the head is replayed, nothing is lost."""
    state = HTTP11State()
    state.send_request(b"GET", b"/", [HOST])
    state.end_request()
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    events = state.receive_data(head + b"3\r\nabc\r\n0\r\n\r\n")
    assert merge_data(events)[1] == DataReceived(stream_id=1, data=b"abc")
    assert state.state is HTTP11ConnectionState.IDLE


@pytest.mark.parametrize("seed", range(5))
def test_large_body_in_random_reads(seed: int) -> None:
    """A 1 MiB Content-Length body in random reads arrives whole, once."""
    rng = random.Random(seed)
    body = rng.randbytes(2**20)
    response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    state = HTTP11State()
    state.send_request(b"GET", b"/", [HOST])
    state.end_request()
    events: list[Event] = []
    position = 0
    while position < len(response):
        size = rng.randint(1, 70_000)
        events.extend(state.receive_data(response[position : position + size]))
        position += size
    merged = merge_data(events)
    assert merged[1] == DataReceived(stream_id=1, data=body)
    assert merged[2] == ResponseComplete(stream_id=1, reusable=True)


# -- remembered lines ----------------------------------------------------------

# Heads whose field lines decide framing or reuse, each sent twice: the second
# time every line comes from the fast path's memory of parsed lines.
REMEMBERED_HEADS = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
    b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 404 Not Found\r\nServer: x\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 200 " + b"R" * 300 + b"\r\nContent-Length: 3\r\n\r\nabc",
]


@pytest.mark.parametrize("response", REMEMBERED_HEADS)
def test_remembered_lines_decide_as_new_ones(
    response: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A head parsed from remembered lines gives h11's outcome, as it did
    when the lines were new."""
    monkeypatch.setattr(http11, "_STATUS_LINES", {})
    monkeypatch.setattr(http11, "_FIELD_LINES", {})
    exchange = {
        "method": b"GET",
        "headers": [HOST],
        "body": [],
        "response": response,
        "cuts": [],
        "eof": True,
        "early": False,
    }
    reference = run(fast=False, **exchange)  # type: ignore[arg-type]
    first = run(fast=True, **exchange)  # type: ignore[arg-type]
    assert http11._FIELD_LINES or http11._STATUS_LINES or not response
    second = run(fast=True, **exchange)  # type: ignore[arg-type]
    assert first == reference
    assert second == reference


def test_line_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """At most _REMEMBER_MAX lines are kept, and no line longer than
    _REMEMBER_LINE_MAX; both memories start over when full."""
    monkeypatch.setattr(http11, "_STATUS_LINES", {})
    monkeypatch.setattr(http11, "_FIELD_LINES", {})
    monkeypatch.setattr(http11, "_REQUEST_FIELDS", {})
    monkeypatch.setattr(http11, "_REQUEST_LINES", {})
    long_value = b"v" * (http11._REMEMBER_LINE_MAX + 1)
    for index in range(http11._REMEMBER_MAX + 10):
        state = HTTP11State()
        headers = [HOST, (b"X-Index", b"%d" % index), (b"X-Long", long_value)]
        target = b"/%d" % index if index else b"/" + long_value
        state.send_request(b"GET", target, headers)
        state.end_request()
        assert state.data_to_send().startswith(b"GET %s HTTP/1.1\r\n" % target)
        reason = b"OK" if index % 2 else long_value  # a long status line too
        head = b"HTTP/1.1 200 %s\r\nX-Index: %d\r\nX-Long: %s\r\n" % (
            reason,
            index,
            long_value,
        )
        events = state.receive_data(head + b"Content-Length: 0\r\n\r\n")
        assert isinstance(events[0], ResponseReceived)
        assert (b"X-Index", b"%d" % index) in events[0].headers
        assert 0 < len(http11._FIELD_LINES) <= http11._REMEMBER_MAX
        assert 0 < len(http11._REQUEST_FIELDS) <= http11._REMEMBER_MAX
        assert len(http11._REQUEST_LINES) <= http11._REMEMBER_MAX
    assert len(http11._FIELD_LINES) < http11._REMEMBER_MAX  # it started over
    assert len(http11._REQUEST_LINES) < http11._REMEMBER_MAX
    assert (b"GET", b"/%d" % (index - 1)) in http11._REQUEST_LINES
    assert not any(len(target) > 256 for _, target in http11._REQUEST_LINES)
    assert b"X-Index: %d" % index in http11._FIELD_LINES
    assert not any(b"X-Long" in line for line in http11._FIELD_LINES)
    assert (b"X-Long", long_value) not in http11._REQUEST_FIELDS
    assert list(http11._STATUS_LINES) == [b"HTTP/1.1 200 OK"]


def _sent_both_ways(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]
) -> bytes:
    """The head the fast path sends for a bodiless request, checked equal to h11's."""
    sent = []
    for fast in (True, False):
        state = HTTP11State(fast_path=fast)
        state.send_request(method, target, headers)
        state.end_request()
        sent.append(state.data_to_send())
    assert sent[0] == sent[1]
    return sent[0]


@pytest.mark.parametrize(
    "field",
    [
        [b"X-List", b"a"],  # a list: not hashable
        (b"X-Array", bytearray(b"a")),  # a bytearray: not hashable
        (b"X-View", memoryview(bytearray(b"a"))),  # hashing it raises ValueError
    ],
)
def test_unhashable_request_fields_are_sent_as_h11_sends_them(
    field: list[bytes] | tuple[bytes, bytearray],
) -> None:
    """Fields the memory cannot key on are still checked and serialised."""
    sent = _sent_both_ways(b"GET", b"/", [HOST, field])
    assert sent.endswith(b"\r\nX-%s: a\r\n\r\n" % field[0][2:])


@pytest.mark.parametrize(
    ("method", "target"),
    [
        (bytearray(b"GET"), b"/a?b"),
        (b"GET", bytearray(b"/a?b")),
        (b"PROPFIND", memoryview(b"/a?b")),
        (memoryview(bytearray(b"GET")), b"/a?b"),  # hashing it raises ValueError
        (b"GET", memoryview(bytearray(b"/a?b"))),
    ],
)
def test_unhashable_or_unusual_request_lines_are_sent_as_h11_sends_them(
    method: bytes, target: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request line the memory cannot key on (a bytearray), or will not keep
    (not bytes), is still checked and serialised, and is not remembered."""
    monkeypatch.setattr(http11, "_REQUEST_LINES", {})
    sent = _sent_both_ways(method, target, [HOST])
    assert sent.startswith(b"%s /a?b HTTP/1.1\r\n" % bytes(method))
    assert http11._REQUEST_LINES == {}


@pytest.mark.parametrize(
    "bad_line",
    [
        b"X-Ctl: a\x01b",  # a control byte
        b"X-Nul: a\x00b",
        b"X-Bare: a\nb",  # a bare LF: h11 ends the line there
        b"X-Bare-Cr: a\rb",
        b"X-Obs: caf\xe9",  # obs-text: h11 takes it
        b" folded",  # obs-fold
    ],
)
def test_a_new_line_among_remembered_ones_gets_the_whole_head_checked(
    bad_line: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A head whose lines were all seen before skips the byte check (each was
    checked with its head); one new line, however placed, brings it back, so a
    bad byte is never let through by the lines around it."""
    monkeypatch.setattr(http11, "_STATUS_LINES", {})
    monkeypatch.setattr(http11, "_FIELD_LINES", {})
    good = [b"HTTP/1.1 200 OK", b"Server: x", b"Content-Type: text/plain"]
    for lines in (good, [*good, bad_line], [good[0], bad_line, *good[1:]]):
        exchange = {
            "method": b"GET",
            "headers": [HOST],
            "body": [],
            "response": b"\r\n".join([*lines, b"Content-Length: 2", b"", b"ok"]),
            "cuts": [],
            "eof": False,
            "early": False,
        }
        assert run(fast=True, **exchange) == run(fast=False, **exchange)  # type: ignore[arg-type]
    assert b"Server: x" in http11._FIELD_LINES
    assert not any(b"X-" in line or b"folded" in line for line in http11._FIELD_LINES)


def test_request_lines_kept_are_short_and_without_a_query(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The request-line memory keeps a plain line, not one whose method and
    target together are longer than _REMEMBER_LINE_MAX, nor one with a query
    (it may carry a token); all of them are sent as h11 sends them."""
    monkeypatch.setattr(http11, "_REQUEST_LINES", {})
    long_method = b"M" * http11._REMEMBER_LINE_MAX
    lines = [(b"GET", b"/plain"), (long_method, b"/x"), (b"GET", b"/q?api_key=SECRET")]
    for method, target in lines:
        sent = _sent_both_ways(method, target, [HOST])
        assert sent.startswith(b"%s %s HTTP/1.1\r\n" % (method, target))
    assert list(http11._REQUEST_LINES) == [(b"GET", b"/plain")]


def test_credentials_are_never_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Authorization, Proxy-Authorization, Cookie and Set-Cookie stay with their
    own request and response: sent and parsed as h11 does, never kept."""
    monkeypatch.setattr(http11, "_FIELD_LINES", {})
    monkeypatch.setattr(http11, "_REQUEST_FIELDS", {})
    secrets = [
        (b"Authorization", b"Bearer SECRET-1"),
        (b"proxy-authorization", b"Basic SECRET-2"),
        (b"Cookie", b"session=SECRET-3"),
    ]
    exchange = {
        "method": b"GET",
        "headers": [HOST, (b"Accept", b"*/*"), *secrets],
        "body": [],
        "response": b"HTTP/1.1 200 OK\r\nSet-Cookie: id=SECRET-4\r\n"
        b"SET-COOKIE: other=SECRET-5\r\nServer: x\r\nContent-Length: 0\r\n\r\n",
        "cuts": [],
        "eof": False,
        "early": False,
    }
    assert run(fast=True, **exchange) == run(fast=False, **exchange)  # type: ignore[arg-type]
    remembered = repr((http11._FIELD_LINES, http11._REQUEST_FIELDS))
    assert b"Server: x" in http11._FIELD_LINES  # others are remembered
    assert (b"Accept", b"*/*") in http11._REQUEST_FIELDS
    assert "SECRET" not in remembered
