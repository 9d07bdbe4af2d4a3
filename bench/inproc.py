"""The Python cost of one request, without sockets: ``python -m bench.inproc``.

``AsyncConnectionPool.request()`` against a network backend whose stream
answers every request at once with the head nginx sends for ``/small.txt``
(S1's response). No system call, no server, no event-loop wait: what is left
is wireline's own per-request work (request building, the pool, the HTTP/1.1
driver and sans-IO core, the response), on one connection. Steadier than
``make bench`` (to within about half a microsecond), so fit for checking a
change to the request path; the best of several rounds is printed.
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


async def _measure(requests: int, rounds: int) -> float:
    """The best of ``rounds`` rounds: CPU seconds per request."""
    async with aio.AsyncConnectionPool(network_backend=answer_at_once()) as pool:
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
    args = parser.parse_args(argv)
    import uvloop

    for name, factory in (("asyncio", None), ("uvloop", uvloop.new_event_loop)):
        with asyncio.Runner(loop_factory=factory) as runner:
            cost = runner.run(_measure(args.requests, args.rounds))
        print(f"{name:8} {cost * 1e6:6.2f} µs per request (best of {args.rounds})")


if __name__ == "__main__":
    main()
