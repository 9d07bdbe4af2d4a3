"""A WebSocket client on wireline: wsproto frames over the ``network_stream``.

    async with connect_websocket(pool, "wss://example.org/chat") as ws:
        await ws.send_text("hello")
        print(await ws.receive())

The opening handshake (RFC 6455 §4.1) is a plain ``GET`` through the pool, so
TLS, pool limits and the ``timeout``/``trace``/``sni_hostname`` extensions apply.
wsproto's ``H11Handshake`` would write and parse HTTP itself; here that is
wireline's job, so we send the headers it sends and check the ``101`` by its
rules, then wsproto's sans-IO ``Connection`` frames the ``network_stream``.
``python examples/websocket.py`` runs a demo against a local echo server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, TextMessage
from wsproto.utilities import generate_accept_token, generate_nonce

import aio

READ_SIZE = 64 * 1024


class HandshakeError(Exception):
    """The server did not open a WebSocket; ``status`` is its HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ConnectionClosed(Exception):
    """The WebSocket is closed: ``code`` and ``reason`` of the server's Close
    frame (1006 if the connection ended without one)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"WebSocket closed with code {code}: {reason!r}")
        self.code = code
        self.reason = reason


class WebSocket:
    """An open client WebSocket; get one from :func:`connect_websocket`.

    ``receive()`` answers the server's pings, so keep receiving for pings to be
    answered. One task may send while another receives.
    """

    def __init__(
        self,
        stream: aio.AsyncNetworkStream,
        subprotocol: str | None,
        close_timeout: float,
    ) -> None:
        self._stream = stream
        self._ws = Connection(ConnectionType.CLIENT)
        self._close_timeout = close_timeout
        self._closed: tuple[int, str] | None = None  # the Close code and reason
        self._text: list[str] = []  # fragments of the message being received
        self._binary: list[bytes] = []
        self.subprotocol = subprotocol  # the one the server chose, if any

    async def send_text(self, text: str) -> None:
        """Send a text message."""
        await self._send_message(TextMessage(data=text))

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message."""
        await self._send_message(BytesMessage(data=data))

    async def receive(self) -> str | bytes:
        """Return the next message: ``str`` for text, ``bytes`` for binary.

        Raises:
            ConnectionClosed: The connection is closed (now or before).
        """
        while True:
            for event in self._ws.events():
                if isinstance(event, TextMessage):
                    self._text.append(event.data)
                    if event.message_finished:
                        text, self._text = "".join(self._text), []
                        return text
                elif isinstance(event, BytesMessage):
                    self._binary.append(bytes(event.data))
                    if event.message_finished:
                        data, self._binary = b"".join(self._binary), []
                        return data
                elif isinstance(event, Ping):
                    if self._ws.state is ConnectionState.OPEN:
                        await self._write(event.response())
                elif isinstance(event, CloseConnection):
                    self._closed = (event.code, event.reason or "")
                    if self._ws.state is ConnectionState.REMOTE_CLOSING:
                        await self._write(event.response())  # echo it: §5.5.1
            if self._closed is not None:
                raise ConnectionClosed(*self._closed)
            try:
                data = await self._stream.read(READ_SIZE)
            except aio.ReadError:
                data = b""
            # None tells wsproto the connection ended: a Close with code 1006.
            self._ws.receive_data(data or None)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Run the closing handshake: send a Close frame, then wait (at most
        ``close_timeout`` seconds) for the server's Close and its TCP close.
        Messages still arriving meanwhile are dropped. Safe to call twice."""
        with contextlib.suppress(TimeoutError, aio.NetworkError):
            async with asyncio.timeout(self._close_timeout):
                if self._ws.state is ConnectionState.OPEN:
                    await self._write(CloseConnection(code=code, reason=reason))
                with contextlib.suppress(ConnectionClosed):
                    while True:
                        await self.receive()
                # §7.1.1: the server closes TCP first; wait for its EOF.
                while await self._stream.read(READ_SIZE):
                    pass

    async def _send_message(self, event: TextMessage | BytesMessage) -> None:
        if self._ws.state is not ConnectionState.OPEN:
            raise ConnectionClosed(*(self._closed or (1006, "closing")))
        await self._write(event)

    async def _write(self, event: Event) -> None:
        await self._stream.write(self._ws.send(event))


def check_handshake(
    response: aio.Response, key: bytes, subprotocols: Sequence[str]
) -> str | None:
    """Check the server's answer (RFC 6455 §4.1); return the chosen subprotocol.

    Raises:
        HandshakeError: Not a valid ``101`` answer to our request.
    """

    def header(name: bytes) -> bytes:
        return b", ".join(v for n, v in response.headers if n.lower() == name)

    status = response.status
    if status != 101:
        reason = response.extensions.get("reason_phrase", b"").decode("latin-1")
        raise HandshakeError(
            f"the server answered {status} {reason}, not 101 Switching Protocols",
            status,
        )
    if header(b"upgrade").lower() != b"websocket":
        raise HandshakeError("the 101 lacks 'Upgrade: websocket'", status)
    if b"upgrade" not in header(b"connection").lower().replace(b" ", b"").split(b","):
        raise HandshakeError("the 101 lacks 'Connection: Upgrade'", status)
    if header(b"sec-websocket-accept") != generate_accept_token(key):
        raise HandshakeError("the 101 has a wrong Sec-WebSocket-Accept", status)
    if header(b"sec-websocket-extensions"):
        raise HandshakeError("the server chose an extension we did not offer", status)
    chosen = header(b"sec-websocket-protocol").decode("latin-1") or None
    if chosen is not None and chosen not in subprotocols:
        raise HandshakeError(f"the server chose subprotocol {chosen!r}", status)
    return chosen


@contextlib.asynccontextmanager
async def connect_websocket(
    pool: aio.AsyncConnectionPool | None,
    url: str,
    *,
    subprotocols: Sequence[str] = (),
    headers: Sequence[tuple[str, str]] = (),
    extensions: dict[str, Any] | None = None,
    close_timeout: float = 10.0,
) -> AsyncIterator[WebSocket]:
    """Open a WebSocket to ``url`` (``ws://`` or ``wss://``) and yield it.

    ``pool`` (None: a one-off pool) must allow HTTP/1.1; the WebSocket holds one
    of its connections until the block exits. ``headers`` are added to the
    handshake (``Origin``...), ``extensions`` are the request's. A block that
    ends normally closes with code 1000; one that raises drops the connection.

    Raises:
        HandshakeError: The server refused, or answered 101 wrongly.
        aio.ConnectError, aio.ConnectTimeout, ...: As ``pool.stream()``.
    """
    async with contextlib.AsyncExitStack() as stack:
        if pool is None:
            pool = await stack.enter_async_context(aio.AsyncConnectionPool())
        key = generate_nonce()  # base64 of 16 random bytes, as wsproto sends
        request_headers = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key.decode("ascii")),
            ("Sec-WebSocket-Version", "13"),
            *headers,
        ]
        if subprotocols:
            request_headers.append(("Sec-WebSocket-Protocol", ", ".join(subprotocols)))
        response = await stack.enter_async_context(
            pool.stream("GET", url, headers=request_headers, extensions=extensions)
        )
        # Leaving the stack closes the response, hence the connection, if the
        # handshake is refused or anything else fails from here on.
        subprotocol = check_handshake(response, key, subprotocols)
        # Bytes that came with the 101 (early frames) are read from it first.
        stream = response.extensions["network_stream"]
        websocket = WebSocket(stream, subprotocol, close_timeout)
        yield websocket
        await websocket.close()


async def main() -> None:
    """Echo a few messages through a local websockets server, then close."""
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(connection: ServerConnection) -> None:
        async for message in connection:
            await connection.send(message)

    async with (
        serve(echo, "127.0.0.1", 0) as server,
        aio.AsyncConnectionPool() as pool,
    ):
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect_websocket(pool, f"ws://127.0.0.1:{port}/echo") as ws:
            for message in ("hello", b"\x00\x01 binary \xff", "goodbye"):
                if isinstance(message, str):
                    await ws.send_text(message)
                else:
                    await ws.send_bytes(message)
                print(f"sent {message!r}, received {await ws.receive()!r}")
        print("closed with code 1000; pool:", pool)


if __name__ == "__main__":
    asyncio.run(main())
