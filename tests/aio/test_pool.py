"""AsyncConnectionPool against real servers on 127.0.0.1: httpcore's contract,
its limits, and the pool bugs httpcore users met that we avoid by design."""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from pathlib import Path
from typing import Any

import pytest

import aio
from tests.peers.hypercorn_server import HypercornPeer
from tests.peers.scripted import read_head, tolerant_server

pytestmark = pytest.mark.asyncio


@pytest.fixture
def h2_context(certs_dir: Path) -> ssl.SSLContext:
    """Trusts the test CA and offers ALPN h2 (aio never changes a caller's context)."""
    context = ssl.create_default_context(cafile=certs_dir / "ca.pem")
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


async def test_repr_and_connections_view(hypercorn_plain: HypercornPeer) -> None:
    """repr() shows requests and connections as httpcore's does; connections is a
    copy of the pooled connections."""
    async with aio.AsyncConnectionPool() as pool:
        assert repr(pool) == (
            "<AsyncConnectionPool [Requests: 0 active, 0 queued | "
            "Connections: 0 active, 0 idle]>"
        )
        async with pool.stream("GET", hypercorn_plain.url + "/") as response:
            assert repr(pool) == (
                "<AsyncConnectionPool [Requests: 1 active, 0 queued | "
                "Connections: 1 active, 0 idle]>"
            )
            await response.aread()
        assert repr(pool) == (
            "<AsyncConnectionPool [Requests: 0 active, 0 queued | "
            "Connections: 0 active, 1 idle]>"
        )
        (connection,) = pool.connections
        assert "HTTP/1.1, IDLE, Request Count: 1" in repr(connection)
        pool.connections.clear()
        assert len(pool.connections) == 1


async def test_keep_alive_reuse_through_the_pool(
    hypercorn_plain: HypercornPeer,
) -> None:
    """Sequential requests reuse one connection."""
    async with aio.AsyncConnectionPool() as pool:
        for _ in range(5):
            response = await pool.request("GET", hypercorn_plain.url + "/")
            assert response.content == b"Hello, world!"
        (connection,) = pool.connections
        assert "Request Count: 5" in repr(connection)


async def test_100_tasks_through_10_connections(hypercorn_plain: HypercornPeer) -> None:
    """100 concurrent requests share at most max_connections=10 connections."""
    async with aio.AsyncConnectionPool(max_connections=10) as pool:
        responses = await asyncio.gather(
            *[pool.request("GET", hypercorn_plain.url + "/") for _ in range(100)]
        )
        assert {r.status for r in responses} == {200}
        assert len(pool.connections) <= 10


async def test_http2_requests_share_one_connection(
    hypercorn_h2_tls: HypercornPeer, h2_context: ssl.SSLContext
) -> None:
    """With http2=True, 50 concurrent requests ride one HTTP/2 connection."""
    async with aio.AsyncConnectionPool(ssl_context=h2_context, http2=True) as pool:
        responses = await asyncio.gather(
            *[pool.request("GET", hypercorn_h2_tls.url + "/") for _ in range(50)]
        )
        assert {r.extensions["http_version"] for r in responses} == {b"HTTP/2"}
        assert len(pool.connections) == 1


async def test_pool_timeout_with_one_connection_held(
    hypercorn_plain: HypercornPeer,
) -> None:
    """max_connections=1 and a response held open: the next request raises
    PoolTimeout within 0.25 s of the pool timeout, and the pool stays usable."""
    async with aio.AsyncConnectionPool(max_connections=1) as pool:
        async with pool.stream("GET", hypercorn_plain.url + "/") as held:
            start = time.monotonic()
            with pytest.raises(aio.PoolTimeout):
                await pool.request(
                    "GET",
                    hypercorn_plain.url + "/",
                    extensions={"timeout": {"pool": 0.3}},
                )
            elapsed = time.monotonic() - start
            await held.aread()
        assert 0.298 <= elapsed < 0.55
        response = await pool.request("GET", hypercorn_plain.url + "/")
        assert response.status == 200
        assert "0 queued" in repr(pool)


async def test_total_deadline_covers_the_wait_for_a_connection(
    hypercorn_plain: HypercornPeer,
) -> None:
    """``total`` bounds the whole request, the pool wait included: with no
    ``pool`` key, a request queued behind a held connection raises PoolTimeout
    once its total runs out; the same Request object sent again later gets a
    deadline of its own and succeeds."""
    url = hypercorn_plain.url + "/"
    host = url.split("/")[2]
    request = aio.Request(
        "GET", url, headers={"Host": host}, extensions={"timeout": {"total": 0.3}}
    )
    async with aio.AsyncConnectionPool(max_connections=1) as pool:
        async with pool.stream("GET", url) as held:
            start = time.monotonic()
            with pytest.raises(aio.PoolTimeout):
                await pool.handle_async_request(request)
            elapsed = time.monotonic() - start
            await held.aread()
        assert 0.29 <= elapsed < 0.55
        await asyncio.sleep(0.35)  # past the first deadline
        response = await pool.handle_async_request(request)
        assert response.status == 200
        await response.aread()
        await response.aclose()
        assert pool.stats()["requests_active"] == 0


async def test_waiting_request_gets_the_released_connection(
    hypercorn_plain: HypercornPeer,
) -> None:
    """A request queued behind max_connections=1 proceeds when the first closes."""
    async with aio.AsyncConnectionPool(max_connections=1) as pool:
        async with pool.stream("GET", hypercorn_plain.url + "/") as held:
            waiter = asyncio.create_task(pool.request("GET", hypercorn_plain.url + "/"))
            await asyncio.sleep(0.05)
            assert "1 queued" in repr(pool)
            await held.aread()
        response = await asyncio.wait_for(waiter, 2)
        assert response.status == 200
        assert len(pool.connections) == 1


async def test_max_keepalive_counts_idle_connections_only(
    hypercorn_plain: HypercornPeer,
) -> None:
    """max_keepalive_connections=2 keeps two idle connections of five busy ones."""
    async with aio.AsyncConnectionPool(
        max_connections=10, max_keepalive_connections=2
    ) as pool:
        streams = [pool.stream("GET", hypercorn_plain.url + "/") for _ in range(5)]
        responses = [await s.__aenter__() for s in streams]
        assert len(pool.connections) == 5  # busy connections are not limited by it
        for stream, response in zip(streams, responses, strict=True):
            await response.aread()
            await stream.__aexit__(None, None, None)
        assert len(pool.connections) == 2
        assert repr(pool).endswith("Connections: 0 active, 2 idle]>")


async def test_keepalive_expiry_closes_idle_connections(
    hypercorn_plain: HypercornPeer,
) -> None:
    """An idle connection past keepalive_expiry is closed, not reused."""
    async with aio.AsyncConnectionPool(keepalive_expiry=0.1) as pool:
        await pool.request("GET", hypercorn_plain.url + "/")
        (first,) = pool.connections
        await asyncio.sleep(0.2)
        await pool.request("GET", hypercorn_plain.url + "/")
        (second,) = pool.connections
        assert second is not first
        assert first.is_closed()


async def test_server_closing_idle_connections_is_survived() -> None:
    """A server that closes idle connections after 0.2 s: requests at 0.1-0.5 s
    intervals all succeed (a dead idle connection is noticed or retried once)."""
    served = 0

    async def close_when_idle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal served
        while True:
            try:
                async with asyncio.timeout(0.2):
                    head = await read_head(reader)
            except TimeoutError:
                return
            if head is None:
                return
            served += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    async with tolerant_server(close_when_idle) as server:
        async with aio.AsyncConnectionPool() as pool:
            for delay in (0.1, 0.25, 0.15, 0.3, 0.5, 0.1, 0.21):
                await asyncio.sleep(delay)
                response = await pool.request("GET", server.url + "/")
                assert response.content == b"ok"
    assert served == 7


async def test_stale_keep_alive_race_is_retried_once() -> None:
    """The server drops a kept-alive connection as our request arrives: an
    idempotent request is retried once on a fresh connection."""
    connections = 0

    async def one_request_per_connection_then_rst(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal connections
        connections += 1
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        # Looks kept alive; closes silently as soon as the next request comes.
        await read_head(reader)

    async with tolerant_server(one_request_per_connection_then_rst) as server:
        async with aio.AsyncConnectionPool() as pool:
            assert (await pool.request("GET", server.url + "/")).content == b"ok"
            assert (await pool.request("GET", server.url + "/")).content == b"ok"
    assert connections == 2


async def test_non_idempotent_request_is_not_retried() -> None:
    """The same race on a POST raises instead of sending the body twice."""

    async def drop_second(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await read_head(reader)

    async with tolerant_server(drop_second) as server:
        async with aio.AsyncConnectionPool() as pool:
            await pool.request("GET", server.url + "/")
            with pytest.raises(aio.RemoteProtocolError, match="Server disconnected"):
                await pool.request("POST", server.url + "/", content=b"x")


async def test_sni_hostname_is_part_of_the_pool_key(
    server_ssl_context: ssl.SSLContext, ssl_context: ssl.SSLContext
) -> None:
    """Requests with different sni_hostname values never share a connection."""

    async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_head(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    async with tolerant_server(ok, ssl=server_ssl_context) as server:
        async with aio.AsyncConnectionPool(ssl_context=ssl_context) as pool:
            url = f"https://127.0.0.1:{server.port}/"
            for sni in ("localhost", "sni.wireline.test", "localhost"):
                await pool.request("GET", url, extensions={"sni_hostname": sni})
            assert len(pool.connections) == 2
        assert server.sni_names == ["localhost", "sni.wireline.test"]


async def test_unsupported_scheme_and_closed_pool(
    hypercorn_plain: HypercornPeer,
) -> None:
    """httpcore's UnsupportedProtocol messages; a closed pool refuses requests."""
    pool = aio.AsyncConnectionPool()
    with pytest.raises(aio.UnsupportedProtocol, match="unsupported protocol 'ftp://'"):
        await pool.request("GET", "ftp://example.com/")
    await pool.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await pool.request("GET", hypercorn_plain.url + "/")


async def test_aclose_fails_waiting_requests_and_closes_sockets(
    hypercorn_plain: HypercornPeer,
) -> None:
    """aclose() with a request queued fails it with a clear error; every
    connection is closed (filterwarnings=error proves no socket is left)."""
    pool = aio.AsyncConnectionPool(max_connections=1)
    slow_body = hypercorn_plain.url + "/stream?chunks=2&size=5&delay=0.3"
    async with pool.stream("GET", slow_body) as held:
        waiter = asyncio.create_task(pool.request("GET", hypercorn_plain.url + "/"))
        await asyncio.sleep(0.05)
        connection = pool.connections[0]
        await pool.aclose()
        with pytest.raises(RuntimeError, match="closed while the request was waiting"):
            await waiter
        assert connection.is_closed()
        with pytest.raises(aio.ReadError):
            await held.aread()


async def test_cancelled_waiting_request_leaves_no_trace(
    hypercorn_plain: HypercornPeer,
) -> None:
    """Cancelling queued and connecting requests leaves nothing queued or
    connecting; the pool serves the next request at once."""
    async with aio.AsyncConnectionPool(max_connections=1) as pool:
        async with pool.stream("GET", hypercorn_plain.url + "/") as held:
            waiter = asyncio.create_task(pool.request("GET", hypercorn_plain.url + "/"))
            await asyncio.sleep(0.02)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert "0 queued" in repr(pool)
            await held.aread()
        connecting = asyncio.create_task(
            pool.request("GET", hypercorn_plain.url + "/x")
        )
        await asyncio.sleep(0)
        connecting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await connecting
        async with asyncio.timeout(1):
            response = await pool.request("GET", hypercorn_plain.url + "/")
        assert response.status == 200
        assert "Requests: 0 active, 0 queued" in repr(pool)


async def test_top_level_request_and_stream(hypercorn_plain: HypercornPeer) -> None:
    """aio.request() and aio.stream() use a one-off pool."""
    response = await aio.request("GET", hypercorn_plain.url + "/")
    assert response.content == b"Hello, world!"
    async with aio.stream("GET", hypercorn_plain.url + "/bytes?n=5") as streamed:
        assert await streamed.aread() == b"xxxxx"


async def test_goaway_moves_requests_to_a_new_connection(
    server_ssl_context: ssl.SSLContext, h2_context: ssl.SSLContext
) -> None:
    """A server that answers one stream per connection then sends GOAWAY: every
    request still succeeds, on new connections, transparently."""
    from tests.peers.h2_server import H2Control, H2Request, h2_server

    async def one_then_goaway(ctl: H2Control, request: H2Request) -> None:
        await request.read_body()
        await ctl.goaway(last_stream_id=request.stream_id)
        await ctl.respond(request.stream_id, body=b"ok")

    async with h2_server(one_then_goaway, tls=server_ssl_context) as server:
        async with aio.AsyncConnectionPool(
            ssl_context=h2_context, http2=True, max_connections=3
        ) as pool:
            async with asyncio.timeout(10):
                results: list[Any] = await asyncio.gather(
                    *[pool.request("GET", server.url + "/") for _ in range(6)]
                )
            assert [r.content for r in results] == [b"ok"] * 6
        assert server.connections >= 2


async def test_cancelling_the_only_http2_request_keeps_the_connection(
    server_ssl_context: ssl.SSLContext, h2_context: ssl.SSLContext
) -> None:
    """A cancelled HTTP/2 request resets its stream only: the next request reuses
    the same connection (no new TCP and TLS handshake)."""
    from tests.peers.h2_server import h2_server, hold_until

    release = asyncio.Event()
    release.set()  # the warm-up request goes through; the second is held
    async with h2_server(hold_until(release), tls=server_ssl_context) as server:
        async with aio.AsyncConnectionPool(ssl_context=h2_context, http2=True) as pool:
            first = await pool.request("GET", server.url + "/warm")
            assert first.extensions["http_version"] == b"HTTP/2"
            (connection,) = pool.connections
            release.clear()
            task = asyncio.create_task(pool.request("GET", server.url + "/held"))
            await server.wait_for(lambda: len(server.requests) == 2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            release.set()
            again = await pool.request("GET", server.url + "/again")
            assert again.status == 200
            assert pool.connections == [connection]
        assert server.connections == 1


async def test_full_http2_connection_makes_the_pool_open_another(
    server_ssl_context: ssl.SSLContext, h2_context: ssl.SSLContext
) -> None:
    """A server allowing one stream per connection: two concurrent requests end
    up on two HTTP/2 connections (up to max_connections), both complete."""
    from tests.peers.h2_server import h2_server, hold_until

    release = asyncio.Event()
    async with h2_server(
        hold_until(release), tls=server_ssl_context, settings={3: 1}
    ) as server:
        async with aio.AsyncConnectionPool(
            ssl_context=h2_context, http2=True, max_connections=3
        ) as pool:
            release.set()
            await pool.request("GET", server.url + "/warm")  # learns the limit
            release.clear()
            tasks = [
                asyncio.create_task(pool.request("GET", server.url + f"/{n}"))
                for n in range(2)
            ]
            await server.wait_for(lambda: len(server.requests) == 3)
            release.set()
            responses = await asyncio.gather(*tasks)
            assert [r.status for r in responses] == [200, 200]
            assert len(pool.connections) == 2
        assert server.connections == 2


async def test_pool_timeout_is_one_deadline_across_requeues(
    server_ssl_context: ssl.SSLContext, h2_context: ssl.SSLContext
) -> None:
    """A request sent back to the queue after 0.3 s (GOAWAY above its stream)
    times out 0.5 s after it arrived, not 0.5 s after its requeue."""
    from tests.peers.h2_server import H2Control, H2Request, h2_server

    release = asyncio.Event()
    held_stream: list[int] = []

    async def handler(ctl: H2Control, request: H2Request) -> None:
        if request.path == b"/hold":
            held_stream.append(request.stream_id)
            await release.wait()
            await ctl.respond(request.stream_id, body=b"held")
        else:
            await asyncio.sleep(0.3)
            await ctl.goaway(last_stream_id=held_stream[0])

    async with h2_server(handler, tls=server_ssl_context) as server:
        async with aio.AsyncConnectionPool(
            ssl_context=h2_context, http2=True, max_connections=1
        ) as pool:
            holder = asyncio.create_task(pool.request("GET", server.url + "/hold"))
            await server.wait_for(lambda: bool(held_stream))
            start = time.monotonic()
            with pytest.raises(aio.PoolTimeout):
                await pool.request(
                    "GET", server.url + "/r", extensions={"timeout": {"pool": 0.5}}
                )
            elapsed = time.monotonic() - start
            release.set()
            assert (await holder).content == b"held"
    assert 0.498 <= elapsed < 0.75


async def test_pool_trace_events_say_opened_reused_and_waited(
    hypercorn_plain: HypercornPeer,
) -> None:
    """pool.acquire_connection reports the connection, whether it was reused
    and how long the request waited for it."""
    events: list[tuple[str, dict[str, Any]]] = []

    def trace(name: str, info: dict[str, Any]) -> None:
        if name.startswith("pool."):
            events.append((name, info))

    url = hypercorn_plain.url + "/"
    async with aio.AsyncConnectionPool(max_connections=1) as pool:
        await pool.request("GET", url, extensions={"trace": trace})
        await pool.request("GET", url, extensions={"trace": trace})
        first, second = events[1][1]["return_value"], events[3][1]["return_value"]
        assert [name for name, _ in events] == [
            "pool.acquire_connection.started",
            "pool.acquire_connection.complete",
        ] * 2
        assert first["reused"] is False
        assert second["reused"] is True
        assert first["connection"] is second["connection"] is pool.connections[0]
        events.clear()
        async with pool.stream("GET", url) as held:
            waiter = asyncio.create_task(
                pool.request("GET", url, extensions={"trace": trace})
            )
            await asyncio.sleep(0.2)
            assert pool.stats()["requests_waiting"] == 1
            await held.aread()
        await waiter
    waited = events[1][1]["return_value"]["waited"]
    assert 0.19 <= waited < 2.0


async def test_pool_acquire_failure_is_traced() -> None:
    """A pool timeout ends the event with .failed and the exception."""
    events: list[tuple[str, dict[str, Any]]] = []

    def trace(name: str, info: dict[str, Any]) -> None:
        if name.startswith("pool."):
            events.append((name, info))

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await asyncio.sleep(5)

    async with tolerant_server(hold) as server:
        async with aio.AsyncConnectionPool(max_connections=1) as pool:
            first = asyncio.create_task(pool.request("GET", server.url + "/"))
            await asyncio.sleep(0.1)
            with pytest.raises(aio.PoolTimeout):
                await pool.request(
                    "GET",
                    server.url + "/",
                    extensions={"trace": trace, "timeout": {"pool": 0.1}},
                )
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
    assert [name for name, _ in events] == [
        "pool.acquire_connection.started",
        "pool.acquire_connection.failed",
    ]
    assert isinstance(events[1][1]["exception"], aio.PoolTimeout)


async def test_stats_snapshot(
    hypercorn_h2_tls: HypercornPeer, h2_context: ssl.SSLContext
) -> None:
    """stats(): connections by state, requests holding or waiting for one."""
    async with aio.AsyncConnectionPool(ssl_context=h2_context, http2=True) as pool:
        assert pool.stats() == {
            "connections_connecting": 0,
            "connections_active": 0,
            "connections_idle": 0,
            "requests_active": 0,
            "requests_waiting": 0,
        }
        async with (
            pool.stream("GET", hypercorn_h2_tls.url + "/") as one,
            pool.stream("GET", hypercorn_h2_tls.url + "/") as two,
        ):
            stats = pool.stats()
            assert stats["connections_active"] == 1  # one HTTP/2 connection
            assert stats["requests_active"] == 2
            await one.aread()
            await two.aread()
        stats = pool.stats()
        assert stats["connections_idle"] == 1
        assert stats["requests_active"] == 0


async def test_wss_never_negotiates_http2(
    hypercorn_h2_tls: HypercornPeer,
    certs_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A WebSocket Upgrade needs HTTP/1.1: wss:// offers no h2 in ALPN, even with
    http2=True, while https:// to the same server speaks HTTP/2. (Our own
    contexts, made to trust the test CA here, are the ones that set ALPN.)"""

    def test_ca_context() -> ssl.SSLContext:
        return ssl.create_default_context(cafile=certs_dir / "ca.pem")

    monkeypatch.setattr(aio.connection, "default_ssl_context", test_ca_context)
    aio.connection._shared_ssl_context.cache_clear()
    monkeypatch.setattr(
        aio.connection,
        "_shared_ssl_context",
        functools.cache(aio.connection._shared_ssl_context.__wrapped__),
    )
    async with aio.AsyncConnectionPool(http2=True) as pool:
        for scheme, version in (("https", b"HTTP/2"), ("wss", b"HTTP/1.1")):
            url = f"{scheme}://localhost:{hypercorn_h2_tls.port}/"
            async with pool.stream("GET", url) as response:
                assert response.extensions["http_version"] == version


@pytest.mark.parametrize("http2", [False, True], ids=["http11", "http2"])
async def test_failing_response_closed_trace_still_releases_the_request(
    http2: bool,
    hypercorn_plain: HypercornPeer,
    hypercorn_h2_tls: HypercornPeer,
    h2_context: ssl.SSLContext,
) -> None:
    """The body gives the request's place back last, whatever happens before:
    here a trace callback that raises at response_closed."""

    class Refused(Exception):
        pass

    def trace(event: str, info: dict[str, Any]) -> None:
        if event.endswith(".response_closed.started"):
            raise Refused(event)

    url = (hypercorn_h2_tls if http2 else hypercorn_plain).url + "/"
    async with aio.AsyncConnectionPool(ssl_context=h2_context, http2=http2) as pool:
        with pytest.raises(Refused):
            await pool.request("GET", url, extensions={"trace": trace})
        stats = pool.stats()
        assert stats["requests_active"] == 0
        assert stats["connections_active"] == 0
        response = await pool.request("GET", url)
        assert response.content == b"Hello, world!"
        assert len(pool.connections) == 1


async def test_place_is_given_back_when_closing_the_stream_fails() -> None:
    """A stream whose abort() raises (a custom backend's) still gives the
    request's place back: the next request does not wait for it."""

    class Stream(aio.AsyncMockStream):
        def abort(self) -> None:
            raise OSError("abort failed")

    class Backend(aio.AsyncMockBackend):
        async def connect_tcp(self, *args: Any, **kwargs: Any) -> aio.AsyncMockStream:
            return Stream([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"])

    async with aio.AsyncConnectionPool(
        network_backend=Backend([]), max_connections=1
    ) as pool:
        for _ in range(2):  # the second finds the place free, then fails alike
            with pytest.raises(OSError, match="abort failed"):
                await pool.request(
                    "GET", "http://example.com/", extensions={"timeout": {"pool": 1}}
                )
            assert pool.stats()["requests_active"] == 0
            assert pool.stats()["connections_active"] == 0
