"""Regression tests for defects found in review: each failed before its fix."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, ClassVar

import pytest

import aio
from tests.peers.scripted import (
    canned_server,
    read_head,
    recording_server,
    tolerant_server,
)

pytestmark = pytest.mark.asyncio

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_concurrent_first_requests_open_one_connection() -> None:
    """Two requests racing on a fresh connection: one socket, the other request
    gets ConnectionNotAvailable (no orphaned socket, as filterwarnings proves)."""
    async with canned_server([OK], close_after=False) as server:
        async with aio.AsyncHTTPConnection(aio.URL(server.url).origin) as conn:
            results = await asyncio.gather(
                conn.request("GET", server.url + "/"),
                conn.request("GET", server.url + "/"),
                return_exceptions=True,
            )
            assert server.connections == 1
            outcomes = sorted(
                str(r.status) if isinstance(r, aio.Response) else type(r).__name__
                for r in results
            )
            assert outcomes == ["200", "ConnectionNotAvailable"]


class _FlakyTLSStream(aio.AsyncMockStream):
    def __init__(self, buffer: list[bytes], failures: list[int]) -> None:
        super().__init__(buffer)
        self._failures = failures

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> aio.AsyncNetworkStream:
        if self._failures[0] > 0:
            self._failures[0] -= 1
            raise aio.ConnectError("handshake failed")
        return self


class _FlakyTLSBackend(aio.AsyncMockBackend):
    def __init__(self, buffer: list[bytes], tls_failures: int) -> None:
        super().__init__(buffer)
        self.failures = [tls_failures]

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> aio.AsyncNetworkStream:
        return _FlakyTLSStream(list(self._buffer), self.failures)


async def test_retries_cover_the_tls_handshake() -> None:
    """retries=3 survives two failed TLS handshakes, tracing a retry after each."""
    names: list[str] = []
    backend = _FlakyTLSBackend([OK], tls_failures=2)
    origin = aio.Origin(b"https", b"example.com", 443)
    async with aio.AsyncHTTPConnection(
        origin, retries=3, network_backend=backend
    ) as conn:
        response = await conn.request(
            "GET",
            "https://example.com/",
            extensions={"trace": lambda name, info: names.append(name)},
        )
    assert response.content == b"ok"
    assert names.count("connection.start_tls.failed") == 2
    assert names.count("connection.retry.complete") == 2


async def test_reading_a_finished_body_again_raises_instead_of_spinning() -> None:
    """Iterating a response body a second time is a RuntimeError, not a hang."""
    stream = aio.AsyncMockStream([OK, b""])
    origin = aio.Origin(b"https", b"example.com", 443)
    async with aio.AsyncHTTP11Connection(origin, stream) as conn:
        response = await conn.request("GET", "https://example.com/")

        async def read_again() -> None:
            async for _ in response.stream:  # type: ignore[union-attr]
                pass

        with pytest.raises(RuntimeError, match="iterated once"):
            await asyncio.wait_for(read_again(), 1.0)


async def test_bytes_on_an_idle_connection_are_not_the_next_response() -> None:
    """A response the server sent unasked is never returned for the next request."""

    async def forge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(OK)
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged")
        await writer.drain()
        await asyncio.sleep(1)

    async with tolerant_server(forge) as server:
        async with aio.AsyncHTTPConnection(aio.URL(server.url).origin) as conn:
            await conn.request("GET", server.url + "/")
            await asyncio.sleep(0.2)
            with pytest.raises(aio.ConnectionNotAvailable):
                await conn.request("GET", server.url + "/")
            assert conn.is_closed()


async def test_error_after_a_valid_head_in_the_same_read() -> None:
    """Head plus a broken chunk in one read: the response is returned, and the
    body raises, exactly as when the bytes arrive in two reads."""
    stream = aio.AsyncMockStream(
        [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n"]
    )
    origin = aio.Origin(b"https", b"example.com", 443)
    async with aio.AsyncHTTP11Connection(origin, stream) as conn:
        async with conn.stream("GET", "https://example.com/") as response:
            assert response.status == 200
            with pytest.raises(aio.RemoteProtocolError, match="malformed"):
                await response.aread()
        assert conn.is_closed()


async def test_response_headers_are_normalised_and_validated() -> None:
    """Response(headers=[...]) converts str to bytes and refuses CR/LF."""
    response = aio.Response(200, headers=[("Content-Type", "text/plain")])
    assert response.headers == [(b"Content-Type", b"text/plain")]
    with pytest.raises(aio.LocalProtocolError):
        aio.Response(200, headers=[(b"X", b"bad\r\nInjected: 1")])


async def test_sync_body_is_refused_before_any_byte_is_sent() -> None:
    """A sync iterable body raises TypeError with nothing written to the server."""
    async with recording_server() as server:
        async with aio.AsyncHTTPConnection(aio.URL(server.url).origin) as conn:
            with pytest.raises(TypeError, match="async iterable"):
                await conn.request("POST", server.url + "/", content=iter([b"a"]))
            assert "NEW, Request Count: 0" in repr(conn)
            await asyncio.sleep(0.05)
        assert server.received == [b""]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/", "Request URL has an unsupported protocol 'ftp://'."),
        (
            "//example.com/",
            "Request URL is missing an 'http://' or 'https://' protocol.",
        ),
    ],
)
async def test_unsupported_schemes(url: str, message: str) -> None:
    """Schemes other than http/https/ws/wss raise UnsupportedProtocol, as httpcore."""
    conn = aio.AsyncHTTPConnection(aio.Origin(b"http", b"example.com", 80))
    with pytest.raises(aio.UnsupportedProtocol) as info:
        await conn.request("GET", url)
    assert str(info.value) == message


class _ReadingPool(aio.AsyncConnectionPool):
    """A pool whose handle_async_request reads the body before returning (as
    an auth or retry layer over it might)."""

    async def handle_async_request(self, request: aio.Request) -> aio.Response:
        response = await super().handle_async_request(request)
        await response.aread()
        return response


class _CountingResponse(aio.Response):
    """A Response subclass whose aread and aclose must be the ones called."""

    calls: ClassVar[list[str]] = []

    async def aread(self) -> bytes:
        self.calls.append("aread")
        return await super().aread()

    async def aclose(self) -> None:
        self.calls.append("aclose")
        await super().aclose()


class _SubclassingPool(aio.AsyncConnectionPool):
    async def handle_async_request(self, request: aio.Request) -> aio.Response:
        response = await super().handle_async_request(request)
        response.__class__ = _CountingResponse
        return response


async def test_request_on_a_response_already_read_returns_its_content() -> None:
    """request() over a handle_async_request that read the body: the content
    read is returned, as aread() does, and the connection is released."""
    async with canned_server([OK, OK], close_after=False) as server:
        async with _ReadingPool() as pool:
            for _ in range(2):
                response = await pool.request("GET", server.url + "/")
                assert response.content == b"ok"
            assert len(pool.connections) == 1
            assert pool.connections[0].is_idle()


async def test_request_calls_a_response_subclass_own_aread_and_aclose() -> None:
    """request() reads a Response subclass through its own aread and aclose."""
    _CountingResponse.calls = []
    async with canned_server([OK], close_after=False) as server:
        async with _SubclassingPool() as pool:
            response = await pool.request("GET", server.url + "/")
            assert response.content == b"ok"
    assert _CountingResponse.calls == ["aread", "aclose"]
