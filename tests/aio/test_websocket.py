"""examples/websocket.py (wsproto over ``network_stream``) against a real websockets
server on 127.0.0.1, plain and TLS, and scripted wsproto servers for the answers
websockets will not give (a 101 with frames in the same write, a wrong accept).

The example is loaded from its path, so the file users read is what is tested.
"""

from __future__ import annotations

import asyncio
import importlib.util
import ssl
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Close
from websockets.http11 import Request as WebsocketsRequest
from websockets.http11 import Response as WebsocketsResponse
from websockets.typing import Subprotocol
from wsproto import WSConnection
from wsproto.connection import ConnectionType
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    TextMessage,
)
from wsproto.events import Request as WsprotoRequest
from wsproto.utilities import generate_accept_token

import aio
from tests.peers.scripted import Handler, read_head, tolerant_server

pytestmark = pytest.mark.asyncio

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "websocket.py"
_spec = importlib.util.spec_from_file_location("wireline_websocket_example", EXAMPLE)
assert _spec is not None
assert _spec.loader is not None
example = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)
ConnectionClosed = example.ConnectionClosed
HandshakeError = example.HandshakeError
connect_websocket = example.connect_websocket

Handshake = Callable[[ServerConnection, WebsocketsRequest], WebsocketsResponse | None]


@asynccontextmanager
async def websockets_server(
    handler: Callable[[ServerConnection], Any],
    *,
    ssl: ssl.SSLContext | None = None,
    subprotocols: Sequence[Subprotocol] | None = None,
    process_request: Handshake | None = None,
) -> AsyncIterator[int]:
    """Serve ``handler`` with websockets on 127.0.0.1; yield the port."""
    async with serve(
        handler,
        "127.0.0.1",
        0,
        ssl=ssl,
        subprotocols=subprotocols,
        process_request=process_request,
    ) as server:
        yield next(iter(server.sockets)).getsockname()[1]


async def echo(connection: ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)


def wsproto_server(
    *,
    messages: Sequence[str | bytes] = (),
    tamper: Callable[[bytes], bytes] = lambda head: head,
    hang_up: bool = False,
) -> Handler:
    """A scripted server: accept with wsproto and write the 101 (through
    ``tamper``) and ``messages`` in a single write; then, unless ``hang_up``,
    answer a Close and stop."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        server = WSConnection(ConnectionType.SERVER)
        head = await read_head(reader)
        assert head is not None
        server.receive_data(head)
        assert isinstance(next(server.events()), WsprotoRequest)
        out = tamper(server.send(AcceptConnection()))
        for message in messages:
            event: Message[Any]
            if isinstance(message, str):
                event = TextMessage(data=message)
            else:
                event = BytesMessage(data=message)
            out += server.send(event)
        writer.write(out)
        await writer.drain()
        if hang_up:
            return
        while data := await reader.read(65536):
            server.receive_data(data)
            for received in server.events():
                if isinstance(received, CloseConnection):
                    writer.write(server.send(received.response()))
                    return

    return handler


async def receive(ws: Any) -> str | bytes:
    """``ws.receive()``, failing instead of hanging if a message never comes."""
    async with asyncio.timeout(5.0):
        message: str | bytes = await ws.receive()
    return message


def assert_no_connection_left(pool: aio.AsyncConnectionPool) -> None:
    assert pool.connections == []
    assert "Connections: 0 active, 0 idle" in repr(pool)


async def test_echo_text_and_binary_over_ws() -> None:
    """Text comes back as str and binary as bytes; the block's end closes 1000."""
    closes: list[Close | None] = []

    async def handler(connection: ServerConnection) -> None:
        await echo(connection)
        closes.append(connection.protocol.close_rcvd)

    async with websockets_server(handler) as port:
        async with aio.AsyncConnectionPool() as pool:
            url = f"ws://127.0.0.1:{port}/echo"
            async with connect_websocket(pool, url) as ws:
                assert ws.subprotocol is None
                await ws.send_text("hello, wörld")
                assert await receive(ws) == "hello, wörld"
                await ws.send_bytes(b"\x00\xff" * 40_000)
                assert await receive(ws) == b"\x00\xff" * 40_000
                await ws.send_text("")
                assert await receive(ws) == ""
            assert_no_connection_left(pool)
    assert closes == [Close(1000, "")]


async def test_echo_over_wss(
    ssl_context: ssl.SSLContext, server_ssl_context: ssl.SSLContext
) -> None:
    """wss:// runs the handshake and the frames over TLS."""
    async with websockets_server(echo, ssl=server_ssl_context) as port:
        async with aio.AsyncConnectionPool(ssl_context=ssl_context) as pool:
            async with connect_websocket(pool, f"wss://127.0.0.1:{port}/") as ws:
                await ws.send_text("secret")
                assert await receive(ws) == "secret"
                await ws.send_bytes(b"\x01\x02")
                assert await receive(ws) == b"\x01\x02"
            assert_no_connection_left(pool)


async def test_extensions_pass_through(
    ssl_context: ssl.SSLContext, server_ssl_context: ssl.SSLContext
) -> None:
    """trace, timeout and sni_hostname reach the handshake request."""
    sni_names: list[str | None] = []
    server_ssl_context.sni_callback = lambda _obj, name, _ctx: sni_names.append(name)
    events: list[str] = []
    extensions = {
        "trace": lambda name, info: events.append(name),
        "timeout": {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0},
        "sni_hostname": "localhost",
    }
    async with websockets_server(echo, ssl=server_ssl_context) as port:
        async with aio.AsyncConnectionPool(ssl_context=ssl_context) as pool:
            url = f"wss://127.0.0.1:{port}/"
            async with connect_websocket(pool, url, extensions=extensions) as ws:
                await ws.send_text("traced")
                assert await receive(ws) == "traced"
    assert sni_names == ["localhost"]
    assert "connection.start_tls.complete" in events
    assert "http11.receive_response_headers.complete" in events


async def test_subprotocol_and_extra_headers() -> None:
    """The server picks one offered subprotocol; extra headers are sent."""

    async def handler(connection: ServerConnection) -> None:
        assert connection.request is not None
        await connection.send(f"{connection.subprotocol} {connection.request.path}")
        await connection.send(connection.request.headers["X-Token"])

    async with websockets_server(handler, subprotocols=[Subprotocol("chat")]) as port:
        async with aio.AsyncConnectionPool() as pool:
            async with connect_websocket(
                pool,
                f"ws://127.0.0.1:{port}/room?id=7",
                subprotocols=("superchat", "chat"),
                headers=[("X-Token", "abc")],
            ) as ws:
                assert ws.subprotocol == "chat"
                assert await receive(ws) == "chat /room?id=7"
                assert await receive(ws) == "abc"


async def test_fragmented_messages_are_reassembled() -> None:
    """A message sent in several frames comes out of receive() whole."""

    async def handler(connection: ServerConnection) -> None:
        await connection.send(["frag", "ment", "ed"])
        await connection.send([b"\x01", b"\x02\x03"])

    async with websockets_server(handler) as port:
        async with connect_websocket(None, f"ws://127.0.0.1:{port}/") as ws:
            assert await receive(ws) == "fragmented"
            assert await receive(ws) == b"\x01\x02\x03"


async def test_message_right_after_the_handshake() -> None:
    """websockets sends at once from its handler: nothing is lost, whether the
    frame arrived with the 101 or after it."""

    async def handler(connection: ServerConnection) -> None:
        await connection.send("welcome")
        await connection.wait_closed()

    async with websockets_server(handler) as port:
        async with aio.AsyncConnectionPool() as pool:
            async with connect_websocket(pool, f"ws://127.0.0.1:{port}/") as ws:
                assert await receive(ws) == "welcome"
            assert_no_connection_left(pool)


async def test_frames_in_the_same_write_as_the_101() -> None:
    """Frames that came in the same read as the 101 are read first, in order."""
    messages: list[str | bytes] = ["first", b"second", "third"]
    async with tolerant_server(wsproto_server(messages=messages)) as server:
        async with aio.AsyncConnectionPool() as pool:
            async with connect_websocket(pool, f"ws://127.0.0.1:{server.port}/") as ws:
                assert [await receive(ws) for _ in messages] == messages
            assert_no_connection_left(pool)


async def test_informational_response_before_the_101() -> None:
    """A 100 Continue ahead of the 101 is skipped; frames after both arrive."""
    handler = wsproto_server(
        messages=["after 100"],
        tamper=lambda head: b"HTTP/1.1 100 Continue\r\n\r\n" + head,
    )
    async with tolerant_server(handler) as server:
        async with aio.AsyncConnectionPool() as pool:
            async with connect_websocket(pool, f"ws://127.0.0.1:{server.port}/") as ws:
                assert await receive(ws) == "after 100"
            assert_no_connection_left(pool)


async def test_handshake_on_a_kept_alive_connection() -> None:
    """The upgrade may reuse an idle connection of the same ws:// origin."""
    upgrade = wsproto_server(messages=["upgraded"])

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await upgrade(reader, writer)

    async with tolerant_server(handler) as server:
        async with aio.AsyncConnectionPool() as pool:
            url = f"ws://127.0.0.1:{server.port}/"
            assert (await pool.request("GET", url)).content == b"ok"
            async with connect_websocket(pool, url) as ws:
                assert await receive(ws) == "upgraded"
            assert_no_connection_left(pool)
    assert server.connections == 1


async def test_frames_buffered_with_the_101_on_the_mock_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Byte-exact: the 101 and two frames are one read of the network, so the
    frames can only come from the bytes buffered past the response head."""
    key = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's example
    monkeypatch.setattr(example, "generate_nonce", lambda: key)
    head = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
        + generate_accept_token(key)
        + b"\r\n\r\n"
    )
    frames = b"\x81\x05hello" + b"\x82\x02\x00\x01"  # unmasked: server to client
    backend = aio.AsyncMockBackend([head + frames])
    async with aio.AsyncConnectionPool(network_backend=backend) as pool:
        async with connect_websocket(pool, "ws://example.org/") as ws:
            assert await receive(ws) == "hello"
            assert await receive(ws) == b"\x00\x01"
            with pytest.raises(ConnectionClosed) as info:  # script over: EOF
                await receive(ws)
            assert info.value.code == 1006
        assert_no_connection_left(pool)


async def test_server_close_raises_with_code_and_reason() -> None:
    """The server's Close surfaces as ConnectionClosed, and is echoed back."""
    closes: list[Close | None] = []

    async def handler(connection: ServerConnection) -> None:
        await connection.send("bye soon")
        await connection.close(4001, "go away")
        closes.append(connection.protocol.close_rcvd)

    async with websockets_server(handler) as port:
        async with aio.AsyncConnectionPool() as pool:
            async with connect_websocket(pool, f"ws://127.0.0.1:{port}/") as ws:
                assert await receive(ws) == "bye soon"
                with pytest.raises(ConnectionClosed, match="4001") as info:
                    await receive(ws)
                assert (info.value.code, info.value.reason) == (4001, "go away")
                with pytest.raises(ConnectionClosed):  # and again, not a hang
                    await receive(ws)
                with pytest.raises(ConnectionClosed):
                    await ws.send_text("too late")
            assert_no_connection_left(pool)
    assert closes == [Close(4001, "go away")]


async def test_client_close_handshake() -> None:
    """close(code, reason) sends them and waits for the server's Close."""
    closes: list[Close | None] = []

    async def handler(connection: ServerConnection) -> None:
        await connection.wait_closed()
        closes.append(connection.protocol.close_rcvd)

    async with websockets_server(handler) as port:
        async with aio.AsyncConnectionPool() as pool:
            async with connect_websocket(pool, f"ws://127.0.0.1:{port}/") as ws:
                await ws.close(4000, "done here")
                with pytest.raises(ConnectionClosed) as info:
                    await receive(ws)
                assert info.value.code == 4000  # the server echoed our code
                await ws.close()  # a second close is a no-op
            assert_no_connection_left(pool)
    assert closes == [Close(4000, "done here")]


async def test_server_ping_is_answered() -> None:
    """receive() answers a ping: the server's pong waiter completes."""

    async def handler(connection: ServerConnection) -> None:
        pong_waiter = await connection.ping(b"are you there?")
        latency = await asyncio.wait_for(pong_waiter, 5.0)
        await connection.send(f"pong after {latency >= 0}")

    async with websockets_server(handler) as port:
        async with connect_websocket(None, f"ws://127.0.0.1:{port}/") as ws:
            assert await receive(ws) == "pong after True"


async def test_rejected_handshake() -> None:
    """A 403 raises HandshakeError with the status and closes the connection."""

    def forbid(
        connection: ServerConnection, request: WebsocketsRequest
    ) -> WebsocketsResponse:
        return connection.respond(HTTPStatus.FORBIDDEN, "Forbidden\n")

    async with websockets_server(echo, process_request=forbid) as port:
        async with aio.AsyncConnectionPool() as pool:
            with pytest.raises(HandshakeError, match="403 Forbidden") as info:
                async with connect_websocket(pool, f"ws://127.0.0.1:{port}/"):
                    pytest.fail("the block must not run")
            assert info.value.status == 403
            assert_no_connection_left(pool)


async def test_plain_http_server_is_a_handshake_error() -> None:
    """A server that ignores the upgrade (200) is refused too."""
    async with tolerant_server(plain_http_handler) as server:
        async with aio.AsyncConnectionPool() as pool:
            with pytest.raises(HandshakeError, match="200 OK") as info:
                async with connect_websocket(pool, f"ws://127.0.0.1:{server.port}/"):
                    pass
            assert info.value.status == 200
            assert_no_connection_left(pool)


async def plain_http_handler(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
    await writer.drain()
    await reader.read()


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (
            lambda head: head.replace(
                b"Sec-WebSocket-Accept: ", b"X-Was-Accept: "
            ).replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Accept: AAAA\r\n\r\n"),
            "Sec-WebSocket-Accept",
        ),
        (lambda head: head.replace(b"websocket", b"h2c"), "Upgrade: websocket"),
        (
            lambda head: head.replace(
                b"\r\n\r\n", b"\r\nSec-WebSocket-Protocol: x\r\n\r\n"
            ),
            "subprotocol 'x'",
        ),
    ],
    ids=["wrong-accept", "wrong-upgrade", "unoffered-subprotocol"],
)
async def test_bad_101_raises(tamper: Callable[[bytes], bytes], message: str) -> None:
    """A 101 that fails RFC 6455 §4.1's checks raises; nothing is left open."""
    async with tolerant_server(wsproto_server(tamper=tamper)) as server:
        async with aio.AsyncConnectionPool() as pool:
            with pytest.raises(HandshakeError, match=message) as info:
                async with connect_websocket(pool, f"ws://127.0.0.1:{server.port}/"):
                    pytest.fail("the block must not run")
            assert info.value.status == 101
            assert_no_connection_left(pool)


async def test_connection_lost_without_close_is_1006() -> None:
    """EOF without a Close frame: ConnectionClosed with code 1006."""
    async with tolerant_server(wsproto_server(messages=["last"], hang_up=True)) as srv:
        async with aio.AsyncConnectionPool() as pool:
            async with connect_websocket(pool, f"ws://127.0.0.1:{srv.port}/") as ws:
                assert await receive(ws) == "last"
                with pytest.raises(ConnectionClosed) as info:
                    await receive(ws)
                assert info.value.code == 1006
                async with asyncio.timeout(1.0):
                    await ws.close()  # nothing left to close: returns at once
            assert_no_connection_left(pool)


async def test_error_in_the_block_drops_the_connection() -> None:
    """An exception in the block skips the closing handshake: the server sees
    the connection end abnormally, and the pool holds nothing."""
    closes: list[int] = []

    async def handler(connection: ServerConnection) -> None:
        await connection.wait_closed()
        closes.append(connection.close_code or 0)

    async with websockets_server(handler) as port:
        async with aio.AsyncConnectionPool() as pool:
            with pytest.raises(RuntimeError, match="boom"):
                async with connect_websocket(pool, f"ws://127.0.0.1:{port}/"):
                    raise RuntimeError("boom")
            assert_no_connection_left(pool)
    assert closes == [1006]


@pytest.mark.parametrize("via", ["tinyproxy", "socks5h"])
@pytest.mark.parametrize("tls", [False, True])
async def test_echo_through_a_proxy(
    via: str,
    tls: bool,
    request: pytest.FixtureRequest,
    server_ssl_context: ssl.SSLContext,
    ssl_context: ssl.SSLContext,
) -> None:
    """ws:// and wss:// through a CONNECT tunnel (tinyproxy) and SOCKS5
    (microsocks): the upgrade happens inside the tunnel, and the example talks
    WebSocket on the network stream it gets back."""
    peer = request.getfixturevalue("tinyproxy" if via == "tinyproxy" else "microsocks")
    proxy_url = peer.url if via == "tinyproxy" else f"socks5h://127.0.0.1:{peer.port}"
    async with (
        websockets_server(echo, ssl=server_ssl_context if tls else None) as port,
        aio.AsyncConnectionPool(
            ssl_context=ssl_context, proxy=aio.Proxy(proxy_url)
        ) as pool,
    ):
        scheme = "wss" if tls else "ws"
        async with connect_websocket(
            pool, f"{scheme}://localhost:{port}/", extensions={"timeout": {"read": 5}}
        ) as ws:
            await ws.send_text("through the proxy")
            assert await asyncio.wait_for(ws.receive(), 5) == "through the proxy"
            await ws.send_bytes(b"\x00\x01")
            assert await asyncio.wait_for(ws.receive(), 5) == b"\x00\x01"
        assert pool.connections == []
