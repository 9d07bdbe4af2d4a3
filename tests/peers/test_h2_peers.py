"""Self-tests for the HTTP/2 peers, using h2 in client mode directly (not wireline)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.events
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.exceptions import DenialOfServiceError, ProtocolError, TooManyStreamsError
from h2.settings import SettingCodes, Settings

from tests.peers.h2_server import (
    H2Control,
    H2Request,
    big_headers,
    h2_server,
    hold_until,
    respond_with,
)
from tests.peers.hypercorn_server import HypercornPeer
from tests.peers.nghttpd import NghttpdPeer
from tests.peers.nginx import NginxPeer, PeerBinaryMissing, find_binary

pytestmark = pytest.mark.usefixtures("no_asyncio_errors")

Header = tuple[bytes, bytes]


@dataclass(eq=False)
class Response:
    """What the client received on one stream."""

    status: bytes | None = None
    headers: list[Header] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    data_frames: int = 0
    trailers: list[Header] | None = None
    ended: bool = False
    reset_code: int | None = None

    def header(self, name: bytes) -> bytes | None:
        """First value of ``name``."""
        return next((v for n, v in self.headers if n == name), None)


class H2Client:
    """A minimal h2 client over asyncio streams, recording what it receives."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        authority: str,
        scheme: str,
        settings: dict[SettingCodes | int, int] | None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.authority = authority.encode()
        self.scheme = scheme.encode()
        self.conn = H2Connection(
            config=H2Configuration(client_side=True, header_encoding=None)
        )
        if settings:
            initial: dict[Any, int] = {**self.conn.local_settings, **settings}
            self.conn.local_settings = Settings(client=True, initial_values=initial)
        self.events: list[h2.events.Event] = []
        self.responses: dict[int, Response] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.settings_received = 0
        self.error: ProtocolError | None = None
        self.closed = False
        self._buffer = bytearray()
        ssl_object = writer.get_extra_info("ssl_object")
        self.alpn = ssl_object.selected_alpn_protocol() if ssl_object else None
        self.conn.initiate_connection()
        self.flush()

    def flush(self) -> None:
        """Write what h2 queued."""
        if data := self.conn.data_to_send():
            self.writer.write(data)

    def receive(self, data: bytes) -> None:
        """Feed bytes to h2 one whole frame at a time and record the events.

        Frame by frame, so the events of frames before one that h2 rejects
        (e.g. a GOAWAY before the HEADERS h2 then refuses) are not lost.
        """
        self._buffer += data
        while len(self._buffer) >= 9 and not self.closed:
            size = 9 + int.from_bytes(self._buffer[:3], "big")
            if len(self._buffer) < size:
                break
            frame, self._buffer = bytes(self._buffer[:size]), self._buffer[size:]
            try:
                events = self.conn.receive_data(frame)
            except ProtocolError as exc:
                self.error = exc
                self.closed = True
            else:
                for event in events:
                    self.events.append(event)
                    self._record(event)
            self.flush()

    def _record(self, event: h2.events.Event) -> None:
        stream_id = getattr(event, "stream_id", None) or 0
        response = self.responses.setdefault(stream_id, Response())
        if isinstance(event, h2.events.ResponseReceived):
            response.headers = list(event.headers or [])
            response.status = response.header(b":status")
        elif isinstance(event, h2.events.DataReceived):
            response.body += event.data or b""
            response.data_frames += 1
            size = event.flow_controlled_length or 0
            if size:
                self.conn.acknowledge_received_data(size, stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            response.trailers = list(event.headers or [])
        elif isinstance(event, h2.events.StreamEnded):
            response.ended = True
        elif isinstance(event, h2.events.StreamReset):
            response.reset_code = int(event.error_code or 0)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings_received += 1

    async def pump(self, until: Callable[[], bool], timeout: float = 5.0) -> None:
        """Read and process frames until ``until()`` holds or the connection ends."""
        async with asyncio.timeout(timeout):
            while not until() and not self.closed:
                data = await self.reader.read(65536)
                if not data:
                    self.closed = True
                    return
                self.receive(data)

    def start(
        self,
        path: str,
        *,
        method: str = "GET",
        headers: Sequence[Header] = (),
        end_stream: bool = True,
    ) -> int:
        """Send a request's HEADERS; return the stream id."""
        stream_id = self.conn.get_next_available_stream_id()
        block = [
            (b":method", method.encode()),
            (b":scheme", self.scheme),
            (b":authority", self.authority),
            (b":path", path.encode()),
            *headers,
        ]
        self.conn.send_headers(stream_id, block, end_stream=end_stream)
        self.flush()
        return stream_id

    def send_available(self, stream_id: int, data: bytes) -> int:
        """Send as much of ``data`` as the windows allow; return how much."""
        window = self.conn.local_flow_control_window(stream_id)
        size = min(window, len(data))
        sent = 0
        while sent < size:
            chunk = min(size - sent, self.conn.max_outbound_frame_size)
            self.conn.send_data(stream_id, data[sent : sent + chunk])
            sent += chunk
        self.flush()
        return size

    async def upload(self, stream_id: int, data: bytes) -> None:
        """Send all of ``data`` then END_STREAM, waiting for window updates."""
        while data:
            sent = self.send_available(stream_id, data)
            data = data[sent:]
            if data:
                await self.pump(
                    lambda: self.conn.local_flow_control_window(stream_id) > 0
                )
        self.conn.end_stream(stream_id)
        self.flush()

    def done(self, stream_id: int) -> Callable[[], bool]:
        """A predicate: the stream ended or was reset."""

        def predicate() -> bool:
            response = self.responses.get(stream_id)
            return response is not None and (
                response.ended or response.reset_code is not None
            )

        return predicate

    async def response(self, stream_id: int) -> Response:
        """Wait for the stream to end and return what arrived."""
        await self.pump(self.done(stream_id))
        return self.responses.setdefault(stream_id, Response())

    async def get(self, path: str) -> Response:
        """GET ``path`` and return the whole response."""
        return await self.response(self.start(path))


@contextlib.asynccontextmanager
async def h2_client(
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
    *,
    settings: dict[SettingCodes | int, int] | None = None,
) -> AsyncIterator[H2Client]:
    """Connect (TLS with ALPN h2, or cleartext prior knowledge); close on exit."""
    if ssl_context is not None:
        ssl_context.set_alpn_protocols(["h2"])
    reader, writer = await asyncio.open_connection(host, port, ssl=ssl_context)
    scheme = "https" if ssl_context is not None else "http"
    try:
        yield H2Client(reader, writer, f"{host}:{port}", scheme, settings)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


def assert_delivered_or_h2_closed(
    client: H2Client, stream_id: int, body: bytes
) -> None:
    """The response after GOAWAY arrived, or h2 refused it in state CLOSED.

    h2 4.4 closes its state machine on a received GOAWAY, so frames of streams
    the GOAWAY still covers raise ProtocolError (httpcore issue #46).
    """
    response = client.responses.get(stream_id)
    if response is not None and response.ended:
        assert response.body == body
    else:
        assert isinstance(client.error, ProtocolError)
        assert "state ConnectionState.CLOSED" in str(client.error)


# -- scripted server -----------------------------------------------------------


@pytest.mark.asyncio
async def test_scripted_default_response_over_tls(
    server_ssl_context: ssl.SSLContext, ssl_context: ssl.SSLContext
) -> None:
    """Default handler: 200, content-length, ``hello <path>``, over ALPN h2."""
    async with h2_server(tls=server_ssl_context) as server:
        assert server.url == f"https://127.0.0.1:{server.port}"
        async with h2_client(server.host, server.port, ssl_context) as client:
            response = await client.get("/x")
    assert client.alpn == "h2"
    assert response.status == b"200"
    assert response.header(b"content-length") == b"8"
    assert response.body == b"hello /x"
    assert server.connections == 1
    assert server.controls[0].alpn == "h2"
    assert server.requests[0][0] == 1
    assert (b":path", b"/x") in server.requests[0][1]


@pytest.mark.asyncio
async def test_scripted_cleartext_prior_knowledge() -> None:
    """Without ``tls`` the server speaks h2c with prior knowledge."""
    async with h2_server() as server:
        assert server.url.startswith("http://")
        async with h2_client(server.host, server.port) as client:
            first = await client.get("/a")
            second = await client.get("/b")
    assert [first.body, second.body] == [b"hello /a", b"hello /b"]
    assert [stream_id for stream_id, _ in server.requests] == [1, 3]


@pytest.mark.asyncio
async def test_scripted_unix_socket(uds_path: str) -> None:
    """``uds_path`` serves cleartext h2 on a Unix socket."""
    async with h2_server(uds_path=uds_path) as server:
        assert server.url == "http://localhost"
        reader, writer = await asyncio.open_unix_connection(uds_path)
        try:
            client = H2Client(reader, writer, "localhost", "http", None)
            response = await client.get("/uds")
        finally:
            writer.close()
            await writer.wait_closed()
    assert response.body == b"hello /uds"


@pytest.mark.asyncio
async def test_scripted_chunks_delays_and_trailers() -> None:
    """``respond`` sends one DATA frame per chunk, then trailers."""
    handler = respond_with(
        body=[b"one", b"two", b"three"], delay=0.01, trailers=[("x-sum", "11")]
    )
    async with h2_server(handler) as server:
        async with h2_client(server.host, server.port) as client:
            response = await client.get("/")
    assert response.body == b"onetwothree"
    assert response.data_frames == 3
    assert response.header(b"content-length") == b"11"
    assert response.trailers == [(b"x-sum", b"11")]


@pytest.mark.asyncio
async def test_scripted_goaway_after_response() -> None:
    """GOAWAY with an error code and last_stream_id reaches the client."""

    async def handler(ctl: H2Control, request: H2Request) -> None:
        await ctl.respond(request.stream_id, body=b"bye")
        await ctl.goaway(ErrorCodes.ENHANCE_YOUR_CALM, last_stream_id=1)

    async with h2_server(handler) as server:
        async with h2_client(server.host, server.port) as client:
            response = await client.get("/")
            await client.pump(lambda: client.goaway is not None)
    assert response.body == b"bye"
    assert client.goaway is not None
    assert client.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert client.goaway.last_stream_id == 1


@pytest.mark.asyncio
async def test_scripted_goaway_and_close_over_tls(
    server_ssl_context: ssl.SSLContext, ssl_context: ssl.SSLContext
) -> None:
    """``goaway(close=True)`` sends GOAWAY and then closes the TLS connection."""

    async def handler(ctl: H2Control, request: H2Request) -> None:
        await ctl.respond(request.stream_id, body=b"last")
        await ctl.goaway(ErrorCodes.NO_ERROR, close=True)

    async with h2_server(handler, tls=server_ssl_context) as server:
        async with h2_client(server.host, server.port, ssl_context) as client:
            response = await client.get("/")
            await client.pump(lambda: False)
    assert response.body == b"last"
    assert client.goaway is not None
    assert client.goaway.last_stream_id == 1
    assert client.closed


@pytest.mark.asyncio
async def test_scripted_goaway_before_response() -> None:
    """GOAWAY(last_stream_id=N) can go out before stream N's response."""
    sent: list[int] = []

    async def handler(ctl: H2Control, request: H2Request) -> None:
        await ctl.goaway(last_stream_id=request.stream_id)
        await asyncio.sleep(0.01)
        await ctl.respond(request.stream_id, body=b"late")
        sent.append(request.stream_id)

    async with h2_server(handler) as server:
        async with h2_client(server.host, server.port) as client:
            stream_id = client.start("/")
            await client.pump(client.done(stream_id))
    assert client.goaway is not None
    assert client.goaway.error_code == ErrorCodes.NO_ERROR
    assert client.goaway.last_stream_id == stream_id
    assert sent == [stream_id]
    assert_delivered_or_h2_closed(client, stream_id, b"late")


@pytest.mark.asyncio
async def test_scripted_reset_mid_body() -> None:
    """RST_STREAM after part of the body: the client sees both."""

    async def handler(ctl: H2Control, request: H2Request) -> None:
        await ctl.send_headers(request.stream_id, 200)
        await ctl.send_data(request.stream_id, b"partial")
        await ctl.reset(request.stream_id, ErrorCodes.INTERNAL_ERROR)

    async with h2_server(handler) as server:
        async with h2_client(server.host, server.port) as client:
            response = await client.get("/")
    assert response.body == b"partial"
    assert not response.ended
    assert response.reset_code == ErrorCodes.INTERNAL_ERROR


@pytest.mark.asyncio
async def test_scripted_records_client_reset() -> None:
    """A client RST_STREAM lands in ``.resets`` and ends the held handler."""
    release = asyncio.Event()
    async with h2_server(hold_until(release)) as server:
        async with h2_client(server.host, server.port) as client:
            stream_id = client.start("/")
            await server.wait_for(lambda: len(server.requests) == 1)
            client.conn.reset_stream(stream_id, ErrorCodes.CANCEL)
            client.flush()
            await server.wait_for(lambda: bool(server.resets))
    assert server.resets == [(stream_id, ErrorCodes.CANCEL)]
    assert server.streams[0].reset_code == ErrorCodes.CANCEL


@pytest.mark.asyncio
async def test_scripted_lowers_then_raises_max_concurrent_streams() -> None:
    """SETTINGS_MAX_CONCURRENT_STREAMS drops to 1 while 2 streams are open."""
    release = asyncio.Event()

    async def handler(ctl: H2Control, request: H2Request) -> None:
        if request.stream_id == 3:
            await ctl.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 1})
        await release.wait()
        await ctl.respond(request.stream_id, body=b"ok")
        if request.stream_id == 3:
            await ctl.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 10})

    async with h2_server(handler) as server:
        async with h2_client(server.host, server.port) as client:
            first, second = client.start("/1"), client.start("/2")
            await client.pump(
                lambda: client.conn.remote_settings.max_concurrent_streams == 1
            )
            with pytest.raises(TooManyStreamsError):
                client.start("/3")
            release.set()
            await client.pump(lambda: client.done(first)() and client.done(second)())
            await client.pump(
                lambda: client.conn.remote_settings.max_concurrent_streams == 10
            )
            third, fourth = client.start("/3"), client.start("/4")
            await client.pump(lambda: client.done(third)() and client.done(fourth)())
    assert client.responses[fourth].body == b"ok"
    assert [stream_id for stream_id, _ in server.requests] == [1, 3, 5, 7]


@pytest.mark.asyncio
async def test_scripted_withheld_window_stalls_upload() -> None:
    """A 16-byte window with WINDOW_UPDATE withheld stalls the upload."""

    async def handler(ctl: H2Control, request: H2Request) -> None:
        body = await request.read_body()
        await ctl.respond(request.stream_id, body=b"%d" % len(body))

    async with h2_server(handler, initial_window=16, withhold_window=True) as server:
        async with h2_client(server.host, server.port) as client:
            await client.pump(
                lambda: client.conn.remote_settings.initial_window_size == 16
            )
            stream_id = client.start("/up", method="POST", end_stream=False)
            assert client.send_available(stream_id, b"x" * 100) == 16
            assert client.conn.local_flow_control_window(stream_id) == 0
            await server.wait_for(
                lambda: bool(server.streams) and len(server.streams[0].body) == 16
            )
            with pytest.raises(TimeoutError):
                await client.pump(lambda: False, timeout=0.2)
            assert client.conn.local_flow_control_window(stream_id) == 0
            server.controls[0].release_window()
            await client.upload(stream_id, b"x" * 84)
            response = await client.response(stream_id)
    assert response.body == b"100"


@pytest.mark.asyncio
async def test_scripted_oversized_header_list() -> None:
    """200 KB of response headers trip h2's 64 KiB header-list limit."""

    async def handler(ctl: H2Control, request: H2Request) -> None:
        await ctl.respond(request.stream_id, headers=big_headers(200_000))

    async with h2_server(handler) as server:
        async with h2_client(server.host, server.port) as client:
            await client.pump(client.done(client.start("/")))
    assert isinstance(client.error, DenialOfServiceError)


@pytest.mark.asyncio
async def test_scripted_push_promise() -> None:
    """PUSH_PROMISE plus the pushed response reach a push-enabled client."""

    async def handler(ctl: H2Control, request: H2Request) -> None:
        promised = await ctl.push(request.stream_id, "/style.css", body=b"pushed")
        assert promised == 2
        await ctl.respond(request.stream_id, body=b"page")

    async with h2_server(handler) as server:
        async with h2_client(server.host, server.port) as client:
            page = await client.get("/")
            pushed = await client.response(2)
    promises = [
        e for e in client.events if isinstance(e, h2.events.PushedStreamReceived)
    ]
    assert [(p.parent_stream_id, p.pushed_stream_id) for p in promises] == [(1, 2)]
    assert (b":path", b"/style.css") in (promises[0].headers or [])
    assert [page.body, pushed.body] == [b"page", b"pushed"]


@pytest.mark.asyncio
async def test_scripted_raw_push_promise_violates_disabled_push() -> None:
    """``push_promise_raw`` ignores ENABLE_PUSH=0; h2 calls it a protocol error."""

    async def handler(ctl: H2Control, request: H2Request) -> None:
        await ctl.push_promise_raw(request.stream_id, "/forced")
        await ctl.respond(request.stream_id)

    async with h2_server(handler) as server:
        settings: dict[SettingCodes | int, int] = {SettingCodes.ENABLE_PUSH: 0}
        async with h2_client(server.host, server.port, settings=settings) as client:
            await client.pump(client.done(client.start("/")))
            await server.wait_for(lambda: bool(server.goaways))
    assert isinstance(client.error, ProtocolError)
    assert server.goaways == [(0, ErrorCodes.PROTOCOL_ERROR)]


@pytest.mark.asyncio
async def test_scripted_ping() -> None:
    """The server's PING reaches the client and its ACK is recorded."""

    async def handler(ctl: H2Control, request: H2Request) -> None:
        await ctl.ping(b"12345678")
        await ctl.respond(request.stream_id)

    async with h2_server(handler) as server:
        async with h2_client(server.host, server.port) as client:
            await client.get("/")
    pings = [e for e in client.events if isinstance(e, h2.events.PingReceived)]
    assert [p.ping_data for p in pings] == [b"12345678"]
    assert server.controls[0].ping_acks == [b"12345678"]


@pytest.mark.asyncio
async def test_scripted_hold_until_released() -> None:
    """``hold_until`` keeps the response back until the test sets the event."""
    release = asyncio.Event()
    async with h2_server(hold_until(release)) as server:
        async with h2_client(server.host, server.port) as client:
            stream_id = client.start("/held")
            with pytest.raises(TimeoutError):
                await client.pump(client.done(stream_id), timeout=0.2)
            release.set()
            response = await client.response(stream_id)
    assert response.body == b"hello /held"


@pytest.mark.asyncio
async def test_scripted_handler_error_resets_stream_and_is_raised() -> None:
    """A broken handler resets its stream and fails the ``async with``."""

    async def handler(ctl: H2Control, request: H2Request) -> None:
        raise RuntimeError("broken script")

    server_cm = h2_server(handler)
    server = await server_cm.__aenter__()
    try:
        async with h2_client(server.host, server.port) as client:
            response = await client.get("/")
    finally:
        with pytest.raises(RuntimeError, match="broken script"):
            await server_cm.__aexit__(None, None, None)
    assert response.reset_code == ErrorCodes.INTERNAL_ERROR


@pytest.mark.asyncio
async def test_scripted_records_client_protocol_error() -> None:
    """A client that breaks the protocol gets GOAWAY and is recorded."""
    async with h2_server() as server:
        async with h2_client(server.host, server.port) as client:
            # WINDOW_UPDATE with a zero increment on the connection.
            client.writer.write(b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00")
            await client.pump(lambda: client.goaway is not None)
    assert client.goaway is not None
    assert client.goaway.error_code == ErrorCodes.PROTOCOL_ERROR
    assert len(server.protocol_errors) == 1


# -- hypercorn -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_hypercorn_h2_tls(
    hypercorn_h2_tls: HypercornPeer, ssl_context: ssl.SSLContext
) -> None:
    """hypercorn negotiates ALPN h2 and answers over HTTP/2."""
    peer = hypercorn_h2_tls
    async with h2_client(peer.host, peer.port, ssl_context) as client:
        response = await client.get("/")
        info = await client.get("/headers")
    assert client.alpn == "h2"
    assert (response.status, bytes(response.body)) == (b"200", b"Hello, world!")
    assert b'"http_version": "2"' in info.body


@pytest.mark.asyncio
async def test_hypercorn_h2c_prior_knowledge(hypercorn_h2c: HypercornPeer) -> None:
    """hypercorn's plain port accepts h2 with prior knowledge."""
    async with h2_client(hypercorn_h2c.host, hypercorn_h2c.port) as client:
        response = await client.get("/")
        echo = client.start("/echo", method="POST", end_stream=False)
        await client.upload(echo, b"ping")
        echoed = await client.response(echo)
    assert (response.status, bytes(response.body)) == (b"200", b"Hello, world!")
    assert echoed.body == b"ping"


# -- nginx ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_nginx_h2_serves_hello_and_files(
    nginx_h2: NginxPeer, ssl_context: ssl.SSLContext
) -> None:
    """nginx answers ``/`` with hello and serves the docroot files over h2."""
    async with h2_client(nginx_h2.host, nginx_h2.port, ssl_context) as client:
        hello = await client.get("/")
        small = await client.get("/small.txt")
        large = await client.get("/large.bin")
    assert client.alpn == "h2"
    assert (hello.status, bytes(hello.body)) == (b"200", b"hello")
    assert small.body == nginx_h2.files["/small.txt"]
    assert large.body == nginx_h2.files["/large.bin"]
    assert client.conn.remote_settings.max_concurrent_streams == 128
    assert client.goaway is None


@pytest.mark.asyncio
async def test_nginx_goaway_after_keepalive_requests(
    nginx_h2_goaway: NginxPeer, ssl_context: ssl.SSLContext
) -> None:
    """``keepalive_requests 5``: GOAWAY(NO_ERROR, 9) precedes the 5th response."""
    peer = nginx_h2_goaway
    served = peer.read_access_log().count('"GET / HTTP/2.0" 200')
    async with h2_client(peer.host, peer.port, ssl_context) as client:
        for _ in range(4):
            await client.get("/")
            assert client.goaway is None
        fifth = client.start("/")
        await client.pump(client.done(fifth))
    assert client.goaway is not None
    assert client.goaway.error_code == ErrorCodes.NO_ERROR
    assert client.goaway.last_stream_id == 9
    assert_delivered_or_h2_closed(client, fifth, b"hello")
    for _ in range(500):  # nginx writes the log line right after sending
        if peer.read_access_log().count('"GET / HTTP/2.0" 200') >= served + 5:
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail(f"nginx did not log 5 requests:\n{peer.read_access_log()}")


# -- nghttpd -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_nghttpd_advertises_two_streams(
    nghttpd_small_streams: NghttpdPeer, ssl_context: ssl.SSLContext
) -> None:
    """``-m 2`` shows up as SETTINGS_MAX_CONCURRENT_STREAMS=2."""
    peer = nghttpd_small_streams
    async with h2_client(peer.host, peer.port, ssl_context) as client:
        await client.pump(lambda: client.settings_received > 0)
        first, second = client.start("/small.txt"), client.start("/large.bin")
        with pytest.raises(TooManyStreamsError):
            client.start("/index.html")
        await client.pump(lambda: client.done(first)() and client.done(second)())
    assert client.alpn == "h2"
    assert client.conn.remote_settings.max_concurrent_streams == 2
    assert client.responses[first].body == peer.files["/small.txt"]
    assert client.responses[second].body == peer.files["/large.bin"]


@pytest.mark.asyncio
async def test_nghttpd_tiny_window(
    nghttpd_tiny_window: NghttpdPeer, ssl_context: ssl.SSLContext
) -> None:
    """``-w 10``: a 1023-byte stream window; a 20 KB upload needs many updates."""
    peer = nghttpd_tiny_window
    async with h2_client(peer.host, peer.port, ssl_context) as client:
        # Upload only after the SETTINGS, so it runs under the 1023-byte window
        # (sent earlier, up to 65535 bytes go under the default window).
        await client.pump(lambda: client.settings_received > 0)
        assert client.conn.remote_settings.initial_window_size == 1023
        stream_id = client.start("/small.txt", method="POST", end_stream=False)
        await client.upload(stream_id, b"u" * 20_000)
        response = await client.response(stream_id)
    updates = [e for e in client.events if isinstance(e, h2.events.WindowUpdated)]
    assert response.status == b"200"
    assert response.body == peer.files["/small.txt"]
    assert len(updates) >= 10


@pytest.mark.asyncio
async def test_nghttpd_trailer(
    nghttpd_trailer: NghttpdPeer, ssl_context: ssl.SSLContext
) -> None:
    """``--trailer 'x-trailer: yes'`` adds a trailer after the body."""
    peer = nghttpd_trailer
    async with h2_client(peer.host, peer.port, ssl_context) as client:
        response = await client.get("/small.txt")
    assert response.body == peer.files["/small.txt"]
    assert response.trailers == [(b"x-trailer", b"yes")]


def test_missing_binary_names_make_target(tmp_path: Path) -> None:
    """A missing peer binary fails with a pointer to ``make install-peers``."""
    with pytest.raises(PeerBinaryMissing, match="make install-peers"):
        find_binary(f"wl-missing-{tmp_path.name}", "some-package")
