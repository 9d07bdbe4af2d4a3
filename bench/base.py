"""What every benchmarked client implements, and the response check they share.

A scenario only ever calls ``start``, ``get``, ``download``, ``http_version`` and
``aclose``; each client (wireline, a peer library, the raw floor or a sans-IO
library driven naively) adapts its own API to those five calls. ``get`` checks
the status and the body length of every response, so a broken client fails
instead of looking fast.
"""

from __future__ import annotations

import abc
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["BenchClient", "BenchError", "Endpoint", "check_response"]


class BenchError(RuntimeError):
    """A response that is not what the server sends (or a client that cannot run)."""


@dataclass(frozen=True)
class Endpoint:
    """Where a client connects and how many connections it may open there.

    Attributes:
        host: a loopback address.
        port: the nginx listener.
        tls: TLS (trusting ``cafile``) with ALPN, else plain TCP.
        http2: speak HTTP/2 (over TLS, ALPN h2), else HTTP/1.1.
        max_connections: the pool size.
        cafile: the CA that signed nginx's certificate.
    """

    host: str
    port: int
    tls: bool
    http2: bool
    max_connections: int
    cafile: str

    @property
    def origin(self) -> str:
        """``scheme://host:port``."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def authority(self) -> str:
        """``host:port``, as sent in ``Host`` / ``:authority``."""
        return f"{self.host}:{self.port}"

    def ssl_context(self, alpn: list[str]) -> ssl.SSLContext:
        """A fresh context trusting ``cafile`` and offering ``alpn``."""
        context = ssl.create_default_context(cafile=self.cafile)
        context.set_alpn_protocols(alpn)
        return context


def check_response(status: int, length: int, expected: int) -> None:
    """Raise ``BenchError`` unless the response is a 200 of ``expected`` bytes."""
    if status != 200 or length != expected:
        raise BenchError(
            f"bad response: status {status}, {length} body bytes "
            f"(expected 200 and {expected})"
        )


class BenchClient(abc.ABC):
    """One client under test, bound to one endpoint."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._urls: dict[str, str] = {}

    def url(self, path: str) -> str:
        """``origin + path``, built once per path."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = self.endpoint.origin + path
        return url

    async def start(self) -> None:  # noqa: B027 - most clients connect lazily
        """Prepare what the client needs before its first request (not timed)."""

    @abc.abstractmethod
    async def get(self, path: str, expected: int) -> None:
        """GET ``path``, read the whole body, check status 200 and its length.

        Raises:
            BenchError: another status or body length.
        """

    @abc.abstractmethod
    async def download(self, path: str) -> int:
        """GET ``path`` streaming the body, discard it; return its length.

        Raises:
            BenchError: a status other than 200.
        """

    async def http_version(self, path: str) -> str | None:
        """The protocol a GET of ``path`` used (``HTTP/1.1``, ``HTTP/2``), if known."""
        return None

    async def get_holding(
        self, path: str, expected: int, hold: Callable[[], Awaitable[None]]
    ) -> None:
        """GET ``path``, calling ``await hold()`` while the request owns a connection.

        Where: once the response head arrived (or, for a client that gives the
        connection back as soon as the body is in, before the request is sent).
        A request held this way keeps its connection busy, so the next one has
        to open another (the idle-pool measurements).

        Raises:
            BenchError: the client cannot do this, or a bad response.
        """
        raise BenchError(f"{type(self).__name__} cannot hold responses open")

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close every connection."""

    def open_connections(self) -> int | None:
        """How many connections the client holds open now, if it can tell."""
        return None
