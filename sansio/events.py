"""Events the protocol cores return from ``receive_data`` / ``receive_eof``.

Every event carries the ``stream_id`` it belongs to (for HTTP/1.1 a per-cycle
counter starting at 1), so a driver demultiplexes both protocols the same way.
Events are frozen, slotted and keyword-only: they are facts about what already
happened on the wire and nobody edits them afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DataReceived",
    "Event",
    "InformationalResponse",
    "ProtocolSwitched",
    "ResponseComplete",
    "ResponseReceived",
    "TrailersReceived",
]

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True, kw_only=True)
class InformationalResponse:
    """A 1xx response other than a protocol switch (100 Continue, 103 Early Hints)."""

    stream_id: int
    status: int
    headers: Headers
    reason_phrase: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseReceived:
    """The final response head: status line (or ``:status``) and header block."""

    stream_id: int
    status: int
    http_version: bytes
    reason_phrase: bytes
    headers: Headers


@dataclass(frozen=True, slots=True, kw_only=True)
class DataReceived:
    """A piece of the response body, in order."""

    stream_id: int
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class TrailersReceived:
    """Trailer fields after the body (chunked HTTP/1.1 or a final HTTP/2 HEADERS)."""

    stream_id: int
    headers: Headers


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseComplete:
    """The response ended. ``reusable`` says whether another request may follow.

    ``reusable`` is False when the server asked to close, spoke HTTP/1.0 without
    keep-alive, framed the body ambiguously, or sent bytes we did not ask for.
    """

    stream_id: int
    reusable: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolSwitched:
    """After a 101 or a 2xx answer to CONNECT the connection is no longer HTTP.

    ``buffered`` holds the bytes that arrived after the response head; they are
    the first bytes of the new protocol and must be read before the socket.
    """

    stream_id: int
    buffered: bytes


Event = (
    InformationalResponse
    | ResponseReceived
    | DataReceived
    | TrailersReceived
    | ResponseComplete
    | ProtocolSwitched
)
