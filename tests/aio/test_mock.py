"""AsyncMockBackend and AsyncMockStream: httpcore's in-memory replay semantics."""

from __future__ import annotations

import asyncio
import ssl

import pytest

import aio
from aio import AsyncMockBackend, AsyncMockStream

SCRIPT = [b"HTTP/1.1 200 OK\r\n", b"Content-Length: 2\r\n\r\n", b"ok"]


async def read_script(stream: aio.AsyncNetworkStream, max_bytes: int) -> list[bytes]:
    """Read until b"" and return every chunk, the final b"" included."""
    chunks = [await stream.read(max_bytes)]
    while chunks[-1]:
        chunks.append(await stream.read(max_bytes))
    return chunks


@pytest.mark.parametrize("max_bytes", [1, 5, 65536])
@pytest.mark.asyncio
async def test_read_returns_one_element_per_call_whatever_max_bytes(
    max_bytes: int,
) -> None:
    """Each read returns the next whole element, then b"" for ever."""
    stream = await AsyncMockBackend(SCRIPT).connect_tcp("example.com", 80)
    assert await read_script(stream, max_bytes) == [*SCRIPT, b""]
    assert await stream.read(max_bytes) == b""


@pytest.mark.asyncio
async def test_every_connection_replays_the_whole_script() -> None:
    """A second connect (TCP or Unix) starts again from the first element."""
    backend = AsyncMockBackend(SCRIPT)
    first = await backend.connect_tcp("example.com", 80)
    assert await read_script(first, 65536) == [*SCRIPT, b""]
    second = await backend.connect_tcp("example.com", 80)
    unix = await backend.connect_unix_socket("/nowhere.sock")
    assert await read_script(second, 65536) == [*SCRIPT, b""]
    assert await read_script(unix, 65536) == [*SCRIPT, b""]
    assert SCRIPT == [b"HTTP/1.1 200 OK\r\n", b"Content-Length: 2\r\n\r\n", b"ok"]


@pytest.mark.asyncio
async def test_read_after_aclose_raises_read_error() -> None:
    """After aclose(), read() raises ReadError even with elements left."""
    stream = await AsyncMockBackend(SCRIPT).connect_tcp("example.com", 80)
    assert await stream.read(65536) == SCRIPT[0]
    await stream.aclose()
    with pytest.raises(aio.ReadError):
        await stream.read(65536)


@pytest.mark.asyncio
async def test_write_is_ignored() -> None:
    """write() neither fails nor changes what read() returns."""
    stream = await AsyncMockBackend([b"a", b"b"]).connect_tcp("example.com", 80)
    await stream.write(b"GET / HTTP/1.1\r\n\r\n")
    assert await stream.read(65536) == b"a"
    await stream.write(b"more", timeout=0.0)
    assert await read_script(stream, 65536) == [b"b", b""]


@pytest.mark.asyncio
async def test_start_tls_returns_the_same_stream() -> None:
    """start_tls() hands back the very same stream, position kept."""
    stream = await AsyncMockBackend(SCRIPT).connect_tcp("example.com", 443)
    assert await stream.read(65536) == SCRIPT[0]
    tls = await stream.start_tls(ssl.create_default_context(), "example.com", 1.0)
    assert tls is stream
    assert await tls.read(65536) == SCRIPT[1]


@pytest.mark.parametrize(("http2", "alpn"), [(False, "http/1.1"), (True, "h2")])
@pytest.mark.asyncio
async def test_ssl_object_reports_alpn(http2: bool, alpn: str) -> None:
    """get_extra_info("ssl_object") selects h2 with http2=True, else http/1.1."""
    stream = await AsyncMockBackend(SCRIPT, http2=http2).connect_tcp("a.test", 443)
    ssl_object = stream.get_extra_info("ssl_object")
    assert ssl_object.selected_alpn_protocol() == alpn


@pytest.mark.parametrize(
    "key", ["client_addr", "server_addr", "socket", "is_readable", "peername", "x"]
)
@pytest.mark.asyncio
async def test_other_extra_info_keys_are_none(key: str) -> None:
    """Every get_extra_info key but ssl_object is None."""
    stream = await AsyncMockBackend(SCRIPT).connect_tcp("example.com", 80)
    assert stream.get_extra_info(key) is None


@pytest.mark.asyncio
async def test_mock_stream_can_be_built_directly() -> None:
    """AsyncMockStream(list, http2) replays the list it was given."""
    stream = AsyncMockStream([b"x", b"y"], http2=True)
    assert await read_script(stream, 1) == [b"x", b"y", b""]
    assert stream.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"


@pytest.mark.asyncio
async def test_sleep_returns_at_once() -> None:
    """The mock backend's sleep() does not wait."""
    loop_time = asyncio.get_running_loop().time
    start = loop_time()
    await AsyncMockBackend([]).sleep(60.0)
    assert loop_time() - start < 1.0
