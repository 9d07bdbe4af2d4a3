"""The HTTP/1.1 and transport half of the fault matrix.

One parametrised test per scenario; each variant asserts the exact exception class
(``type(exc) is ...``) with a message fragment naming the rule, then the pool's
state with ``assert_pool_settled``, and, where a connection could carry poison,
that the next request goes out on a new connection and gets its own answer.

Scenarios: malformed heads, oversized heads (one read and many), smuggling and
desync, truncated bodies, RST before / during / after the head, stale keep-alive
races, slow servers (connect, read, write timeouts, a trickle under ``total``),
the relay slowing a request down, and pool exhaustion. Peers: scripted asyncio
servers for byte-exact answers, hypercorn behind the fault relay for transport
faults, over plain TCP and TLS where the transport matters.

The classes match httpcore 1.0.9's in every variant checked side by side (RST →
``ReadError``, or ``ConnectError`` inside the TLS handshake; FIN mid-body →
``RemoteProtocolError``; stale POST → ``RemoteProtocolError`` / ``ReadError``);
where httpcore reads a forged response as the next answer, wireline does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

import pytest

import aio
from sansio.http11 import DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADER_COUNT
from tests.aio.faults import assert_pool_settled
from tests.aio.test_backends import unanswered_port
from tests.peers.faultproxy import ConnectionFaults, Faults, fault_proxy
from tests.peers.faultproxy import reset_connection as send_rst
from tests.peers.hypercorn_server import HypercornPeer
from tests.peers.nginx import NginxPeer
from tests.peers.scripted import (
    ScriptedServer,
    read_body,
    read_head,
    recording_server,
    tolerant_server,
)

GOOD = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood"
FORGED = GOOD.replace(b"good", b"evil")  # a response nobody asked for
OK_HEAD = b"HTTP/1.1 200 OK\r\n"
After = Literal["keep", "fin", "rst"]


# -- peers ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def first_then_good(
    first: bytes | Sequence[bytes],
    *,
    after: After = "keep",
    pause: float = 0.0,
    ssl: ssl.SSLContext | None = None,
    written: asyncio.Event | None = None,
) -> AsyncIterator[ScriptedServer]:
    """A server whose first connection answers ``first``, every later one ``GOOD``.

    ``first`` may be a list of pieces, written one by one with ``pause`` seconds
    between them. Then the first connection is kept open until the client leaves
    (``keep``), closed with a FIN (``fin``) or with an RST (``rst``). Later
    connections answer every request with ``GOOD`` and keep alive. ``written``
    is set once the first connection's pieces have all been written.
    """
    pieces = [first] if isinstance(first, bytes) else list(first)
    accepted = 0

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal accepted
        accepted += 1
        if accepted > 1:
            await answer_forever(reader, writer)
            return
        head = await read_head(reader)
        assert head is not None
        await read_body(reader, head)
        for index, piece in enumerate(pieces):
            if index and pause:
                await asyncio.sleep(pause)
            writer.write(piece)
            await writer.drain()
        if written is not None:
            written.set()
        if after == "rst":
            send_rst(writer)
        elif after == "keep":
            while await reader.read(65536):
                pass

    async with tolerant_server(handler, ssl=ssl) as server:
        yield server


async def answer_forever(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer every request on this connection with ``GOOD``."""
    while (head := await read_head(reader)) is not None:
        await read_body(reader, head)
        writer.write(GOOD)
        await writer.drain()


async def raises(exc_type: type[Exception], fragment: str, coro: Any) -> Exception:
    """Await ``coro``; assert it raises exactly ``exc_type`` mentioning ``fragment``."""
    with pytest.raises(exc_type) as info:
        await coro
    assert type(info.value) is exc_type, repr(info.value)
    assert fragment in str(info.value), str(info.value)
    return info.value


async def recovers_on_new_connection(
    pool: aio.AsyncConnectionPool, server: ScriptedServer, url: str
) -> None:
    """The next request opens connection 2 and gets its own, correct answer;
    the first connection carried exactly one request."""
    response = await pool.request("GET", url)
    assert (response.status, response.content) == (200, b"good")
    assert server.connections == 2
    assert server.received[0].count(b" HTTP/1.1\r\n") == 1, server.received[0]
    assert_pool_settled(pool, idle=1)


def tls_pool(
    ssl_context: ssl.SSLContext | None, **kwargs: Any
) -> aio.AsyncConnectionPool:
    """A pool trusting the test CA (when given)."""
    return aio.AsyncConnectionPool(ssl_context=ssl_context, **kwargs)


# -- malformed heads -----------------------------------------------------------

MALFORMED_HEADS = [
    pytest.param(b"HTTPS/1.1 200 OK\r\n\r\n", id="bad-protocol-name"),
    pytest.param(b"HTTP/1 200 OK\r\n\r\n", id="version-without-minor"),
    pytest.param(b"HTTP/1.1.1 200 OK\r\n\r\n", id="version-extra-dot"),
    pytest.param(b"http/1.1 200 OK\r\n\r\n", id="lowercase-protocol"),
    pytest.param(b"HTTP/1.1 2x0 OK\r\n\r\n", id="non-digit-status"),
    pytest.param(b"HTTP/1.1 20 OK\r\n\r\n", id="two-digit-status"),
    pytest.param(b"HTTP/1.1 2000 OK\r\n\r\n", id="four-digit-status"),
    pytest.param(b"HTTP/1.1200 OK\r\n\r\n", id="missing-space"),
    pytest.param(b"HTTP/1.1  200 OK\r\n\r\n", id="double-space"),
    pytest.param(b"HTTP/1.1 200 OK\rContent-Length: 0\r\n\r\n", id="bare-cr"),
    pytest.param(b"HTTP/1.1 200 O\x00K\r\n\r\n", id="nul-in-reason"),
    pytest.param(OK_HEAD + b" X-Folded: a\r\n\r\n", id="obs-fold-first-line"),
    pytest.param(OK_HEAD + b"X-A: a\x00b\r\n\r\n", id="nul-in-value"),
    pytest.param(OK_HEAD + b"X A: b\r\n\r\n", id="space-in-name"),
    pytest.param(OK_HEAD + b"X(A): b\r\n\r\n", id="separator-in-name"),
    pytest.param(OK_HEAD + b"X-\xc3\xa9: b\r\n\r\n", id="non-ascii-name"),
    pytest.param(OK_HEAD + b": b\r\n\r\n", id="empty-name"),
    pytest.param(OK_HEAD + b"NoColonHere\r\n\r\n", id="header-without-colon"),
    pytest.param(OK_HEAD + b"Content-Length : 4\r\n\r\ngood", id="space-before-colon"),
    pytest.param(b"garbage\r\n\r\n", id="garbage"),
    pytest.param(b"\r\n\r\n", id="empty-status-line"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("sliced", [False, True], ids=["whole", "byte-by-byte"])
@pytest.mark.parametrize("response", MALFORMED_HEADS)
async def test_malformed_head(response: bytes, sliced: bool) -> None:
    """A malformed status line or field raises RemoteProtocolError, whole or
    delivered one byte per segment by the relay (the fast path's fallback to
    h11 must see the same thing); the connection is dropped and the next
    request uses a new one."""
    faults = ConnectionFaults(downstream=Faults(slice_size=1 if sliced else None))
    async with (
        first_then_good(response) as server,
        fault_proxy(server.host, server.port, [faults]) as proxy,
        aio.AsyncConnectionPool() as pool,
    ):
        url = proxy.url()
        await raises(
            aio.RemoteProtocolError, "malformed response", pool.request("GET", url)
        )
        assert_pool_settled(pool, idle=0)
        await recovers_on_new_connection(pool, server, url)


TOLERATED_HEADS = [
    # RFC 9112 §2.2: "a recipient MAY recognize a single LF as a line terminator".
    pytest.param(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", b"ok", id="bare-lf"),
    # RFC 9112 §5.2: a user agent replaces obs-fold in a response with SP.
    pytest.param(
        OK_HEAD + b"X-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok", b"ok", id="obs-fold"
    ),
    pytest.param(b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", b"ok", id="no-reason"),
    # RFC 9110 §5.5: CTLs other than CR, LF, NUL MAY be retained.
    pytest.param(
        OK_HEAD + b"X-A: a\x01b\r\nContent-Length: 2\r\n\r\nok",
        b"ok",
        id="ctl-in-value",
    ),
    # RFC 9112 §6.3: identical Content-Length values MAY be merged into one.
    pytest.param(
        OK_HEAD + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\nok",
        b"ok",
        id="dup-content-length-equal",
    ),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("response", "body"), TOLERATED_HEADS)
async def test_tolerated_head(response: bytes, body: bytes) -> None:
    """Forms the RFC lets a client accept are delivered and the connection is
    kept for reuse (one idle connection, nothing else opened)."""
    async with first_then_good(response) as server, aio.AsyncConnectionPool() as pool:
        first = await pool.request("GET", server.url)
        assert (first.status, first.content) == (200, body)
        assert_pool_settled(pool, idle=1)
        assert server.connections == 1


# -- oversized heads -----------------------------------------------------------

MAX_BYTES = DEFAULT_MAX_HEADER_BYTES  # 64 KiB: the head, blank line included
MAX_COUNT = DEFAULT_MAX_HEADER_COUNT  # 100 fields


def head_with(fields: int, value_size: int = 10, *, end: bool = True) -> bytes:
    """A 200 head with ``fields`` extra fields of ``value_size`` bytes each."""
    lines = b"".join(b"X-F%d: %s\r\n" % (i, b"v" * value_size) for i in range(fields))
    head = OK_HEAD + lines + b"Content-Length: 2\r\n"
    return head + b"\r\nok" if end else head


def head_of_size(size: int) -> bytes:
    """A 200 head of exactly ``size`` bytes (blank line included), then ``ok``."""
    head = head_with(50, 1000, end=False)
    pad = size - len(head) - len(b"X-Pad: \r\n\r\n")
    response = head + b"X-Pad: " + b"p" * pad + b"\r\n\r\nok"
    assert response.index(b"\r\n\r\n") + 4 == size
    return response


OVERSIZED = [
    pytest.param(
        head_of_size(MAX_BYTES + 1), None, "max_header_bytes", id="bytes-one-read"
    ),
    pytest.param(
        head_of_size(MAX_BYTES + 1), 997, "max_header_bytes", id="bytes-many-reads"
    ),
    pytest.param(head_of_size(MAX_BYTES), None, None, id="bytes-at-limit-one-read"),
    pytest.param(head_of_size(MAX_BYTES), 997, None, id="bytes-at-limit-many-reads"),
    pytest.param(
        head_with(80, 1000, end=False), None, "max_header_bytes", id="endless-one-read"
    ),
    pytest.param(
        head_with(80, 1000, end=False),
        4096,
        "max_header_bytes",
        id="endless-many-reads",
    ),
    pytest.param(head_with(MAX_COUNT), None, "max_header_count", id="count-one-read"),
    pytest.param(head_with(MAX_COUNT), 7, "max_header_count", id="count-many-reads"),
    pytest.param(head_with(MAX_COUNT - 1), None, None, id="count-at-limit-one-read"),
    pytest.param(head_with(MAX_COUNT - 1), 7, None, id="count-at-limit-many-reads"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("response", "slice_size", "fragment"), OVERSIZED)
async def test_oversized_head(
    response: bytes, slice_size: int | None, fragment: str | None
) -> None:
    """Head limits hold however the bytes were split: one read, or sliced by
    the relay into many; a head at the limit still passes."""
    faults = ConnectionFaults(downstream=Faults(slice_size=slice_size))
    async with (
        first_then_good(response) as server,
        fault_proxy(server.host, server.port, [faults]) as proxy,
        aio.AsyncConnectionPool() as pool,
    ):
        url = proxy.url()
        if fragment is None:
            first = await pool.request("GET", url)
            assert (first.status, first.content) == (200, b"ok")
            assert_pool_settled(pool, idle=1)
            return
        await raises(aio.RemoteProtocolError, fragment, pool.request("GET", url))
        assert_pool_settled(pool, idle=0)
        await recovers_on_new_connection(pool, server, url)


# -- smuggling and desync ------------------------------------------------------

# (response to the first GET, its delivered body or None for an error, the
# error's message fragment). A delivered forgery must never reach request two.
DESYNC = [
    pytest.param(
        OK_HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n",
        b"ok",
        None,
        id="cl-and-te",
    ),
    pytest.param(
        OK_HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n" + FORGED,
        b"ok",
        None,
        id="te-and-cl-then-forged",
    ),
    pytest.param(
        OK_HEAD + b"Content-Length: 2\r\nContent-Length: 6\r\n\r\nok",
        None,
        "conflicting Content-Length",
        id="dup-content-length-different",
    ),
    pytest.param(
        OK_HEAD + b"Content-Length: 2, 6\r\n\r\nok",
        None,
        "conflicting Content-Length",
        id="content-length-list-different",
    ),
    pytest.param(
        OK_HEAD + b"Content-Length: abc\r\n\r\nok",
        None,
        "bad Content-Length",
        id="content-length-not-digits",
    ),
    pytest.param(
        OK_HEAD + b"Content-Length: -2\r\n\r\nok",
        None,
        "bad Content-Length",
        id="content-length-negative",
    ),
    pytest.param(
        OK_HEAD + b"Content-Length: +2\r\n\r\nok",
        None,
        "bad Content-Length",
        id="content-length-plus-sign",
    ),
    pytest.param(
        OK_HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        None,
        "Transfer-Encoding",
        id="unsupported-transfer-coding",
    ),
    pytest.param(
        OK_HEAD + b"Content-Length: 2\r\n\r\nok" + FORGED,
        b"ok",
        None,
        id="bytes-after-response",
    ),
    pytest.param(
        OK_HEAD + b"Content-Length: 2\r\n\r\nok" + FORGED[:20],
        b"ok",
        None,
        id="partial-bytes-after-response",
    ),
    pytest.param(
        b"HTTP/1.1 204 No Content\r\n\r\n" + FORGED,
        b"",
        None,
        id="204-with-body",
    ),
    pytest.param(
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 4\r\n\r\nevil",
        b"",
        None,
        id="304-with-body",
    ),
    pytest.param(
        b"HTTP/1.1 100 Continue\r\n\r\n" + FORGED + GOOD.replace(b"good", b"evi2"),
        b"evil",
        None,
        id="informational-then-two-responses",
    ),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("response", "body", "fragment"), DESYNC)
async def test_desync(
    response: bytes, body: bytes | None, fragment: str | None
) -> None:
    """Ambiguous framing is refused, or delivered once and the connection
    retired: request two goes out on a new connection and gets ``good``."""
    async with first_then_good(response) as server, aio.AsyncConnectionPool() as pool:
        if body is None:
            assert fragment is not None
            await raises(
                aio.RemoteProtocolError, fragment, pool.request("GET", server.url)
            )
        else:
            first = await pool.request("GET", server.url)
            assert first.content == body
        assert_pool_settled(pool, idle=0)
        await recovers_on_new_connection(pool, server, server.url)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "response",
    [
        pytest.param(OK_HEAD + b"Content-Length: 4\r\n\r\nevil", id="content-length"),
        pytest.param(
            OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n4\r\nevil\r\n0\r\n\r\n",
            id="chunked",
        ),
    ],
)
async def test_head_answered_with_body(response: bytes) -> None:
    """A HEAD answer carries no body (RFC 9110 §9.3.2): a body after it is not
    read as the next response; the connection is retired."""
    async with first_then_good(response) as server, aio.AsyncConnectionPool() as pool:
        first = await pool.request("HEAD", server.url)
        assert (first.status, first.content) == (200, b"")
        assert_pool_settled(pool, idle=0)
        await recovers_on_new_connection(pool, server, server.url)


LATE = [
    pytest.param(
        "GET", OK_HEAD + b"Content-Length: 2\r\n\r\nok", b"ok", id="after-200"
    ),
    pytest.param("GET", b"HTTP/1.1 204 No Content\r\n\r\n", b"", id="after-204"),
    pytest.param("HEAD", OK_HEAD + b"Content-Length: 4\r\n\r\n", b"", id="after-head"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("method", "response", "body"), LATE)
async def test_forged_response_while_idle(
    method: str, response: bytes, body: bytes
) -> None:
    """A forged response that arrives only once the connection is back in the
    pool is found before reuse (README: an idle connection with bytes waiting
    is never reused): request two gets its own answer on a new connection."""
    written = asyncio.Event()
    async with (
        first_then_good([response, FORGED], pause=0.2, written=written) as server,
        aio.AsyncConnectionPool() as pool,
    ):
        first = await pool.request(method, server.url)
        assert first.content == body
        assert_pool_settled(pool, idle=1)  # nothing wrong with it yet
        async with asyncio.timeout(5.0):
            await written.wait()
        await asyncio.sleep(0.1)  # the forged bytes reach the idle connection
        await recovers_on_new_connection(pool, server, server.url)


# -- truncated bodies ----------------------------------------------------------

TRUNCATED = [
    pytest.param(
        OK_HEAD + b"Content-Length: 10\r\n\r\nshort",
        "without sending complete message body",
        id="content-length-short",
    ),
    pytest.param(
        OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\na\r\nhalf",
        "without sending complete message body",
        id="chunked-mid-chunk",
    ),
    pytest.param(
        OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n4\r\nfull\r\n",
        "without sending complete message body",
        id="chunked-between-chunks",
    ),
    pytest.param(
        OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n0\r\nX-Trailer: a",
        "peer unexpectedly closed connection",
        id="chunked-mid-trailer",
    ),
    pytest.param(
        OK_HEAD + b"Content-Le", "peer unexpectedly closed connection", id="mid-head"
    ),
    pytest.param(
        b"HTTP/1.1 20", "peer unexpectedly closed connection", id="mid-status-line"
    ),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize(("response", "fragment"), TRUNCATED)
async def test_truncated(
    response: bytes,
    fragment: str,
    tls: bool,
    ssl_context: ssl.SSLContext,
    server_ssl_context: ssl.SSLContext,
) -> None:
    """A FIN cutting the head or the body short raises RemoteProtocolError."""
    server_ctx = server_ssl_context if tls else None
    async with (
        first_then_good(response, after="fin", ssl=server_ctx) as server,
        tls_pool(ssl_context) as pool,
    ):
        await raises(aio.RemoteProtocolError, fragment, pool.request("GET", server.url))
        assert_pool_settled(pool, idle=0)
        await recovers_on_new_connection(pool, server, server.url)


@pytest.mark.asyncio
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize(
    "pieces",
    [
        pytest.param([b"HTTP/1.0 200 OK\r\n\r\nread to eof"], id="one-piece"),
        pytest.param(
            [b"HTTP/1.0 200 OK\r\n\r\nread", b" to", b" eof"], id="several-pieces"
        ),
        pytest.param([b"HTTP/1.1 200 OK\r\n\r\nread to eof"], id="http11-no-length"),
    ],
)
async def test_read_to_eof_delivered_whole(
    pieces: list[bytes],
    tls: bool,
    ssl_context: ssl.SSLContext,
    server_ssl_context: ssl.SSLContext,
) -> None:
    """A body without length is read to EOF (RFC 9112 §6.3 rule 8), whole."""
    server_ctx = server_ssl_context if tls else None
    async with (
        first_then_good(pieces, after="fin", pause=0.05, ssl=server_ctx) as server,
        tls_pool(ssl_context) as pool,
    ):
        response = await pool.request("GET", server.url)
        assert response.content == b"read to eof"
        assert_pool_settled(pool, idle=0)
        await recovers_on_new_connection(pool, server, server.url)


# -- RST before, during and after the head -------------------------------------

# hypercorn's answer to /bytes?n=65536: a head of under 200 bytes, then the body;
# over TLS the handshake is a few kilobytes, far below half the body.
BIG_BODY = 65536
RESET = "Connection reset by peer"  # ECONNRESET's words, on both loops


def down(**kwargs: int) -> ConnectionFaults:
    """Faults on the server -> client direction."""
    return ConnectionFaults(downstream=Faults(**kwargs))


def up(**kwargs: int) -> ConnectionFaults:
    """Faults on the client -> server direction."""
    return ConnectionFaults(upstream=Faults(**kwargs))


RELAY_RST = [
    pytest.param(False, down(reset_after=0), aio.ReadError, False, id="before-head"),
    pytest.param(False, down(reset_after=12), aio.ReadError, False, id="during-head"),
    pytest.param(
        False, down(reset_after=BIG_BODY // 2), aio.ReadError, True, id="during-body"
    ),
    pytest.param(False, up(reset_after=10), aio.ReadError, False, id="during-request"),
    pytest.param(
        True, down(reset_after=0), aio.ConnectError, False, id="tls-handshake"
    ),
    pytest.param(
        True, up(reset_after=0), aio.ConnectError, False, id="tls-client-hello"
    ),
    pytest.param(
        True, down(reset_after=BIG_BODY // 2), aio.ReadError, True, id="tls-during-body"
    ),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("tls", "faults", "expected", "streamed"), RELAY_RST)
async def test_rst_via_relay(
    tls: bool,
    faults: ConnectionFaults,
    expected: type[Exception],
    streamed: bool,
    hypercorn_plain: HypercornPeer,
    hypercorn_tls: HypercornPeer,
    ssl_context: ssl.SSLContext,
) -> None:
    """An RST from the network at each phase, between the client and hypercorn:
    only the first connection is reset, the next request succeeds on a new one."""
    peer = hypercorn_tls if tls else hypercorn_plain
    async with (
        fault_proxy(peer.host, peer.port, [faults]) as proxy,
        tls_pool(ssl_context) as pool,
    ):
        url = proxy.url(peer.scheme) + f"/bytes?n={BIG_BODY}"
        if streamed:
            async with pool.stream("GET", url) as response:
                assert response.status == 200
                await raises(expected, RESET, response.aread())
        else:
            await raises(expected, RESET, pool.request("GET", url))
        assert proxy.connections[0].fired, proxy.connections[0]
        assert_pool_settled(pool, idle=0)
        again = await pool.request("GET", url)
        assert again.content == b"x" * BIG_BODY
        assert len(proxy.connections) == 2
        assert_pool_settled(pool, idle=1)


NGINX_FAULTS = [
    pytest.param(down(reset_after=0), aio.ConnectError, RESET, id="rst-handshake"),
    pytest.param(down(reset_after=300_000), aio.ReadError, RESET, id="rst-mid-body"),
    pytest.param(
        down(close_after=300_000),
        aio.RemoteProtocolError,
        "without sending complete message body",
        id="fin-mid-body",
    ),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("faults", "expected", "fragment"), NGINX_FAULTS)
async def test_transport_faults_nginx(
    faults: ConnectionFaults,
    expected: type[Exception],
    fragment: str,
    nginx_h2: NginxPeer,
    ssl_context: ssl.SSLContext,
) -> None:
    """The same transport faults against nginx over TLS (HTTP/1.1 by ALPN),
    on its 1 MiB static file: the class does not depend on the server."""
    large = nginx_h2.files["/large.bin"]
    async with (
        fault_proxy(nginx_h2.host, nginx_h2.port, [faults]) as proxy,
        tls_pool(ssl_context) as pool,
    ):
        url = proxy.url("https") + "/large.bin"
        await raises(expected, fragment, pool.request("GET", url))
        assert proxy.connections[0].fired, proxy.connections[0]
        assert_pool_settled(pool, idle=0)
        again = await pool.request("GET", url)
        assert again.extensions["http_version"] == b"HTTP/1.1"
        assert again.content == large
        assert_pool_settled(pool, idle=1)


@pytest.mark.asyncio
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_fin_mid_body_via_relay(
    tls: bool,
    hypercorn_plain: HypercornPeer,
    hypercorn_tls: HypercornPeer,
    ssl_context: ssl.SSLContext,
) -> None:
    """A FIN from the network mid-body (over TLS: no close_notify) is a
    truncated body: RemoteProtocolError, as from a scripted server."""
    peer = hypercorn_tls if tls else hypercorn_plain
    async with (
        fault_proxy(peer.host, peer.port, [down(close_after=BIG_BODY // 2)]) as proxy,
        tls_pool(ssl_context) as pool,
    ):
        url = proxy.url(peer.scheme) + f"/bytes?n={BIG_BODY}"
        await raises(
            aio.RemoteProtocolError,
            "without sending complete message body",
            pool.request("GET", url),
        )
        assert proxy.connections[0].fired == ["downstream:close"]
        assert_pool_settled(pool, idle=0)
        again = await pool.request("GET", url)
        assert again.content == b"x" * BIG_BODY
        assert_pool_settled(pool, idle=1)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("pieces", "expected", "fragment"),
    [
        pytest.param([], aio.ReadError, RESET, id="before-head"),
        pytest.param(
            [b"HTTP/1.1 200 OK\r\nContent-"], aio.ReadError, RESET, id="mid-head"
        ),
        pytest.param(
            [OK_HEAD + b"Content-Length: 10\r\n\r\nabc"],
            aio.ReadError,
            "",
            id="mid-body",
        ),
    ],
)
async def test_rst_scripted(
    pieces: list[bytes], expected: type[Exception], fragment: str
) -> None:
    """A server that answers part of a response, then RSTs: ReadError."""
    async with (
        first_then_good(pieces, after="rst") as server,
        aio.AsyncConnectionPool() as pool,
    ):
        if pieces and b"\r\n\r\n" in pieces[0]:
            async with pool.stream("GET", server.url) as response:
                await raises(expected, fragment, response.aread())
        else:
            await raises(expected, fragment, pool.request("GET", server.url))
        assert_pool_settled(pool, idle=0)
        await recovers_on_new_connection(pool, server, server.url)


# -- stale keep-alive races ---------------------------------------------------------

Race = Literal[
    "fin-on-reuse",
    "rst-on-reuse",
    "fin-after-partial-head",
    "rst-after-partial-head",
    "fin-while-idle",
    "rst-while-idle",
]


@contextlib.asynccontextmanager
async def closes_kept_alive(
    race: Race, ssl: ssl.SSLContext | None
) -> AsyncIterator[tuple[ScriptedServer, asyncio.Event, asyncio.Event]]:
    """A server whose first connection answers once and keeps alive, then closes.

    ``*-on-reuse``: it reads the next request whole, then closes without a reply
    (the server timed the connection out just as the client reused it).
    ``*-after-partial-head``: the same, after the start of a response head.
    ``*-while-idle``: it closes once the test sets the second yielded event
    (after checking the first answer). The first yielded event is set once the
    first connection was closed. Later connections answer ``GOOD``.
    """
    accepted = 0
    closed = asyncio.Event()
    close_idle = asyncio.Event()

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal accepted
        accepted += 1
        if accepted > 1:
            await answer_forever(reader, writer)
            return
        try:
            head = await read_head(reader)
            assert head is not None
            await read_body(reader, head)
            writer.write(GOOD)
            await writer.drain()
            if race.endswith("while-idle"):
                await close_idle.wait()
            else:  # read it all: unread bytes would turn a FIN into an RST
                head = await read_head(reader)
                assert head is not None
                await read_body(reader, head)
            if race.endswith("partial-head"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-")
                await writer.drain()
                await asyncio.sleep(0.2)  # read by the client before the close
            if race.startswith("rst"):
                send_rst(writer)
            else:
                await close_gracefully(writer)
        finally:
            closed.set()

    async with tolerant_server(handler, ssl=ssl) as server:
        yield server, closed, close_idle


async def close_gracefully(writer: asyncio.StreamWriter) -> None:
    """Close with a FIN and wait for it to be sent."""
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def streamed_body() -> AsyncIterator[bytes]:
    """A request body that cannot be sent twice."""
    yield b"data"


STALE = [
    pytest.param("GET", "fin-on-reuse", None, "", id="get-fin-retried"),
    pytest.param("GET", "rst-on-reuse", None, "", id="get-rst-retried"),
    pytest.param("PUT", "fin-on-reuse", None, "", id="put-fin-retried"),
    pytest.param(
        "POST",
        "fin-on-reuse",
        aio.RemoteProtocolError,
        "Server disconnected without sending a response.",
        id="post-fin-raises",
    ),
    pytest.param("POST", "rst-on-reuse", aio.ReadError, RESET, id="post-rst-raises"),
    pytest.param(
        "GET-streamed",
        "fin-on-reuse",
        aio.RemoteProtocolError,
        "Server disconnected without sending a response.",
        id="get-streamed-body-raises",
    ),
    # Response bytes arrived: not "dead before any response byte", never retried.
    pytest.param(
        "GET",
        "fin-after-partial-head",
        aio.RemoteProtocolError,
        "peer unexpectedly closed connection",
        id="get-fin-after-partial-head-raises",
    ),
    pytest.param(
        "GET",
        "rst-after-partial-head",
        aio.ReadError,
        RESET,
        id="get-rst-after-partial-head-raises",
    ),
    pytest.param("POST", "fin-while-idle", None, "", id="post-fin-seen-while-idle"),
    pytest.param("POST", "rst-while-idle", None, "", id="post-rst-seen-while-idle"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize(("method", "race", "expected", "fragment"), STALE)
async def test_stale_keep_alive(
    method: str,
    race: Race,
    expected: type[Exception] | None,
    fragment: str,
    tls: bool,
    ssl_context: ssl.SSLContext,
    server_ssl_context: ssl.SSLContext,
) -> None:
    """A kept-alive connection the server closes as it is reused: an idempotent
    request with a bytes body is retried once on a fresh connection, anything
    else raises; a close noticed while idle costs nothing (README, "The pool")."""
    server_ctx = server_ssl_context if tls else None
    async with (
        closes_kept_alive(race, server_ctx) as (server, closed, close_idle),
        tls_pool(ssl_context) as pool,
    ):
        first = await pool.request("GET", server.url)
        assert first.content == b"good"
        assert_pool_settled(pool, idle=1)
        if race.endswith("while-idle"):
            close_idle.set()
            await closed.wait()
            await asyncio.sleep(0.1)  # let the FIN or RST reach the idle client
        content: Any = streamed_body() if method == "GET-streamed" else b"data"
        call = pool.request(method.split("-")[0], server.url, content=content)
        if expected is None:
            response = await call
            assert response.content == b"good"
        else:
            await raises(expected, fragment, call)
        # On reuse the request reached the dying connection; while idle it did not.
        heads_on_first = 1 if race.endswith("while-idle") else 2
        assert server.received[0].count(b" HTTP/1.1\r\n") == heads_on_first
        if expected is None:
            assert server.connections == 2
            assert_pool_settled(pool, idle=1)
            return
        assert_pool_settled(pool, idle=0)
        again = await pool.request("GET", server.url)
        assert again.content == b"good"
        assert server.connections == 2
        assert_pool_settled(pool, idle=1)


# -- slow servers --------------------------------------------------------------


@contextlib.asynccontextmanager
async def never_reads_body() -> AsyncIterator[ScriptedServer]:
    """A server that reads a request head, then never reads again."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_head(reader)
        await asyncio.Event().wait()  # until the server shuts down

    async with tolerant_server(handler) as server:
        yield server


UPLOAD = b"u" * (32 * 1024 * 1024)  # more than loopback socket buffers hold


async def connect_timeout(pool: aio.AsyncConnectionPool, peer: HypercornPeer) -> None:
    """Connect to a listener whose accept queue is full."""
    with unanswered_port() as port:
        await pool.request(
            "GET", f"http://127.0.0.1:{port}/", extensions=timeouts(connect=0.3)
        )


async def read_timeout_silent(
    pool: aio.AsyncConnectionPool, peer: HypercornPeer
) -> None:
    """A server that reads the request and never answers."""
    async with recording_server() as server:
        await pool.request("GET", server.url, extensions=timeouts(read=0.3))


async def read_timeout_mid_body(
    pool: aio.AsyncConnectionPool, peer: HypercornPeer
) -> None:
    """The relay stalls hypercorn's answer after the head and part of the body."""
    async with fault_proxy(peer.host, peer.port, down(stall_after=1000)) as proxy:
        url = proxy.url() + f"/bytes?n={BIG_BODY}"
        async with pool.stream("GET", url, extensions=timeouts(read=0.3)) as response:
            assert response.status == 200
            await response.aread()


async def write_timeout_scripted(
    pool: aio.AsyncConnectionPool, peer: HypercornPeer
) -> None:
    """A server that never reads a large upload."""
    async with never_reads_body() as server:
        await pool.request(
            "POST", server.url, content=UPLOAD, extensions=timeouts(write=0.3)
        )


async def write_timeout_relay(
    pool: aio.AsyncConnectionPool, peer: HypercornPeer
) -> None:
    """The relay stops reading the upload to hypercorn's /echo."""
    async with fault_proxy(peer.host, peer.port, up(stall_after=1000)) as proxy:
        await pool.request(
            "POST",
            proxy.url() + "/echo",
            content=UPLOAD,
            extensions=timeouts(write=0.3),
        )


def timeouts(**values: float) -> dict[str, Any]:
    """A ``timeout`` extension with generous defaults and ``values`` on top."""
    return {
        "timeout": {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0, **values}
    }


SLOW = [
    pytest.param(connect_timeout, aio.ConnectTimeout, id="connect"),
    pytest.param(read_timeout_silent, aio.ReadTimeout, id="read-silent-server"),
    pytest.param(read_timeout_mid_body, aio.ReadTimeout, id="read-stalled-mid-body"),
    pytest.param(write_timeout_scripted, aio.WriteTimeout, id="write-never-read"),
    pytest.param(write_timeout_relay, aio.WriteTimeout, id="write-stalled-relay"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("case", "expected"), SLOW)
async def test_slow_server(
    case: Any, expected: type[Exception], hypercorn_plain: HypercornPeer
) -> None:
    """Each per-operation timeout raises its own class and costs its connection;
    the pool then serves the next request."""
    async with aio.AsyncConnectionPool() as pool:
        await raises(expected, "timed out", case(pool, hypercorn_plain))
        assert_pool_settled(pool, idle=0)
        response = await pool.request("GET", hypercorn_plain.url + "/")
        assert response.content == b"Hello, world!"
        assert_pool_settled(pool, idle=1)


@contextlib.asynccontextmanager
async def trickling_server(
    prefix: bytes, trickled: bytes, interval: float
) -> AsyncIterator[ScriptedServer]:
    """A server that answers ``prefix`` at once, then ``trickled`` one byte
    every ``interval`` seconds."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_head(reader)
        writer.write(prefix)
        for byte in trickled:
            await writer.drain()
            await asyncio.sleep(interval)
            writer.write(bytes([byte]))
        await writer.drain()

    async with tolerant_server(handler) as server:
        yield server


TRICKLE_BODY = b"t" * 30  # 1.5 s at one byte per 50 ms
TRICKLE_HEAD = OK_HEAD + b"Content-Length: 2\r\n\r\n"  # 38 bytes: 1.9 s


@pytest.mark.asyncio
@pytest.mark.parametrize("phase", ["head", "body"])
async def test_trickle_under_total_deadline(phase: str) -> None:
    """A server trickling one byte every 50 ms (the head, or the body after a
    prompt head) never trips the 1 s read timeout; only the 0.5 s ``total``
    deadline stops it, with ReadTimeout (the operation the deadline
    interrupted), and the connection is dropped."""
    if phase == "head":
        prefix, trickled = b"", TRICKLE_HEAD + b"ok"
    else:
        prefix, trickled = OK_HEAD + b"Content-Length: 30\r\n\r\n", TRICKLE_BODY
    async with (
        trickling_server(prefix, trickled, 0.05) as server,
        aio.AsyncConnectionPool() as pool,
    ):
        extensions = {"timeout": {"read": 1.0, "total": 0.5}}
        started = time.monotonic()
        await raises(aio.ReadTimeout, "", read_streamed(pool, server.url, extensions))
        assert time.monotonic() - started < 1.4
        assert_pool_settled(pool, idle=0)


async def read_streamed(
    pool: aio.AsyncConnectionPool, url: str, extensions: dict[str, Any]
) -> bytes:
    """Open a streamed response and read it whole."""
    async with pool.stream("GET", url, extensions=extensions) as response:
        return await response.aread()


@pytest.mark.asyncio
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize(
    "faults",
    [
        pytest.param(
            ConnectionFaults(
                upstream=Faults(latency=0.1), downstream=Faults(latency=0.1)
            ),
            id="latency",
        ),
        pytest.param(down(bandwidth=200_000), id="bandwidth"),
        pytest.param(
            ConnectionFaults(
                upstream=Faults(slice_size=1), downstream=Faults(slice_size=512)
            ),
            id="sliced",
        ),
    ],
)
async def test_slow_relay_still_succeeds(
    faults: ConnectionFaults,
    tls: bool,
    hypercorn_plain: HypercornPeer,
    hypercorn_tls: HypercornPeer,
    ssl_context: ssl.SSLContext,
) -> None:
    """Latency, a bandwidth cap or tiny segments slow a request down, under
    every per-operation timeout, without changing a byte of it."""
    peer = hypercorn_tls if tls else hypercorn_plain
    async with (
        fault_proxy(peer.host, peer.port, faults) as proxy,
        tls_pool(ssl_context) as pool,
    ):
        url = proxy.url(peer.scheme) + f"/bytes?n={BIG_BODY}"
        started = time.monotonic()
        response = await pool.request("GET", url, extensions=timeouts())
        elapsed = time.monotonic() - started
        assert response.content == b"x" * BIG_BODY
        assert_pool_settled(pool, idle=1)
        assert proxy.connections[0].downstream_bytes > BIG_BODY
        if faults.downstream.bandwidth:  # 64 KiB at 200 kB/s: at least 0.3 s
            assert elapsed >= 0.25
        elif faults.downstream.latency:
            assert elapsed >= 0.2


# -- pool exhaustion -----------------------------------------------------------

Exhaustion = Literal["pool-timeout", "cancelled-waiter", "waiter-served"]


@pytest.mark.asyncio
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize(
    "variant", ["pool-timeout", "cancelled-waiter", "waiter-served"]
)
async def test_pool_exhaustion(
    variant: Exhaustion,
    tls: bool,
    hypercorn_plain: HypercornPeer,
    hypercorn_tls: HypercornPeer,
    ssl_context: ssl.SSLContext,
) -> None:
    """With max_connections=2 and two streams held open, a third request waits:
    it raises PoolTimeout under a ``pool`` timeout, can be cancelled without
    leaving a trace, or is served once a stream is released."""
    peer = hypercorn_tls if tls else hypercorn_plain
    url = peer.url + "/bytes?n=10"
    async with tls_pool(ssl_context, max_connections=2) as pool:
        async with contextlib.AsyncExitStack() as held:
            for _ in range(2):  # bodies read, responses still open: slots held
                response = await held.enter_async_context(pool.stream("GET", url))
                assert await response.aread() == b"x" * 10
            assert pool.stats()["requests_active"] == 2
            if variant == "pool-timeout":
                await raises(
                    aio.PoolTimeout,
                    "no connection within the pool timeout",
                    pool.request("GET", url, extensions=timeouts(pool=0.2)),
                )
            else:
                waiter = asyncio.create_task(pool.request("GET", url))
                await wait_until(lambda: pool.stats()["requests_waiting"] == 1)
                if variant == "cancelled-waiter":
                    waiter.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await waiter
                else:
                    await held.aclose()  # release both held streams
                    assert (await waiter).content == b"x" * 10
            stats = pool.stats()
            assert stats["requests_waiting"] == 0, stats
        assert_pool_settled(pool, idle=2)
        assert (await pool.request("GET", url)).content == b"x" * 10
        assert_pool_settled(pool, idle=2)


async def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    """Poll ``predicate`` every 10 ms until it holds (bounded by ``timeout``)."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - the pool has no event to await
            await asyncio.sleep(0.01)
