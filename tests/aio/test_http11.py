"""AsyncHTTP11Connection on the in-memory mock backend: byte-exact scripts for
cases a real server cannot be made to produce on demand."""

from __future__ import annotations

from typing import Any

import pytest

import aio

pytestmark = pytest.mark.asyncio

ORIGIN = aio.Origin(b"https", b"example.com", 443)
OK = [
    b"HTTP/1.1 200 OK\r\n",
    b"Content-Type: plain/text\r\n",
    b"Content-Length: 13\r\n",
    b"\r\n",
    b"Hello, world!",
]


async def test_request_and_reuse_on_mock_stream() -> None:
    """Two requests on one mock stream; the repr tracks state and count."""
    stream = aio.AsyncMockStream(OK + OK)
    async with aio.AsyncHTTP11Connection(origin=ORIGIN, stream=stream) as conn:
        assert repr(conn) == (
            "<AsyncHTTP11Connection ['https://example.com:443', NEW, Request Count: 0]>"
        )
        response = await conn.request("GET", "https://example.com/")
        assert response.status == 200
        assert response.content == b"Hello, world!"
        assert response.extensions["reason_phrase"] == b"OK"
        assert (
            conn.info() == "'https://example.com:443', HTTP/1.1, IDLE, Request Count: 1"
        )
        await conn.request("GET", "https://example.com/")
        assert conn.is_idle()
        assert not conn.has_expired()
    assert conn.is_closed()


async def test_concurrent_request_is_not_available() -> None:
    """While a response is open, another request raises ConnectionNotAvailable."""
    stream = aio.AsyncMockStream(list(OK))
    async with aio.AsyncHTTP11Connection(origin=ORIGIN, stream=stream) as conn:
        async with conn.stream("GET", "https://example.com/"):
            assert not conn.is_available()
            with pytest.raises(aio.ConnectionNotAvailable):
                await conn.request("GET", "https://example.com/")


async def test_eof_after_response_then_new_request() -> None:
    """A script that ends in EOF after the response: the next request fails with
    httpcore's message and the connection closes."""
    stream = aio.AsyncMockStream([*OK, b""])
    async with aio.AsyncHTTP11Connection(origin=ORIGIN, stream=stream) as conn:
        await conn.request("GET", "https://example.com/")
        with pytest.raises(
            aio.RemoteProtocolError,
            match=r"^Server disconnected without sending a response\.$",
        ):
            await conn.request("GET", "https://example.com/")
        assert conn.is_closed()


async def test_informational_responses_are_skipped() -> None:
    """1xx responses before the final one are not returned."""
    stream = aio.AsyncMockStream(
        [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\n\r\n", *OK]
    )
    async with aio.AsyncHTTP11Connection(origin=ORIGIN, stream=stream) as conn:
        response = await conn.request("GET", "https://example.com/")
    assert response.status == 200


async def test_request_to_other_origin() -> None:
    """A request for another origin raises RuntimeError with httpcore's message."""
    stream = aio.AsyncMockStream(list(OK))
    async with aio.AsyncHTTP11Connection(origin=ORIGIN, stream=stream) as conn:
        with pytest.raises(RuntimeError, match="Attempted to send request to"):
            await conn.request("GET", "https://other.com/")


async def test_mock_backend_through_http_connection() -> None:
    """AsyncHTTPConnection over AsyncMockBackend: trace shows the mock stream."""
    names: list[str] = []
    backend = aio.AsyncMockBackend(list(OK))

    def trace(name: str, info: dict[str, Any]) -> None:
        names.append(name)

    async with aio.AsyncHTTPConnection(ORIGIN, network_backend=backend) as conn:
        response = await conn.request(
            "GET", "https://example.com/", extensions={"trace": trace}
        )
    assert response.content == b"Hello, world!"
    assert names[:4] == [
        "connection.connect_tcp.started",
        "connection.connect_tcp.complete",
        "connection.start_tls.started",
        "connection.start_tls.complete",
    ]


async def test_trailing_garbage_after_response_on_mock() -> None:
    """Bytes after a complete response in the same read mean no reuse."""
    stream = aio.AsyncMockStream(
        [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"]
    )
    async with aio.AsyncHTTP11Connection(origin=ORIGIN, stream=stream) as conn:
        response = await conn.request("GET", "https://example.com/")
        assert response.content == b"ok"
        assert conn.is_closed()


async def test_cl_and_te_response_is_not_reused() -> None:
    """Content-Length with Transfer-Encoding: body by chunks, connection closed."""
    stream = aio.AsyncMockStream(
        [
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
        ]
    )
    async with aio.AsyncHTTP11Connection(origin=ORIGIN, stream=stream) as conn:
        response = await conn.request("GET", "https://example.com/")
        assert response.content == b"ok"
        assert conn.is_closed()


async def test_head_response_with_body_is_not_reused() -> None:
    """A body after a HEAD answer is unsolicited: the connection closes."""
    stream = aio.AsyncMockStream([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"])
    async with aio.AsyncHTTP11Connection(origin=ORIGIN, stream=stream) as conn:
        response = await conn.request("HEAD", "https://example.com/")
        assert response.content == b""
        assert conn.is_closed()


async def test_request_body_iterator_errors_close_the_connection() -> None:
    """An exception from the caller's body iterator closes the connection."""

    async def body() -> Any:
        yield b"part"
        raise ValueError("caller bug")

    stream = aio.AsyncMockStream(list(OK))
    async with aio.AsyncHTTP11Connection(origin=ORIGIN, stream=stream) as conn:
        with pytest.raises(ValueError, match="caller bug"):
            await conn.request("POST", "https://example.com/", content=body())
        assert conn.is_closed()


@pytest.mark.parametrize("traced", [False, True], ids=["untraced", "traced"])
async def test_reading_a_101_body_leaves_the_new_protocol_bytes(traced: bool) -> None:
    """aread() of a 101 response is empty, traced or not: the bytes after the
    head are the new protocol's, read from network_stream."""
    stream = aio.AsyncMockStream(
        [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nNEW", b"MORE"]
    )
    events: list[str] = []
    extensions = {"trace": lambda name, info: events.append(name)} if traced else {}
    connection = aio.AsyncHTTP11Connection(origin=ORIGIN, stream=stream)
    async with connection.stream(
        "GET",
        "https://example.com/",
        headers={"Upgrade": "x", "Connection": "upgrade"},
        extensions=extensions,
    ) as response:
        assert response.status == 101
        assert await response.aread() == b""
        network_stream = response.extensions["network_stream"]
        assert await network_stream.read(100) == b"NEW"
        assert await network_stream.read(100) == b"MORE"
    assert ("http11.receive_response_body.complete" in events) is traced


@pytest.mark.parametrize("traced", [False, True], ids=["untraced", "traced"])
async def test_reading_a_body_with_trailers_skips_them(traced: bool) -> None:
    """Trailers end a chunked body without becoming part of it."""
    stream = aio.AsyncMockStream(
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"5\r\nHello\r\n0\r\nX-Checksum: 1\r\n\r\n",
        ]
    )
    extensions = {"trace": lambda name, info: None} if traced else {}
    async with aio.AsyncHTTP11Connection(origin=ORIGIN, stream=stream) as connection:
        response = await connection.request(
            "GET", "https://example.com/", extensions=extensions
        )
        assert response.content == b"Hello"
        assert connection.is_idle()
