"""AsyncHTTPConnection against real servers on 127.0.0.1: hypercorn over TLS, plain
TCP and a Unix socket, and scripted asyncio servers for what hypercorn won't do."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from typing import Any

import pytest

import aio
from tests.peers.hypercorn_server import HypercornPeer
from tests.peers.scripted import canned_server, read_head, scripted_server

pytestmark = pytest.mark.asyncio


def origin_of(peer: HypercornPeer) -> aio.Origin:
    return aio.URL(peer.url).origin


async def test_https_get_over_hypercorn(
    hypercorn_tls: HypercornPeer, ssl_context: ssl.SSLContext
) -> None:
    """A GET over TLS returns the body with http_version and reason_phrase bytes."""
    async with aio.AsyncHTTPConnection(
        origin_of(hypercorn_tls), ssl_context=ssl_context
    ) as conn:
        response = await conn.request("GET", hypercorn_tls.url + "/")
    assert response.status == 200
    assert response.content == b"Hello, world!"
    assert response.extensions["http_version"] == b"HTTP/1.1"
    assert isinstance(response.extensions["reason_phrase"], bytes)


async def test_keep_alive_reuses_the_connection(
    hypercorn_plain: HypercornPeer,
) -> None:
    """Sequential requests share one TCP connection and the repr counts them."""
    async with aio.AsyncHTTPConnection(origin_of(hypercorn_plain)) as conn:
        first = await conn.request("GET", hypercorn_plain.url + "/")
        addr = first.extensions["network_stream"].get_extra_info("client_addr")
        second = await conn.request("GET", hypercorn_plain.url + "/bytes?n=10")
        assert second.content == b"x" * 10
        stream = second.extensions["network_stream"]
        assert stream.get_extra_info("client_addr") == addr
        assert repr(conn) == (
            f"<AsyncHTTPConnection ['{hypercorn_plain.url}', HTTP/1.1, IDLE, "
            "Request Count: 2]>"
        )
        assert conn.is_idle()
        assert conn.is_available()
        assert not conn.is_closed()
    assert conn.is_closed()


async def test_established_is_the_protocol_connection_and_read_only(
    hypercorn_plain: HypercornPeer,
) -> None:
    """``established`` is None until the first request connects, then the
    HTTP/1.1 connection carrying it; assigning it is refused."""
    async with aio.AsyncHTTPConnection(origin_of(hypercorn_plain)) as conn:
        assert conn.established is None
        response = await conn.request("GET", hypercorn_plain.url + "/")
        assert response.status == 200
        assert isinstance(conn.established, aio.AsyncHTTP11Connection)
        with pytest.raises(AttributeError):
            conn.established = None  # type: ignore[misc]
        assert isinstance(conn.established, aio.AsyncHTTP11Connection)


async def test_request_headers_and_body_reach_the_server(
    hypercorn_plain: HypercornPeer,
) -> None:
    """Host is added first, Content-Length for bytes, chunked for an iterator."""

    async def body() -> Any:
        yield b"abc"
        yield b"def"

    url = hypercorn_plain.url
    async with aio.AsyncHTTPConnection(origin_of(hypercorn_plain)) as conn:
        response = await conn.request("POST", url + "/headers", content=b"12345")
        info = json.loads(response.content)
        assert info["headers"][0] == ["host", f"127.0.0.1:{hypercorn_plain.port}"]
        assert ["content-length", "5"] in info["headers"]
        echoed = await conn.request("POST", url + "/echo", content=body())
        assert echoed.content == b"abcdef"
        response = await conn.request("POST", url + "/headers", content=body())
        headers = json.loads(response.content)["headers"]
        assert ["transfer-encoding", "chunked"] in headers


async def test_streaming_response_body(
    hypercorn_tls: HypercornPeer, ssl_context: ssl.SSLContext
) -> None:
    """stream() yields the chunked body as it arrives and releases the connection."""
    async with aio.AsyncHTTPConnection(
        origin_of(hypercorn_tls), ssl_context=ssl_context
    ) as conn:
        async with conn.stream(
            "GET", hypercorn_tls.url + "/stream?chunks=20&size=1000"
        ) as response:
            total = 0
            async for chunk in response.aiter_stream():
                total += len(chunk)
            assert conn.info().endswith("ACTIVE, Request Count: 1")
        assert total == 20_000
        assert conn.is_idle()


async def test_unread_response_closes_the_connection(
    hypercorn_plain: HypercornPeer,
) -> None:
    """Closing a response before its end discards the connection (no desync)."""
    async with aio.AsyncHTTPConnection(origin_of(hypercorn_plain)) as conn:
        async with conn.stream("GET", hypercorn_plain.url + "/bytes?n=100000"):
            pass
        assert conn.is_closed()
        with pytest.raises(aio.ConnectionNotAvailable):
            await conn.request("GET", hypercorn_plain.url + "/")


async def test_unix_socket(hypercorn_uds: HypercornPeer) -> None:
    """uds= sends the request over the Unix socket."""
    assert hypercorn_uds.uds_path is not None
    async with aio.AsyncHTTPConnection(
        aio.Origin(b"http", b"localhost", 80), uds=hypercorn_uds.uds_path
    ) as conn:
        response = await conn.request("GET", "http://localhost/")
    assert response.content == b"Hello, world!"


async def test_other_origin_is_a_runtime_error(hypercorn_plain: HypercornPeer) -> None:
    """A request for another origin raises RuntimeError and opens nothing."""
    conn = aio.AsyncHTTPConnection(origin_of(hypercorn_plain))
    with pytest.raises(RuntimeError, match="Attempted to send request to"):
        await conn.request("GET", "http://127.0.0.1:1/")
    assert repr(conn) == "<AsyncHTTPConnection [CONNECTING]>"


async def test_connect_failure_repr_and_error() -> None:
    """A refused connect raises ConnectError and the repr says CONNECTION FAILED."""
    async with scripted_server(lambda r, w: asyncio.sleep(0)) as server:
        port = server.port
    conn = aio.AsyncHTTPConnection(aio.Origin(b"http", b"127.0.0.1", port))
    with pytest.raises(aio.ConnectError):
        await conn.request("GET", f"http://127.0.0.1:{port}/")
    assert repr(conn) == "<AsyncHTTPConnection [CONNECTION FAILED]>"
    assert conn.has_expired()
    assert conn.is_closed()


class _FastSleepBackend(aio.AsyncIOBackend):
    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


async def test_retries_emit_retry_trace_events() -> None:
    """retries=2 makes three connect attempts, with connection.retry between them."""
    async with scripted_server(lambda r, w: asyncio.sleep(0)) as server:
        port = server.port
    events: list[str] = []
    conn = aio.AsyncHTTPConnection(
        aio.Origin(b"http", b"127.0.0.1", port),
        retries=2,
        network_backend=_FastSleepBackend(),
    )
    with pytest.raises(aio.ConnectError):
        await conn.request(
            "GET",
            f"http://127.0.0.1:{port}/",
            extensions={"trace": lambda name, info: events.append(name)},
        )
    assert events.count("connection.connect_tcp.failed") == 3
    assert events.count("connection.retry.complete") == 2


# -- the spec's extensions ---------------------------------------------------


async def test_trace_events_https_in_httpcore_order(
    hypercorn_tls: HypercornPeer, ssl_context: ssl.SSLContext
) -> None:
    """An async trace callback sees httpcore's events, info keys and return values."""
    seen: list[tuple[str, dict[str, Any]]] = []

    async def trace(name: str, info: dict[str, Any]) -> None:
        seen.append((name, info))

    async with aio.AsyncHTTPConnection(
        origin_of(hypercorn_tls), ssl_context=ssl_context
    ) as conn:
        await conn.request(
            "GET",
            hypercorn_tls.url + "/",
            extensions={"trace": trace, "timeout": {"connect": 3.0}},
        )
    names = [name for name, _ in seen]
    assert names == [
        "connection.connect_tcp.started",
        "connection.connect_tcp.complete",
        "connection.start_tls.started",
        "connection.start_tls.complete",
        "http11.send_request_headers.started",
        "http11.send_request_headers.complete",
        "http11.send_request_body.started",
        "http11.send_request_body.complete",
        "http11.receive_response_headers.started",
        "http11.receive_response_headers.complete",
        "http11.receive_response_body.started",
        "http11.receive_response_body.complete",
        "http11.response_closed.started",
        "http11.response_closed.complete",
    ]
    info = dict(seen)
    assert info["connection.connect_tcp.started"] == {
        "host": "127.0.0.1",
        "port": hypercorn_tls.port,
        "local_address": None,
        "timeout": 3.0,
        "socket_options": None,
    }
    stream = info["connection.connect_tcp.complete"]["return_value"]
    assert stream.get_extra_info("server_addr") == ("127.0.0.1", hypercorn_tls.port)
    tls = info["connection.start_tls.started"]
    assert tls["ssl_context"] is ssl_context
    assert tls["server_hostname"] == "127.0.0.1"
    tls_stream = info["connection.start_tls.complete"]["return_value"]
    assert tls_stream.get_extra_info("ssl_object").version().startswith("TLS")
    request = info["http11.send_request_headers.started"]["request"]
    assert repr(request) == "<Request [b'GET']>"
    complete = info["http11.receive_response_headers.complete"]
    version, status, reason, headers = complete["return_value"]
    assert (version, status) == (b"HTTP/1.1", 200)
    assert isinstance(reason, bytes)
    assert (b"content-length", b"13") in headers
    assert info["http11.response_closed.started"] == {}


async def test_trace_sync_callback_and_debug_logs(
    hypercorn_plain: HypercornPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """A sync callback works too, and the same events are logged at DEBUG."""
    names: list[str] = []
    caplog.set_level("DEBUG", logger="aio")
    async with aio.AsyncHTTPConnection(origin_of(hypercorn_plain)) as conn:
        await conn.request(
            "GET",
            hypercorn_plain.url + "/",
            extensions={"trace": lambda name, info: names.append(name)},
        )
    assert names[0] == "connection.connect_tcp.started"
    assert names[-1] == "http11.response_closed.complete"
    logged = [(r.name, r.getMessage().split(" ")[0]) for r in caplog.records]
    assert ("aio.connection", "connect_tcp.started") in logged
    assert ("aio.http11", "response_closed.complete") in logged


@pytest.mark.parametrize("read", ["aread", "aiter_stream"])
async def test_debug_logging_is_decided_once_per_response(
    hypercorn_plain: HypercornPeer, caplog: pytest.LogCaptureFixture, read: str
) -> None:
    """Whether a response's steps are logged is decided when its request is
    sent: DEBUG switched on between its head and its body logs none of its
    body or close steps, however the body is read; the next request's are."""
    async with aio.AsyncHTTPConnection(origin_of(hypercorn_plain)) as conn:
        async with conn.stream("GET", hypercorn_plain.url + "/") as response:
            caplog.set_level("DEBUG", logger="aio")
            if read == "aread":
                await response.aread()
            else:
                async for _ in response.aiter_stream():
                    pass
        assert not [r for r in caplog.records if r.name == "aio.http11"]
        await conn.request("GET", hypercorn_plain.url + "/")
    logged = [
        r.getMessage().split(" ")[0] for r in caplog.records if r.name == "aio.http11"
    ]
    assert "receive_response_body.complete" in logged
    assert logged[-1] == "response_closed.complete"


async def test_trace_failed_event_on_read_timeout() -> None:
    """A failing step reports .failed with the exception, then response_closed."""
    seen: list[tuple[str, dict[str, Any]]] = []

    async def silent(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_head(reader)
        await asyncio.sleep(10)

    async with scripted_server(silent) as server:
        async with aio.AsyncHTTPConnection(aio.URL(server.url).origin) as conn:
            with pytest.raises(aio.ReadTimeout):
                await conn.request(
                    "GET",
                    server.url + "/",
                    extensions={
                        "trace": lambda n, i: seen.append((n, i)),
                        "timeout": {"read": 0.1},
                    },
                )
            assert conn.is_closed()
    failed = dict(seen)["http11.receive_response_headers.failed"]
    assert isinstance(failed["exception"], aio.ReadTimeout)
    assert seen[-1][0] == "http11.response_closed.complete"


async def test_sni_hostname_connects_to_ip_and_verifies_name(
    server_ssl_context: ssl.SSLContext, ssl_context: ssl.SSLContext
) -> None:
    """sni_hostname is what the server receives as SNI and what the cert must match."""

    async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    async with scripted_server(ok, ssl=server_ssl_context) as server:
        origin = aio.Origin(b"https", b"127.0.0.1", server.port)
        async with aio.AsyncHTTPConnection(origin, ssl_context=ssl_context) as conn:
            response = await conn.request(
                "GET",
                server.url + "/",
                headers={"Host": "sni.wireline.test"},
                extensions={"sni_hostname": "sni.wireline.test"},
            )
        assert response.content == b"ok"
        assert server.sni_names == ["sni.wireline.test"]
        assert b"Host: sni.wireline.test\r\n" in server.received[0]

        conn = aio.AsyncHTTPConnection(origin, ssl_context=ssl_context)
        with pytest.raises(aio.ConnectError) as info:
            await conn.request(
                "GET", server.url + "/", extensions={"sni_hostname": "wrong.example"}
            )
        assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
        assert server.sni_names[-1] == "wrong.example"


@pytest.mark.parametrize("bad", ["evil\r\nX: y", "a b", "nul\x00", "", 42])
async def test_sni_hostname_rejected_before_connecting(bad: object) -> None:
    """An unsafe sni_hostname is a LocalProtocolError before any socket opens."""
    conn = aio.AsyncHTTPConnection(aio.Origin(b"https", b"127.0.0.1", 1))
    with pytest.raises(aio.LocalProtocolError, match="sni_hostname"):
        await conn.request(
            "GET", "https://127.0.0.1:1/", extensions={"sni_hostname": bad}
        )
    assert repr(conn) == "<AsyncHTTPConnection [CONNECTING]>"


async def test_target_extension_changes_only_the_request_line(
    hypercorn_plain: HypercornPeer,
) -> None:
    """extensions["target"] replaces the path sent; Host stays the URL's."""
    async with aio.AsyncHTTPConnection(origin_of(hypercorn_plain)) as conn:
        response = await conn.request(
            "GET",
            hypercorn_plain.url + "/ignored",
            extensions={"target": b"/headers?x=1"},
        )
    info = json.loads(response.content)
    assert (info["path"], info["query_string"]) == ("/headers", "x=1")


async def test_read_timeout_fires_on_time() -> None:
    """timeout.read raises ReadTimeout within 0.25 s of its value."""

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await asyncio.sleep(5)

    async with scripted_server(slow) as server:
        async with aio.AsyncHTTPConnection(aio.URL(server.url).origin) as conn:
            start = time.monotonic()
            with pytest.raises(aio.ReadTimeout):
                await conn.request(
                    "GET", server.url + "/", extensions={"timeout": {"read": 0.3}}
                )
            elapsed = time.monotonic() - start
    # uvloop's clock has millisecond granularity: a timer may fire ~1 ms early.
    assert 0.298 <= elapsed < 0.55


async def test_tls_handshake_timeout_is_connect_timeout() -> None:
    """A server that never answers the ClientHello trips timeout.connect."""

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async with scripted_server(mute) as server:
        conn = aio.AsyncHTTPConnection(aio.Origin(b"https", b"127.0.0.1", server.port))
        start = time.monotonic()
        with pytest.raises(aio.ConnectTimeout):
            await conn.request(
                "GET",
                f"https://127.0.0.1:{server.port}/",
                extensions={"timeout": {"connect": 0.3}},
            )
        elapsed = time.monotonic() - start
    # uvloop's clock has millisecond granularity: a timer may fire ~1 ms early.
    assert 0.298 <= elapsed < 0.55


async def test_write_timeout_fires_on_time() -> None:
    """timeout.write raises WriteTimeout when the server stops reading the body."""

    async def stalled(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await asyncio.sleep(5)

    async with scripted_server(stalled) as server:
        async with aio.AsyncHTTPConnection(aio.URL(server.url).origin) as conn:
            start = time.monotonic()
            with pytest.raises(aio.WriteTimeout):
                await conn.request(
                    "POST",
                    server.url + "/",
                    content=b"x" * (64 * 1024 * 1024),
                    extensions={"timeout": {"write": 0.3}},
                )
            elapsed = time.monotonic() - start
    # uvloop's clock has millisecond granularity: a timer may fire ~1 ms early.
    # The upper bound allows for making, copying and freeing the 64 MiB body
    # (0.1-0.6 s on a loaded 2-core VM): without the timeout the request
    # would wait for the stalled server, 5 s.
    assert 0.298 <= elapsed < 2.5


async def test_network_stream_extra_info(
    hypercorn_tls: HypercornPeer, ssl_context: ssl.SSLContext
) -> None:
    """network_stream exposes ssl_object, client_addr and server_addr."""
    async with aio.AsyncHTTPConnection(
        origin_of(hypercorn_tls), ssl_context=ssl_context
    ) as conn:
        async with conn.stream("GET", hypercorn_tls.url + "/") as response:
            stream = response.extensions["network_stream"]
            version = stream.get_extra_info("ssl_object").version()
            assert version in ("TLSv1.2", "TLSv1.3")
            server_addr = stream.get_extra_info("server_addr")
            assert server_addr == ("127.0.0.1", hypercorn_tls.port)
            assert stream.get_extra_info("client_addr")[0] == "127.0.0.1"
            assert stream.get_extra_info("no-such-key") is None
            await response.aread()


# -- upgrades and CONNECT: bytes already buffered come out first --------------


async def test_upgrade_101_hands_over_buffered_bytes() -> None:
    """After a 101, network_stream.read() returns bytes that came with the head."""

    async def upgrade(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_head(reader)
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n"
            b"Connection: Upgrade\r\n\r\nEARLY"
        )
        await writer.drain()
        data = await reader.read(100)
        writer.write(b"echo:" + data)
        await writer.drain()

    async with scripted_server(upgrade) as server:
        async with aio.AsyncHTTPConnection(aio.URL(server.url).origin) as conn:
            async with conn.stream(
                "GET",
                server.url + "/",
                headers={"Upgrade": "echo", "Connection": "Upgrade"},
            ) as response:
                assert response.status == 101
                stream = response.extensions["network_stream"]
                assert await stream.read(3) == b"EAR"
                assert await stream.read(100) == b"LY"
                await stream.write(b"ping")
                assert await stream.read(100) == b"echo:ping"
            assert conn.is_closed()


async def test_connect_200_hands_over_buffered_bytes() -> None:
    """A 2xx CONNECT yields a network_stream that returns buffered bytes first."""

    async def tunnel(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await read_head(reader)
        assert head is not None
        assert head.startswith(b"CONNECT example.com:443 ")
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\nTUNNELED")
        await writer.drain()
        await reader.read(1)

    async with scripted_server(tunnel) as server:
        async with aio.AsyncHTTPConnection(aio.URL(server.url).origin) as conn:
            async with conn.stream(
                "CONNECT",
                server.url + "/",
                extensions={"target": b"example.com:443"},
            ) as response:
                assert response.status == 200
                stream = response.extensions["network_stream"]
                assert stream.get_extra_info("is_readable") is True
                assert await stream.read(1000) == b"TUNNELED"


# -- malformed and truncated responses -----------------------------------------

MALFORMED = [
    pytest.param(b"HTTP/1.1 2OO OK\r\n\r\n", "malformed", id="bad-status-line"),
    pytest.param(b"HTTX/1.1 200 OK\r\n\r\n", "malformed", id="bad-protocol"),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n", "malformed", id="bad-header"
    ),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "Content-Length",
        id="conflicting-content-length",
    ),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",
        "max_header_bytes",
        id="oversized-head",
    ),
    pytest.param(
        b"HTTP/1.1 200 OK\r\n" + b"X: a\r\n" * 101 + b"\r\n",
        "max_header_count",
        id="too-many-headers",
    ),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        "incomplete|complete message body",
        id="short-body",
    ),
    pytest.param(b"", "Server disconnected without sending a response.", id="empty"),
]


@pytest.mark.parametrize(("reply", "rule"), MALFORMED)
@pytest.mark.parametrize("split", [False, True], ids=["one-write", "trickled"])
async def test_malformed_responses_raise_remote_protocol_error(
    reply: bytes, rule: str, split: bool
) -> None:
    """Each malformed reply raises RemoteProtocolError naming the rule, and the
    connection is closed (filterwarnings=error proves no socket leaks)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        if split:
            for start in range(0, len(reply), 4096):
                writer.write(reply[start : start + 4096])
                await writer.drain()
                await asyncio.sleep(0)
        else:
            writer.write(reply)
            await writer.drain()

    async with scripted_server(serve) as server:
        conn = aio.AsyncHTTPConnection(aio.URL(server.url).origin)
        with pytest.raises(aio.RemoteProtocolError, match=rule):
            await conn.request("GET", server.url + "/")
        assert conn.is_closed()


async def test_http10_response_read_to_eof() -> None:
    """An HTTP/1.0 response without Content-Length is read until the server closes."""
    async with canned_server([b"HTTP/1.0 200 OK\r\n\r\nold school"]) as server:
        async with aio.AsyncHTTPConnection(aio.URL(server.url).origin) as conn:
            response = await conn.request("GET", server.url + "/")
            assert response.content == b"old school"
            assert response.extensions["http_version"] == b"HTTP/1.0"
            assert conn.is_closed()


async def test_leftover_bytes_prevent_reuse() -> None:
    """A forged second response after a complete one means the connection closes."""
    forged = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
    )
    async with canned_server([forged], close_after=False) as server:
        async with aio.AsyncHTTPConnection(aio.URL(server.url).origin) as conn:
            response = await conn.request("GET", server.url + "/")
            assert response.content == b"ok"
            assert conn.is_closed()


async def test_server_closing_idle_connection_is_noticed() -> None:
    """has_expired() turns True once the server closed an idle keep-alive connection."""
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    async with canned_server([reply], close_after=True) as server:
        async with aio.AsyncHTTPConnection(aio.URL(server.url).origin) as conn:
            await conn.request("GET", server.url + "/")
            assert conn.is_idle()
            for _ in range(100):
                if conn.has_expired():
                    break
                await asyncio.sleep(0.01)
            assert conn.has_expired()


async def test_keepalive_expiry() -> None:
    """keepalive_expiry makes an idle connection report has_expired() after it."""
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    async with canned_server([reply], close_after=False) as server:
        async with aio.AsyncHTTPConnection(
            aio.URL(server.url).origin, keepalive_expiry=0.05
        ) as conn:
            await conn.request("GET", server.url + "/")
            assert not conn.has_expired()
            await asyncio.sleep(0.1)
            assert conn.has_expired()


async def test_cancellation_mid_response_closes_the_connection() -> None:
    """Cancelling a request while it waits for the response leaves it CLOSED."""

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await asyncio.sleep(5)

    async with scripted_server(slow) as server:
        async with aio.AsyncHTTPConnection(aio.URL(server.url).origin) as conn:
            task = asyncio.create_task(conn.request("GET", server.url + "/"))
            await server.wait_for(lambda: bool(server.received and server.received[0]))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert conn.is_closed()
            assert "CLOSED" in repr(conn)


async def test_early_response_while_uploading_is_read() -> None:
    """A server that answers 413 and closes mid-upload: the response is returned."""

    async def reject(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_head(reader)
        writer.write(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n"
            b"Connection: close\r\n\r\nbig"
        )
        await writer.drain()
        await asyncio.sleep(0.2)

    async def body() -> Any:
        for _ in range(200):
            yield b"x" * 65536
            await asyncio.sleep(0.001)

    async with scripted_server(reject) as server:
        async with aio.AsyncHTTPConnection(aio.URL(server.url).origin) as conn:
            response = await conn.request("POST", server.url + "/", content=body())
    assert (response.status, response.content) == (413, b"big")


async def test_default_context_offers_alpn_http11(
    hypercorn_tls: HypercornPeer,
    certs_dir: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without ssl_context, our own default context negotiates ALPN http/1.1."""
    from aio import connection

    # OpenSSL's default verify paths honour SSL_CERT_FILE: trust the test CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(certs_dir / "ca.pem"))
    connection._shared_ssl_context.cache_clear()
    try:
        async with aio.AsyncHTTPConnection(origin_of(hypercorn_tls)) as conn:
            async with conn.stream("GET", hypercorn_tls.url + "/") as response:
                ssl_object = response.extensions["network_stream"].get_extra_info(
                    "ssl_object"
                )
                assert ssl_object.selected_alpn_protocol() == "http/1.1"
                await response.aread()
    finally:
        connection._shared_ssl_context.cache_clear()


async def test_callers_ssl_context_is_not_mutated(
    hypercorn_tls: HypercornPeer, ssl_context: ssl.SSLContext
) -> None:
    """A caller's context is used as given: no ALPN is added to it."""
    async with aio.AsyncHTTPConnection(
        origin_of(hypercorn_tls), ssl_context=ssl_context
    ) as conn:
        async with conn.stream("GET", hypercorn_tls.url + "/") as response:
            ssl_object = response.extensions["network_stream"].get_extra_info(
                "ssl_object"
            )
            assert ssl_object.context is ssl_context
            assert ssl_object.selected_alpn_protocol() is None
            await response.aread()


async def test_every_trace_event_carries_a_monotonic_timestamp(
    hypercorn_plain: HypercornPeer,
) -> None:
    """info is a plain dict with httpcore's keys, plus .timestamp, taken when the
    event fired: non-decreasing and within the request's span."""
    stamps: list[float] = []

    def trace(name: str, info: dict[str, Any]) -> None:
        assert isinstance(info, aio.TraceInfo)
        stamps.append(info.timestamp)

    before = time.monotonic()
    async with aio.AsyncConnectionPool() as pool:
        await pool.request(
            "GET", hypercorn_plain.url + "/", extensions={"trace": trace}
        )
    after = time.monotonic()
    assert len(stamps) >= 14
    assert stamps == sorted(stamps)
    assert before <= stamps[0]
    assert stamps[-1] <= after
