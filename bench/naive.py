"""h11 and h2 alone: the sans-IO libraries wireline builds on, driven naively.

Each is an ``asyncio.Protocol`` that feeds every read to the library, loops
over the events it returns and writes whatever the library wants sent: the
textbook way to use them, with no pool logic, no timeouts, no extensions.
What wireline costs above these rows is its own driver and pool; what these
cost above the raw floor is h11's and h2's.

- ``H11Client``: one ``h11.Connection`` per connection, ``h11.Request`` built per
  request, ``start_next_cycle`` after each response; the same free-list pool as
  the raw floor.
- ``H2Client``: one ``h2.connection.H2Connection`` (default settings) carrying
  every request as a stream; each DATA frame is acknowledged as it arrives.
"""

from __future__ import annotations

import asyncio
from typing import cast

import h2.config
import h2.connection
import h2.events
import h11

from bench.base import BenchError
from bench.raw import H1Connection, H1PoolClient, H2Connection, H2StreamClient

__all__ = ["H2Client", "H11Client"]


class H11Protocol(H1Connection):
    """One HTTP/1.1 connection driven by ``h11.Connection``."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.h11 = h11.Connection(h11.CLIENT)
        self._status = 0
        self._received = 0
        self._waiter: asyncio.Future[tuple[int, int]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance.
        self.transport = transport = cast(asyncio.Transport, transport)
        host, port = transport.get_extra_info("peername")[:2]
        self._host = f"{host}:{port}"

    async def request(self, path: str) -> tuple[int, int]:
        """Send ``h11.Request`` + ``EndOfMessage``; wait for the response's end."""
        assert self.transport is not None
        request = h11.Request(method="GET", target=path, headers=[("Host", self._host)])
        data = self.h11.send(request) or b""
        data += self.h11.send(h11.EndOfMessage()) or b""
        self._status = 0
        self._received = 0
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self._waiter

    def data_received(self, data: bytes) -> None:
        self.h11.receive_data(data)
        try:
            while True:
                event = self.h11.next_event()
                if event is h11.NEED_DATA:
                    return
                if isinstance(event, h11.Response):
                    self._status = event.status_code
                elif isinstance(event, h11.Data):
                    self._received += len(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    self.h11.start_next_cycle()
                    if self._waiter is not None and not self._waiter.done():
                        self._waiter.set_result((self._status, self._received))
                    return
                else:
                    raise BenchError(f"unexpected event {event!r}")
        except (h11.ProtocolError, BenchError) as exc:
            self._fail(exc)


class H11Client(H1PoolClient):
    """h11 alone, HTTP/1.1 over plain TCP; ``Data`` events are counted and dropped."""

    protocol = H11Protocol


class H2Protocol(H2Connection):
    """One HTTP/2 connection driven by ``h2.connection.H2Connection``."""

    def __init__(self, authority: bytes) -> None:
        self.authority = authority
        self.transport: asyncio.Transport | None = None
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        self._streams: dict[int, tuple[asyncio.Future[tuple[int, int]], list[int]]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance.
        self.transport = transport = cast(asyncio.Transport, transport)
        self.h2.initiate_connection()
        transport.write(self.h2.data_to_send())

    async def request(self, path: str) -> tuple[int, int]:
        """``send_headers(end_stream=True)``; wait for ``StreamEnded``."""
        assert self.transport is not None
        stream_id = self.h2.get_next_available_stream_id()
        headers = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", self.authority),
            (b":path", path.encode()),
        ]
        self.h2.send_headers(stream_id, headers, end_stream=True)
        waiter: asyncio.Future[tuple[int, int]] = (
            asyncio.get_running_loop().create_future()
        )
        self._streams[stream_id] = (waiter, [0, 0])
        self.transport.write(self.h2.data_to_send())
        return await waiter

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except Exception as exc:  # h2's protocol errors: fail every stream
            self._fail_all(BenchError(f"h2: {exc!r}"))
            return
        for event in events:
            if isinstance(event, h2.events.ResponseReceived):
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream[1][0] = int(dict(event.headers or ())[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream[1][1] += len(event.data or b"")
                self.h2.acknowledge_received_data(
                    event.flow_controlled_length or 0, event.stream_id or 0
                )
            elif isinstance(event, h2.events.StreamEnded):
                waiter, (status, length) = self._streams.pop(event.stream_id or 0)
                if not waiter.done():
                    waiter.set_result((status, length))
            elif isinstance(event, h2.events.StreamReset):
                stream = self._streams.pop(event.stream_id or 0, None)
                if stream is not None and not stream[0].done():
                    stream[0].set_exception(BenchError(f"reset: {event!r}"))
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._fail_all(BenchError(f"GOAWAY: {event!r}"))
        outgoing = self.h2.data_to_send()
        if outgoing and self.transport is not None:
            self.transport.write(outgoing)

    def _fail_all(self, exc: Exception) -> None:
        streams, self._streams = self._streams, {}
        for waiter, _ in streams.values():
            if not waiter.done():
                waiter.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(BenchError(f"connection lost: {exc!r}"))


class H2Client(H2StreamClient):
    """h2 alone: one TLS connection (ALPN h2), every request a stream."""

    async def start(self) -> None:
        """Connect (ALPN h2 only)."""
        authority = self.endpoint.authority.encode()
        _, self.protocol = await asyncio.get_running_loop().create_connection(
            lambda: H2Protocol(authority),
            self.endpoint.host,
            self.endpoint.port,
            ssl=self.endpoint.ssl_context(["h2"]),
        )
