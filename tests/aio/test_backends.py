"""AsyncIOBackend against real listeners on 127.0.0.1 and Unix sockets."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import select
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

import aio
from aio import AsyncIOBackend, AsyncNetworkStream
from tests.peers.hypercorn_server import HypercornPeer
from tests.peers.scripted import (
    tolerant_server,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

SLACK = 0.25  # a timeout must fire within this many seconds of its value
# uvloop's clock is libuv's whole milliseconds, so its timers can fire up to
# about 1 ms before time.monotonic() says the delay is over.
CLOCK_GRANULARITY = 0.002


serve = tolerant_server


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send back every byte the client sends."""
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def ping(stream: AsyncNetworkStream) -> bytes:
    """Write a line to an echo server and return what comes back."""
    await stream.write(b"ping\n", timeout=1.0)
    return await stream.read(100, timeout=2.0)


async def http_get(stream: AsyncNetworkStream) -> bytes:
    """Send ``GET /`` with ``Connection: close`` and read to EOF."""
    await stream.write(
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    response = bytearray()
    while chunk := await stream.read(65536, timeout=5.0):
        response += chunk
    return bytes(response)


def assert_within_slack(start: float, timeout: float) -> None:
    """The time since ``start`` is at least ``timeout`` and less than it + SLACK."""
    elapsed = time.monotonic() - start
    assert timeout - CLOCK_GRANULARITY <= elapsed < timeout + SLACK, elapsed


def closed_port() -> int:
    """A 127.0.0.1 port that was just bound and released: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def unanswered_port() -> Iterator[int]:
    """A 127.0.0.1 port where a new connect hangs.

    The listener has backlog 0 and is never accepted from; once its accept queue
    holds a connection, Linux drops further SYNs, so the next connect waits on
    SYN retransmits (REFERENCE §8).
    """
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        for _ in range(8):
            filler = socket.socket()
            fillers.append(filler)
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            _, writable, _ = select.select([], [filler], [], 0.05)
            if not writable:  # this one hangs: the queue is full
                break
        else:  # pragma: no cover - depends on the kernel
            raise RuntimeError("could not fill the accept queue of a backlog-0 socket")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@contextlib.contextmanager
def full_unix_listener(path: str) -> Iterator[None]:
    """A Unix listener with backlog 0 whose accept queue is already full."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        listener.bind(path)
        listener.listen(0)
        for _ in range(8):
            filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            fillers.append(filler)
            filler.setblocking(False)
            try:
                filler.connect(path)
            except BlockingIOError:  # EAGAIN: the queue is full
                break
        else:  # pragma: no cover - depends on the kernel
            raise RuntimeError("could not fill the accept queue of a Unix socket")
        yield
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


# -- connect_tcp -------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
@pytest.mark.asyncio
async def test_connect_tcp_by_address_and_by_name(host: str) -> None:
    """connect_tcp reaches a 127.0.0.1 server by literal and by name."""
    async with serve(echo) as server:
        stream = await AsyncIOBackend().connect_tcp(host, server.port, timeout=5.0)
        async with contextlib.aclosing(stream):
            assert stream.get_extra_info("server_addr") == ("127.0.0.1", server.port)
            assert await ping(stream) == b"ping\n"
    assert server.received == [b"ping\n"]


@pytest.mark.asyncio
async def test_connect_tcp_to_hypercorn(hypercorn_plain: HypercornPeer) -> None:
    """A plain stream to hypercorn gets its "/" response."""
    stream = await AsyncIOBackend().connect_tcp(
        hypercorn_plain.host, hypercorn_plain.port, timeout=5.0
    )
    async with contextlib.aclosing(stream):
        response = await http_get(stream)
    assert response.startswith(b"HTTP/1.1 200 ")
    assert response.endswith(b"\r\n\r\nHello, world!")


@pytest.mark.parametrize(
    ("socket_options", "keepalive"),
    [(None, 0), ([(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)], 1)],
    ids=["default", "keepalive"],
)
@pytest.mark.asyncio
async def test_connect_tcp_applies_socket_options(
    socket_options: list[tuple[int, int, int]] | None, keepalive: int
) -> None:
    """socket_options are set on the connected socket (read back with getsockopt)."""
    async with serve(echo) as server:
        stream = await AsyncIOBackend().connect_tcp(
            "127.0.0.1", server.port, timeout=5.0, socket_options=socket_options
        )
        async with contextlib.aclosing(stream):
            sock = stream.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == keepalive


@pytest.mark.asyncio
async def test_connect_tcp_bad_socket_option_is_connect_error() -> None:
    """A setsockopt the kernel rejects fails the connect with ConnectError."""
    bogus = (socket.SOL_SOCKET, 0x7FFF, 1)
    async with serve(echo) as server:
        with pytest.raises(aio.ConnectError) as info:
            await AsyncIOBackend().connect_tcp(
                "127.0.0.1", server.port, timeout=5.0, socket_options=[bogus]
            )
    assert isinstance(info.value.__cause__, OSError)
    assert server.connections == 0


@pytest.mark.parametrize("local_address", ["127.0.0.1", "127.0.0.2"])
@pytest.mark.asyncio
async def test_connect_tcp_binds_local_address(local_address: str) -> None:
    """local_address is the source address, as both ends see it."""
    peers: list[tuple[str, int]] = []

    async def record_peer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peers.append(writer.get_extra_info("peername"))
        await echo(reader, writer)

    async with serve(record_peer) as server:
        stream = await AsyncIOBackend().connect_tcp(
            "127.0.0.1", server.port, timeout=5.0, local_address=local_address
        )
        async with contextlib.aclosing(stream):
            client_addr = stream.get_extra_info("client_addr")
            assert await ping(stream) == b"ping\n"
    assert client_addr[0] == local_address
    assert peers == [client_addr]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
@pytest.mark.asyncio
async def test_connect_tcp_refused_is_connect_error(host: str) -> None:
    """A refused connect raises ConnectError from ConnectionRefusedError."""
    with pytest.raises(aio.ConnectError) as info:
        await AsyncIOBackend().connect_tcp(host, closed_port(), timeout=5.0)
    cause = info.value.__cause__
    assert isinstance(cause, OSError)
    assert cause.errno == errno.ECONNREFUSED


@pytest.mark.asyncio
async def test_connect_tcp_timeout_is_connect_timeout() -> None:
    """A connect that gets no SYN-ACK raises ConnectTimeout right after timeout."""
    with unanswered_port() as port:
        start = time.monotonic()
        with pytest.raises(aio.ConnectTimeout) as info:
            await AsyncIOBackend().connect_tcp("127.0.0.1", port, timeout=0.3)
        assert_within_slack(start, 0.3)
    assert isinstance(info.value.__cause__, TimeoutError)


@pytest.mark.asyncio
async def test_cancelled_connect_tcp_leaves_no_socket() -> None:
    """Cancelling a hanging connect raises CancelledError and closes its socket."""
    with unanswered_port() as port:
        task = asyncio.create_task(AsyncIOBackend().connect_tcp("127.0.0.1", port))
        await asyncio.sleep(0.1)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert task.cancelled()


@pytest.mark.asyncio
async def test_connect_tcp_unknown_host_is_connect_error() -> None:
    """A name that does not resolve raises ConnectError from socket.gaierror."""
    with pytest.raises(aio.ConnectError) as info:
        await AsyncIOBackend().connect_tcp("no-such-host.invalid", 80, timeout=5.0)
    assert isinstance(info.value.__cause__, socket.gaierror)


# -- connect_unix_socket -------------------------------------------------------


@pytest.mark.asyncio
async def test_connect_unix_socket_round_trip(uds_path: str) -> None:
    """connect_unix_socket reaches a scripted Unix server; server_addr is its path."""
    async with serve(echo, uds_path=uds_path) as server:
        stream = await AsyncIOBackend().connect_unix_socket(uds_path, timeout=5.0)
        async with contextlib.aclosing(stream):
            assert stream.get_extra_info("server_addr") == uds_path
            assert stream.get_extra_info("ssl_object") is None
            assert await ping(stream) == b"ping\n"
    assert server.received == [b"ping\n"]


@pytest.mark.asyncio
async def test_connect_unix_socket_applies_socket_options(uds_path: str) -> None:
    """socket_options reach a Unix socket too (Linux doubles SO_SNDBUF)."""
    async with serve(echo, uds_path=uds_path):
        stream = await AsyncIOBackend().connect_unix_socket(
            uds_path, socket_options=[(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)]
        )
        async with contextlib.aclosing(stream):
            sock = stream.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 65536


@pytest.mark.asyncio
async def test_connect_unix_socket_to_hypercorn(hypercorn_uds: HypercornPeer) -> None:
    """A Unix stream to hypercorn gets its "/" response."""
    assert hypercorn_uds.uds_path is not None
    stream = await AsyncIOBackend().connect_unix_socket(
        hypercorn_uds.uds_path, timeout=5.0
    )
    async with contextlib.aclosing(stream):
        response = await http_get(stream)
    assert response.startswith(b"HTTP/1.1 200 ")
    assert response.endswith(b"\r\n\r\nHello, world!")


@pytest.mark.asyncio
async def test_connect_unix_socket_missing_path_is_connect_error(
    tmp_path: Path,
) -> None:
    """A path with no socket raises ConnectError from FileNotFoundError."""
    with pytest.raises(aio.ConnectError) as info:
        await AsyncIOBackend().connect_unix_socket(str(tmp_path / "missing.sock"))
    assert isinstance(info.value.__cause__, FileNotFoundError)


@pytest.mark.asyncio
async def test_connect_unix_socket_full_backlog_times_out(uds_path: str) -> None:
    """A Unix listener whose queue stays full gives ConnectTimeout, not a dead stream.

    A non-blocking AF_UNIX connect to a full queue fails with EAGAIN; it is not
    in progress, so the socket must not be handed out as connected.
    """
    with full_unix_listener(uds_path):
        start = time.monotonic()
        try:
            stream = await AsyncIOBackend().connect_unix_socket(uds_path, timeout=0.3)
        except aio.ConnectTimeout:
            assert_within_slack(start, 0.3)
        else:
            server_addr = stream.get_extra_info("server_addr")
            await stream.aclose()
            pytest.fail(f"returned an unconnected stream (server_addr={server_addr!r})")


# -- sleep ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_sleep_waits_on_the_loop_clock() -> None:
    """sleep(0.1) returns after about 0.1 s."""
    start = time.monotonic()
    await AsyncIOBackend().sleep(0.1)
    assert_within_slack(start, 0.1)
