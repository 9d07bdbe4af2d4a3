"""The Python cost of one request, without sockets: ``python -m bench.inproc``.

``AsyncConnectionPool.request()`` against a network backend whose stream
answers every request at once with the head nginx sends for ``/small.txt``
(S1's response). No system call, no server, no event-loop wait: what is left
is wireline's own per-request work (request building, the pool, the HTTP/1.1
driver and sans-IO core, the response), on one connection. Steadier than
``make bench`` (to within about half a microsecond), so fit for checking a
change to the request path; the best of several rounds is printed.
``--idle 10,1000`` measures with that many idle connections in the pool: the
pool's own work per request, without the kernel's and the allocator's share
of holding 1,000 sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from typing import Any

import aio

__all__ = ["RESPONSE", "answer_at_once", "main"]

# nginx 1.22's answer to GET /small.txt (bench/server.py serves the same file).
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Server: nginx/1.22.1\r\n"
    b"Date: Sun, 22 Nov 2026 00:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 13\r\n"
    b"Last-Modified: Sun, 22 Nov 2026 00:00:00 GMT\r\n"
    b"Connection: keep-alive\r\n"
    b'ETag: "6543-d"\r\n'
    b"Accept-Ranges: bytes\r\n"
    b"\r\n"
    b"Hello, world!"
)
URL = "http://127.0.0.1:8080/small.txt"


class _AnsweringStream(aio.AsyncMockStream):
    """Each write is a whole request; the next read returns RESPONSE."""

    def __init__(self) -> None:
        super().__init__([])
        self._asked = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if not self._asked:
            raise RuntimeError("read before a request was written")
        self._asked = False
        return RESPONSE

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._asked = True


class _AnsweringBackend(aio.AsyncMockBackend):
    async def connect_tcp(self, *args: Any, **kwargs: Any) -> aio.AsyncNetworkStream:
        return _AnsweringStream()


def answer_at_once() -> aio.AsyncNetworkBackend:
    """A backend whose streams answer every request with RESPONSE."""
    return _AnsweringBackend([])


async def _hold_idle(pool: aio.AsyncConnectionPool, count: int) -> None:
    """Make ``pool`` hold ``count`` idle connections (``count`` responses held
    open at once, then read and closed)."""
    contexts = [pool.stream("GET", URL) for _ in range(count)]
    responses = [await context.__aenter__() for context in contexts]
    for context, response in zip(contexts, responses, strict=True):
        await response.aread()
        await context.__aexit__(None, None, None)
    if len(pool.connections) != count:
        raise RuntimeError(f"{len(pool.connections)} connections, not {count}")


async def _measure(requests: int, rounds: int, idle: int) -> float:
    """The best of ``rounds`` rounds: CPU seconds per request, with ``idle``
    connections in the pool."""
    pool = aio.AsyncConnectionPool(
        network_backend=answer_at_once(), max_connections=max(idle, 1)
    )
    async with pool:
        await _hold_idle(pool, idle)
        for _ in range(1_000):  # warm up: the connection, and every memo
            await pool.request("GET", URL)
        gc.collect()
        best = float("inf")
        for _ in range(rounds):
            started = time.process_time()
            for _ in range(requests):
                response = await pool.request("GET", URL)
                if response.status != 200 or len(response.content) != 13:
                    raise RuntimeError(f"bad response {response!r}")
            best = min(best, time.process_time() - started)
    return best / requests


def main(argv: list[str] | None = None) -> None:
    """Print the Python cost of one request, on asyncio and on uvloop."""
    parser = argparse.ArgumentParser(prog="python -m bench.inproc")
    parser.add_argument("--requests", type=int, default=10_000, help="per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--idle",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1],
        help="idle connections in the pool, e.g. 10,1000 (one line each)",
    )
    args = parser.parse_args(argv)
    import uvloop

    for name, factory in (("asyncio", None), ("uvloop", uvloop.new_event_loop)):
        for idle in args.idle:
            with asyncio.Runner(loop_factory=factory) as runner:
                cost = runner.run(_measure(args.requests, args.rounds, idle))
            print(
                f"{name:8} {cost * 1e6:6.2f} µs per request with {idle:,} idle "
                f"connection(s) (best of {args.rounds})"
            )


if __name__ == "__main__":
    main()
