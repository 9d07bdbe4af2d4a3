"""The fault relay does what its faults say, observed with raw asyncio streams.

Each fault (pass-through, reset, stall, close after N bytes in either direction,
slicing, latency, bandwidth, per-connection plans, an unreachable upstream, TLS
pass-through) is checked from the client's and the upstream server's side.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator

import pytest

from tests.peers.faultproxy import (
    ConnectionFaults,
    FaultProxy,
    Faults,
    fault_proxy,
)
from tests.peers.scripted import ScriptedServer, tolerant_server

pytestmark = pytest.mark.usefixtures("no_asyncio_errors")

PAYLOAD = bytes(range(256)) * 8  # 2048 bytes the upstream sends on request
READ_TIMEOUT = 5.0


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo each line; on ``send\\n`` answer ``PAYLOAD`` instead; stop at EOF."""
    while line := await reader.readline():
        writer.write(PAYLOAD if line == b"send\n" else line)
        await writer.drain()


@contextlib.asynccontextmanager
async def relay(
    faults: ConnectionFaults | list[ConnectionFaults],
) -> AsyncIterator[tuple[FaultProxy, ScriptedServer]]:
    """An upstream running ``_serve`` behind a fault relay."""
    async with (
        tolerant_server(_serve) as server,
        fault_proxy(server.host, server.port, faults) as proxy,
    ):
        yield proxy, server


@contextlib.asynccontextmanager
async def client(
    proxy: FaultProxy, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A raw stream to the relay, aborted on exit."""
    reader, writer = await asyncio.open_connection(
        proxy.host,
        proxy.port,
        ssl=ssl_context,
        server_hostname=ssl_context and "localhost",
    )
    try:
        yield reader, writer
    finally:
        writer.transport.abort()


async def read_until_end(reader: asyncio.StreamReader) -> tuple[bytes, str]:
    """Read until EOF or reset: ``(bytes read, "eof" | "reset")``."""
    data = bytearray()
    async with asyncio.timeout(READ_TIMEOUT):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                return bytes(data), "reset"
            if not chunk:
                return bytes(data), "eof"
            data += chunk


def down(**kwargs: float | int) -> ConnectionFaults:
    """Faults on the server -> client direction."""
    return ConnectionFaults(downstream=Faults(**kwargs))  # type: ignore[arg-type]


def up(**kwargs: float | int) -> ConnectionFaults:
    """Faults on the client -> server direction."""
    return ConnectionFaults(upstream=Faults(**kwargs))  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_pass_through_counts_bytes() -> None:
    """Without faults bytes pass both ways untouched and are counted."""
    async with relay(ConnectionFaults()) as (proxy, server), client(proxy) as (r, w):
        w.write(b"hello\nsend\n")
        async with asyncio.timeout(READ_TIMEOUT):
            assert await r.readexactly(6 + len(PAYLOAD)) == b"hello\n" + PAYLOAD
        w.write_eof()
        assert await read_until_end(r) == (b"", "eof")
        await proxy.wait_for(lambda: proxy.connections[0].done)
    record = proxy.connections[0]
    assert (record.upstream_bytes, record.downstream_bytes) == (11, 6 + len(PAYLOAD))
    assert record.fired == []
    assert server.received == [b"hello\nsend\n"]


@pytest.mark.asyncio
@pytest.mark.parametrize("n", [0, 1, 100, 2047])
async def test_downstream_reset_after(n: int) -> None:
    """The client gets exactly N bytes of the answer, then an RST."""
    async with relay(down(reset_after=n)) as (proxy, _), client(proxy) as (r, w):
        w.write(b"send\n")
        assert await read_until_end(r) == (PAYLOAD[:n], "reset")
    assert proxy.connections[0].fired == ["downstream:reset"]
    assert proxy.connections[0].downstream_bytes == n


@pytest.mark.asyncio
async def test_upstream_reset_after() -> None:
    """The server gets exactly N bytes of the request; both sides see an RST."""
    async with relay(up(reset_after=3)) as (proxy, server), client(proxy) as (r, w):
        w.write(b"hello\n")
        assert await read_until_end(r) == (b"", "reset")
        await server.wait_for(lambda: server.received == [b"hel"])
    assert proxy.connections[0].fired == ["upstream:reset"]


@pytest.mark.asyncio
@pytest.mark.parametrize("direction", ["upstream", "downstream"])
async def test_close_after(direction: str) -> None:
    """After N bytes in either direction both sides are closed with a FIN."""
    faults = down(close_after=10) if direction == "downstream" else up(close_after=5)
    async with relay(faults) as (proxy, server), client(proxy) as (r, w):
        w.write(b"send\n")
        expected = PAYLOAD[:10] if direction == "downstream" else b""
        assert await read_until_end(r) == (expected, "eof")
    assert server.received == [b"send\n"]
    assert proxy.connections[0].fired == [f"{direction}:close"]


@pytest.mark.asyncio
async def test_downstream_stall_keeps_connection_open() -> None:
    """After N bytes nothing more arrives, yet the connection stays open."""
    async with relay(down(stall_after=7)) as (proxy, _), client(proxy) as (r, w):
        w.write(b"send\n")
        async with asyncio.timeout(READ_TIMEOUT):
            assert await r.readexactly(7) == PAYLOAD[:7]
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await r.read(1)
        assert not r.at_eof()
        assert proxy.connections[0].fired == ["downstream:stall"]
        assert not proxy.connections[0].done


@pytest.mark.asyncio
async def test_upstream_stall_applies_backpressure() -> None:
    """A stalled upstream stops reading, so a large write never drains."""
    async with relay(up(stall_after=1)) as (proxy, server), client(proxy) as (_, w):
        w.write(b"x" * (32 * 1024 * 1024))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await w.drain()
        assert server.received == [b"x"]
        assert proxy.connections[0].fired == ["upstream:stall"]


@pytest.mark.asyncio
async def test_slicing_delivers_small_segments_intact() -> None:
    """Sliced to 1-byte writes, the answer arrives whole but in many pieces."""
    async with relay(down(slice_size=1)) as (proxy, _), client(proxy) as (r, w):
        w.write(b"send\n")
        chunks: list[bytes] = []
        async with asyncio.timeout(READ_TIMEOUT):
            while sum(map(len, chunks)) < len(PAYLOAD):
                chunks.append(await r.read(65536))
    assert b"".join(chunks) == PAYLOAD
    assert len(chunks) > 10, [len(chunk) for chunk in chunks]


@pytest.mark.asyncio
async def test_latency_and_bandwidth_slow_but_intact() -> None:
    """Latency and a bandwidth cap delay the answer (lower bounds only)."""
    faults = ConnectionFaults(
        upstream=Faults(latency=0.1), downstream=Faults(bandwidth=10_000)
    )
    async with relay(faults) as (proxy, _), client(proxy) as (r, w):
        started = time.monotonic()
        w.write(b"send\n")
        async with asyncio.timeout(READ_TIMEOUT):
            assert await r.readexactly(len(PAYLOAD)) == PAYLOAD
        # 0.1 s latency + 2048 bytes at 10 kB/s = 0.3 s; allow for clock slack.
        assert time.monotonic() - started >= 0.25


@pytest.mark.asyncio
async def test_plan_per_connection() -> None:
    """A list gives each accepted connection its own faults; past its end, none."""
    plan = [ConnectionFaults(), down(reset_after=2)]
    async with relay(plan) as (proxy, _):
        for expected in [(PAYLOAD, "eof"), (PAYLOAD[:2], "reset"), (PAYLOAD, "eof")]:
            async with client(proxy) as (r, w):
                w.write(b"send\n")
                if expected[1] == "eof":
                    assert await r.readexactly(len(PAYLOAD)) == PAYLOAD
                    w.write_eof()
                    assert await read_until_end(r) == (b"", "eof")
                else:
                    assert await read_until_end(r) == expected
    assert [c.fired for c in proxy.connections] == [[], ["downstream:reset"], []]


@pytest.mark.asyncio
async def test_callable_plan_and_runtime_change() -> None:
    """A callable picks faults by index; ``proxy.faults`` can be swapped."""
    async with relay([]) as (proxy, _):
        proxy.faults = lambda index: down(close_after=index + 1)
        for index in range(2):
            async with client(proxy) as (r, w):
                w.write(b"send\n")
                assert await read_until_end(r) == (PAYLOAD[: index + 1], "eof")


@pytest.mark.asyncio
async def test_unreachable_upstream_resets_client() -> None:
    """When the upstream refuses, the client's connection is reset."""
    async with tolerant_server(_serve) as server:
        port = server.port
    async with fault_proxy("127.0.0.1", port) as proxy, client(proxy) as (r, _):
        assert await read_until_end(r) == (b"", "reset")
    assert proxy.connections[0].done


@pytest.mark.asyncio
async def test_tls_passes_through(
    ssl_context: ssl.SSLContext, server_ssl_context: ssl.SSLContext
) -> None:
    """TLS is relayed as bytes: the handshake is with the upstream server."""
    async with (
        tolerant_server(_serve, ssl=server_ssl_context) as server,
        fault_proxy(server.host, server.port, down(slice_size=7)) as proxy,
        client(proxy, ssl_context) as (r, w),
    ):
        w.write(b"send\n")
        async with asyncio.timeout(READ_TIMEOUT):
            assert await r.readexactly(len(PAYLOAD)) == PAYLOAD
    assert server.sni_names == ["localhost"]
    assert proxy.connections[0].downstream_bytes > len(PAYLOAD)


@pytest.mark.asyncio
async def test_exit_tears_down_open_connections() -> None:
    """Leaving the relay with a stalled connection open ends it for the client."""
    async with tolerant_server(_serve) as server, client_after_exit(server) as r:
        assert await read_until_end(r) == (b"", "reset")


@contextlib.asynccontextmanager
async def client_after_exit(
    server: ScriptedServer,
) -> AsyncIterator[asyncio.StreamReader]:
    """A client whose relay (stalled downstream) has already been closed."""
    async with fault_proxy(server.host, server.port, down(stall_after=0)) as proxy:
        reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
        try:
            writer.write(b"send\n")
            await proxy.wait_for(
                lambda: bool(proxy.connections and proxy.connections[0].fired)
            )
        except BaseException:
            writer.transport.abort()
            raise
    try:
        yield reader
    finally:
        writer.transport.abort()
