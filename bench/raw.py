"""The raw floor: the least a Python asyncio client can do per request.

HTTP/1.1 (``RawHTTP11Client``): a bare ``asyncio.Protocol`` per connection
writes a pre-serialized request and frames the response by ``Content-Length``
alone (nginx always sends one for static files); a free list of connections
stands in for a pool. No header parsing beyond the status code and the length,
no validation, no allocation per request beyond a future.

HTTP/2 (``RawHTTP2Client``): one TLS connection (ALPN h2) speaking raw frames:
the preface, a SETTINGS frame (push off, the largest stream window), one
WINDOW_UPDATE that opens the connection window, then per request one HEADERS
frame with a pre-encoded HPACK block (indexed ``:method GET`` and ``:scheme
https``, ``:path`` and ``:authority`` as literals without indexing, so the same
bytes stay valid whatever the tables hold). Responses: the first byte of the
header block must be ``0x88`` (``:status 200`` from HPACK's static table, which
is how nginx sends it), DATA is counted up to END_STREAM, and the connection
window is refilled once half of it is used. SETTINGS and PING are
acknowledged; RST_STREAM and GOAWAY fail the requests concerned. Minimal, but
correct HTTP/2 against nginx: it is a floor, not a client.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import cast

from bench.base import BenchClient, BenchError, Endpoint, check_response

__all__ = ["H1Connection", "H1ConnectionPool", "RawHTTP2Client", "RawHTTP11Client"]


class H1Connection(asyncio.Protocol):
    """An HTTP/1.1 connection that carries one request at a time; subclasses
    set ``transport`` and ``_waiter`` and implement ``request``."""

    transport: asyncio.Transport | None
    _waiter: asyncio.Future[tuple[int, int]] | None

    async def request(self, path: str) -> tuple[int, int]:
        """Send a GET for ``path``; return the status and the body length."""
        raise NotImplementedError

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(BenchError(f"connection lost: {exc!r}"))

    def close(self) -> None:
        """Close the transport."""
        if self.transport is not None:
            self.transport.close()


class H1ConnectionPool:
    """``size`` connections opened up front, lent to one request at a time."""

    def __init__(self, endpoint: Endpoint, factory: type[H1Connection]) -> None:
        self.endpoint = endpoint
        self.factory = factory
        self.connections: list[H1Connection] = []
        self._idle: deque[H1Connection] = deque()
        self._waiters: deque[asyncio.Future[H1Connection]] = deque()

    async def open(self) -> None:
        """Open every connection (concurrently)."""
        loop = asyncio.get_running_loop()
        context = self.endpoint.ssl_context(["http/1.1"]) if self.endpoint.tls else None
        results = await asyncio.gather(
            *(
                loop.create_connection(
                    self.factory, self.endpoint.host, self.endpoint.port, ssl=context
                )
                for _ in range(self.endpoint.max_connections)
            )
        )
        self.connections = [protocol for _, protocol in results]
        self._idle.extend(self.connections)

    async def request(self, path: str) -> tuple[int, int]:
        """Borrow a connection (waiting in arrival order), run one request on it."""
        if self._idle:
            connection = self._idle.popleft()
        else:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            connection = await waiter
        try:
            return await connection.request(path)
        finally:
            self._release(connection)

    def _release(self, connection: H1Connection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)

    def close(self) -> None:
        """Close every connection."""
        for connection in self.connections:
            connection.close()


class RawHTTP11Protocol(H1Connection):
    """Pre-serialized requests; responses framed by ``Content-Length`` only."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.requests: dict[str, bytes] = {}
        self._head = bytearray()
        self._remaining: int | None = None  # None while the head is incomplete
        self._status = 0
        self._received = 0
        self._waiter: asyncio.Future[tuple[int, int]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance.
        self.transport = transport = cast(asyncio.Transport, transport)
        host, port = transport.get_extra_info("peername")[:2]
        self._host = f"{host}:{port}"

    async def request(self, path: str) -> tuple[int, int]:
        """Write the request bytes and wait for the framed response."""
        data = self.requests.get(path)
        if data is None:
            data = f"GET {path} HTTP/1.1\r\nHost: {self._host}\r\n\r\n".encode()
            self.requests[path] = data
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self._waiter

    def data_received(self, data: bytes) -> None:
        if self._remaining is None:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            body = len(self._head) - end - 4
            at = self._head.find(b"\r\nContent-Length: ", 0, end) + 18
            if at < 18:
                self._fail(BenchError("response without Content-Length"))
                return
            length = int(self._head[at : self._head.index(b"\r", at)])
            self._status = int(self._head[9:12])
            self._head.clear()
            self._remaining = length - body
            self._received = body
        else:
            self._remaining -= len(data)
            self._received += len(data)
        if self._remaining == 0:
            self._remaining = None
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result((self._status, self._received))
        elif self._remaining < 0:
            self._fail(BenchError("more bytes than Content-Length"))


class H1PoolClient(BenchClient):
    """A client of ``protocol`` connections from an :class:`H1ConnectionPool`."""

    protocol: type[H1Connection]

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint)
        if endpoint.http2:
            raise BenchError(f"{type(self).__name__} speaks HTTP/1.1 only")
        self.pool = H1ConnectionPool(endpoint, self.protocol)

    async def start(self) -> None:
        """Open ``max_connections`` connections."""
        await self.pool.open()

    async def get(self, path: str, expected: int) -> None:
        """One request on a free connection."""
        status, length = await self.pool.request(path)
        check_response(status, length, expected)

    async def download(self, path: str) -> int:
        """The same request: bodies are only ever counted."""
        status, length = await self.pool.request(path)
        if status != 200:
            raise BenchError(f"status {status}")
        return length

    async def http_version(self, path: str) -> str | None:
        """Always HTTP/1.1."""
        return "HTTP/1.1"

    async def aclose(self) -> None:
        """Close the connections."""
        self.pool.close()

    def open_connections(self) -> int | None:
        """The connections opened by ``start``."""
        return len(self.pool.connections)


class RawHTTP11Client(H1PoolClient):
    """The HTTP/1.1 raw floor."""

    protocol = RawHTTP11Protocol


# HTTP/2 frame types and flags (RFC 9113 section 6).
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
WINDOW_UPDATE = 0x8
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65_535
SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE = 0x2, 0x4
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
STATUS_200 = 0x88  # HPACK static table index 8, indexed representation


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame: 9-byte header, then the payload."""
    return (
        len(payload).to_bytes(3, "big")
        + bytes((kind, flags))
        + stream_id.to_bytes(4, "big")
        + payload
    )


def hpack_literal(index: int, value: bytes) -> bytes:
    """Literal header field without indexing, indexed name (RFC 7541 6.2.2)."""
    if index >= 15 or len(value) >= 127:  # longer forms are not needed here
        raise ValueError("index or value too long for the one-byte forms")
    return bytes((index, len(value))) + value


class H2Connection(asyncio.Protocol):
    """An HTTP/2 connection on which every request is a stream."""

    transport: asyncio.Transport | None

    async def request(self, path: str) -> tuple[int, int]:
        """Send a GET for ``path``; return the status and the body length."""
        raise NotImplementedError


class H2StreamClient(BenchClient):
    """A client whose requests are streams of one :class:`H2Connection`,
    opened by ``start()`` in the subclass."""

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint)
        if not (endpoint.http2 and endpoint.tls):
            raise BenchError(f"{type(self).__name__} speaks HTTP/2 over TLS only")
        self.protocol: H2Connection | None = None

    async def get(self, path: str, expected: int) -> None:
        """One stream."""
        assert self.protocol is not None
        status, length = await self.protocol.request(path)
        check_response(status, length, expected)

    async def download(self, path: str) -> int:
        """One stream, its DATA only counted."""
        assert self.protocol is not None
        status, length = await self.protocol.request(path)
        if status != 200:
            raise BenchError(f"status {status}")
        return length

    async def http_version(self, path: str) -> str | None:
        """Always HTTP/2."""
        return "HTTP/2"

    async def aclose(self) -> None:
        """Close the connection."""
        if self.protocol is not None and self.protocol.transport is not None:
            self.protocol.transport.close()

    def open_connections(self) -> int | None:
        """One."""
        return 1


class RawHTTP2Protocol(H2Connection):
    """One HTTP/2 connection of raw frames (see the module docstring)."""

    def __init__(self, authority: bytes) -> None:
        self.authority = authority
        self.transport: asyncio.Transport | None = None
        self.max_concurrent_streams: int | None = None
        self.settings_received: asyncio.Future[None] = (
            asyncio.get_running_loop().create_future()
        )
        self._blocks: dict[str, bytes] = {}
        self._buffer = bytearray()
        self._next_stream_id = 1
        self._streams: dict[int, tuple[asyncio.Future[tuple[int, int]], list[int]]] = {}
        self._unacknowledged = 0  # connection window used since the last update

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance.
        self.transport = transport = cast(asyncio.Transport, transport)
        settings = b"".join(
            key.to_bytes(2, "big") + value.to_bytes(4, "big")
            for key, value in (
                (SETTINGS_ENABLE_PUSH, 0),
                (SETTINGS_INITIAL_WINDOW_SIZE, MAX_WINDOW),
            )
        )
        increment = (MAX_WINDOW - DEFAULT_WINDOW).to_bytes(4, "big")
        transport.write(
            PREFACE
            + frame(SETTINGS, 0, 0, settings)
            + frame(WINDOW_UPDATE, 0, 0, increment)
        )

    async def request(self, path: str) -> tuple[int, int]:
        """Open a stream with one HEADERS frame; return status and body length."""
        block = self._blocks.get(path)
        if block is None:
            block = b"\x82\x87" + hpack_literal(4, path.encode())  # GET, https, :path
            block += hpack_literal(1, self.authority)  # :authority
            self._blocks[path] = block
        stream_id = self._next_stream_id
        self._next_stream_id += 2
        waiter: asyncio.Future[tuple[int, int]] = (
            asyncio.get_running_loop().create_future()
        )
        self._streams[stream_id] = (waiter, [0, 0])  # status, body bytes
        assert self.transport is not None
        self.transport.write(frame(HEADERS, END_STREAM | END_HEADERS, stream_id, block))
        return await waiter

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        offset = 0
        end = len(buffer)
        while end - offset >= 9:
            length = int.from_bytes(buffer[offset : offset + 3], "big")
            if end - offset < 9 + length:
                break
            kind = buffer[offset + 3]
            flags = buffer[offset + 4]
            stream_id = (
                int.from_bytes(buffer[offset + 5 : offset + 9], "big") & MAX_WINDOW
            )
            start = offset + 9
            offset = start + length
            if kind == DATA:
                self._on_data(stream_id, flags, buffer, start, length)
            elif kind == HEADERS:
                self._on_headers(stream_id, flags, buffer, start, length)
            else:
                self._on_control(kind, flags, stream_id, bytes(buffer[start:offset]))
        del buffer[:offset]

    def _on_data(
        self, stream_id: int, flags: int, buffer: bytearray, start: int, length: int
    ) -> None:
        padding = buffer[start] + 1 if flags & PADDED and length else 0
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream[1][1] += length - padding
            if flags & END_STREAM:
                self._finish(stream_id)
        # Flow control counts the whole payload, padding included (RFC 9113 6.9.1).
        self._unacknowledged += length
        if self._unacknowledged >= MAX_WINDOW // 2 and self.transport is not None:
            increment = self._unacknowledged.to_bytes(4, "big")
            self.transport.write(frame(WINDOW_UPDATE, 0, 0, increment))
            self._unacknowledged = 0

    def _on_headers(
        self, stream_id: int, flags: int, buffer: bytearray, start: int, length: int
    ) -> None:
        if not flags & END_HEADERS:
            self._fail_all(BenchError("CONTINUATION frames are not supported"))
            return
        at = start + (1 if flags & PADDED else 0) + (5 if flags & PRIORITY else 0)
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream[1][0] = 200 if length and buffer[at] == STATUS_200 else -1
            if flags & END_STREAM:
                self._finish(stream_id)

    def _on_control(
        self, kind: int, flags: int, stream_id: int, payload: bytes
    ) -> None:
        assert self.transport is not None
        if kind == SETTINGS and not flags & ACK:
            for at in range(0, len(payload) - 5, 6):
                if int.from_bytes(payload[at : at + 2], "big") == (
                    SETTINGS_MAX_CONCURRENT_STREAMS
                ):
                    self.max_concurrent_streams = int.from_bytes(
                        payload[at + 2 : at + 6], "big"
                    )
            self.transport.write(frame(SETTINGS, ACK, 0))
            if not self.settings_received.done():
                self.settings_received.set_result(None)
        elif kind == PING and not flags & ACK:
            self.transport.write(frame(PING, ACK, 0, payload))
        elif kind == RST_STREAM:
            stream = self._streams.pop(stream_id, None)
            if stream is not None and not stream[0].done():
                stream[0].set_exception(BenchError(f"RST_STREAM {payload.hex()}"))
        elif kind == GOAWAY:
            self._fail_all(BenchError(f"GOAWAY {payload[:8].hex()}"))
        # WINDOW_UPDATE: we send no bodies. Unknown frame types are ignored (5.5).

    def _finish(self, stream_id: int) -> None:
        waiter, (status, length) = self._streams.pop(stream_id)
        if not waiter.done():
            waiter.set_result((status, length))

    def _fail_all(self, exc: Exception) -> None:
        streams, self._streams = self._streams, {}
        for waiter, _ in streams.values():
            if not waiter.done():
                waiter.set_exception(exc)
        if not self.settings_received.done():
            self.settings_received.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(BenchError(f"connection lost: {exc!r}"))


class RawHTTP2Client(H2StreamClient):
    """The HTTP/2 raw floor: one connection, streams in parallel."""

    async def start(self) -> None:
        """Connect, check ALPN, wait for the server's SETTINGS."""
        context = self.endpoint.ssl_context(["h2"])
        authority = self.endpoint.authority.encode()
        transport, protocol = await asyncio.get_running_loop().create_connection(
            lambda: RawHTTP2Protocol(authority),
            self.endpoint.host,
            self.endpoint.port,
            ssl=context,
        )
        ssl_object = transport.get_extra_info("ssl_object")
        if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket) or (
            ssl_object.selected_alpn_protocol() != "h2"
        ):
            transport.abort()
            raise BenchError("the server did not select h2")
        self.protocol = protocol
        await protocol.settings_received
