"""SOCKS5 proxies: the handshake from :class:`sansio.proxy.SOCKS5Handshake`,
driven over an asyncio stream.

``socks5://`` resolves the origin's name here and sends the proxy an address;
``socks5h://`` sends the name for the proxy to resolve (httpcore sends the
name for both). The handshake, name resolution included, runs under the
``connect`` timeout (httpcore has none there) and is retried like a failed
connect; ``local_address`` and ``socket_options`` apply to the connection to
the proxy.

Trace events: ``socks.connect_tcp``, ``socks.setup_socks5_connection``
(``stream``, ``host``, ``port``, ``auth``), ``socks.start_tls``, then the
origin connection's ``http11.*`` or ``http2.*``; the same on the ``aio.socks``
logger at DEBUG.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from collections.abc import Iterable
from typing import Any

from sansio.proxy import SOCKS5Handshake, SOCKS5State
from sansio.urls import Origin

from .backends import SOCKET_OPTION, AsyncNetworkBackend
from .connection import TLS_SCHEMES, AsyncHTTPConnection
from .exceptions import ConnectError, ReadError, WriteError, connect_errors
from .models import Request
from .streams import AsyncNetworkStream, AsyncPrefixedStream, discard_stream
from .trace import Trace

__all__ = ["AsyncSocks5Connection"]

logger = logging.getLogger(__name__)

READ_NUM_BYTES = 4096


class AsyncSocks5Connection(AsyncHTTPConnection):
    """A connection to one origin through a SOCKS5 proxy (RFC 1928).

    Args:
        proxy_origin: The proxy; scheme ``socks5`` (resolve names here) or
            ``socks5h`` (the proxy resolves them).
        remote_origin: The origin at the far end.
        proxy_auth: ``(username, password)`` for RFC 1929 authentication.
        ssl_context: TLS settings for the origin.
        keepalive_expiry, http1, http2, network_backend, retries,
        local_address, uds, socket_options: As for
            :class:`AsyncHTTPConnection`; the socket settings apply to the
            connection to the proxy.

    Raises (from requests):
        ProxyError: The proxy refused the credentials or the connection, or
            broke the protocol (httpcore's messages where it has one).
        ConnectTimeout: Connect and handshake exceeded the ``connect`` timeout.
    """

    def __init__(
        self,
        proxy_origin: Origin,
        remote_origin: Origin,
        proxy_auth: tuple[bytes, bytes] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_expiry: float | None = None,
        http1: bool = True,
        http2: bool = False,
        network_backend: AsyncNetworkBackend | None = None,
        *,
        retries: int = 0,
        local_address: str | None = None,
        uds: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> None:
        super().__init__(
            origin=remote_origin,
            ssl_context=ssl_context,
            keepalive_expiry=keepalive_expiry,
            http1=http1,
            http2=http2,
            retries=retries,
            local_address=local_address,
            uds=uds,
            network_backend=network_backend,
            socket_options=socket_options,
        )
        self._proxy_origin = proxy_origin
        self._proxy_auth = proxy_auth

    async def _connect_once(
        self, request: Request, timeout: float | None, step: dict[str, Any]
    ) -> AsyncNetworkStream:
        stream = await self._open_stream(
            request, self._proxy_origin, timeout, step, log=logger
        )
        step.clear()
        step.update(
            stream=stream,
            host=self._origin.host.decode("ascii"),
            port=self._origin.port,
            auth=self._proxy_auth,
        )
        try:
            async with Trace(
                "setup_socks5_connection", logger, request, dict(step)
            ) as trace:
                stream = await self._handshake(stream, timeout)
                trace.return_value = stream
        except BaseException:
            discard_stream(stream)
            raise
        if self._origin.scheme in TLS_SCHEMES:
            stream = await self._start_tls(
                request,
                stream,
                timeout,
                step,
                ssl_context=self._tls_context(),
                server_hostname=self._server_hostname(request),
                log=logger,
            )
        return stream

    async def _handshake(
        self, stream: AsyncNetworkStream, timeout: float | None
    ) -> AsyncNetworkStream:
        """Run the SOCKS5 handshake on ``stream``; return the tunnel."""
        origin = self._origin
        async with connect_errors(timeout, "SOCKS5 handshake"):
            host = origin.host
            if self._proxy_origin.scheme == b"socks5":
                host = await _resolve(host, origin.port)
            handshake = SOCKS5Handshake(host, origin.port, self._proxy_auth)
            try:
                while True:
                    data = handshake.data_to_send()
                    if data:
                        await stream.write(data)
                    if handshake.state is SOCKS5State.TUNNEL_READY:
                        break
                    chunk = await stream.read(READ_NUM_BYTES)
                    if chunk:
                        handshake.receive_data(chunk)
                    else:
                        handshake.receive_eof()
            except (ReadError, WriteError) as exc:
                raise ConnectError(f"SOCKS5 handshake failed: {exc}") from exc
        if handshake.trailing_data:
            return AsyncPrefixedStream(stream, handshake.trailing_data)
        return stream


async def _resolve(host: bytes, port: int) -> bytes:
    """``host`` as an address literal, resolved here when it is a name."""
    try:
        ipaddress.ip_address(host.decode("ascii"))
    except ValueError:
        pass
    else:
        return host
    infos = await asyncio.get_running_loop().getaddrinfo(
        host.decode("ascii"), port, type=socket.SOCK_STREAM
    )
    if not infos:  # pragma: no cover - getaddrinfo raises instead
        raise OSError(f"no address found for {host!r}")
    address = str(infos[0][4][0])
    return address.encode("ascii")
