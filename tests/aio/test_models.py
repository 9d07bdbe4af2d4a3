"""Request, Response and ByteStream: httpcore's model contract, plus validation
that rejects wire-unsafe input when a request is built."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import aio


def test_request_fields_and_repr() -> None:
    """str inputs become bytes, headers become byte pairs, repr shows the method."""
    request = aio.Request("GET", "https://example.com/a?b=c", headers={"X-A": "1"})
    assert request.method == b"GET"
    assert request.url == aio.URL("https://example.com/a?b=c")
    assert request.headers == [(b"X-A", b"1")]
    assert request.extensions == {}
    assert repr(request) == "<Request [b'GET']>"
    assert repr(request.stream) == "<ByteStream [0 bytes]>"


def test_request_target_extension_replaces_only_the_target() -> None:
    """extensions["target"] sets url.target; scheme, host and port are kept."""
    request = aio.Request(
        "OPTIONS", "https://example.com:8443/x", extensions={"target": b"*"}
    )
    assert request.url == aio.URL(
        scheme=b"https", host=b"example.com", port=8443, target=b"*"
    )


@pytest.mark.parametrize(
    ("kwargs", "rule"),
    [
        ({"method": "GE T"}, "method"),
        ({"method": "GET\r\n"}, "method"),
        ({"headers": {"X-A": "1\r\nInjected: yes"}}, "RFC 9110 §5.5"),
        ({"headers": {"X-A": "nul\x00"}}, "RFC 9110 §5.5"),
        ({"headers": {"Bad Name": "v"}}, "RFC 9110 §5.1"),
        ({"headers": [(b"X\r\n", b"v")]}, "RFC 9110 §5.1"),
        ({"extensions": {"target": b"/a b"}}, "RFC 9112 §3.2"),
        ({"extensions": {"target": b"/a\r\nHost: evil"}}, "RFC 9112 §3.2"),
        ({"extensions": {"sni_hostname": "a\r\nb"}}, "sni_hostname"),
        ({"url": "http://exa\r\nmple.com/"}, "TAB, CR and LF"),
        ({"url": b"http://exa mple.com/"}, "host"),
    ],
)
def test_request_rejects_wire_unsafe_input(
    kwargs: dict[str, object], rule: str
) -> None:
    """CR, LF, NUL, spaces and separators are refused before any connection."""
    arguments: dict[str, object] = {"method": "GET", "url": "http://example.com/"}
    arguments.update(kwargs)
    with pytest.raises(aio.LocalProtocolError, match=rule):
        aio.Request(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (123, "url must be a URL, bytes, or str, but got int."),
        ("http://example.com/é", "url strings may not include unicode characters."),
    ],
)
def test_request_url_type_errors(url: object, message: str) -> None:
    """Wrong URL types give httpcore's TypeError messages."""
    with pytest.raises(TypeError) as info:
        aio.Request("GET", url)  # type: ignore[arg-type]
    assert str(info.value) == message


@pytest.mark.asyncio
async def test_response_read_and_content() -> None:
    """content raises before aread(); aread() caches; repr shows the status."""

    async def body() -> AsyncIterator[bytes]:
        yield b"ab"
        yield b"cd"

    response = aio.Response(200, content=body())
    assert repr(response) == "<Response [200]>"
    with pytest.raises(RuntimeError, match="aread"):
        _ = response.content
    assert await response.aread() == b"abcd"
    assert await response.aread() == b"abcd"
    assert response.content == b"abcd"
    await response.aclose()


@pytest.mark.asyncio
async def test_response_stream_iterated_twice_raises() -> None:
    """aiter_stream() a second time raises RuntimeError."""
    response = aio.Response(200, content=b"xyz")
    assert [chunk async for chunk in response.aiter_stream()] == [b"xyz"]
    with pytest.raises(RuntimeError, match="more than once"):
        [chunk async for chunk in response.aiter_stream()]


@pytest.mark.asyncio
async def test_response_sync_only_stream_refuses_async_iteration() -> None:
    """A sync-only body cannot be streamed asynchronously."""
    response = aio.Response(200, content=iter([b"a"]))
    with pytest.raises(RuntimeError, match="synchronous"):
        await response.aread()


def test_bytestream_iterates_its_bytes() -> None:
    """ByteStream yields its single bytes value and reports its size."""
    stream = aio.ByteStream(b"hello")
    assert list(stream) == [b"hello"]
    assert repr(stream) == "<ByteStream [5 bytes]>"


def test_exception_tree_matches_httpcore() -> None:
    """The exception classes have httpcore's bases and no shared base class."""
    assert issubclass(aio.ConnectTimeout, aio.TimeoutException)
    assert issubclass(aio.PoolTimeout, aio.TimeoutException)
    assert issubclass(aio.ReadError, aio.NetworkError)
    assert issubclass(aio.RemoteProtocolError, aio.ProtocolError)
    assert issubclass(aio.LocalProtocolError, aio.ProtocolError)
    assert not issubclass(aio.ProtocolError, aio.NetworkError)
    assert not issubclass(aio.TimeoutException, aio.NetworkError)
    for cls in (aio.ConnectionNotAvailable, aio.ProxyError, aio.UnsupportedProtocol):
        assert cls.__bases__ == (Exception,)
