"""AsyncIOStream against real servers on 127.0.0.1: bytes, timeouts, errors, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import aio
from aio import AsyncIOBackend, AsyncNetworkStream
from tests.peers.hypercorn_server import HypercornPeer
from tests.peers.scripted import (
    ScriptedServer,
    close_writer,
    tolerant_server,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

SLACK = 0.25  # a timeout must fire within this many seconds of its value
# uvloop's clock is libuv's whole milliseconds, so its timers can fire up to
# about 1 ms before time.monotonic() says the delay is over (seen: 80 us early).
CLOCK_GRANULARITY = 0.002
SNI = "sni.wireline.test"  # a name in the test leaf's SAN, sent while dialling an IP


serve = tolerant_server


async def drain_until_eof(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Read (and record) everything the client sends; never answer."""
    while await reader.read(65536):
        pass


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send back every byte the client sends."""
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


def send_then_close(payload: bytes) -> Handler:
    """A handler that sends ``payload`` at once and closes."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(payload)
        await writer.drain()

    return handler


async def connect(server: ScriptedServer | HypercornPeer) -> AsyncNetworkStream:
    """Open a plain TCP stream to ``server``."""
    return await AsyncIOBackend().connect_tcp(server.host, server.port, timeout=5.0)


async def read_all(stream: AsyncNetworkStream, max_bytes: int = 65536) -> bytes:
    """Read until EOF."""
    data = bytearray()
    while chunk := await stream.read(max_bytes, timeout=5.0):
        data += chunk
    return bytes(data)


async def write_until_error(stream: AsyncNetworkStream, tries: int) -> None:
    """Write ``tries`` times, 50 ms apart: a dead peer may take a write to notice."""
    for _ in range(tries):
        await stream.write(b"after close", timeout=1.0)
        await asyncio.sleep(0.05)


async def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - state with no event to await
            await asyncio.sleep(0.005)


def assert_within_slack(start: float, timeout: float) -> None:
    """The time since ``start`` is at least ``timeout`` and less than it + SLACK."""
    elapsed = time.monotonic() - start
    assert timeout - CLOCK_GRANULARITY <= elapsed < timeout + SLACK, elapsed


def make_server_context(certs_dir: Path) -> ssl.SSLContext:
    """A second server context (each scripted TLS server wraps its own SNI hook)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs_dir / "server.pem", certs_dir / "server.key.pem")
    return context


# -- reading ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_read_returns_sent_bytes_then_empty_at_eof() -> None:
    """read() yields what the server sent, then b"" (again and again) at EOF."""
    async with (
        serve(send_then_close(b"hello, wireline")) as server,
        contextlib.aclosing(await connect(server)) as stream,
    ):
        assert await read_all(stream) == b"hello, wireline"
        assert await stream.read(10) == b""
        assert await stream.read(10) == b""


@pytest.mark.parametrize("max_bytes", [1, 7, 1000, 4096])
@pytest.mark.asyncio
async def test_read_never_exceeds_max_bytes_and_loses_nothing(max_bytes: int) -> None:
    """A big server chunk comes out in pieces of at most max_bytes, reassembled."""
    payload = bytes(range(256)) * 80  # 20,480 bytes in one server write
    async with (
        serve(send_then_close(payload)) as server,
        contextlib.aclosing(await connect(server)) as stream,
    ):
        pieces = []
        while piece := await stream.read(max_bytes, timeout=5.0):
            pieces.append(piece)
    assert max(len(piece) for piece in pieces) == max_bytes
    assert b"".join(pieces) == payload


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.asyncio
async def test_five_megabytes_echo_both_ways_intact(
    tls: bool, server_ssl_context: ssl.SSLContext, ssl_context: ssl.SSLContext
) -> None:
    """5 MB written while 5 MB are read back arrive byte-for-byte intact."""
    size = 5 * 1024 * 1024
    payload = bytes(range(251)) * (size // 251 + 1)
    payload = payload[:size]
    async with serve(echo, ssl=server_ssl_context if tls else None) as server:
        stream = await connect(server)
        if tls:
            stream = await stream.start_tls(ssl_context, "127.0.0.1", timeout=5.0)
        async with contextlib.aclosing(stream):

            async def send() -> None:
                view = memoryview(payload)
                for offset in range(0, size, 100_000):
                    await stream.write(bytes(view[offset : offset + 100_000]), 5.0)

            async def receive() -> bytes:
                data = bytearray()
                while len(data) < size:
                    chunk = await stream.read(65536, timeout=5.0)
                    assert chunk
                    data += chunk
                return bytes(data)

            async with asyncio.TaskGroup() as group:
                group.create_task(send())
                echoed = group.create_task(receive())
    assert len(echoed.result()) == size
    assert echoed.result() == payload
    assert server.received[0] == payload


@pytest.mark.asyncio
async def test_reading_pauses_while_the_application_does_not_read() -> None:
    """An unread stream stops taking bytes, so the server's send buffer backs up."""
    size = 32 * 1024 * 1024
    payload = bytes(range(256)) * (size // 256)
    writers: list[asyncio.StreamWriter] = []

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        writer.write(payload)
        await writer.drain()

    async with (
        serve(flood) as server,
        contextlib.aclosing(await connect(server)) as stream,
    ):
        await wait_until(lambda: bool(writers))
        await asyncio.sleep(0.3)  # ample time to move 32 MB on loopback
        backlog = writers[0].transport.get_write_buffer_size()
        assert backlog > 0
        assert await read_all(stream) == payload


@pytest.mark.asyncio
async def test_read_timeout_fires_on_time() -> None:
    """A read with nothing arriving raises ReadTimeout right after its timeout."""
    async with (
        serve(drain_until_eof) as server,
        contextlib.aclosing(await connect(server)) as stream,
    ):
        start = time.monotonic()
        with pytest.raises(aio.ReadTimeout):
            await stream.read(100, timeout=0.2)
        assert_within_slack(start, 0.2)


@pytest.mark.asyncio
async def test_stream_still_reads_after_a_read_timeout() -> None:
    """Bytes that arrive after a ReadTimeout are returned by the next read."""
    go = asyncio.Event()

    async def late(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await go.wait()
        writer.write(b"late")
        await writer.drain()

    async with (
        serve(late) as server,
        contextlib.aclosing(await connect(server)) as stream,
    ):
        with pytest.raises(aio.ReadTimeout):
            await stream.read(100, timeout=0.05)
        go.set()
        assert await stream.read(100, timeout=2.0) == b"late"


@pytest.mark.asyncio
async def test_read_after_peer_reset_raises_read_error() -> None:
    """A TCP RST from the server makes read() raise ReadError from the OSError."""
    reset = asyncio.Event()

    async def rst(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        reset.set()

    async with (
        serve(rst) as server,
        contextlib.aclosing(await connect(server)) as stream,
    ):
        await reset.wait()
        with pytest.raises(aio.ReadError) as info:
            await stream.read(100, timeout=2.0)
    assert isinstance(info.value.__cause__, ConnectionResetError)


@pytest.mark.asyncio
async def test_read_after_own_aclose_raises_read_error() -> None:
    """read() on a stream we closed raises ReadError, even with bytes pending."""
    async with serve(send_then_close(b"unread")) as server:
        stream = await connect(server)
        await wait_until(lambda: stream.get_extra_info("is_readable"))
        await stream.aclose()
        with pytest.raises(aio.ReadError):
            await stream.read(100)


@pytest.mark.asyncio
async def test_aclose_twice_is_harmless() -> None:
    """A second aclose() returns at once without raising."""
    async with serve(drain_until_eof) as server:
        stream = await connect(server)
        await stream.aclose()
        start = time.monotonic()
        await stream.aclose()
        assert time.monotonic() - start < 0.05
        await server.wait_for(lambda: server.connections == 1)


# -- writing ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_written_bytes_reach_the_server_in_order() -> None:
    """Several writes arrive at the server concatenated, in order."""
    async with (
        serve(drain_until_eof) as server,
        contextlib.aclosing(await connect(server)) as stream,
    ):
        for part in (b"GET ", b"/ ", b"HTTP/1.1\r\n", b"\r\n"):
            await stream.write(part, timeout=1.0)
        expected = [b"GET / HTTP/1.1\r\n\r\n"]
        await server.wait_for(lambda: server.received == expected)
    assert server.received == expected


@pytest.mark.asyncio
async def test_write_timeout_when_the_server_never_reads() -> None:
    """Writing far more than the buffers hold to a non-reader raises WriteTimeout."""
    release = asyncio.Event()

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.pause_reading()  # stop asyncio from reading for us
        await release.wait()
        writer.transport.abort()

    async with (
        serve(stall) as server,
        contextlib.aclosing(await connect(server)) as stream,
    ):
        start = time.monotonic()
        with pytest.raises(aio.WriteTimeout):
            await stream.write(b"x" * (32 * 1024 * 1024), timeout=0.2)
        assert_within_slack(start, 0.2)
        release.set()


@pytest.mark.asyncio
async def test_write_after_peer_closed_raises_write_error() -> None:
    """Once the server has closed, a write (within a few tries) raises WriteError."""
    async with (
        serve(send_then_close(b"")) as server,
        contextlib.aclosing(await connect(server)) as stream,
    ):
        await wait_until(lambda: stream.get_extra_info("is_readable"))
        with pytest.raises(aio.WriteError):
            await write_until_error(stream, tries=5)


@pytest.mark.asyncio
async def test_write_after_own_aclose_raises_write_error() -> None:
    """write() on a stream we closed raises WriteError."""
    async with serve(drain_until_eof) as server:
        stream = await connect(server)
        await stream.aclose()
        with pytest.raises(aio.WriteError):
            await stream.write(b"x")


# -- cancellation ------------------------------------------------------------


@pytest.mark.asyncio
async def test_cancelled_read_leaves_the_stream_usable() -> None:
    """After a read blocked in another task is cancelled, later bytes still arrive."""
    go = asyncio.Event()

    async def late(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await go.wait()
        writer.write(b"after cancel")
        await writer.drain()

    async with (
        serve(late) as server,
        contextlib.aclosing(await connect(server)) as stream,
    ):
        task = asyncio.create_task(stream.read(100))
        await asyncio.sleep(0.05)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        go.set()
        assert await stream.read(100, timeout=2.0) == b"after cancel"
        assert await stream.read(100, timeout=2.0) == b""


# -- get_extra_info ------------------------------------------------------------


@pytest.mark.asyncio
async def test_extra_info_on_a_plain_stream() -> None:
    """Addresses, socket, ssl_object and unknown keys on plain TCP."""
    async with (
        serve(drain_until_eof) as server,
        contextlib.aclosing(await connect(server)) as stream,
    ):
        client_addr = stream.get_extra_info("client_addr")
        server_addr = stream.get_extra_info("server_addr")
        sock = stream.get_extra_info("socket")
        assert client_addr[0] == "127.0.0.1"
        assert server_addr == ("127.0.0.1", server.port)
        assert stream.get_extra_info("peername") == server_addr
        assert stream.get_extra_info("sockname") == client_addr
        assert sock.getsockname() == client_addr
        assert sock.getpeername() == server_addr
        assert stream.get_extra_info("ssl_object") is None
        assert stream.get_extra_info("no-such-key") is None


@pytest.mark.asyncio
async def test_is_readable_tracks_pending_bytes_and_eof() -> None:
    """is_readable is False when idle, True with bytes pending or once EOF arrived."""
    send = asyncio.Event()
    close = asyncio.Event()

    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await send.wait()
        writer.write(b"x")
        await writer.drain()
        await close.wait()

    async with (
        serve(script) as server,
        contextlib.aclosing(await connect(server)) as stream,
    ):
        await asyncio.sleep(0.05)
        assert stream.get_extra_info("is_readable") is False
        send.set()
        await wait_until(lambda: stream.get_extra_info("is_readable"))
        assert await stream.read(10) == b"x"
        assert stream.get_extra_info("is_readable") is False
        close.set()
        await wait_until(lambda: stream.get_extra_info("is_readable"))
        assert await stream.read(10) == b""


# -- TLS ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_tls_streams_of_one_loop_share_a_read_buffer_intact(
    server_ssl_context: ssl.SSLContext, ssl_context: ssl.SSLContext
) -> None:
    """Two TLS streams read concurrently into the loop's one decryption buffer
    (a BufferedProtocol, so neither TLS layer allocates 256 KiB per read): each
    gets its own bytes, in order, whoever reads when."""
    size = 3 * 1024 * 1024

    def payload(tag: bytes) -> bytes:
        block = bytes((tag[0] + i) % 256 for i in range(251))
        return (block * (size // 251 + 1))[:size]

    async def send_asked(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        tag = await reader.readexactly(1)
        for offset in range(0, size, 50_000):  # many TLS records, many reads
            writer.write(payload(tag)[offset : offset + 50_000])
            await writer.drain()

    async def fetch(server: ScriptedServer, tag: bytes) -> bytes:
        raw = await connect(server)
        stream = await raw.start_tls(ssl_context, "127.0.0.1", timeout=5.0)
        async with contextlib.aclosing(stream):
            protocol = stream._protocol  # type: ignore[attr-defined]
            assert isinstance(protocol, asyncio.BufferedProtocol)
            assert not isinstance(protocol, asyncio.Protocol)
            await stream.write(tag, timeout=5.0)
            data = bytearray()
            while len(data) < size:
                chunk = await stream.read(65536, timeout=5.0)
                assert chunk
                data += chunk
                await asyncio.sleep(0)  # let the other stream's reads interleave
            return bytes(data)

    async with serve(send_asked, ssl=server_ssl_context) as server:
        async with asyncio.TaskGroup() as group:
            first = group.create_task(fetch(server, b"a"))
            second = group.create_task(fetch(server, b"b"))
    assert first.result() == payload(b"a")
    assert second.result() == payload(b"b")


@pytest.mark.asyncio
async def test_start_tls_sends_sni_and_encrypts(
    server_ssl_context: ssl.SSLContext, ssl_context: ssl.SSLContext
) -> None:
    """start_tls to 127.0.0.1 sends server_hostname as SNI; writes arrive decrypted."""
    async with serve(drain_until_eof, ssl=server_ssl_context) as server:
        raw = await connect(server)
        async with contextlib.aclosing(
            await raw.start_tls(ssl_context, server_hostname=SNI, timeout=5.0)
        ) as stream:
            ssl_object = stream.get_extra_info("ssl_object")
            assert ssl_object.version().startswith("TLS")
            assert ssl_object.server_hostname == SNI
            await stream.write(b"secret payload", timeout=1.0)
            await server.wait_for(lambda: server.received == [b"secret payload"])
    assert server.sni_names == [SNI]


@pytest.mark.asyncio
async def test_extra_info_on_a_tls_stream(
    server_ssl_context: ssl.SSLContext, ssl_context: ssl.SSLContext
) -> None:
    """A TLS stream keeps the TCP addresses and socket and adds the ssl_object."""
    async with serve(drain_until_eof, ssl=server_ssl_context) as server:
        raw = await connect(server)
        client_addr = raw.get_extra_info("client_addr")
        async with contextlib.aclosing(
            await raw.start_tls(ssl_context, "127.0.0.1", timeout=5.0)
        ) as stream:
            assert stream.get_extra_info("client_addr") == client_addr
            assert stream.get_extra_info("server_addr") == ("127.0.0.1", server.port)
            assert stream.get_extra_info("socket").getsockname() == client_addr
            assert isinstance(stream.get_extra_info("ssl_object"), ssl.SSLObject)
            assert stream.get_extra_info("is_readable") is False
            assert stream.get_extra_info("no-such-key") is None


@pytest.mark.asyncio
async def test_start_tls_to_hypercorn_and_get(
    hypercorn_tls: HypercornPeer, ssl_context: ssl.SSLContext
) -> None:
    """A TLS stream to hypercorn negotiates http/1.1 and gets its "/" response."""
    ssl_context.set_alpn_protocols(["http/1.1"])
    raw = await connect(hypercorn_tls)
    async with contextlib.aclosing(
        await raw.start_tls(ssl_context, server_hostname="localhost", timeout=5.0)
    ) as stream:
        ssl_object = stream.get_extra_info("ssl_object")
        assert ssl_object.version().startswith("TLS")
        assert ssl_object.selected_alpn_protocol() == "http/1.1"
        await stream.write(
            b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        response = await read_all(stream)
    assert response.startswith(b"HTTP/1.1 200 ")
    assert response.endswith(b"\r\n\r\nHello, world!")


@pytest.mark.parametrize(
    ("cafile", "hostname", "verify_code"),
    [
        ("ca.pem", "wrong.example", 62),  # X509_V_ERR_HOSTNAME_MISMATCH
        ("other-ca.pem", SNI, 20),  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    ],
    ids=["wrong-hostname", "untrusted-ca"],
)
@pytest.mark.asyncio
async def test_start_tls_certificate_failure_is_connect_error(
    cafile: str,
    hostname: str,
    verify_code: int,
    certs_dir: Path,
    server_ssl_context: ssl.SSLContext,
) -> None:
    """A certificate the client rejects raises ConnectError from the verify error."""
    client_context = ssl.create_default_context(cafile=certs_dir / cafile)
    async with serve(drain_until_eof, ssl=server_ssl_context) as server:
        raw = await connect(server)
        with pytest.raises(aio.ConnectError) as info:
            await raw.start_tls(client_context, server_hostname=hostname, timeout=5.0)
    cause = info.value.__cause__
    assert isinstance(cause, ssl.SSLCertVerificationError)
    assert cause.verify_code == verify_code
    assert server.connections == 0  # the server never completed a handshake


@pytest.mark.asyncio
async def test_start_tls_handshake_timeout(ssl_context: ssl.SSLContext) -> None:
    """A server that never answers the ClientHello gives ConnectTimeout on time."""
    eof = asyncio.Event()

    async def silent(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await drain_until_eof(reader, writer)
        eof.set()

    async with serve(silent) as server:  # plain TCP: it never speaks TLS
        raw = await connect(server)
        start = time.monotonic()
        with pytest.raises(aio.ConnectTimeout):
            await raw.start_tls(ssl_context, "127.0.0.1", timeout=0.3)
        assert_within_slack(start, 0.3)
        # The failed upgrade closed the connection: the server saw its EOF.
        await asyncio.wait_for(eof.wait(), timeout=1.0)
    assert server.received[0].startswith(b"\x16\x03")  # our ClientHello


@pytest.mark.asyncio
async def test_aclose_after_failed_start_tls_is_immediate(
    ssl_context: ssl.SSLContext,
) -> None:
    """aclose() on the original stream after a failed upgrade does not stall."""
    async with serve(drain_until_eof) as server:
        raw = await connect(server)
        with pytest.raises(aio.ConnectTimeout):
            await raw.start_tls(ssl_context, "127.0.0.1", timeout=0.05)
        start = time.monotonic()
        await raw.aclose()
        assert time.monotonic() - start < SLACK


@pytest.mark.asyncio
async def test_start_tls_refuses_bytes_the_peer_sent_first(
    ssl_context: ssl.SSLContext,
) -> None:
    """Plaintext buffered before start_tls() makes it fail with ConnectError."""
    greet_then_wait = send_then_close(b"hello")
    async with serve(greet_then_wait) as server:
        raw = await connect(server)
        await wait_until(lambda: raw.get_extra_info("is_readable"))
        with pytest.raises(aio.ConnectError, match="5 unread bytes"):
            await raw.start_tls(ssl_context, "127.0.0.1", timeout=1.0)
        await raw.aclose()


@pytest.mark.asyncio
async def test_start_tls_after_the_peer_closed_is_connect_error(
    ssl_context: ssl.SSLContext,
) -> None:
    """start_tls() on a connection the server already closed fails fast."""
    async with serve(send_then_close(b"")) as server:
        raw = await connect(server)
        await wait_until(lambda: raw.get_extra_info("is_readable"))
        start = time.monotonic()
        with pytest.raises(aio.ConnectError):
            await raw.start_tls(ssl_context, "127.0.0.1", timeout=1.0)
        assert time.monotonic() - start < SLACK
        await raw.aclose()


@pytest.mark.asyncio
async def test_aclose_on_tls_completes_without_the_grace_period(
    server_ssl_context: ssl.SSLContext, ssl_context: ssl.SSLContext
) -> None:
    """Closing a TLS stream to a cooperating server finishes well under a second."""
    async with serve(drain_until_eof, ssl=server_ssl_context) as server:
        raw = await connect(server)
        stream = await raw.start_tls(ssl_context, "127.0.0.1", timeout=5.0)
        start = time.monotonic()
        await stream.aclose()
        assert time.monotonic() - start < SLACK


@pytest.mark.asyncio
async def test_tls_in_tls_through_a_tls_relay(
    certs_dir: Path, server_ssl_context: ssl.SSLContext, ssl_context: ssl.SSLContext
) -> None:
    """start_tls over a TLS stream reaches an inner TLS server through a relay."""
    inner_context = make_server_context(certs_dir)

    async with serve(echo, ssl=inner_context) as inner:

        async def relay(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            # The outer TLS server forwards its plaintext (the inner TLS
            # records) to the inner server over plain TCP, both ways.
            up_reader, up_writer = await asyncio.open_connection(inner.host, inner.port)

            async def pipe(
                source: asyncio.StreamReader, sink: asyncio.StreamWriter
            ) -> None:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()

            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(pipe(reader, up_writer))
                    group.create_task(pipe(up_reader, writer))
            finally:
                await close_writer(up_writer)

        async with serve(relay, ssl=server_ssl_context) as outer:
            raw = await connect(outer)
            tunnel = await raw.start_tls(ssl_context, "localhost", timeout=5.0)
            async with contextlib.aclosing(
                await tunnel.start_tls(ssl_context, SNI, timeout=5.0)
            ) as stream:
                inner_ssl = stream.get_extra_info("ssl_object")
                assert inner_ssl is not tunnel.get_extra_info("ssl_object")
                assert inner_ssl.version().startswith("TLS")
                await stream.write(b"ping through two layers", timeout=1.0)
                assert await stream.read(100, timeout=2.0) == b"ping through two layers"
    assert outer.sni_names == ["localhost"]
    assert inner.sni_names == [SNI]
    assert inner.received == [b"ping through two layers"]
    assert b"ping" not in outer.received[0]
    assert outer.received[0].startswith(b"\x16\x03")  # a TLS handshake record


@pytest.mark.asyncio
async def test_asyncio_read_size_follows_the_traffic() -> None:
    """asyncio's socket transport allocates its max_size for every read: small
    reads stay at 64 KiB (under glibc's mmap threshold), a read that fills that
    brings asyncio's 256 KiB back, and small reads take it down again. uvloop
    reads into its own buffer and is left alone. No byte is lost either way."""
    from aio import streams

    bulk = bytes(range(256)) * (4 * 1024 * 1024 // 256)
    go_on = asyncio.Event()

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"hello")
        await writer.drain()
        await go_on.wait()
        writer.write(bulk)
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(b"small again")
        await writer.drain()

    async with (
        serve(handler) as server,
        contextlib.aclosing(await connect(server)) as stream,
    ):
        protocol = stream._protocol  # type: ignore[attr-defined]
        transport = stream._transport  # type: ignore[attr-defined]
        asyncio_transport = isinstance(getattr(transport, "max_size", None), int)
        assert await stream.read(100, timeout=5.0) == b"hello"
        if asyncio_transport:
            assert transport.max_size == protocol.read_size == streams.SMALL_READ
        else:
            assert protocol.read_size == 0
        go_on.set()
        received = bytearray()
        sizes = set()
        while len(received) < len(bulk):
            received += await stream.read(len(bulk), timeout=5.0)
            sizes.add(protocol.read_size)
        assert bytes(received) == bulk
        assert await stream.read(100, timeout=5.0) == b"small again"
        if asyncio_transport:
            assert streams.LARGE_READ in sizes
            assert transport.max_size == protocol.read_size == streams.SMALL_READ
