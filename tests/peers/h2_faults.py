"""Hand-built HTTP/2 faults for the scripted server in ``tests.peers.h2_server``.

h2 refuses to *send* most of what a broken server sends (frames on stream 0 that
belong on a stream, bad lengths, uppercase or connection-specific header names,
CONTINUATION without end, PUSH_PROMISE to a client that disabled push), so these
helpers build the frame bytes themselves (RFC 9113 §4.1: a 9-byte header, then the
payload) and write them after whatever h2 has queued. Header blocks are encoded
with the server connection's own HPACK encoder, so the client's decoder stays in
step with it (RFC 7541 §2.2) and only the fault under test is wrong.

Floods go through h2 (``update_settings``, ``ping``) so the server counts the
client's acknowledgements, which proves the client answered every frame.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Sequence

from tests.peers.h2_server import H2Control, HeaderLike

__all__ = [
    "Flag",
    "FrameType",
    "continuation_flood",
    "encode_headers",
    "flood_pings",
    "flood_settings",
    "raw_frame",
    "write_raw",
]

# A CONTINUATION flood stops after this many frames even if the client never
# gives up: every loop is bounded.
MAX_FLOOD_FRAMES = 20_000
FLOOD_BATCH = 500  # frames written between yields to the event loop


class FrameType(enum.IntEnum):
    """RFC 9113 §6 frame types."""

    DATA = 0x0
    HEADERS = 0x1
    PRIORITY = 0x2
    RST_STREAM = 0x3
    SETTINGS = 0x4
    PUSH_PROMISE = 0x5
    PING = 0x6
    GOAWAY = 0x7
    WINDOW_UPDATE = 0x8
    CONTINUATION = 0x9


class Flag(enum.IntFlag):
    """RFC 9113 §6 frame flags (ACK shares END_STREAM's bit)."""

    NONE = 0x0
    END_STREAM = 0x1
    ACK = 0x1
    END_HEADERS = 0x4


def _b(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def raw_frame(
    frame_type: int,
    stream_id: int,
    payload: bytes = b"",
    *,
    flags: int = Flag.NONE,
    length: int | None = None,
) -> bytes:
    """One frame; ``length`` overrides the length field (to lie about it)."""
    size = len(payload) if length is None else length
    return (
        size.to_bytes(3, "big")
        + bytes([frame_type, flags])
        + stream_id.to_bytes(4, "big")
        + payload
    )


def write_raw(ctl: H2Control, data: bytes) -> None:
    """Write ``data`` after everything h2 has queued on this connection."""
    ctl.flush()
    if not ctl.closed:
        ctl.transport.write(data)


def encode_headers(
    ctl: H2Control, status: bytes | None, headers: Sequence[HeaderLike] = ()
) -> bytes:
    """An HPACK block of ``:status`` (unless None) and ``headers``, unvalidated."""
    block = [] if status is None else [(b":status", status)]
    block += [(_b(name), _b(value)) for name, value in headers]
    return bytes(ctl.conn.encoder.encode(block))


def flood_settings(ctl: H2Control, count: int) -> None:
    """Queue ``count`` SETTINGS frames (each needs an ACK) and write them."""
    for _ in range(count):
        ctl.conn.update_settings({})
    ctl.flush()


def flood_pings(ctl: H2Control, count: int) -> list[bytes]:
    """Write ``count`` PINGs with distinct payloads; return the payloads."""
    payloads = [i.to_bytes(8, "big") for i in range(count)]
    for payload in payloads:
        ctl.conn.ping(payload)
    ctl.flush()
    return payloads


async def continuation_flood(ctl: H2Control, stream_id: int, chunk: bytes) -> int:
    """HEADERS without END_HEADERS, then CONTINUATION frames carrying ``chunk``
    and never END_HEADERS, until the client closes the connection or
    ``MAX_FLOOD_FRAMES`` were sent; return how many CONTINUATION frames went."""
    block = encode_headers(ctl, b"200")
    write_raw(ctl, raw_frame(FrameType.HEADERS, stream_id, block))
    frame = raw_frame(FrameType.CONTINUATION, stream_id, chunk)
    sent = 0
    while sent < MAX_FLOOD_FRAMES and not ctl.closed:
        ctl.transport.write(frame * FLOOD_BATCH)
        sent += FLOOD_BATCH
        await asyncio.sleep(0.001)  # let the client read, fail and close
    return sent
