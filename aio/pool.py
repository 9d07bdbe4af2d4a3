"""``AsyncConnectionPool``: carries out :class:`sansio.pool.PoolState`'s decisions.

The pool never decides anything itself. Each event (a request arrives, a
connection connects or fails, a response is closed, a request is cancelled or
times out) goes to ``PoolState``, and the returned actions are executed at once:
connections are created or aborted synchronously, and waiting requests are woken
through their own futures. Every state change happens before the first
``await`` of any cleanup path, so a cancellation at any point leaves the pool
consistent: no connection stuck CONNECTING, no slot leaked, no socket left open.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
from collections.abc import Iterable
from typing import Any

from sansio.headers import HeaderInput
from sansio.pool import (
    AssignRequest,
    CloseConnection,
    OpenConnection,
    PoolAction,
    PoolKey,
    PoolRequestState,
    PoolState,
)
from sansio.urls import URL, Origin, validate_sni_hostname

from .backends import SOCKET_OPTION, AsyncIOBackend, AsyncNetworkBackend
from .connection import AsyncHTTPConnection
from .exceptions import (
    ConnectionNotAvailable,
    PoolTimeout,
    ReadError,
    RemoteProtocolError,
    UnsupportedProtocol,
    WriteError,
)
from .interfaces import AsyncConnectionInterface, AsyncRequestInterface, ResponseBody
from .models import (
    ByteStream,
    Proxy,
    Request,
    Response,
    check_scheme,
    start_deadline,
    timeout_for,
)
from .proxy import AsyncForwardHTTPConnection, AsyncTunnelHTTPConnection
from .socks import AsyncSocks5Connection
from .trace import Trace, tracing

__all__ = ["AsyncConnectionPool", "AsyncHTTPProxy", "AsyncSOCKSProxy"]

logger = logging.getLogger(__name__)

# RFC 9110 §9.2.2: methods whose repetition has the same effect as one request.
_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE"})


class _Slot:
    """Where a waiting request learns which connection it got (or why not)."""

    __slots__ = ("connection_id", "future")

    def __init__(self, future: asyncio.Future[int]) -> None:
        self.future = future
        self.connection_id: int | None = None


class AsyncConnectionPool(AsyncRequestInterface):
    """A pool of connections, shared by every request made through it.

    Args:
        ssl_context: Client TLS settings; default: certifi, made once.
        proxy: Send every request through this :class:`Proxy`: ``http://``
            origins forwarded by an HTTP proxy, others through a CONNECT
            tunnel; or all through SOCKS5.
        max_connections: Connections open at most (None: unbounded).
        max_keepalive_connections: Idle connections kept at most.
        keepalive_expiry: Seconds an idle connection stays reusable.
        http1: Allow HTTP/1.1.
        http2: Allow HTTP/2 (ALPN ``h2`` first; prior knowledge with
            ``http1=False``).
        retries: Extra connection attempts after a connect failure.
        local_address: Local IP to bind.
        uds: Connect every request to this Unix socket.
        network_backend: Opens streams; default :class:`AsyncIOBackend`.
        socket_options: ``setsockopt`` triples applied before connect.
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        proxy: Proxy | None = None,
        max_connections: int | None = 10,
        max_keepalive_connections: int | None = None,
        keepalive_expiry: float | None = None,
        http1: bool = True,
        http2: bool = False,
        retries: int = 0,
        local_address: str | None = None,
        uds: str | None = None,
        network_backend: AsyncNetworkBackend | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> None:
        if proxy is not None and not isinstance(proxy, Proxy):
            raise TypeError(f"proxy must be a Proxy, not {type(proxy).__name__}")
        self._proxy = proxy
        self._http1 = http1
        self._http2 = http2
        # What every connection kind takes (to the origin, or to the proxy)...
        self._socket_settings: dict[str, Any] = {
            "keepalive_expiry": keepalive_expiry,
            "retries": retries,
            "local_address": local_address,
            "uds": uds,
            "network_backend": network_backend or AsyncIOBackend(),
            "socket_options": socket_options,
        }
        # ...and what those that speak HTTP to the origin also take.
        self._origin_settings: dict[str, Any] = {
            "ssl_context": ssl_context,
            "http1": http1,
            "http2": http2,
        }
        self._state = PoolState(
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
        )
        self._connections: dict[int, AsyncConnectionInterface] = {}
        self._slots: dict[int, _Slot] = {}
        # Connections the pool opened for a request and has not yet heard
        # connect (their first response reports what they turned out to be).
        self._unannounced: set[int] = set()
        self._closed = False

    # -- public --------------------------------------------------------------

    @property
    def connections(self) -> list[AsyncConnectionInterface]:
        """A copy of the pool's connections, oldest first."""
        return list(self._connections.values())

    def stats(self) -> dict[str, int]:
        """A snapshot of the pool, from its own bookkeeping (O(connections)).

        Keys: ``connections_connecting``, ``connections_active`` (carrying a
        request), ``connections_idle``, ``requests_active`` (holding a
        connection) and ``requests_waiting`` (queued for one).
        """
        return self._state.counts()

    async def handle_async_request(self, request: Request) -> Response:
        """Send ``request`` on a pooled connection; return once its head arrived.

        Raises:
            UnsupportedProtocol: The URL scheme is not http/https/ws/wss.
            PoolTimeout: No connection within the ``pool`` timeout, counted once
                from arrival across every internal retry.
            RuntimeError: The pool is closed, or closed while the request waited.
            ConnectError, ConnectTimeout, ReadError, ...: As the connection's.

        Cancellation at any point releases the request's place in the pool.
        """
        check_scheme(request.url)
        if self._closed:
            raise RuntimeError("The connection pool is closed.")
        start_deadline(request, again=True)
        timeout = timeout_for(request, "pool")
        # The pool's own trace step costs an object and two awaits: paid only
        # when someone listens.
        traced = tracing(request, logger)
        arrived = self._event_loop().time() if traced or timeout is not None else 0.0
        deadline = None if timeout is None else arrived + timeout
        key = self._key(request)
        # wss never offers h2 (a WebSocket Upgrade needs HTTP/1.1).
        shared = self._http2 and (key[0] == b"https" or not self._http1)
        if shared and key[0] == b"http" and self._forwards_http:
            shared = False  # forwarded requests are HTTP/1.1
        state = self._state
        now = time.monotonic()
        expired = state.expire(now)
        if expired:
            self._execute(expired)
        request_id, actions = state.request_arrived(key, shared=shared, now=now)
        retried = False
        while True:
            try:
                placed = self._execute(actions, request_id)
                if traced:
                    connection_id, reused = await self._acquire_traced(
                        request, request_id, placed, deadline, timeout, arrived
                    )
                elif placed is None or self._stale(placed):
                    # No connection yet, or a dead one: the long way.
                    connection_id, reused = await self._acquire(
                        request_id, placed, deadline, timeout
                    )
                else:
                    connection_id, reused = placed
            except BaseException:
                now = time.monotonic()
                if state.request_state(request_id) is PoolRequestState.ACTIVE:
                    # Handed an existing connection but cancelled before using
                    # it: the connection is untouched and stays reusable.
                    self._execute(
                        state.request_released(request_id, reusable=True, now=now)
                    )
                else:
                    self._execute(state.request_cancelled(request_id, now))
                self._slots.pop(request_id, None)
                raise
            connection = self._connections[connection_id]
            try:
                response = await _handler(connection).handle_async_request(request)
            except ConnectionNotAvailable:
                actions = self._requeue(request_id, connection_id, connection)
                continue
            except (ReadError, WriteError, RemoteProtocolError) as exc:
                if (
                    reused
                    and not retried
                    and _retryable(request, exc)
                    and not connection.is_available()
                    and not _response_started(connection)
                ):
                    # A kept-alive connection the server dropped before any
                    # response byte: one more try, on a fresh connection.
                    retried = True
                    actions = self._requeue(
                        request_id, connection_id, connection, fresh=True
                    )
                    continue
                self._release_failed(request_id, connection_id, connection)
                raise
            except BaseException:
                self._release_failed(request_id, connection_id, connection)
                raise
            if connection_id in self._unannounced:  # its first response
                self._announce(
                    connection_id,
                    connection,
                    shared=response.extensions.get("http_version") == b"HTTP/2",
                )
            # Closing the body, however it ends, gives the place back: the
            # connection's own body calls this last (no second Response). The
            # connection is reused unless closed or expired (_release checks).
            body = response.stream
            assert isinstance(body, ResponseBody)  # every connection's is
            body._on_close = functools.partial(self._release, request_id, connection_id)
            return response

    async def aclose(self) -> None:
        """Close every connection; requests still waiting fail with RuntimeError."""
        self._closed = True
        for slot in self._slots.values():
            if not slot.future.done():
                slot.future.set_exception(
                    RuntimeError(
                        "The connection pool was closed while the request was "
                        "waiting for a connection."
                    )
                )
        self._slots.clear()
        # Taken before close_all(), whose actions empty the table: each one
        # is aborted at once, then closed properly (an HTTP/2 GOAWAY, say).
        connections = list(self._connections.values())
        self._execute(self._state.close_all())
        self._connections.clear()
        for connection in connections:
            await connection.aclose()

    async def __aenter__(self) -> AsyncConnectionPool:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        counts = self._state.counts()
        active_connections = (
            counts["connections_connecting"] + counts["connections_active"]
        )
        return (
            f"<{self.__class__.__name__} [Requests: {counts['requests_active']} "
            f"active, {counts['requests_waiting']} queued | Connections: "
            f"{active_connections} active, {counts['connections_idle']} idle]>"
        )

    # -- carrying out PoolState's actions ------------------------------------

    def _key(self, request: Request) -> PoolKey:
        url = request.url
        sni = request.extensions.get("sni_hostname")
        return (
            url.scheme,
            url.host,
            url.origin_port,
            None if sni is None else validate_sni_hostname(sni),
        )

    def _stale(self, placed: tuple[int, bool]) -> bool:
        """Whether the idle connection ``placed`` the request on is dead (the
        server closed it, or keep-alive ran out, while it sat idle)."""
        connection_id, reused = placed
        # Asked of the HTTP connection itself when established (one call less).
        connection = _handler(self._connections[connection_id])
        return reused and connection.is_idle() and connection.has_expired()

    async def _acquire(
        self,
        request_id: int,
        placed: tuple[int, bool] | None,
        deadline: float | None,
        timeout: float | None,
    ) -> tuple[int, bool]:
        """The connection this request goes on, and whether it is reused.

        ``placed``: where the pool's actions put it so far (None: nowhere yet).
        """
        while True:
            if placed is None:
                placed = await self._wait(request_id, deadline, timeout)
            if not self._stale(placed):
                return placed
            # Checked only for the connection about to be used.
            actions = self._state.requeue(
                request_id, time.monotonic(), connection_dead=True
            )
            placed = self._execute(actions, request_id)

    async def _acquire_traced(
        self,
        request: Request,
        request_id: int,
        placed: tuple[int, bool] | None,
        deadline: float | None,
        timeout: float | None,
        arrived: float,
    ) -> tuple[int, bool]:
        """:meth:`_acquire` as the ``pool.acquire_connection`` trace step."""
        kwargs = {"request": request}
        async with Trace("acquire_connection", logger, request, kwargs) as trace:
            connection_id, reused = await self._acquire(
                request_id, placed, deadline, timeout
            )
            trace.return_value = {
                "connection": self._connections[connection_id],
                "reused": connection_id not in self._unannounced,
                "waited": self._event_loop().time() - arrived,
            }
        return connection_id, reused

    async def _wait(
        self, request_id: int, deadline: float | None, timeout: float | None
    ) -> tuple[int, bool]:
        loop = self._event_loop()
        slot = self._slots[request_id] = _Slot(loop.create_future())
        try:
            if deadline is None:
                connection_id = await slot.future
            else:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise PoolTimeout(
                        f"no connection within the pool timeout {timeout}s"
                    )
                try:
                    async with asyncio.timeout(remaining) as scope:
                        connection_id = await slot.future
                except TimeoutError as exc:
                    if scope.expired():
                        raise PoolTimeout(
                            f"no connection within the pool timeout {timeout}s"
                        ) from exc
                    raise
        finally:
            self._slots.pop(request_id, None)
        return connection_id, True

    def _execute(
        self, actions: list[PoolAction], request_id: int | None = None
    ) -> tuple[int, bool] | None:
        """Carry out ``actions`` synchronously; return ``request_id``'s placement."""
        mine = None
        for action in actions:
            if type(action) is AssignRequest:  # the usual one: first
                if action.request_id == request_id:
                    mine = (action.connection_id, True)
                else:
                    self._wake(action.request_id, action.connection_id)
            elif type(action) is CloseConnection:
                connection = self._connections.pop(action.connection_id, None)
                self._unannounced.discard(action.connection_id)
                if connection is not None:
                    _abort(connection)
            else:
                assert isinstance(action, OpenConnection)
                self._connections[action.connection_id] = self._create(action.key)
                self._unannounced.add(action.connection_id)
                if action.request_id == request_id:
                    mine = (action.connection_id, False)
                else:
                    self._wake(action.request_id, action.connection_id)
        return mine

    def _wake(self, request_id: int, connection_id: int) -> None:
        slot = self._slots.get(request_id)
        if slot is not None and not slot.future.done():
            slot.future.set_result(connection_id)

    @property
    def _forwards_http(self) -> bool:
        return self._proxy is not None and not self._proxy.is_socks

    def _create(self, key: PoolKey) -> AsyncConnectionInterface:
        """The connection for ``key``: direct, or the kind ``proxy`` calls for
        (as httpcore 1.0.7+ chooses it)."""
        scheme, host, port, _ = key
        origin = Origin(scheme, host, port)
        socket_settings, origin_settings = self._socket_settings, self._origin_settings
        proxy = self._proxy
        if proxy is None:
            return AsyncHTTPConnection(origin, **origin_settings, **socket_settings)
        proxy_origin = proxy.url.origin
        if proxy.is_socks:
            return AsyncSocks5Connection(
                proxy_origin,
                origin,
                proxy_auth=proxy.auth,
                **origin_settings,
                **socket_settings,
            )
        if origin.scheme == b"http":
            return AsyncForwardHTTPConnection(
                proxy_origin,
                origin,
                proxy_headers=proxy.headers,
                proxy_ssl_context=proxy.ssl_context,
                **socket_settings,
            )
        return AsyncTunnelHTTPConnection(
            proxy_origin,
            origin,
            proxy_ssl_context=proxy.ssl_context,
            proxy_headers=proxy.headers,
            **origin_settings,
            **socket_settings,
        )

    def _announce(
        self, connection_id: int, connection: AsyncConnectionInterface, *, shared: bool
    ) -> None:
        """Tell PoolState what a newly connected connection turned out to be:
        ``shared`` if HTTP/2."""
        if connection_id in self._unannounced:
            self._unannounced.discard(connection_id)
            capacity = _stream_capacity(connection) if shared else None
            self._execute(
                self._state.connection_ready(
                    connection_id,
                    shared=shared,
                    available=connection.is_available(),
                    now=time.monotonic(),
                    capacity=capacity,
                )
            )

    def _release_failed(
        self, request_id: int, connection_id: int, connection: AsyncConnectionInterface
    ) -> None:
        """Release a request whose exchange failed, cancellation included.

        The connection's own state decides what happens to it: HTTP/1.1
        discards itself on any failure mid-exchange, and so does an HTTP/2
        connection that failed as a whole; an HTTP/2 connection still open
        lost only this stream (a reset, a malformed response) and stays for
        its siblings and the next request, announced now if this was its
        first request.
        """
        if not connection.is_closed() and _stream_capacity(connection) is not None:
            self._announce(connection_id, connection, shared=True)
        self._release(request_id, connection_id, reusable=True)

    def _requeue(
        self,
        request_id: int,
        connection_id: int,
        connection: AsyncConnectionInterface,
        *,
        fresh: bool = False,
    ) -> list[PoolAction]:
        dead = connection.is_closed() or connection.has_expired()
        return self._state.requeue(
            request_id, time.monotonic(), connection_dead=dead, fresh=fresh
        )

    def _release(
        self, request_id: int, connection_id: int, reusable: bool = True
    ) -> None:
        connection = self._connections.get(connection_id)
        capacity = None
        if connection is None:
            reusable = False
        else:
            connection = _handler(connection)  # as in _stale
            reusable = (
                reusable and not connection.is_closed() and not connection.has_expired()
            )
            if reusable:
                capacity = _capacity(connection)
        if capacity is not None:
            # The server's stream limit may have changed (SETTINGS, GOAWAY).
            self._execute(
                self._state.stream_capacity(
                    connection_id,
                    available=capacity > 0,
                    capacity=capacity,
                    now=time.monotonic(),
                )
            )
        # PoolState closes what is not reusable; _execute aborts it (and
        # forgets it was unannounced). A connection still connecting for a
        # sibling stays unannounced until that sibling's response says what it is.
        actions = self._state.request_released(
            request_id, reusable=reusable, now=time.monotonic()
        )
        if actions:
            self._execute(actions)


def _handler(connection: AsyncConnectionInterface) -> AsyncConnectionInterface:
    """Who takes the request: an established direct connection's HTTP/1.1 or
    HTTP/2 connection itself, without the wrapper's checks, which the pool
    made already (scheme, origin, deadline)."""
    if type(connection) is AsyncHTTPConnection:
        established = connection._established  # the property, without its call
        if established is not None:
            return established
    return connection


def _stream_capacity(connection: AsyncConnectionInterface) -> int | None:
    # Asked of the HTTP connection itself when established: HTTP/1.1 has none.
    return _capacity(_handler(connection))


def _capacity(handler: AsyncConnectionInterface) -> int | None:
    stream_capacity = getattr(handler, "stream_capacity", None)
    value = None if stream_capacity is None else stream_capacity()
    return None if value is None else int(value)


def _response_started(connection: AsyncConnectionInterface) -> bool:
    started = getattr(connection, "response_started", None)
    return started is not None and bool(started())


def _abort(connection: AsyncConnectionInterface) -> None:
    abort = getattr(connection, "abort", None)
    if abort is not None:
        abort()


def _retryable(request: Request, exc: Exception) -> bool:
    if request.method not in _IDEMPOTENT or not isinstance(request.stream, ByteStream):
        return False
    if isinstance(exc, RemoteProtocolError):
        return str(exc) == "Server disconnected without sending a response."
    return True


class AsyncHTTPProxy(AsyncConnectionPool):
    """A connection pool whose requests all go through one HTTP proxy.

    Args:
        proxy_url: ``http://`` or ``https://`` (TLS to the proxy) URL.
        proxy_auth: ``(username, password)`` for ``Proxy-Authorization: Basic``.
        proxy_headers: Sent to the proxy with every forwarded request and CONNECT.
        ssl_context: TLS settings for ``https`` origins.
        proxy_ssl_context: TLS settings for an ``https://`` proxy.
        max_connections, max_keepalive_connections, keepalive_expiry, http1,
        http2, retries, local_address, uds, network_backend, socket_options:
            As for :class:`AsyncConnectionPool`; the socket settings apply to
            the connections to the proxy.

    Raises:
        UnsupportedProtocol: ``proxy_url`` is not http:// or https://.
        LocalProtocolError: Credentials or headers that cannot be sent.
    """

    def __init__(
        self,
        proxy_url: URL | bytes | str,
        proxy_auth: tuple[bytes | str, bytes | str] | None = None,
        proxy_headers: HeaderInput | None = None,
        ssl_context: ssl.SSLContext | None = None,
        proxy_ssl_context: ssl.SSLContext | None = None,
        max_connections: int | None = 10,
        max_keepalive_connections: int | None = None,
        keepalive_expiry: float | None = None,
        http1: bool = True,
        http2: bool = False,
        retries: int = 0,
        local_address: str | None = None,
        uds: str | None = None,
        network_backend: AsyncNetworkBackend | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> None:
        proxy = Proxy(
            url=proxy_url,
            auth=proxy_auth,
            headers=proxy_headers,
            ssl_context=proxy_ssl_context,
        )
        if proxy.is_socks:
            raise UnsupportedProtocol(
                "AsyncHTTPProxy needs an http:// or https:// proxy URL; use "
                "AsyncSOCKSProxy for socks5:// and socks5h://"
            )
        super().__init__(
            ssl_context=ssl_context,
            proxy=proxy,
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
            http1=http1,
            http2=http2,
            retries=retries,
            local_address=local_address,
            uds=uds,
            network_backend=network_backend,
            socket_options=socket_options,
        )


class AsyncSOCKSProxy(AsyncConnectionPool):
    """A connection pool whose requests all go through one SOCKS5 proxy.

    Args:
        proxy_url: ``socks5://`` (names resolved here) or ``socks5h://``
            (names resolved by the proxy).
        proxy_auth: ``(username, password)`` for RFC 1929 authentication.
        ssl_context: TLS settings for ``https`` origins.
        max_connections, max_keepalive_connections, keepalive_expiry, http1,
        http2, retries, network_backend, local_address, socket_options:
            As for :class:`AsyncConnectionPool`; the socket settings apply to
            the connections to the proxy.

    Raises:
        UnsupportedProtocol: ``proxy_url`` is not socks5:// or socks5h://.
        LocalProtocolError: Credentials that cannot be sent.
    """

    def __init__(
        self,
        proxy_url: URL | bytes | str,
        proxy_auth: tuple[bytes | str, bytes | str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int | None = 10,
        max_keepalive_connections: int | None = None,
        keepalive_expiry: float | None = None,
        http1: bool = True,
        http2: bool = False,
        retries: int = 0,
        network_backend: AsyncNetworkBackend | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> None:
        proxy = Proxy(url=proxy_url, auth=proxy_auth)
        if not proxy.is_socks:
            raise UnsupportedProtocol(
                "AsyncSOCKSProxy needs a socks5:// or socks5h:// proxy URL; use "
                "AsyncHTTPProxy for http:// and https://"
            )
        super().__init__(
            ssl_context=ssl_context,
            proxy=proxy,
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
            http1=http1,
            http2=http2,
            retries=retries,
            local_address=local_address,
            network_backend=network_backend,
            socket_options=socket_options,
        )
