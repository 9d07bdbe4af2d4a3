"""Network streams: the abstract interface and the asyncio implementation.

``AsyncIOStream`` sits on our own :class:`asyncio.Protocol` rather than
StreamReader/StreamWriter: we control buffering (received chunks are handed out
without copying), back-pressure both ways, and what happens to bytes around a
TLS upgrade (``StreamWriter.start_tls`` can lose bytes it had buffered,
CPython #142352). Timeouts are timers on futures we own, so a timeout can never
be confused with a cancellation that came from outside.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import weakref
from collections.abc import Awaitable
from typing import Any, cast

from .exceptions import (
    ConnectError,
    ReadError,
    ReadTimeout,
    WriteError,
    WriteTimeout,
    connect_errors,
)

__all__ = [
    "AsyncIOStream",
    "AsyncNetworkStream",
    "AsyncPrefixedStream",
    "discard_stream",
]

# Stop reading from the socket once this much is buffered and unread; resume
# below a quarter of it. 256 KiB keeps four default reads in flight.
_HIGH_WATER = 256 * 1024
_LOW_WATER = _HIGH_WATER // 4


class AsyncNetworkStream:
    """A byte stream to a peer, as httpcore defines it.

    Subclasses implement every method; this base class only fixes the signatures.
    """

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Return up to ``max_bytes`` bytes, or ``b""`` at EOF."""
        raise NotImplementedError()  # pragma: no cover

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Send all of ``buffer``."""
        raise NotImplementedError()  # pragma: no cover

    async def aclose(self) -> None:
        """Close the stream."""
        raise NotImplementedError()  # pragma: no cover

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        """Run a TLS handshake over this stream and return the TLS stream."""
        raise NotImplementedError()  # pragma: no cover

    def get_extra_info(self, info: str) -> Any:
        """Return transport details (``ssl_object``, ``server_addr``...) or None."""
        return None  # pragma: no cover


# Closes started by discard_stream() for streams with no abort(): referenced
# here until done, so they are neither garbage-collected nor lost.
_PENDING_CLOSES: set[asyncio.Task[None]] = set()

# What a protocol connection asks of its stream per read: more than any chunk
# asyncio (256 KiB) or uvloop delivers, so a read hands over a whole received
# chunk rather than slicing it (the stream's own buffer is bounded by its read
# pause).
READ_NUM_BYTES = 1024 * 1024


def discard_stream(stream: AsyncNetworkStream) -> None:
    """Drop ``stream`` now, synchronously, from any state.

    Our streams abort at once. A stream with only httpcore's interface (a user
    backend, a test double) has no synchronous close, so its ``aclose()`` is
    started in the background: the state change is still immediate, and the
    socket is closed without anyone having to await it.
    """
    abort = getattr(stream, "abort", None)
    if abort is not None:
        abort()
        return
    task = asyncio.get_running_loop().create_task(_close_quietly(stream))
    _PENDING_CLOSES.add(task)
    task.add_done_callback(_PENDING_CLOSES.discard)


async def _close_quietly(stream: AsyncNetworkStream) -> None:
    # A discarded stream is broken by definition; its close may fail too.
    with contextlib.suppress(Exception):
        await stream.aclose()


# asyncio's plain socket transport receives into a new bytes object of its
# ``max_size`` (256 KiB) and shrinks it to what arrived. glibc serves that size
# with mmap, mremap and munmap (three system calls per read, 25-30 µs per small
# response) unless something earlier in the process happened to raise its
# dynamic mmap threshold: which of the two a process gets decided S2 on asyncio
# between 85 and 125 µs per request. Reads of up to 64 KiB stay under the
# threshold; a read that fills that (a download) gets 256 KiB back until reads
# are small again. uvloop and TLS transports read into a buffer of their own.
SMALL_READ = 64 * 1024
LARGE_READ = 256 * 1024


class _Receiver(asyncio.BaseProtocol):
    """Buffers what the transport delivers and wakes the one waiting reader.

    The two protocols below add how bytes are delivered: ``data_received``
    for plain transports, a buffer of ours for TLS transports.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        # Received chunks (bytes; a memoryview for the rest of a split one).
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.eof = False
        self.exc: BaseException | None = None
        self.read_waiter: asyncio.Future[None] | None = None
        self.drain_waiter: asyncio.Future[None] | None = None
        self.lost_waiter: asyncio.Future[None] | None = None
        self.write_paused = False
        self.read_paused = False
        self.lost = False
        self.read_size = 0  # asyncio selector transports only: see SMALL_READ

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        if isinstance(getattr(transport, "max_size", None), int):
            transport.max_size = self.read_size = SMALL_READ  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        # Once per chunk received: a download calls this ~200 times per 50 MB,
        # so the waking is written out rather than a call to _wake_reader.
        if self.read_size:
            self._adapt_read_size(len(data))
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > _HIGH_WATER and not self.read_paused:
            assert self.transport is not None
            self.read_paused = True
            self.transport.pause_reading()
        waiter = self.read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _adapt_read_size(self, size: int) -> None:
        # A read that filled the buffer (a download) gets asyncio's size back;
        # small ones again, and it goes back under the mmap threshold.
        if size >= self.read_size and self.read_size < LARGE_READ:
            self.read_size = LARGE_READ
        elif size < SMALL_READ and self.read_size > SMALL_READ:
            self.read_size = SMALL_READ
        else:
            return
        self.transport.max_size = self.read_size  # type: ignore[union-attr]

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.eof = True
        if exc is not None:
            self.exc = exc
        self._wake_reader()
        for waiter in (self.drain_waiter, self.lost_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_reader(self) -> None:
        waiter = self.read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _StreamProtocol(_Receiver, asyncio.Protocol):
    """The protocol of a plain (TCP, Unix) transport: it calls ``data_received``."""


# What a TLS layer decrypts into, one per event loop (below).
TLS_READ = 256 * 1024
_tls_buffers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, memoryview] = (
    weakref.WeakKeyDictionary()
)


class _TLSStreamProtocol(_Receiver, asyncio.BufferedProtocol):
    """The protocol under a TLS transport: decrypted bytes land in a buffer of
    ours, and each read becomes a bytes object of just its size.

    Given a plain protocol, asyncio's and uvloop's TLS layers read each time
    into a new 256 KiB bytes object and shrink it to what arrived: for a small
    response, glibc serves that with mmap, mremap and munmap, three system
    calls and fresh pages per read (on uvloop, every read: about one in three
    requests of S3). The buffer is only written between ``get_buffer`` and
    ``buffer_updated``, which the TLS layer calls one after the other without
    returning to the loop, so one buffer serves every TLS stream of a loop.
    (asyncio's TLS layer uses a protocol's buffer if it is an
    ``asyncio.BufferedProtocol``, uvloop's only if it is also not an
    ``asyncio.Protocol``: hence a class apart from the plain one.)
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        view = _tls_buffers.get(loop)
        if view is None:
            view = _tls_buffers[loop] = memoryview(bytearray(TLS_READ))
        self._view = view

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self._view[:nbytes]))


def _expire(
    waiter: asyncio.Future[None], error: type[Exception], what: str, timeout: float
) -> None:
    if not waiter.done():
        waiter.set_exception(error(f"{what} timed out after {timeout}s"))


def await_with_timeout(
    waiter: asyncio.Future[None],
    timeout: float | None,
    error: type[Exception],
    what: str,
) -> Awaitable[None]:
    """What to await for ``waiter``, failing it with ``error`` after ``timeout``
    seconds (without a timeout, ``waiter`` itself: no coroutine per wait).

    The timer fails our own future rather than cancelling the task, so a timeout
    can never be mistaken for a cancellation that came from outside.
    """
    if timeout is None:
        return waiter
    return _await_timed(waiter, timeout, error, what)


async def _await_timed(
    waiter: asyncio.Future[None], timeout: float, error: type[Exception], what: str
) -> None:
    timer = waiter.get_loop().call_later(timeout, _expire, waiter, error, what, timeout)
    try:
        await waiter
    finally:
        timer.cancel()


class AsyncIOStream(AsyncNetworkStream):
    """A TCP, Unix or TLS connection on an asyncio (or uvloop) transport.

    Args:
        transport: The connected transport.
        protocol: Its :class:`_StreamProtocol` (or, under TLS,
            :class:`_TLSStreamProtocol`), already attached.
        under: For TLS, the transport the TLS layer runs on.
    """

    def __init__(
        self,
        transport: asyncio.Transport,
        protocol: _Receiver,
        under: asyncio.Transport | None = None,
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        self._under = under
        self._closed = False
        self._loop = asyncio.get_running_loop()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Return up to ``max_bytes`` bytes, or ``b""`` once the peer closed.

        Raises:
            ReadTimeout: Nothing arrived within ``timeout`` seconds.
            ReadError: The connection broke, or this stream was closed.

        Cancellation leaves the buffered bytes in place for the next read.
        """
        protocol = self._protocol
        if self._closed:
            raise ReadError("the stream was closed")
        chunks = protocol.chunks
        if not chunks:
            if protocol.exc is not None:
                raise ReadError(str(protocol.exc)) from protocol.exc
            if protocol.eof:
                return b""
            waiter = protocol.read_waiter = self._loop.create_future()
            try:
                await await_with_timeout(waiter, timeout, ReadTimeout, "read")
            finally:
                protocol.read_waiter = None
            if not chunks:
                return await self.read(max_bytes, timeout)
        # Taken here rather than in a method of the protocol: a call less per read.
        chunk = chunks.popleft()
        if len(chunk) > max_bytes:
            # The rest stays as a view: each byte is copied once, however
            # small the reads (slicing bytes would copy the rest each time).
            view = memoryview(chunk)
            chunks.appendleft(view[max_bytes:])  # type: ignore[arg-type]
            chunk = view[:max_bytes]  # type: ignore[assignment]
        if type(chunk) is not bytes:
            chunk = bytes(chunk)
        protocol.buffered -= len(chunk)
        if protocol.read_paused and protocol.buffered <= _LOW_WATER:
            protocol.read_paused = False
            assert protocol.transport is not None
            protocol.transport.resume_reading()
        return chunk

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Send ``buffer``; wait while the transport's buffer is over its limit.

        Raises:
            WriteTimeout: The peer did not take the bytes within ``timeout``.
            WriteError: The connection is closed or broke.

        Cancellation while waiting leaves the bytes queued in the transport.
        """
        if not buffer:
            return
        protocol = self._protocol
        if protocol.exc is not None:
            raise WriteError(str(protocol.exc)) from protocol.exc
        if (
            self._closed
            or self._transport.is_closing()
            # A TLS transport learns late that the socket under it is gone:
            # asyncio would take (and, past five writes, log) every write.
            or (self._under is not None and self._under.is_closing())
        ):
            raise WriteError("the connection is closed")
        try:
            self._transport.write(buffer)
        except (OSError, RuntimeError) as exc:
            raise WriteError(str(exc)) from exc
        if protocol.write_paused:
            await self._drain(timeout)

    async def _drain(self, timeout: float | None) -> None:
        protocol = self._protocol
        waiter = protocol.drain_waiter = self._loop.create_future()
        try:
            await await_with_timeout(waiter, timeout, WriteTimeout, "write")
        finally:
            protocol.drain_waiter = None
        if protocol.lost:
            exc = protocol.exc
            raise WriteError(str(exc) if exc else "connection lost") from exc

    async def aclose(self) -> None:
        """Close the connection, flushing what was written.

        The wait for the transport to finish (for TLS, the close_notify
        exchange) is bounded; after it, or on cancellation, the transport is
        aborted, so nothing is left open.
        """
        if self._closed:
            return
        self._closed = True
        protocol = self._protocol
        transport = self._transport
        transport.close()
        if protocol.lost:
            return
        loop = asyncio.get_running_loop()
        waiter = protocol.lost_waiter = loop.create_future()
        timer = loop.call_later(_CLOSE_GRACE, _settle, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            protocol.lost_waiter = None
            if not protocol.lost:
                transport.abort()

    def abort(self) -> None:
        """Drop the connection now, without flushing: the synchronous discard."""
        self._closed = True
        self._transport.abort()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        """Upgrade to TLS (TLS-in-TLS too) and return the TLS stream.

        ``server_hostname`` is sent as SNI and checked against the certificate.

        Raises:
            ConnectTimeout: The handshake exceeded ``timeout``.
            ConnectError: The handshake failed (certificate, protocol...).

        On any failure, cancellation included, the connection is closed.
        """
        loop = asyncio.get_running_loop()
        protocol = _TLSStreamProtocol(loop)
        old = self._protocol
        # The transport now belongs to the TLS layer whatever happens: this
        # plain stream must neither read it nor wait for it when closed.
        self._closed = True
        if old.chunks:
            # Bytes the peer sent before our ClientHello cannot be the start of
            # a TLS server flight; refuse rather than drop or misparse them.
            self._transport.abort()
            raise ConnectError(
                f"{old.buffered} unread bytes were buffered before start_tls(); "
                "the peer spoke before the TLS handshake"
            )
        if old.eof or self._transport.is_closing():
            # The peer already closed: a handshake cannot start, and uvloop
            # would only log the failed write and leave us waiting.
            self._transport.abort()
            raise ConnectError("the peer closed the connection before start_tls()")
        try:
            async with connect_errors(timeout, "TLS handshake"):
                transport = await loop.start_tls(
                    self._transport,
                    protocol,
                    ssl_context,
                    server_hostname=server_hostname,
                    # Our own timeout governs; asyncio's must not fire first.
                    ssl_handshake_timeout=_HANDSHAKE_CEILING
                    if timeout is None
                    else timeout + 1.0,
                )
        except BaseException:
            self._transport.abort()
            raise
        if transport is None:  # pragma: no cover - closed during handshake
            self._transport.abort()
            raise ConnectError("connection closed during the TLS handshake")
        protocol.transport = transport
        # The socket's own transport, however many TLS layers run on it.
        return AsyncIOStream(transport, protocol, under=self._under or self._transport)

    def get_extra_info(self, info: str) -> Any:
        """Return ``ssl_object``, ``client_addr``, ``server_addr``, ``socket``,
        ``is_readable``, or any key asyncio's transports know; None otherwise.

        ``is_readable`` is True when bytes or EOF are waiting to be read: on an
        idle connection that means the server closed it or sent garbage.
        """
        if info == "is_readable":
            protocol = self._protocol
            return bool(protocol.chunks) or protocol.eof
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        return self._transport.get_extra_info(info)

    def __repr__(self) -> str:
        peer = self._transport.get_extra_info("peername")
        tls = self._transport.get_extra_info("ssl_object") is not None
        return f"<{self.__class__.__name__} {peer!r}{' TLS' if tls else ''}>"


# How long aclose() waits for the transport to finish closing (for TLS, the
# peer's close_notify) before aborting: enough for a loopback or LAN round trip,
# short enough that a peer that never answers costs little.
_CLOSE_GRACE = 0.1
# Handshake limit handed to asyncio when the caller set none (it needs one).
_HANDSHAKE_CEILING = 24 * 3600.0


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class AsyncPrefixedStream(AsyncNetworkStream):
    """A stream whose first bytes were already read by a handshake parser.

    After a 101 or a 2xx CONNECT (HTTP/1.1), or a SOCKS5 reply, the bytes the
    parser received past the end of its handshake are the first bytes of the
    next protocol: ``read()`` returns them first, then reads the network.
    """

    def __init__(self, stream: AsyncNetworkStream, leading_data: bytes) -> None:
        self._stream = stream
        self._leading_data = leading_data

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Return buffered bytes first, then read from the network."""
        if self._leading_data:
            data = self._leading_data[:max_bytes]
            self._leading_data = self._leading_data[max_bytes:]
            return data
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Send ``buffer``."""
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        """Close the underlying stream."""
        await self._stream.aclose()

    def abort(self) -> None:
        """Drop the underlying stream now (see :func:`discard_stream`)."""
        self._leading_data = b""
        discard_stream(self._stream)

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        """Start TLS on the underlying stream (e.g. to the origin in a tunnel).

        Raises:
            ConnectError: Unread bytes of the new protocol are still buffered
                (the stream is closed).
        """
        if self._leading_data:
            count = len(self._leading_data)
            self.abort()
            raise ConnectError(
                f"{count} unread bytes were buffered before start_tls(); "
                "the peer spoke before the TLS handshake"
            )
        return await self._stream.start_tls(ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str) -> Any:
        """As the underlying stream, except ``is_readable`` counts buffered bytes."""
        if info == "is_readable" and self._leading_data:
            return True
        return self._stream.get_extra_info(info)

    def __repr__(self) -> str:
        return (
            f"<{self.__class__.__name__} {self._stream!r} "
            f"+{len(self._leading_data)} buffered bytes>"
        )
