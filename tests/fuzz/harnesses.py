"""The fuzz oracles: one pure ``check_<name>(data)`` per harness, shared by atheris
(``fuzz.py``) and pytest (``test_fuzz.py`` replays the corpus through them).

Each check decodes its choices from the front of ``data`` (as atheris's
FuzzedDataProvider would, but over plain bytes so no atheris is needed), drives a
sans-IO object, and raises when the object breaks its contract:

* an exception the object does not document escapes (it propagates as is);
* the same input fed whole, byte by byte and in the fuzzer-chosen split gives
  different events or errors (``OracleFailure``);
* the HTTP/1.1 fast path and h11 disagree on the same split;
* after an error the connection is not in ERROR or still accepts input;
* a value the validators accepted holds CR, LF or NUL, or does not round-trip.

A check that returns means the input is fine. Work per input is bounded (input
length, piece count, frame count) so one execution takes milliseconds.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import hpack

from aio import Request  # importing aio needs no event loop
from sansio import (
    URL,
    DataReceived,
    Event,
    HTTP2ConnectionState,
    HTTP2State,
    HTTP11ConnectionState,
    HTTP11State,
    LocalProtocolError,
    Origin,
    ProtocolSwitched,
    RemoteProtocolError,
    ResponseComplete,
    ResponseReceived,
    host_header_value,
    normalize_headers,
    validate_method,
    validate_sni_hostname,
    validate_target,
)
from sansio.errors import ProxyError
from sansio.proxy import SOCKS5Handshake, SOCKS5State
from sansio.urls import DEFAULT_PORTS, _parse, _parse_simple
from tests.sansio.splitting import bytewise, merge_data

__all__ = [
    "HARNESSES",
    "OracleFailure",
    "Reader",
    "check_http2",
    "check_http11",
    "check_socks5",
    "check_validation",
    "cut",
]

T = TypeVar("T")

#: Inputs are truncated to this many bytes: a few response heads and bodies.
MAX_INPUT = 4096
#: At most this many pieces in the fuzzer-chosen split.
MAX_PIECES = 16
#: Inputs up to this size are also fed one byte at a time.
MAX_BYTEWISE = 256
#: At most this many HTTP/2 frames are built from one input.
MAX_FRAMES = 48

_UNSAFE = re.compile(rb"[\r\n\x00]")

#: While True the checks look past the sansio bugs listed in README.md (each has
#: an xfail regression input), so fuzzing can find new ones; test_fuzz.py sets it
#: False to replay the regressions strictly.
TOLERATE_KNOWN_BUGS = True

# h11 rejects a line at once when its first byte is a control or a space, before
# the line ends, in these words (so the message depends on the read size).
_H11_EARLY_REJECT = "malformed response: illegal request line"


# h11's words when an unfinished line outgrows max_incomplete_event_size.
_H11_BUFFER_LIMIT = "malformed response: Receive buffer too long"


class OracleFailure(AssertionError):
    """The object under test broke its contract for this input."""


def expect(condition: bool, message: str) -> None:
    """Raise :class:`OracleFailure` with ``message`` unless ``condition``."""
    if not condition:
        raise OracleFailure(message)


def must_raise(receive: Callable[..., object], *args: bytes) -> None:
    """A receive after a protocol error must raise RemoteProtocolError."""
    try:
        receive(*args)
    except RemoteProtocolError:
        return
    raise OracleFailure(f"{receive.__name__} after a protocol error did not raise")


class Reader:
    """Consumes fuzz choices from the front of a byte string; zeros once empty."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._position = 0

    def byte(self) -> int:
        """The next byte (0 when exhausted)."""
        if self._position >= len(self._data):
            return 0
        value = self._data[self._position]
        self._position += 1
        return value

    def pick(self, options: Sequence[T]) -> T:
        """One of ``options``, chosen by the next byte."""
        return options[self.byte() % len(options)]

    def take(self, size: int) -> bytes:
        """The next ``size`` bytes (fewer when the input runs out)."""
        chunk = self._data[self._position : self._position + size]
        self._position += len(chunk)
        return chunk

    def field(self) -> bytes:
        """A length-prefixed piece: one length byte, then that many bytes."""
        return self.take(self.byte())

    @property
    def exhausted(self) -> bool:
        """Whether every byte was consumed."""
        return self._position >= len(self._data)

    def rest(self) -> bytes:
        """Everything not consumed yet."""
        chunk = self._data[self._position :]
        self._position = len(self._data)
        return chunk

    def cuts(self) -> list[int]:
        """Up to MAX_PIECES - 1 cut points (16-bit each), for :func:`cut`."""
        count = self.byte() % MAX_PIECES
        return [int.from_bytes(self.take(2), "big") for _ in range(count)]


def cut(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """``data`` split at ``cuts`` (taken modulo its length); no empty piece."""
    if not data:
        return []
    bounds = sorted({0, len(data), *(point % len(data) for point in cuts)})
    return [data[start:end] for start, end in itertools.pairwise(bounds)]


Error = tuple[type[Exception], str] | None


# h11's messages quote the bytes it held when it gave up (as much of the bad line
# as had arrived), which depends on the read sizes: masked.
_QUOTED = re.compile(
    r"(?:bytearray\()?b'(?:[^'\\]|\\.)*'\)?|(?:bytearray\()?b\"(?:[^\"\\]|\\.)*\"\)?"
)


def describe(exc: Exception | None) -> Error:
    """An error as (class, message), the way the differential tests compare it,
    with the parts of the message that depend on read sizes masked."""
    if exc is None:
        return None
    return (type(exc), _QUOTED.sub("<bytes>", str(exc)))


# -- HTTP/1.1 -------------------------------------------------------------------

HOST = (b"Host", b"example.com")

# (method, target, headers, body pieces): the requests the fuzzer chooses among.
HTTP11_REQUESTS: list[tuple[bytes, bytes, list[tuple[bytes, bytes]], list[bytes]]] = [
    (b"GET", b"/", [HOST], []),
    (b"HEAD", b"/", [HOST], []),
    (b"POST", b"/form", [HOST, (b"Content-Length", b"5")], [b"he", b"llo"]),
    (b"POST", b"/up", [HOST, (b"Transfer-Encoding", b"chunked")], [b"abc"]),
    (b"CONNECT", b"example.com:443", [HOST], []),
    (
        b"GET",
        b"/chat",
        [HOST, (b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")],
        [],
    ),
    (b"GET", b"/", [HOST, (b"Connection", b"close")], []),
]
# Header limits the fuzzer chooses among; small ones make the limit checks reachable.
HTTP11_LIMITS: list[dict[str, int]] = [
    {},
    {"max_header_bytes": 256},
    {"max_header_bytes": 64, "max_header_count": 3},
]


@dataclass(frozen=True)
class HTTP11Exchange:
    """What the fuzz input chose: a request, limits, the response and its split."""

    request: int
    limits: int
    early: bool  # the response arrives before end_request()
    eof: bool  # receive_eof() after the last piece
    cuts: tuple[int, ...]
    response: bytes

    @classmethod
    def decode(cls, data: bytes) -> HTTP11Exchange:
        """Layout: request byte, flags byte, cut count and cuts, then the response."""
        reader = Reader(data[:MAX_INPUT])
        request = reader.byte() % len(HTTP11_REQUESTS)
        flags = reader.byte()
        cuts = tuple(reader.cuts())
        return cls(
            request=request,
            limits=(flags >> 2) % len(HTTP11_LIMITS),
            early=bool(flags & 1),
            eof=bool(flags & 2),
            cuts=cuts,
            response=reader.rest(),
        )

    def encode(self) -> bytes:
        """The fuzz input that decodes to this exchange (for the seed corpus)."""
        flags = self.early | self.eof << 1 | self.limits << 2
        cuts = b"".join(point.to_bytes(2, "big") for point in self.cuts)
        return bytes([self.request, flags, len(self.cuts)]) + cuts + self.response


@dataclass
class HTTP11Outcome:
    """What one engine made of one exchange fed in one split."""

    sent: bytes
    events: list[Event]
    error: Error
    state: HTTP11ConnectionState
    sending: bool


def run_http11(
    exchange: HTTP11Exchange, pieces: list[bytes], *, fast: bool
) -> HTTP11Outcome:
    """Send the chosen request, feed ``pieces`` (then EOF), check the invariants
    that hold for any single run, and return the outcome.

    Bytes that arrive after a protocol switch are the new protocol's: a driver
    hands them over with ``ProtocolSwitched.buffered``, so they are appended there
    instead of being fed.
    """
    method, target, headers, body = HTTP11_REQUESTS[exchange.request]
    state = HTTP11State(fast_path=fast, **HTTP11_LIMITS[exchange.limits])
    state.send_request(method, target, headers)
    for piece in body:
        state.send_body(piece)
    if not exchange.early:
        state.end_request()
    sent = state.data_to_send()
    events: list[Event] = []
    error: RemoteProtocolError | None = None
    after_switch = b""
    try:
        for piece in pieces:
            if state.state is HTTP11ConnectionState.SWITCHED:
                after_switch += piece
                continue
            new = state.receive_data(piece)
            _check_http11_events(state, new)
            events += new
        if exchange.eof and state.state is not HTTP11ConnectionState.SWITCHED:
            new = state.receive_eof()
            _check_http11_events(state, new)
            events += new
    except RemoteProtocolError as exc:
        error = exc
    if error is None:
        error = state.pending_error
    if error is not None:
        _check_http11_error_state(state)
    elif state.state is HTTP11ConnectionState.SWITCHED:
        _check_http11_switched(state)
    if after_switch:
        events = [
            replace(event, buffered=event.buffered + after_switch)
            if isinstance(event, ProtocolSwitched)
            else event
            for event in events
        ]
    sending = state.is_sending_body
    return HTTP11Outcome(
        sent, merge_data(events), describe(error), state.state, sending
    )


def _check_http11_events(state: HTTP11State, events: list[Event]) -> None:
    for event in events:
        if isinstance(event, ResponseReceived):
            for name, value in event.headers:
                expect(
                    not _UNSAFE.search(name) and not _UNSAFE.search(value),
                    f"header with CR/LF/NUL accepted: {name!r}: {value!r}",
                )
        if isinstance(event, ResponseComplete) and event.reusable:
            expect(
                state.state is HTTP11ConnectionState.IDLE,
                f"reusable response left the connection {state.state}",
            )


def _check_http11_error_state(state: HTTP11State) -> None:
    """After a protocol error: ERROR, and every later call raises."""
    expect(
        state.state is HTTP11ConnectionState.ERROR,
        f"connection is {state.state} after a protocol error",
    )
    must_raise(state.receive_data, b"HTTP/1.1 200 OK\r\n\r\n")
    must_raise(state.receive_eof)
    try:
        state.send_request(b"GET", b"/", [HOST])
    except LocalProtocolError:
        pass
    else:
        raise OracleFailure("send_request after a protocol error did not raise")
    state.close()
    expect(state.state is HTTP11ConnectionState.ERROR, "close() left ERROR")


def _check_http11_switched(state: HTTP11State) -> None:
    """After a protocol switch the core refuses HTTP input (documented)."""
    try:
        state.receive_data(b"x")
    except LocalProtocolError:
        return
    raise OracleFailure("receive_data after a protocol switch did not raise")


def _normalize_http11(outcome: HTTP11Outcome) -> tuple[object, ...]:
    """The outcome with what may legitimately depend on read sizes removed.

    ``reusable`` depends on whether extra bytes came in the same read as the
    end of the response (the final state still says whether the connection
    survived). (Header-limit errors are compared apart: see check_http11.)
    """
    events = [
        replace(event, reusable=False) if isinstance(event, ResponseComplete) else event
        for event in outcome.events
    ]
    return (events, outcome.error, outcome.state)


def _class_only(outcome: HTTP11Outcome) -> bool:
    """Whether only the error class is comparable across splits: a head over a
    limit is reported as "incomplete after N bytes" or "is N bytes", or as a
    malformed line h11 found first in a head it saw whole; and h11 words a bad
    first byte differently when it comes before the end of its line."""
    return outcome.error is not None and (
        "max_header_" in outcome.error[1] or outcome.error[1] == _H11_EARLY_REJECT
    )


def _body_line_limit(*outcomes: HTTP11Outcome) -> bool:
    """Known bug: a chunk line longer than max_header_bytes is refused only when
    it arrives in more than one read, in h11's words (README.md)."""
    return any(
        outcome.error is not None and outcome.error[1] == _H11_BUFFER_LIMIT
        for outcome in outcomes
    )


def check_http11(data: bytes) -> None:
    """HTTP/1.1: documented errors only; split, bytewise and whole agree; the
    fast path agrees with h11 on every split; ERROR is final."""
    exchange = HTTP11Exchange.decode(data)
    response = exchange.response
    splits = {"whole": [response] if response else []}
    splits["fuzzed"] = cut(response, exchange.cuts)
    if len(response) <= MAX_BYTEWISE:
        splits["bytewise"] = bytewise(response)
    reference: tuple[str, HTTP11Outcome] | None = None
    for name, pieces in splits.items():
        fast = run_http11(exchange, pieces, fast=True)
        slow = run_http11(exchange, pieces, fast=False)
        expect(fast == slow, f"fast path and h11 differ ({name}):\n{fast}\n{slow}")
        if reference is None:
            reference = (name, fast)
            continue
        first_name, first = reference
        if TOLERATE_KNOWN_BUGS and _body_line_limit(first, fast):
            return
        if _class_only(first) or _class_only(fast):
            same = (type(first.error), first.state) == (type(fast.error), fast.state)
        else:
            same = _normalize_http11(first) == _normalize_http11(fast)
        expect(same, f"{first_name} and {name} differ:\n{first}\n{fast}")


# -- HTTP/2 ---------------------------------------------------------------------

#: The server preface: an empty SETTINGS frame (RFC 9113 §3.4).
SERVER_PREFACE = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_STREAM_IDS = [0, 1, 3, 5, 7, 2, 0x7FFFFFFF, 1]
# flags bit 7 of the stream byte sets the reserved bit (RFC 9113 §4.1).
_RESERVED = 0x80000000


def frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """One HTTP/2 frame: the 9-byte header, then ``payload``."""
    header = len(payload).to_bytes(3, "big") + bytes([kind, flags])
    return header + stream_id.to_bytes(4, "big") + payload


def build_frames(reader: Reader) -> bytes:
    """Frames from the fuzz input, so that most inputs parse as frames.

    Each frame is: a type byte (0xF0 and above: raw bytes follow, for frame
    boundaries and lengths that lie; 0xE0 to 0xEF: a HEADERS frame whose block
    HPACK-encodes fields chosen from the input, see :func:`header_block`; else
    bit 4: a 2-byte length), a flags byte, a stream byte (index into a few
    stream ids; bit 7: the reserved bit), the length, then the payload (its
    real length goes in the header).
    """
    out = bytearray()
    encoder = hpack.Encoder()  # one per connection, as a server has
    for _ in range(MAX_FRAMES):
        kind = reader.byte()
        if kind >= 0xF0:
            out += reader.field()
        elif kind >= 0xE0:
            flags = reader.byte()
            stream_id = _STREAM_IDS[reader.byte() % len(_STREAM_IDS)]
            out += frame(0x1, flags, stream_id, header_block(reader, encoder))
        else:
            flags = reader.byte()
            selector = reader.byte()
            stream_id = _STREAM_IDS[selector % len(_STREAM_IDS)]
            if selector & 0x80:
                stream_id |= _RESERVED
            length = reader.byte()
            if kind & 0x10:
                length = length << 8 | reader.byte()
            out += frame(kind & 0x0F, flags, stream_id, reader.take(length))
        if reader.exhausted:
            break
    return bytes(out)


_FIELD_NAMES = [
    b":status",
    b"content-length",
    b"content-type",
    b"connection",
    b"transfer-encoding",
    b"te",
    b":path",
    b"Upper-Case",
    b"x-custom",
    b"",
    b"set-cookie",
    b"trailer",
]
_FIELD_VALUES = [b"200", b"100", b"103", b"204", b"2000", b"abc", b"0", b"5", b"-1"]


def header_block(reader: Reader, encoder: hpack.Encoder) -> bytes:
    """An HPACK block of up to 7 fields: a count byte, then per field a name
    byte and a value byte (an index into the lists above, or, past their end, a
    name or value read from the input as a field), then a Huffman flag byte."""
    fields = []
    for _ in range(reader.byte() % 8):
        name = reader.byte()
        value = reader.byte()
        fields.append(
            (
                _FIELD_NAMES[name] if name < len(_FIELD_NAMES) else reader.field(),
                _FIELD_VALUES[value] if value < len(_FIELD_VALUES) else reader.field(),
            )
        )
    return bytes(encoder.encode(fields, huffman=bool(reader.byte() & 1)))


def encode_frames(wire: bytes) -> bytes:
    """The fuzz bytes that :func:`build_frames` turns back into ``wire`` (for the
    seed corpus): whole frames as frame specs, anything else as raw pieces."""
    out = bytearray()
    while len(wire) >= 9:
        length = int.from_bytes(wire[:3], "big")
        raw_id = int.from_bytes(wire[5:9], "big")
        stream_id = raw_id & ~_RESERVED
        if len(wire) < 9 + length or length > 0xFFFF or stream_id not in _STREAM_IDS:
            break
        selector = _STREAM_IDS.index(stream_id) | (0x80 if raw_id & _RESERVED else 0)
        kind = wire[3] if wire[3] < 0x10 else 0x0A  # unknown types stay unknown
        if length > 0xFF:
            out += bytes([kind | 0x10, wire[4], selector]) + length.to_bytes(2, "big")
        else:
            out += bytes([kind, wire[4], selector, length])
        out += wire[9 : 9 + length]
        wire = wire[9 + length :]
    for start in range(0, len(wire), 0xFF):
        piece = wire[start : start + 0xFF]
        out += bytes([0xF0, len(piece)]) + piece
    return bytes(out)


@dataclass(frozen=True)
class HTTP2Exchange:
    """What the fuzz input chose: streams, flags, the server bytes and their split."""

    streams: int  # 1 to 3 requests before any server byte
    open_body: bool  # the first request keeps its stream open (a body to come)
    eof: bool
    cuts: tuple[int, ...]
    wire: bytes  # the server's bytes after the preface

    @classmethod
    def decode(cls, data: bytes) -> HTTP2Exchange:
        """Layout: streams byte, flags byte, cut count and cuts, then frames."""
        reader = Reader(data[:MAX_INPUT])
        streams = 1 + reader.byte() % 3
        flags = reader.byte()
        cuts = tuple(reader.cuts())
        return cls(
            streams=streams,
            open_body=bool(flags & 1),
            eof=bool(flags & 2),
            cuts=cuts,
            wire=build_frames(reader),
        )

    def encode(self) -> bytes:
        """The fuzz input that decodes to this exchange (``wire`` as frames)."""
        flags = self.open_body | self.eof << 1
        cuts = b"".join(point.to_bytes(2, "big") for point in self.cuts)
        head = bytes([self.streams - 1, flags, len(self.cuts)]) + cuts
        return head + encode_frames(self.wire)


@dataclass
class HTTP2Outcome:
    """What HTTP2State made of the server bytes in one split."""

    events: list[Event]
    error: Error
    state: HTTP2ConnectionState
    open_streams: int
    sent: bytes  # everything data_to_send() returned after the requests


def run_http2(
    exchange: HTTP2Exchange, pieces: list[bytes], *, reference: bool = False
) -> HTTP2Outcome:
    """Open the streams, feed ``pieces``, acknowledge the data, maybe EOF."""
    state = HTTP2State(reference=reference)
    state.initiate()
    for index in range(exchange.streams):
        end_stream = not (index == 0 and exchange.open_body)
        method = b"GET" if end_stream else b"POST"
        state.send_request(method, b"https", b"/", [HOST], end_stream=end_stream)
    state.data_to_send()
    events: list[Event] = []
    sent = bytearray()
    error: RemoteProtocolError | None = None
    try:
        for piece in pieces:
            events += state.receive_data(piece)
            sent += state.data_to_send()
    except RemoteProtocolError as exc:
        error = exc
    if error is None:
        error = state.pending_error
    sent += state.data_to_send()
    if error is None:
        # What a driver does once the application read the bodies.
        for event in events:
            if isinstance(event, DataReceived):
                state.acknowledge_data(event.stream_id, len(event.data))
        sent += state.data_to_send()
        if state.can_open_stream:
            # One more request after the server's frames: its bytes show the
            # HPACK encoder's state after any SETTINGS it received.
            state.send_request(b"GET", b"https", b"/", [HOST], end_stream=True)
            sent += state.data_to_send()
        if exchange.eof:
            events += state.receive_eof()
    if error is not None:
        _check_http2_error_state(state)
    return HTTP2Outcome(
        events, describe(error), state.state, state.open_streams, bytes(sent)
    )


def _check_http2_error_state(state: HTTP2State) -> None:
    expect(
        state.state is HTTP2ConnectionState.ERROR,
        f"connection is {state.state} after a protocol error",
    )
    must_raise(state.receive_data, SERVER_PREFACE)
    must_raise(state.receive_eof)
    state.data_to_send()


def check_http2(data: bytes) -> None:
    """HTTP/2: documented errors only (no raw h2/hpack exception); whole, split
    and (short inputs) bytewise feeds give the same events, errors, state and
    output, and so does stock h2 (the reference); data_to_send() never raises;
    ERROR is final."""
    exchange = HTTP2Exchange.decode(data)
    wire = SERVER_PREFACE + exchange.wire
    splits = {"whole": [wire], "fuzzed": cut(wire, exchange.cuts)}
    if len(wire) <= MAX_BYTEWISE:
        splits["bytewise"] = bytewise(wire)
    first = run_http2(exchange, splits.pop("whole"))
    reference = run_http2(exchange, [wire], reference=True)
    expect(first == reference, f"fast path and stock h2 differ:\n{first}\n{reference}")
    for name, pieces in splits.items():
        other = run_http2(exchange, pieces)
        expect(first == other, f"whole and {name} differ:\n{first}\n{other}")


# -- validation -----------------------------------------------------------------


def _no_unsafe(what: str, *values: bytes) -> None:
    for value in values:
        expect(not _UNSAFE.search(value), f"{what} with CR/LF/NUL accepted: {value!r}")


def _caseless(origin: Origin) -> Origin:
    return replace(origin, host=origin.host.lower())


def _check_url(url: URL, raw: bytes | None) -> None:
    """Invariants of an accepted URL: a safe host that round-trips."""
    _no_unsafe("URL host", url.host)
    expect(b" " not in url.host and b"/" not in url.host, f"bad host {url.host!r}")
    if url.scheme in DEFAULT_PORTS and url.host:
        # The Host header we would send names the same origin when parsed back.
        # Compared without case: parsing lowercases a host (urllib only up to a
        # '%'), a host given as a part keeps its case.
        again = URL(url.scheme + b"://" + host_header_value(url) + b"/")
        expect(
            _caseless(again.origin) == _caseless(url.origin),
            f"host does not round-trip: {url!r} {again!r}",
        )
    if raw is not None:
        fast = _parse_simple(raw)
        if fast is not None:
            expect(fast == _parse(raw), f"fast URL parser disagrees on {raw!r}")


def _url_from_string(reader: Reader) -> None:
    raw = reader.rest()
    try:
        url = URL(raw)
    except LocalProtocolError:
        expect(_parse_simple(raw) is None, f"fast parser accepted refused {raw!r}")
        return
    _check_url(url, raw)


def _url_from_parts(reader: Reader) -> None:
    scheme = reader.pick([b"http", b"https", b"ws", b"wss", b"", b"ftp"])
    port = reader.pick([None, 0, 80, 443, 8080, 65535, 65536, -1])
    host = reader.field()
    target = reader.rest()
    try:
        url = URL(scheme=scheme, host=host, port=port, target=target)
    except LocalProtocolError:
        return
    _check_url(url, None)


def _pairs(reader: Reader) -> list[tuple[bytes, bytes]]:
    return [(reader.field(), reader.field()) for _ in range(reader.byte() % 5)]


def _headers(reader: Reader) -> None:
    pairs = _pairs(reader)
    as_str = reader.byte() & 1
    try:
        if as_str:
            result = normalize_headers(
                [(n.decode("latin-1"), v.decode("latin-1")) for n, v in pairs]
            )
        else:
            result = normalize_headers(pairs)
    except (LocalProtocolError, TypeError):
        return
    for name, value in result:
        _no_unsafe("header", name, value)
    expect(normalize_headers(result) == result, "normalize_headers is not idempotent")


def _word(what: str, validate: Callable[[bytes], object]) -> Callable[[Reader], None]:
    """The check of a request-line word: refused, or safe, non-empty, no space."""

    def check(reader: Reader) -> None:
        word = reader.rest()
        try:
            validate(word)
        except LocalProtocolError:
            return
        _no_unsafe(what, word)
        expect(b" " not in word and word != b"", f"bad {what} {word!r}")

    return check


# Looked up when called, so a test can swap the validator for one that fails.
_method = _word("method", lambda word: validate_method(word))
_target = _word("target", lambda word: validate_target(word))


def _sni(reader: Reader) -> None:
    raw = reader.rest()
    value: bytes | str = raw
    if raw[:1] == b"s":  # a str, as an application passes it (maybe non-ASCII)
        value = raw[1:].decode("utf-8", errors="replace")
    try:
        result = validate_sni_hostname(value)
    except LocalProtocolError:
        return
    expect(isinstance(result, str) and result.isascii(), f"sni {result!r} not ASCII")
    _no_unsafe("sni_hostname", result.encode("ascii"))
    expect(validate_sni_hostname(result) == result, f"sni {result!r} not idempotent")


def _request(reader: Reader) -> None:
    method = reader.field()
    url = reader.field()
    headers = _pairs(reader)
    extensions: dict[str, Any] = {}
    options = reader.byte()
    if options & 1:
        extensions["sni_hostname"] = reader.field()
    if options & 2:
        extensions["target"] = reader.field()
    try:
        request = Request(method, url, headers=headers, extensions=extensions)
    except (LocalProtocolError, TypeError):
        return
    _no_unsafe("request", request.method, request.url.target, request.url.host)
    for name, value in request.headers:
        _no_unsafe("request header", name, value)


VALIDATORS: list[Callable[[Reader], None]] = [
    _url_from_string,
    _url_from_parts,
    _headers,
    _method,
    _target,
    _sni,
    _request,
]


def check_validation(data: bytes) -> None:
    """URL, header, method, target, sni_hostname and aio.Request validation:
    documented exceptions only, accepted values are safe and round-trip, the
    fast URL parser agrees with urllib."""
    reader = Reader(data[:MAX_INPUT])
    reader.pick(VALIDATORS)(reader)


# -- SOCKS5 ---------------------------------------------------------------------


def run_socks5(auth: bool, pieces: list[bytes], eof: bool) -> tuple[object, ...]:
    """Feed the proxy's replies to a handshake; return what came of them."""
    credentials = (b"user", b"pass") if auth else None
    handshake = SOCKS5Handshake(b"example.com", 443, credentials)
    sent = [handshake.data_to_send()]
    error: Exception | None = None
    after = b""
    try:
        for piece in pieces:
            if handshake.state is SOCKS5State.TUNNEL_READY:
                after += piece
                continue
            handshake.receive_data(piece)
            sent.append(handshake.data_to_send())
        if eof:
            handshake.receive_eof()
    except ProxyError as exc:
        error = exc
    if error is not None:
        expect(handshake.state is SOCKS5State.FAILED, f"{handshake.state} after error")
        # Requests queued by replies before the bad one are never sent: only
        # what was sent before the error's read depends on the split.
        sent = []
    return (
        b"".join(sent),
        describe(error),
        handshake.state,
        handshake.bound_address,
        handshake.trailing_data + after,
    )


def check_socks5(data: bytes) -> None:
    """SOCKS5 handshake: only ProxyError escapes; whole, split and bytewise agree."""
    reader = Reader(data[:MAX_INPUT])
    flags = reader.byte()
    cuts = reader.cuts()
    replies = reader.rest()
    auth, eof = bool(flags & 1), bool(flags & 2)
    first = run_socks5(auth, [replies] if replies else [], eof)
    for pieces in (cut(replies, cuts), bytewise(replies[:MAX_BYTEWISE])):
        if b"".join(pieces) != replies:
            continue
        other = run_socks5(auth, pieces, eof)
        expect(first == other, f"whole and split differ:\n{first}\n{other}")


HARNESSES: dict[str, Callable[[bytes], None]] = {
    "http11": check_http11,
    "http2": check_http2,
    "validation": check_validation,
    "socks5": check_socks5,
}
