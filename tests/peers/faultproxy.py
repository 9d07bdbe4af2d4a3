"""A fault-injecting TCP relay for tests: the client talks to it, it talks upstream.

Use::

    faults = ConnectionFaults(downstream=Faults(reset_after=10))
    async with fault_proxy("127.0.0.1", upstream_port, faults) as proxy:
        await pool.request("GET", proxy.url("http") + "/")
    proxy.connections[0].downstream_bytes  # bytes relayed server -> client

The relay listens on ``127.0.0.1:0`` and opens one upstream connection per accepted
client connection. Bytes pass through untouched (TLS included: the client's
handshake goes to the upstream server, so use the upstream's certificate name).

Faults are per direction, ``upstream`` (client -> server) and ``downstream``
(server -> client), each a :class:`Faults`:

* ``latency``: seconds slept before forwarding each chunk read;
* ``bandwidth``: bytes per second (each piece waits for its share of time);
* ``slice_size``: forward in writes of at most this many bytes, draining after each
  (``1`` gives one-byte segments: TCP_NODELAY is set on both sockets);
* ``reset_after``: after forwarding N bytes in this direction, abort *both* sides
  with an RST (SO_LINGER 0, then ``abort()``);
* ``stall_after``: after forwarding N bytes, stop reading from the source in this
  direction (TCP backpressure builds) and keep both connections open;
* ``close_after``: after forwarding N bytes, close both sides cleanly (FIN).

``N`` may be 0 (the fault fires before any byte of that direction is forwarded;
for ``downstream`` that means as soon as the server's first chunk arrives, for
``upstream`` as soon as the client's first chunk arrives).

``faults`` is a :class:`ConnectionFaults` used for every connection, a sequence
consumed one per accepted connection (connections past its end get no faults), or
a callable ``(index) -> ConnectionFaults`` (index 0 is the first connection). It
can be replaced between connections through ``proxy.faults``.

``proxy.connections`` records each accepted connection in order
(:class:`RelayedConnection`: bytes relayed each way, whether a fault fired, and
whether it has finished). Leaving the context manager closes the listener and
aborts every connection it opened, and waits for all of it: no ``ResourceWarning``.
Works on asyncio and uvloop. Only loopback upstreams are accepted.

:func:`reset_connection` (SO_LINGER 0, then abort) is exported for scripted
servers that want to end a connection with an RST themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "ConnectionFaults",
    "FaultProxy",
    "Faults",
    "RelayedConnection",
    "fault_proxy",
    "reset_connection",
]

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
READ_SIZE = 65536
WAIT_TIMEOUT = 5.0  # FaultProxy.wait_for gives up after this many seconds
Direction = Literal["upstream", "downstream"]


@dataclass(frozen=True)
class Faults:
    """Faults applied to one direction of a relayed connection (all off by default)."""

    latency: float = 0.0
    bandwidth: float | None = None
    slice_size: int | None = None
    reset_after: int | None = None
    stall_after: int | None = None
    close_after: int | None = None

    def limit(self) -> tuple[int, str] | None:
        """The first byte-count fault to fire: ``(n, "reset"|"stall"|"close")``."""
        armed = [
            (n, kind)
            for n, kind in (
                (self.reset_after, "reset"),
                (self.stall_after, "stall"),
                (self.close_after, "close"),
            )
            if n is not None
        ]
        return min(armed) if armed else None


@dataclass(frozen=True)
class ConnectionFaults:
    """Faults for both directions of one connection."""

    upstream: Faults = field(default_factory=Faults)
    downstream: Faults = field(default_factory=Faults)


FaultPlan = (
    ConnectionFaults | Sequence[ConnectionFaults] | Callable[[int], ConnectionFaults]
)
NO_FAULTS = ConnectionFaults()


@dataclass(eq=False)
class RelayedConnection:
    """What happened on one accepted connection."""

    index: int
    faults: ConnectionFaults
    upstream_bytes: int = 0  # forwarded client -> server
    downstream_bytes: int = 0  # forwarded server -> client
    fired: list[str] = field(default_factory=list)  # e.g. ["downstream:reset"]
    done: bool = False


@dataclass(eq=False)
class FaultProxy:
    """A running relay: where it listens, its fault plan, and what it relayed."""

    host: str
    port: int
    faults: FaultPlan
    connections: list[RelayedConnection] = field(default_factory=list)
    _activity: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def url(self, scheme: str = "http") -> str:
        """Origin URL of the relay, e.g. ``http://127.0.0.1:1234``."""
        return f"{scheme}://{self.host}:{self.port}"

    def faults_for(self, index: int) -> ConnectionFaults:
        """The faults the ``index``-th accepted connection gets."""
        plan = self.faults
        if isinstance(plan, ConnectionFaults):
            return plan
        if callable(plan):
            return plan(index)
        return plan[index] if index < len(plan) else NO_FAULTS

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, re-checked after any relay activity."""
        async with asyncio.timeout(WAIT_TIMEOUT):
            while not predicate():
                self._activity.clear()
                await self._activity.wait()

    def _touch(self) -> None:
        self._activity.set()


def _tune(writer: asyncio.StreamWriter) -> None:
    """Set TCP_NODELAY so each write leaves as its own segment."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def reset_connection(writer: asyncio.StreamWriter) -> None:
    """Abort ``writer``'s connection with an RST (SO_LINGER 0, then abort).

    A transport already closing (its socket may be gone: uvloop then raises
    ValueError) is just aborted.
    """
    if not writer.transport.is_closing():
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
    writer.transport.abort()


class _Outcome(Exception):
    """Raised inside a pump when a fault ends the whole connection."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


async def _forward(data: bytes, dst: asyncio.StreamWriter, faults: Faults) -> None:
    """Write ``data`` to ``dst`` with the direction's pacing faults.

    A bandwidth cap sends pieces of at most a tenth of a second's worth, each
    after sleeping for its share of the time.
    """
    if not data:
        return
    step = faults.slice_size or len(data)
    if faults.bandwidth:
        step = min(step, max(1, int(faults.bandwidth / 10)))
    for start in range(0, len(data), step):
        piece = data[start : start + step]
        if faults.bandwidth:
            await asyncio.sleep(len(piece) / faults.bandwidth)
        dst.write(piece)
        await dst.drain()
        if faults.slice_size:
            await asyncio.sleep(0)


async def _pump(
    record: RelayedConnection,
    direction: Direction,
    src: asyncio.StreamReader,
    dst: asyncio.StreamWriter,
    proxy: FaultProxy,
) -> None:
    """Relay ``src`` to ``dst`` until EOF, applying this direction's faults.

    Returns on EOF (passed on as a half-close); raises :class:`_Outcome` when a
    reset or close fault fires; never returns once a stall fault fires.
    """
    faults: Faults = getattr(record.faults, direction)
    limit = faults.limit()
    sent = 0
    while True:
        data = await src.read(READ_SIZE)
        if not data:
            if dst.can_write_eof():
                with contextlib.suppress(OSError):
                    dst.write_eof()
            return
        if faults.latency:
            await asyncio.sleep(faults.latency)
        if limit is not None:
            data = data[: limit[0] - sent]
        await _forward(data, dst, faults)
        sent += len(data)
        setattr(record, f"{direction}_bytes", sent)
        proxy._touch()
        if limit is not None and sent >= limit[0]:
            record.fired.append(f"{direction}:{limit[1]}")
            proxy._touch()
            if limit[1] == "stall":
                await asyncio.Event().wait()  # until the connection is torn down
            raise _Outcome(limit[1])


async def _relay(
    proxy: FaultProxy,
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    upstream: tuple[str, int],
) -> None:
    """Serve one accepted connection: connect upstream, pump both ways."""
    index = len(proxy.connections)
    record = RelayedConnection(index=index, faults=proxy.faults_for(index))
    proxy.connections.append(record)
    proxy._touch()
    writers = [client_writer]
    try:
        try:
            server_reader, server_writer = await asyncio.open_connection(*upstream)
        except OSError:
            reset_connection(client_writer)
            return
        writers.append(server_writer)
        for writer in writers:
            _tune(writer)
        pumps = [
            asyncio.create_task(
                _pump(record, "upstream", client_reader, server_writer, proxy)
            ),
            asyncio.create_task(
                _pump(record, "downstream", server_reader, client_writer, proxy)
            ),
        ]
        try:
            await _until_done(pumps, writers)
            await _close_all(writers)  # no-op after a fault already closed them
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
    finally:
        for writer in writers:  # torn down early (proxy exit): RST, else a no-op
            if not writer.transport.is_closing():
                reset_connection(writer)
        record.done = True
        proxy._touch()


async def _until_done(
    pumps: list[asyncio.Task[None]], writers: list[asyncio.StreamWriter]
) -> None:
    """Wait for both pumps; a fault or a broken side ends the whole connection."""
    pending = set(pumps)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if exc is None:
                continue
            if isinstance(exc, _Outcome) and exc.kind == "close":
                await _close_all(writers)
            else:  # a reset fault, or one side reset/broke: pass it on as RST
                for writer in writers:
                    reset_connection(writer)
            return


async def _close_all(writers: list[asyncio.StreamWriter]) -> None:
    """Close every side with a FIN, waiting a bounded time for it to go out."""
    for writer in writers:
        writer.close()
    for writer in writers:
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def fault_proxy(
    upstream_host: str, upstream_port: int, faults: FaultPlan = NO_FAULTS
) -> AsyncIterator[FaultProxy]:
    """Run a relay to ``upstream_host:upstream_port`` until the block exits."""
    if upstream_host not in LOOPBACK_HOSTS:
        raise ValueError(
            f"the fault proxy only relays to loopback, not {upstream_host!r}"
        )
    proxy = FaultProxy(host="127.0.0.1", port=0, faults=faults)
    connection_tasks: set[asyncio.Task[None]] = set()
    relay_tasks: set[asyncio.Task[None]] = set()
    open_writers: set[asyncio.StreamWriter] = set()
    closing = False

    async def on_connect(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # The relay runs in its own task that shutdown cancels; this callback task
        # is never cancelled (3.11's StreamReaderProtocol would log an error).
        task = asyncio.current_task()
        assert task is not None
        connection_tasks.add(task)
        open_writers.add(writer)
        try:
            if closing:
                return
            relay = asyncio.create_task(
                _relay(proxy, reader, writer, (upstream_host, upstream_port))
            )
            relay_tasks.add(relay)
            try:
                await asyncio.wait([relay])
            finally:
                relay.cancel()
            if not relay.cancelled() and (exc := relay.exception()) is not None:
                raise exc
        finally:
            writer.transport.abort()
            open_writers.discard(writer)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        closing = True
        server.close()
        for task in relay_tasks:
            task.cancel()
        await asyncio.sleep(0)
        await asyncio.gather(*connection_tasks, return_exceptions=True)
        for writer in list(open_writers):
            writer.transport.abort()
        async with asyncio.timeout(5.0):
            await server.wait_closed()
