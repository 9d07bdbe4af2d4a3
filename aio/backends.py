"""Network backends: how streams are opened.

``AsyncIOBackend`` connects with Happy Eyeballs (RFC 8305) through
aiohappyeyeballs, because uvloop's ``create_connection`` rejects
``happy_eyeballs_delay``; the connected socket is then handed to the loop. DNS
resolution, every connection attempt and the socket options all sit under the
one ``connect`` timeout.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from typing import Any, TypeAlias

import aiohappyeyeballs

from .exceptions import connect_errors
from .streams import AsyncIOStream, AsyncNetworkStream, _StreamProtocol

__all__ = ["SOCKET_OPTION", "AsyncIOBackend", "AsyncNetworkBackend"]

SOCKET_OPTION: TypeAlias = (
    tuple[int, int, int]
    | tuple[int, int, bytes | bytearray]
    | tuple[int, int, None, int]
)

# RFC 8305 §8: "Connection Attempt Delay ... recommended value of 250 ms".
HAPPY_EYEBALLS_DELAY = 0.25


class AsyncNetworkBackend:
    """Opens network streams, as httpcore defines it."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        """Open a TCP connection to ``host:port``."""
        raise NotImplementedError()  # pragma: no cover

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        """Open a connection to the Unix socket at ``path``."""
        raise NotImplementedError()  # pragma: no cover

    async def sleep(self, seconds: float) -> None:
        """Sleep on this backend's clock."""
        raise NotImplementedError()  # pragma: no cover


def _apply_options(
    sock: socket.socket, socket_options: Iterable[SOCKET_OPTION] | None
) -> None:
    for option in socket_options or ():
        sock.setsockopt(*option)


class AsyncIOBackend(AsyncNetworkBackend):
    """Streams on the running asyncio (or uvloop) event loop."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        """Resolve ``host`` and connect, racing addresses per RFC 8305.

        Args:
            host: Name or address literal.
            port: TCP port.
            timeout: Seconds for resolution plus connecting, or None.
            local_address: Local IP to bind before connecting.
            socket_options: ``setsockopt`` triples applied before connect.

        Raises:
            ConnectTimeout: ``timeout`` expired.
            ConnectError: Resolution or every connection attempt failed.

        Cancellation closes any socket opened so far.
        """
        loop = asyncio.get_running_loop()
        options = list(socket_options or ())

        def socket_factory(addr_info: Any) -> socket.socket:
            family, type_, proto, _, _ = addr_info
            sock = socket.socket(family=family, type=type_, proto=proto)
            try:
                _apply_options(sock, options)
            except BaseException:
                sock.close()
                raise
            return sock

        async with connect_errors(timeout, f"connecting to {host}:{port}"):
            infos = await loop.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
            local_infos = None
            if local_address is not None:
                local_infos = await loop.getaddrinfo(
                    local_address, 0, type=socket.SOCK_STREAM
                )
            sock = await aiohappyeyeballs.start_connection(
                infos,
                local_addr_infos=local_infos,
                happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY,
                interleave=1,
                socket_factory=socket_factory,
            )
            return await _wrap_socket(loop, sock)
        raise AssertionError("unreachable")  # pragma: no cover

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        """Connect to the Unix socket at ``path``.

        Raises:
            ConnectTimeout: ``timeout`` expired.
            ConnectError: The socket is missing, refused, or not a socket.
        """
        loop = asyncio.get_running_loop()
        async with connect_errors(timeout, f"connecting to {path}"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                _apply_options(sock, socket_options)
                sock.setblocking(False)
                await _connect_unix(sock, path)
            except BaseException:
                sock.close()
                raise
            return await _wrap_socket(loop, sock, unix=True)
        raise AssertionError("unreachable")  # pragma: no cover

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(seconds)


# How often a Unix connect is retried while the listener's queue is full.
_UNIX_RETRY_INTERVAL = 0.01


async def _connect_unix(sock: socket.socket, path: str) -> None:
    # A non-blocking AF_UNIX connect never goes "in progress": EAGAIN means the
    # listener's accept queue is full (unix(7)). loop.sock_connect() takes it for
    # EINPROGRESS, waits for writability (immediate on an unconnected Unix
    # socket) and reports success on a socket that never connected. Retry
    # instead, under the caller's connect timeout.
    while True:
        try:
            sock.connect(path)
        except BlockingIOError:
            await asyncio.sleep(_UNIX_RETRY_INTERVAL)
        else:
            return


async def _wrap_socket(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, *, unix: bool = False
) -> AsyncIOStream:
    protocol = _StreamProtocol()
    try:
        if unix:
            transport, _ = await loop.create_unix_connection(
                lambda: protocol, sock=sock
            )
        else:
            transport, _ = await loop.create_connection(lambda: protocol, sock=sock)
    except BaseException:
        sock.close()
        raise
    return AsyncIOStream(transport, protocol)
