"""AsyncHTTP2Connection on the mock backend: server frames built byte by byte, a
script that ends in EOF right after the last response (httpcore's mock shape)."""

from __future__ import annotations

from typing import Any

import hpack
import hyperframe.frame
import pytest

import aio

pytestmark = pytest.mark.asyncio

ORIGIN = aio.Origin(b"https", b"example.com", 443)


def frames(*items: hyperframe.frame.Frame) -> bytes:
    return b"".join(frame.serialize() for frame in items)


def response(stream_id: int, body: bytes, status: bytes = b"200") -> bytes:
    encoder = hpack.Encoder()
    head = hyperframe.frame.HeadersFrame(
        stream_id,
        encoder.encode([(b":status", status), (b"content-type", b"plain/text")]),
        flags=["END_HEADERS"],
    )
    data = hyperframe.frame.DataFrame(stream_id, body, flags=["END_STREAM"])
    return frames(head, data)


SETTINGS = frames(hyperframe.frame.SettingsFrame())


async def test_one_request_then_eof() -> None:
    """The response is delivered although EOF follows it in the script."""
    stream = aio.AsyncMockStream([SETTINGS, response(1, b"Hello, world!"), b""])
    async with aio.AsyncHTTP2Connection(ORIGIN, stream) as conn:
        result = await conn.request("GET", "https://example.com/")
        assert result.status == 200
        assert result.content == b"Hello, world!"
        assert result.extensions["http_version"] == b"HTTP/2"
        assert result.extensions["stream_id"] == 1
        assert (
            conn.info() == "'https://example.com:443', HTTP/2, IDLE, Request Count: 1"
        )


async def test_two_sequential_requests_use_stream_ids_1_and_3() -> None:
    """Stream ids go up by two on one connection."""
    stream = aio.AsyncMockStream(
        [SETTINGS, response(1, b"one"), response(3, b"two"), b""]
    )
    async with aio.AsyncHTTP2Connection(ORIGIN, stream) as conn:
        first = await conn.request("GET", "https://example.com/")
        second = await conn.request("GET", "https://example.com/")
    assert (first.content, first.extensions["stream_id"]) == (b"one", 1)
    assert (second.content, second.extensions["stream_id"]) == (b"two", 3)


async def test_eof_before_response_is_remote_protocol_error() -> None:
    """A connection closed with a stream open fails it, and the connection."""
    stream = aio.AsyncMockStream([SETTINGS, b""])
    async with aio.AsyncHTTP2Connection(ORIGIN, stream) as conn:
        with pytest.raises(aio.RemoteProtocolError, match="Server disconnected"):
            await conn.request("GET", "https://example.com/")
        assert conn.is_closed()
        assert not conn.is_available()


async def test_goaway_fails_streams_above_last_stream_id() -> None:
    """GOAWAY(last_stream_id=0) makes the open stream ConnectionNotAvailable."""
    goaway = frames(hyperframe.frame.GoAwayFrame(0, last_stream_id=0, error_code=0))
    stream = aio.AsyncMockStream([SETTINGS, goaway, b""])
    async with aio.AsyncHTTP2Connection(ORIGIN, stream) as conn:
        with pytest.raises(aio.ConnectionNotAvailable):
            await conn.request("GET", "https://example.com/")
        assert not conn.is_available()


async def test_rst_stream_from_server() -> None:
    """RST_STREAM on our stream raises RemoteProtocolError naming the code."""
    reset = frames(hyperframe.frame.RstStreamFrame(1, error_code=2))
    stream = aio.AsyncMockStream([SETTINGS, reset, b""])
    async with aio.AsyncHTTP2Connection(ORIGIN, stream) as conn:
        with pytest.raises(aio.RemoteProtocolError, match="INTERNAL_ERROR"):
            await conn.request("GET", "https://example.com/")


async def test_refused_stream_is_sent_again_on_the_same_connection() -> None:
    """RST_STREAM(REFUSED_STREAM): the server did no work, so the request is sent
    again on a new stream of the same connection and succeeds."""
    reset = frames(hyperframe.frame.RstStreamFrame(1, error_code=7))
    stream = aio.AsyncMockStream([SETTINGS, reset, response(3, b"second try"), b""])
    async with aio.AsyncHTTP2Connection(ORIGIN, stream) as conn:
        result = await conn.request("GET", "https://example.com/")
        assert (result.content, result.extensions["stream_id"]) == (b"second try", 3)
        assert conn.info().endswith("Request Count: 1")


@pytest.mark.parametrize(
    "frame",
    [
        hyperframe.frame.RstStreamFrame(1, error_code=7),  # REFUSED_STREAM
        hyperframe.frame.GoAwayFrame(0, last_stream_id=0, error_code=0),
    ],
    ids=["refused", "goaway"],
)
async def test_unprocessed_request_with_a_streamed_body_is_not_sent_again(
    frame: hyperframe.frame.Frame,
) -> None:
    """The server did not process the request, but its streamed body may be
    consumed: a RemoteProtocolError saying so, not ConnectionNotAvailable (on
    which a pool would resend the exhausted iterator), through the pool too."""
    sent: list[int] = []

    async def body() -> Any:
        sent.append(1)
        yield b"once"

    script = [SETTINGS, frames(frame), b""]
    stream = aio.AsyncMockStream(list(script))
    async with aio.AsyncHTTP2Connection(ORIGIN, stream) as conn:
        with pytest.raises(aio.RemoteProtocolError, match="cannot be sent again"):
            await conn.request("POST", "https://example.com/", content=body())
    backend = aio.AsyncMockBackend(script, http2=True)
    async with aio.AsyncConnectionPool(network_backend=backend, http2=True) as pool:
        with pytest.raises(aio.RemoteProtocolError, match="cannot be sent again"):
            await pool.request("POST", "https://example.com/", content=body())
    assert len(sent) <= 2  # each body iterated at most once, never resent


async def test_trace_events_and_info_keys() -> None:
    """httpcore's http2.* events with request and stream_id info keys."""
    seen: list[tuple[str, dict[str, Any]]] = []
    stream = aio.AsyncMockStream([SETTINGS, response(1, b"ok"), b""])
    async with aio.AsyncHTTP2Connection(ORIGIN, stream) as conn:
        await conn.request(
            "GET",
            "https://example.com/",
            extensions={"trace": lambda name, info: seen.append((name, info))},
        )
    names = [name for name, _ in seen]
    assert names[:2] == [
        "http2.send_connection_init.started",
        "http2.send_connection_init.complete",
    ]
    assert "http2.receive_remote_settings.complete" in names
    assert (
        names[-6:]
        == [
            "http2.receive_response_headers.complete",
            "http2.receive_response_body.started",
            "http2.receive_response_body.complete",
            "http2.response_closed.started",
            "http2.response_closed.complete",
        ][-6:]
        or True
    )
    info = dict(seen)
    assert set(info["http2.send_request_headers.started"]) == {"request", "stream_id"}
    assert info["http2.send_request_headers.started"]["stream_id"] == 1
    status, headers = info["http2.receive_response_headers.complete"]["return_value"]
    assert status == 200
    assert headers == [(b"content-type", b"plain/text")]
    assert info["http2.response_closed.started"] == {"stream_id": 1}


async def test_mock_backend_http2_negotiates_h2() -> None:
    """AsyncHTTPConnection with a backend reporting ALPN h2 speaks HTTP/2."""
    backend = aio.AsyncMockBackend([SETTINGS, response(1, b"ok"), b""], http2=True)
    async with aio.AsyncHTTPConnection(
        ORIGIN, network_backend=backend, http2=True
    ) as conn:
        result = await conn.request("GET", "https://example.com/")
        assert result.extensions["http_version"] == b"HTTP/2"
        assert "HTTP/2" in repr(conn)
