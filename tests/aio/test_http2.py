"""AsyncHTTP2Connection against real HTTP/2 peers on 127.0.0.1: hypercorn (TLS and
h2c), nginx, nghttpd, and a scripted h2 server for what they won't do on demand."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from pathlib import Path
from typing import Any

import pytest

import aio
from tests.peers.h2_server import H2Control, H2Request, h2_server, hold_until
from tests.peers.hypercorn_server import HypercornPeer
from tests.peers.nghttpd import NghttpdPeer
from tests.peers.nginx import NginxPeer

pytestmark = pytest.mark.asyncio


@pytest.fixture
def h2_context(certs_dir: Path) -> ssl.SSLContext:
    """A client context trusting the test CA that offers ALPN h2 itself (aio
    never modifies a caller's context)."""
    context = ssl.create_default_context(cafile=certs_dir / "ca.pem")
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


def connect(url: str, context: ssl.SSLContext | None, **kwargs: Any) -> Any:
    return aio.AsyncHTTPConnection(
        aio.URL(url).origin, ssl_context=context, http2=True, **kwargs
    )


async def test_alpn_h2_with_hypercorn(
    hypercorn_h2_tls: HypercornPeer, h2_context: ssl.SSLContext
) -> None:
    """http2=True negotiates h2: http_version, stream_id and network_stream."""
    async with connect(hypercorn_h2_tls.url, h2_context) as conn:
        async with conn.stream("GET", hypercorn_h2_tls.url + "/") as response:
            body = await response.aread()
            assert response.extensions["http_version"] == b"HTTP/2"
            assert response.extensions["stream_id"] == 1
            stream = response.extensions["network_stream"]
            assert stream.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        assert body == b"Hello, world!"
        assert repr(conn) == (
            f"<AsyncHTTPConnection ['{hypercorn_h2_tls.url}', HTTP/2, IDLE, "
            "Request Count: 1]>"
        )


async def test_alpn_falls_back_to_http11(
    hypercorn_tls: HypercornPeer, h2_context: ssl.SSLContext
) -> None:
    """A server that picks http/1.1 gets HTTP/1.1."""
    async with connect(hypercorn_tls.url, h2_context) as conn:
        response = await conn.request("GET", hypercorn_tls.url + "/")
    assert response.extensions["http_version"] == b"HTTP/1.1"


async def test_prior_knowledge_h2c(hypercorn_h2c: HypercornPeer) -> None:
    """http1=False, http2=True speaks HTTP/2 in clear text."""
    async with aio.AsyncHTTPConnection(
        aio.URL(hypercorn_h2c.url).origin, http1=False, http2=True
    ) as conn:
        response = await conn.request("GET", hypercorn_h2c.url + "/")
    assert response.extensions["http_version"] == b"HTTP/2"
    assert response.content == b"Hello, world!"


@pytest.mark.parametrize("peer", ["hypercorn_h2_tls", "nginx_h2"])
async def test_100_concurrent_requests_on_one_connection(
    peer: str, request: pytest.FixtureRequest, h2_context: ssl.SSLContext
) -> None:
    """100 concurrent requests share one connection, each on its own stream."""
    server = request.getfixturevalue(peer)
    path = "/" if peer.startswith("hypercorn") else next(iter(server.files))
    async with connect(server.url, h2_context) as conn:
        responses = await asyncio.gather(
            *[conn.request("GET", server.url + path) for _ in range(100)]
        )
        stream_ids = {r.extensions["stream_id"] for r in responses}
        assert len(stream_ids) == 100
        assert {r.status for r in responses} == {200}
        assert conn.info().endswith("HTTP/2, IDLE, Request Count: 100")


async def test_uploads_and_downloads_larger_than_windows(
    hypercorn_h2_tls: HypercornPeer, h2_context: ssl.SSLContext
) -> None:
    """A 3 MB echo crosses several flow-control windows both ways intact."""
    payload = bytes(range(256)) * (3 * 4096)
    async with connect(hypercorn_h2_tls.url, h2_context) as conn:
        response = await conn.request(
            "POST", hypercorn_h2_tls.url + "/echo", content=payload
        )
    assert response.content == payload


async def test_tiny_server_window_download(
    nghttpd_tiny_window: NghttpdPeer, h2_context: ssl.SSLContext
) -> None:
    """Downloads from nghttpd with tiny windows complete: we acknowledge data."""
    name, content = max(nghttpd_tiny_window.files.items(), key=lambda i: len(i[1]))
    async with connect(nghttpd_tiny_window.url, h2_context) as conn:
        response = await conn.request("GET", nghttpd_tiny_window.url + name)
    assert response.content == content


async def test_stream_limit_respected_with_nghttpd(
    nghttpd_small_streams: NghttpdPeer, h2_context: ssl.SSLContext
) -> None:
    """nghttpd -m 2: 20 concurrent requests all succeed (none refused)."""
    name = next(iter(nghttpd_small_streams.files))
    async with connect(nghttpd_small_streams.url, h2_context) as conn:
        responses = await asyncio.gather(
            *[conn.request("GET", nghttpd_small_streams.url + name) for _ in range(20)]
        )
    assert [r.status for r in responses] == [200] * 20


async def test_trailers_from_nghttpd(
    nghttpd_trailer: NghttpdPeer, h2_context: ssl.SSLContext
) -> None:
    """A response with trailers completes and its body is intact."""
    name, content = next(iter(nghttpd_trailer.files.items()))
    async with connect(nghttpd_trailer.url, h2_context) as conn:
        response = await conn.request("GET", nghttpd_trailer.url + name)
    assert response.content == content


async def test_nginx_goaway_after_keepalive_requests(
    nginx_h2_goaway: NginxPeer, h2_context: ssl.SSLContext
) -> None:
    """nginx's GOAWAY after keepalive_requests: streams it accepted complete, the
    rest raise ConnectionNotAvailable (for the pool to retry); nothing hangs."""
    server = nginx_h2_goaway
    path = next(iter(server.files))
    async with connect(server.url, h2_context) as conn:
        async with asyncio.timeout(10):
            results = await asyncio.gather(
                *[conn.request("GET", server.url + path) for _ in range(12)],
                return_exceptions=True,
            )
        ok = [r for r in results if isinstance(r, aio.Response)]
        refused = [r for r in results if isinstance(r, aio.ConnectionNotAvailable)]
        assert len(ok) == server.keepalive_requests, results
        assert len(ok) + len(refused) == 12, results
        assert not conn.is_available()
        with pytest.raises(aio.ConnectionNotAvailable):
            await conn.request("GET", server.url + path)


# -- scripted server: what real servers won't do on demand ---------------------


async def test_lowered_stream_limit_waits_instead_of_deadlocking(
    server_ssl_context: ssl.SSLContext, h2_context: ssl.SSLContext
) -> None:
    """The server lowers MAX_CONCURRENT_STREAMS to 1 while streams are open:
    later requests wait for a slot, never exceed it, and all complete."""
    active = 0
    peak_after_lowering = 0
    lowered = asyncio.Event()

    async def handler(ctl: H2Control, request: H2Request) -> None:
        nonlocal active, peak_after_lowering
        active += 1
        try:
            if request.stream_id == 1:
                await ctl.update_settings({3: 1})  # MAX_CONCURRENT_STREAMS
                lowered.set()
            elif lowered.is_set():
                peak_after_lowering = max(peak_after_lowering, active)
            await asyncio.sleep(0.02)
            await request.read_body()
            await ctl.respond(request.stream_id, body=b"ok")
        finally:
            active -= 1

    async with h2_server(handler, tls=server_ssl_context) as server:
        async with connect(server.url, h2_context) as conn:
            first = await conn.request("GET", server.url + "/")
            assert first.content == b"ok"
            async with asyncio.timeout(10):
                responses = await asyncio.gather(
                    *[conn.request("GET", server.url + "/") for _ in range(8)]
                )
    assert [r.content for r in responses] == [b"ok"] * 8
    assert peak_after_lowering <= 1


async def test_zero_window_upload_raises_write_timeout(
    server_ssl_context: ssl.SSLContext, h2_context: ssl.SSLContext
) -> None:
    """A server that never opens its window: WriteTimeout on time, no hang."""
    async with h2_server(
        tls=server_ssl_context, initial_window=16, withhold_window=True
    ) as server:
        async with connect(server.url, h2_context) as conn:
            start = time.monotonic()
            with pytest.raises(aio.WriteTimeout):
                await conn.request(
                    "POST",
                    server.url + "/",
                    content=b"x" * 100_000,
                    extensions={"timeout": {"write": 0.3}},
                )
            elapsed = time.monotonic() - start
            assert 0.298 <= elapsed < 0.55
            assert conn.is_available()


async def test_early_close_resets_the_stream_and_siblings_carry_on(
    server_ssl_context: ssl.SSLContext, h2_context: ssl.SSLContext
) -> None:
    """Closing a response mid-body sends RST_STREAM(CANCEL); a sibling stream
    on the same connection completes."""
    release = asyncio.Event()

    async def handler(ctl: H2Control, request: H2Request) -> None:
        await request.read_body()
        if request.path == b"/big":
            await ctl.send_headers(request.stream_id, 200)
            await ctl.send_data(request.stream_id, b"x" * 1000)
            await release.wait()
        else:
            await ctl.respond(request.stream_id, body=b"sibling")

    async with h2_server(handler, tls=server_ssl_context) as server:
        async with connect(server.url, h2_context) as conn:
            async with conn.stream("GET", server.url + "/big") as response:
                first = await anext(aiter(response.aiter_stream()))
                assert first == b"x" * 1000
            await server.wait_for(lambda: bool(server.resets))
            assert server.resets[0] == (1, 8)  # CANCEL
            sibling = await conn.request("GET", server.url + "/small")
            assert sibling.content == b"sibling"
            release.set()


async def test_read_timeout_resets_only_that_stream(
    server_ssl_context: ssl.SSLContext, h2_context: ssl.SSLContext
) -> None:
    """A stream that times out is reset; the connection keeps serving."""
    never = asyncio.Event()

    async def handler(ctl: H2Control, request: H2Request) -> None:
        if request.path == b"/slow":
            await never.wait()
        await request.read_body()
        await ctl.respond(request.stream_id, body=b"fast")

    async with h2_server(handler, tls=server_ssl_context) as server:
        async with connect(server.url, h2_context) as conn:
            with pytest.raises(aio.ReadTimeout):
                await conn.request(
                    "GET", server.url + "/slow", extensions={"timeout": {"read": 0.2}}
                )
            await server.wait_for(lambda: bool(server.resets))
            response = await conn.request("GET", server.url + "/fast")
            assert response.content == b"fast"
            never.set()


async def test_cancelled_request_frees_its_stream(
    server_ssl_context: ssl.SSLContext, h2_context: ssl.SSLContext
) -> None:
    """Cancelling a waiting request resets its stream and leaves the connection
    IDLE and usable."""
    hold = asyncio.Event()
    async with h2_server(hold_until(hold), tls=server_ssl_context) as server:
        async with connect(server.url, h2_context) as conn:
            task = asyncio.create_task(conn.request("GET", server.url + "/held"))
            await server.wait_for(lambda: bool(server.requests))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await server.wait_for(lambda: bool(server.resets))
            assert conn.is_idle()
            hold.set()
            response = await conn.request("GET", server.url + "/next")
            assert response.content == b"hello /next"


async def test_goaway_with_error_code_fails_unprocessed_streams(
    server_ssl_context: ssl.SSLContext, h2_context: ssl.SSLContext
) -> None:
    """GOAWAY(INTERNAL_ERROR, last_stream_id=0) makes the open request
    ConnectionNotAvailable and the connection unavailable."""

    async def handler(ctl: H2Control, request: H2Request) -> None:
        await ctl.goaway(error_code=2, last_stream_id=0)

    async with h2_server(handler, tls=server_ssl_context) as server:
        async with connect(server.url, h2_context) as conn:
            with pytest.raises(aio.ConnectionNotAvailable):
                await conn.request("GET", server.url + "/")
            assert not conn.is_available()


async def test_rst_stream_mid_body(
    server_ssl_context: ssl.SSLContext, h2_context: ssl.SSLContext
) -> None:
    """A reset after part of the body raises RemoteProtocolError while reading."""

    async def handler(ctl: H2Control, request: H2Request) -> None:
        await request.read_body()
        await ctl.send_headers(request.stream_id, 200)
        await ctl.send_data(request.stream_id, b"partial")
        await ctl.reset(request.stream_id, error_code=2)

    async with h2_server(handler, tls=server_ssl_context) as server:
        async with connect(server.url, h2_context) as conn:
            async with conn.stream("GET", server.url + "/") as response:
                with pytest.raises(aio.RemoteProtocolError, match="INTERNAL_ERROR"):
                    await response.aread()


async def test_push_promise_is_refused(
    server_ssl_context: ssl.SSLContext, h2_context: ssl.SSLContext
) -> None:
    """A PUSH_PROMISE (push was disabled) is a connection error."""

    async def handler(ctl: H2Control, request: H2Request) -> None:
        await ctl.push_promise_raw(request.stream_id, "/pushed")
        await asyncio.sleep(1)

    async with h2_server(handler, tls=server_ssl_context) as server:
        async with connect(server.url, h2_context) as conn:
            with pytest.raises(aio.RemoteProtocolError):
                await conn.request("GET", server.url + "/")
            assert conn.is_closed()


async def test_oversized_header_list_is_refused(
    server_ssl_context: ssl.SSLContext, h2_context: ssl.SSLContext
) -> None:
    """A response header list over 64 KiB is a RemoteProtocolError."""
    from tests.peers.h2_server import big_headers

    async def handler(ctl: H2Control, request: H2Request) -> None:
        await request.read_body()
        await ctl.respond(request.stream_id, headers=big_headers(200_000), body=b"")

    async with h2_server(handler, tls=server_ssl_context) as server:
        async with connect(server.url, h2_context) as conn:
            with pytest.raises(aio.RemoteProtocolError):
                await conn.request("GET", server.url + "/")


async def test_h2_trace_includes_remote_settings(
    hypercorn_h2_tls: HypercornPeer, h2_context: ssl.SSLContext
) -> None:
    """The first request sees http2.receive_remote_settings with the event."""
    seen: dict[str, Any] = {}

    async def trace(name: str, info: dict[str, Any]) -> None:
        seen[name] = info

    async with connect(hypercorn_h2_tls.url, h2_context) as conn:
        await conn.request(
            "GET", hypercorn_h2_tls.url + "/", extensions={"trace": trace}
        )
    settings = seen["http2.receive_remote_settings.complete"]["return_value"]
    assert settings.stream_id == 0
    assert seen["http2.send_request_headers.started"]["stream_id"] == 1


# -- regressions from the HTTP/2 review ------------------------------------------


async def test_uploads_answered_early_by_nginx_complete(
    nginx_h2: NginxPeer, h2_context: ssl.SSLContext
) -> None:
    """nginx answers 1 MiB POSTs before reading them (then RST_STREAM NO_ERROR):
    every upload stops waiting for window and returns the response."""
    body = b"x" * (1024 * 1024)
    async with connect(nginx_h2.url, h2_context) as conn:
        async with asyncio.timeout(10):
            responses = await asyncio.gather(
                *[
                    conn.request(
                        "POST",
                        nginx_h2.url + "/hello",
                        content=body,
                        extensions={"timeout": {"write": 5.0}},
                    )
                    for _ in range(10)
                ]
            )
    assert [r.status for r in responses] == [200] * 10


async def test_closing_unread_responses_does_not_starve_the_connection(
    server_ssl_context: ssl.SSLContext, h2_context: ssl.SSLContext
) -> None:
    """Data queued for responses closed unread is given back to the connection
    window: after 20 unread 1 MiB responses the connection still serves."""
    big = b"y" * (1024 * 1024)

    async def handler(ctl: H2Control, request: H2Request) -> None:
        await request.read_body()
        await ctl.respond(
            request.stream_id, body=big if request.path == b"/big" else b"ok"
        )

    async with h2_server(handler, tls=server_ssl_context) as server:
        async with connect(server.url, h2_context) as conn:
            for _ in range(20):
                async with conn.stream("GET", server.url + "/big") as response:
                    await asyncio.sleep(0.01)  # let the body arrive, unread
                    assert response.status == 200
            small = await conn.request(
                "GET", server.url + "/small", extensions={"timeout": {"read": 3.0}}
            )
            assert small.content == b"ok"


async def test_stream_slot_opened_by_settings_while_nothing_reads(
    server_ssl_context: ssl.SSLContext, h2_context: ssl.SSLContext
) -> None:
    """MAX_CONCURRENT_STREAMS=0, then raised while no stream is reading: the
    waiting request sees the new SETTINGS and goes ahead."""

    async def handler(ctl: H2Control, request: H2Request) -> None:
        await request.read_body()
        if request.stream_id == 1:
            await ctl.update_settings({3: 0}, wait_ack=False)
            await ctl.respond(request.stream_id, body=b"first")

            async def reopen() -> None:
                await asyncio.sleep(0.3)
                await ctl.update_settings({3: 10}, wait_ack=False)

            asyncio.get_running_loop().create_task(reopen())
        else:
            await ctl.respond(request.stream_id, body=b"second")

    async with h2_server(handler, tls=server_ssl_context) as server:
        async with connect(server.url, h2_context) as conn:
            first = await conn.request("GET", server.url + "/")
            assert first.content == b"first"
            async with asyncio.timeout(3):
                second = await conn.request("GET", server.url + "/")
            assert second.content == b"second"


async def test_cancelled_aclose_still_closes_the_socket(
    hypercorn_h2_tls: HypercornPeer, h2_context: ssl.SSLContext
) -> None:
    """aclose() cancelled mid-way still closes the transport (no leak, as
    filterwarnings=error would report)."""
    conn = connect(hypercorn_h2_tls.url, h2_context)
    async with conn.stream("GET", hypercorn_h2_tls.url + "/") as response:
        stream = response.extensions["network_stream"]
        await response.aread()
    task = asyncio.create_task(conn.aclose())
    await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await conn.aclose()
    with pytest.raises(aio.ReadError):
        await stream.read(1)
