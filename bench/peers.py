"""wireline and the peer clients, each used the way its documentation shows.

- wireline: ``aio.AsyncConnectionPool(max_connections=..., http2=...)``,
  ``pool.request`` / ``pool.stream`` + ``aiter_stream``.
- httpcore and httpcore2 (the maintained fork): the same API, the same adapter.
- aiohttp: ``ClientSession`` on a ``TCPConnector(limit=...)``. No HTTP/2.
- aiosonic: ``HTTPClient`` on a ``TCPConnector`` whose default ``PoolConfig``
  holds the pool size (``max_conn_requests=None``: by default it recycles a
  connection after 1,000 requests, which S1 would notice); ``http2=True`` for S3.

Every client keeps its library's default timeouts and headers: that is part of
what a user pays per request. Imports happen when a client is built, so a worker
process only loads the library it measures.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any

from bench.base import BenchClient, BenchError, Endpoint, check_response

__all__ = ["AiohttpClient", "AiosonicClient", "HttpcoreAPIClient"]

ALPN_H2 = ["h2", "http/1.1"]
ALPN_H1 = ["http/1.1"]


class HttpcoreAPIClient(BenchClient):
    """wireline's ``aio``, ``httpcore`` or ``httpcore2``: one pool, httpcore's API."""

    def __init__(self, endpoint: Endpoint, module: str) -> None:
        super().__init__(endpoint)
        self.module = importlib.import_module(module)
        context = None
        if endpoint.tls:  # our own context: ALPN must be set by its owner
            context = endpoint.ssl_context(ALPN_H2 if endpoint.http2 else ALPN_H1)
        self.pool: Any = self.module.AsyncConnectionPool(
            ssl_context=context,
            max_connections=endpoint.max_connections,
            http1=True,
            http2=endpoint.http2,
        )

    async def get(self, path: str, expected: int) -> None:
        """One ``pool.request`` (reads the body, releases the connection)."""
        response = await self.pool.request("GET", self.url(path))
        check_response(response.status, len(response.content), expected)

    async def download(self, path: str) -> int:
        """``pool.stream`` and ``aiter_stream``, counting bytes."""
        received = 0
        async with self.pool.stream("GET", self.url(path)) as response:
            if response.status != 200:
                raise BenchError(f"status {response.status}")
            async for chunk in response.aiter_stream():
                received += len(chunk)
        return received

    async def get_holding(
        self, path: str, expected: int, hold: Callable[[], Awaitable[None]]
    ) -> None:
        """``pool.stream``, ``hold()``, then ``aread()``."""
        async with self.pool.stream("GET", self.url(path)) as response:
            await hold()
            body = await response.aread()
        check_response(response.status, len(body), expected)

    async def http_version(self, path: str) -> str | None:
        """From the ``http_version`` response extension."""
        response = await self.pool.request("GET", self.url(path))
        version: bytes = response.extensions["http_version"]
        return version.decode()

    async def aclose(self) -> None:
        """``pool.aclose()``."""
        await self.pool.aclose()

    def open_connections(self) -> int | None:
        """``len(pool.connections)``."""
        return len(self.pool.connections)


class AiohttpClient(BenchClient):
    """aiohttp's ``ClientSession`` with a ``TCPConnector(limit=max_connections)``.

    aiohttp hands a connection back to its pool as soon as a response's body
    has been received, read or not, so ``get_holding`` holds the request while
    it owns its connection and before it sends: in the ``on_connection_create_end``
    and ``on_connection_reuseconn`` trace hooks (installed with ``holding=True``
    only, as tracing costs a little on every request).
    """

    def __init__(self, endpoint: Endpoint, *, holding: bool = False) -> None:
        super().__init__(endpoint)
        if endpoint.http2:
            raise BenchError("no HTTP/2")
        import aiohttp

        ssl: Any = endpoint.ssl_context(ALPN_H1) if endpoint.tls else True
        self.connector = aiohttp.TCPConnector(
            limit=endpoint.max_connections, limit_per_host=0, ssl=ssl
        )
        trace_configs = []
        if holding:
            trace = aiohttp.TraceConfig()
            trace.on_connection_create_end.append(_hold_in_trace)
            trace.on_connection_reuseconn.append(_hold_in_trace)
            trace_configs.append(trace)
        self.session = aiohttp.ClientSession(
            connector=self.connector, trace_configs=trace_configs
        )

    async def get(self, path: str, expected: int) -> None:
        """``session.get`` and ``read()``."""
        async with self.session.get(self.url(path)) as response:
            body = await response.read()
        check_response(response.status, len(body), expected)

    async def download(self, path: str) -> int:
        """``response.content.iter_any()``, counting bytes."""
        received = 0
        async with self.session.get(self.url(path)) as response:
            if response.status != 200:
                raise BenchError(f"status {response.status}")
            async for chunk in response.content.iter_any():
                received += len(chunk)
        return received

    async def get_holding(
        self, path: str, expected: int, hold: Callable[[], Awaitable[None]]
    ) -> None:
        """``session.get`` with ``hold`` as the trace context, then ``read()``."""
        async with self.session.get(self.url(path), trace_request_ctx=hold) as r:
            body = await r.read()
        check_response(r.status, len(body), expected)

    async def http_version(self, path: str) -> str | None:
        """``response.version``."""
        async with self.session.get(self.url(path)) as response:
            await response.read()
            version = response.version
        return None if version is None else f"HTTP/{version.major}.{version.minor}"

    async def aclose(self) -> None:
        """``session.close()``."""
        await self.session.close()

    def open_connections(self) -> int | None:
        """Idle plus acquired connections of the connector (private attributes)."""
        idle = getattr(self.connector, "_conns", {})
        acquired = getattr(self.connector, "_acquired", ())
        return sum(len(conns) for conns in idle.values()) + len(acquired)


async def _hold_in_trace(session: object, context: Any, params: object) -> None:
    """An aiohttp trace hook: await the request's ``trace_request_ctx``, if any."""
    hold = context.trace_request_ctx
    if hold is not None:
        await hold()


class AiosonicClient(BenchClient):
    """aiosonic's ``HTTPClient``; the pool size in the connector's ``PoolConfig``."""

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint)
        import aiosonic
        from aiosonic.pools import PoolConfig

        config = PoolConfig(
            size=endpoint.max_connections, max_conn_requests=None, max_conn_idle_ms=None
        )
        self.connector = aiosonic.TCPConnector(
            pool_configs={":default": config}, http2=endpoint.http2
        )
        self.client = aiosonic.HTTPClient(
            connector=self.connector, http2=endpoint.http2
        )
        self.options: dict[str, Any] = {}
        if endpoint.tls:
            alpn = ALPN_H2 if endpoint.http2 else ALPN_H1
            self.options = {"ssl": endpoint.ssl_context(alpn), "http2": endpoint.http2}

    async def get(self, path: str, expected: int) -> None:
        """``client.get`` and ``content()``."""
        response = await self.client.get(self.url(path), **self.options)
        body = await response.content()
        check_response(response.status_code, len(body), expected)

    async def download(self, path: str) -> int:
        """``client.stream`` and ``read_chunks()``, counting bytes."""
        received = 0
        async with self.client.stream("GET", self.url(path), **self.options) as r:
            if r.status_code != 200:
                raise BenchError(f"status {r.status_code}")
            async for chunk in r.read_chunks():
                received += len(chunk)
        return received

    async def http_version(self, path: str) -> str | None:
        """``response.http_version`` (``2``, ``1.1``)."""
        response = await self.client.get(self.url(path), **self.options)
        await response.content()
        return f"HTTP/{response.http_version}"

    async def aclose(self) -> None:
        """``client.aclose()``."""
        await self.client.aclose()
