"""In-process asyncio servers whose behaviour a test scripts byte by byte.

They run on the test's own event loop, so they work unchanged under asyncio and
uvloop. Every server records, per accepted connection, the bytes the client sent
(``.received``, plaintext for TLS) and, for TLS, the SNI each client sent
(``.sni_names``). Leaving the context manager closes the listener, cancels any
handler still running, aborts its transport and waits for all of it, so nothing
leaks a ``ResourceWarning``; an exception raised by a handler is re-raised there
so a broken script fails the test instead of hanging it.

Only 127.0.0.1, ::1 and Unix sockets are ever bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl as ssl_module
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, SupportsIndex, cast

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
SniCallback = Callable[[ssl_module.SSLObject, str, ssl_module.SSLContext], int | None]

LOOPBACK_HOSTS = ("127.0.0.1", "::1")
READ_LIMIT = 2**20  # StreamReader line limit: request heads up to 1 MiB
WAIT_TIMEOUT = 5.0  # ScriptedServer.wait_for gives up after this many seconds


@dataclass(eq=False)
class ScriptedServer:
    """A running scripted server: where it listens and what it saw.

    For TCP, ``host``/``port`` are set and ``uds_path`` is None; for a Unix socket
    ``uds_path`` is set, ``host`` is ``localhost`` and ``port`` is 0.
    """

    host: str
    port: int
    uds_path: str | None
    tls: bool
    sni_names: list[str | None] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)
    _received: list[bytearray] = field(default_factory=list, repr=False)
    _closing: bool = field(default=False, repr=False)
    _activity: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def received(self) -> list[bytes]:
        """Bytes each connection has sent so far, in accept order."""
        return [bytes(data) for data in self._received]

    @property
    def connections(self) -> int:
        """How many connections have been accepted (TLS: handshake completed)."""
        return len(self._received)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, re-checking after any server activity.

        Activity is: a connection accepted or lost, bytes received, a handler
        error. Gives up with ``TimeoutError`` after ``WAIT_TIMEOUT`` seconds.
        """
        async with asyncio.timeout(WAIT_TIMEOUT):
            while not predicate():
                self._activity.clear()
                await self._activity.wait()

    @property
    def url(self) -> str:
        """Origin URL, e.g. ``http://127.0.0.1:1234`` or ``https://[::1]:1234``."""
        scheme = "https" if self.tls else "http"
        if self.uds_path is not None:
            return f"{scheme}://localhost"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"


class _RecordingReader(asyncio.StreamReader):
    """A StreamReader that also appends everything fed to it to ``record``."""

    def __init__(self, record: bytearray, activity: asyncio.Event) -> None:
        super().__init__(limit=READ_LIMIT)
        self.record = record
        self.activity = activity

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        self.record.extend(data)
        super().feed_data(data)
        self.activity.set()


class _Protocol(asyncio.StreamReaderProtocol):
    """StreamReaderProtocol that registers its recording buffer on connect."""

    def __init__(self, state: ScriptedServer, callback: Handler) -> None:
        self._record = bytearray()
        self._state = state
        super().__init__(_RecordingReader(self._record, state._activity), callback)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._state._received.append(self._record)
        super().connection_made(transport)
        self._state._activity.set()
        if self._state._closing:  # arrived (or finished TLS) after shutdown began
            cast(asyncio.WriteTransport, transport).abort()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._state._activity.set()


async def close_writer(writer: asyncio.StreamWriter, *, abort: bool = False) -> None:
    """Close ``writer`` (abort if asked, or if a clean close takes over 1s)."""
    if abort:
        writer.transport.abort()
    else:
        writer.close()
    try:
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
    except (TimeoutError, OSError):
        writer.transport.abort()


@contextlib.asynccontextmanager
async def scripted_server(
    handler: Handler,
    *,
    ssl: ssl_module.SSLContext | None = None,
    uds_path: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
) -> AsyncIterator[ScriptedServer]:
    """Serve ``await handler(reader, writer)`` per connection until exit.

    ``ssl`` is a server-side context (its ``sni_callback`` is wrapped for the
    duration to record SNI); ``uds_path`` listens on a Unix socket instead of
    ``host`` (127.0.0.1 or ::1) on an ephemeral port. The writer is closed when
    the handler returns; handler exceptions are re-raised on exit.
    """
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"scripted servers only bind {LOOPBACK_HOSTS}, not {host!r}")
    loop = asyncio.get_running_loop()
    state = ScriptedServer(host=host, port=0, uds_path=None, tls=ssl is not None)
    connection_tasks: set[asyncio.Task[None]] = set()
    handler_tasks: set[asyncio.Task[None]] = set()

    async def run_handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await handler(reader, writer)  # any awaitable, not only coroutines

    async def on_connect(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # The handler runs in its own task, which shutdown cancels: 3.11's
        # StreamReaderProtocol logs an error if *this* task ends cancelled.
        task = asyncio.current_task()
        assert task is not None
        connection_tasks.add(task)
        try:
            if state._closing:
                return
            handler_task = asyncio.create_task(run_handler(reader, writer))
            handler_tasks.add(handler_task)
            try:
                await asyncio.wait([handler_task])
            finally:
                handler_task.cancel()  # only if this task itself was cancelled
            if not handler_task.cancelled() and (exc := handler_task.exception()):
                if not isinstance(exc, Exception):
                    raise exc
                state.errors.append(exc)
                state._activity.set()
        finally:
            await close_writer(writer, abort=state._closing)

    previous_sni = ssl.sni_callback if ssl is not None else None
    if ssl is not None:
        ssl.sni_callback = _recording_sni_callback(state.sni_names, previous_sni)

    server: asyncio.Server | None = None
    try:
        if uds_path is not None:
            state.uds_path = os.fspath(uds_path)
            state.host = "localhost"
            server = await loop.create_unix_server(
                lambda: _Protocol(state, on_connect), state.uds_path, ssl=ssl
            )
        else:
            server = await loop.create_server(
                lambda: _Protocol(state, on_connect), host, 0, ssl=ssl
            )
            state.port = server.sockets[0].getsockname()[1]
        yield state
    finally:
        state._closing = True
        if server is not None:
            server.close()
        for task in handler_tasks:
            task.cancel()
        await asyncio.sleep(0)  # let just-accepted connections start and register
        await asyncio.gather(*connection_tasks, return_exceptions=True)
        if server is not None:
            try:
                async with asyncio.timeout(5.0):
                    await server.wait_closed()
            except TimeoutError:
                raise RuntimeError("scripted server: connections still open") from None
        if ssl is not None:
            ssl.sni_callback = previous_sni
        if state.uds_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(state.uds_path)
    if state.errors:
        raise state.errors[0]


def _recording_sni_callback(
    names: list[str | None], previous: SniCallback | None
) -> SniCallback:
    """Return an SNI callback that appends each name, then defers to ``previous``."""

    def callback(
        sslobj: ssl_module.SSLObject,
        server_name: str | None,
        context: ssl_module.SSLContext,
    ) -> int | None:
        names.append(server_name)
        if previous is not None:  # typeshed says str, but no SNI gives None
            return previous(sslobj, cast(str, server_name), context)
        return None

    return callback


async def read_head(reader: asyncio.StreamReader) -> bytes | None:
    """Read one request head through ``\\r\\n\\r\\n``; None on EOF before it ends."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None


def parse_headers(head: bytes) -> list[tuple[bytes, bytes]]:
    """Split a raw head into ``(lowercased name, stripped value)`` pairs."""
    lines = head.rstrip(b"\r\n").split(b"\r\n")[1:]
    pairs = [line.partition(b":") for line in lines]
    return [(name.strip().lower(), value.strip()) for name, _, value in pairs]


async def read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    """Read the body ``head`` announces (Content-Length or chunked; else none)."""
    headers = dict(parse_headers(head))
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        body = bytearray()
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
            pass
        return bytes(body)
    return await reader.readexactly(int(headers.get(b"content-length", b"0")))


@contextlib.asynccontextmanager
async def tolerant_server(
    handler: Handler, **kwargs: Any
) -> AsyncIterator[ScriptedServer]:
    """``scripted_server`` for handlers that expect the client to disconnect.

    A ``ConnectionError`` or ``IncompleteReadError`` in the handler is the
    client going away, not a broken script, so it is not re-raised on exit.
    """

    async def tolerant(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await handler(reader, writer)

    async with scripted_server(tolerant, **kwargs) as server:
        yield server


@contextlib.asynccontextmanager
async def canned_server(
    responses: Sequence[bytes],
    *,
    close_after: bool = True,
    delay: float = 0.0,
    read_request_body: bool = True,
    ssl: ssl_module.SSLContext | None = None,
    uds_path: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
) -> AsyncIterator[ScriptedServer]:
    """Answer each request with the next of ``responses``, verbatim.

    Responses form one queue shared by all connections: request k (in arrival
    order, on any connection) gets ``responses[k]``; once it is empty the
    connection is closed without a reply. Per request the server reads the head
    and, unless ``read_request_body`` is False, the body it announces (so closing
    does not RST on unread bytes), sleeps ``delay`` seconds, then writes. With
    ``close_after`` the connection closes after each response, else it is kept
    alive for the next request. Client disconnects are not errors here.
    """
    queue = deque(responses)

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while queue and (head := await read_head(reader)) is not None:
                if read_request_body:
                    await read_body(reader, head)
                if not queue:
                    return
                response = queue.popleft()
                if delay:
                    await asyncio.sleep(delay)
                writer.write(response)
                await writer.drain()
                if close_after:
                    return

    async with scripted_server(handler, ssl=ssl, uds_path=uds_path, host=host) as srv:
        yield srv


@contextlib.asynccontextmanager
async def recording_server(
    *,
    ssl: ssl_module.SSLContext | None = None,
    uds_path: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
) -> AsyncIterator[ScriptedServer]:
    """Accept, record everything each client sends, never answer; close on EOF.

    Useful for asserting the exact bytes a client wrote (``.received``) and for
    read-timeout tests.
    """

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass

    async with scripted_server(handler, ssl=ssl, uds_path=uds_path, host=host) as srv:
        yield srv
