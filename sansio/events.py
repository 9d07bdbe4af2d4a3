"""Events the protocol cores return from ``receive_data`` / ``receive_eof``.

Every event carries the ``stream_id`` it belongs to (for HTTP/1.1 a per-cycle
counter starting at 1), so a driver demultiplexes both protocols the same way.
Events are frozen, slotted and keyword-only: they are facts about what already
happened on the wire and nobody edits them afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._frozen import quick_init

__all__ = [
    "ConnectionTerminated",
    "DataReceived",
    "Event",
    "InformationalResponse",
    "ProtocolSwitched",
    "ResponseComplete",
    "ResponseReceived",
    "SettingsChanged",
    "StreamReset",
    "TrailersReceived",
    "WindowUpdated",
]

Headers = list[tuple[bytes, bytes]]


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class InformationalResponse:
    """A 1xx response other than a protocol switch (100 Continue, 103 Early Hints)."""

    stream_id: int
    status: int
    headers: Headers
    reason_phrase: bytes = b""


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseReceived:
    """The final response head: status line (or ``:status``) and header block."""

    stream_id: int
    status: int
    http_version: bytes
    reason_phrase: bytes
    headers: Headers


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class DataReceived:
    """A piece of the response body, in order."""

    stream_id: int
    data: bytes


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class TrailersReceived:
    """Trailer fields after the body (chunked HTTP/1.1 or a final HTTP/2 HEADERS)."""

    stream_id: int
    headers: Headers


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseComplete:
    """The response ended. ``reusable`` says whether another request may follow.

    ``reusable`` is False when the server asked to close, spoke HTTP/1.0 without
    keep-alive, framed the body ambiguously, or sent bytes we did not ask for.
    """

    stream_id: int
    reusable: bool


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolSwitched:
    """After a 101 or a 2xx answer to CONNECT the connection is no longer HTTP.

    ``buffered`` holds the bytes that arrived after the response head; they are
    the first bytes of the new protocol and must be read before the socket.
    """

    stream_id: int
    buffered: bytes


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class StreamReset:
    """HTTP/2: the stream was reset (by the peer, or by us after a stream error).

    ``error_code`` is the RFC 9113 §7 code (0x8 CANCEL, 0x7 REFUSED_STREAM...).
    A REFUSED_STREAM reset means the server did no work: safe to retry.
    """

    stream_id: int
    error_code: int
    remote: bool


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionTerminated:
    """HTTP/2 GOAWAY: no new streams on this connection.

    Streams up to ``last_stream_id`` may still complete; those in
    ``retry_stream_ids`` (above it) were not processed and may be retried
    elsewhere (RFC 9113 §6.8). ``stream_id`` is 0: this concerns the connection.
    """

    stream_id: int
    error_code: int
    last_stream_id: int
    retry_stream_ids: tuple[int, ...]
    additional_data: bytes


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class SettingsChanged:
    """HTTP/2: the peer's SETTINGS changed (RFC 9113 §6.5).

    ``max_concurrent_streams`` is the peer's limit now in force, so a driver
    waiting for a stream slot knows whether one opened (or closed).
    """

    stream_id: int
    changed: dict[int, int]
    max_concurrent_streams: int


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class WindowUpdated:
    """HTTP/2: more may be sent on ``stream_id`` (0: the whole connection)."""

    stream_id: int
    delta: int


Event = (
    InformationalResponse
    | ResponseReceived
    | DataReceived
    | TrailersReceived
    | ResponseComplete
    | ProtocolSwitched
    | StreamReset
    | ConnectionTerminated
    | SettingsChanged
    | WindowUpdated
)
