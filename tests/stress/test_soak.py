"""Soak: 100,000 requests per loop, HTTP/1.1 and HTTP/2 mixed in one pool, against
servers that close every connection left idle for 0.5 s.

The two origins are hypercorn over plain TCP (HTTP/1.1) and hypercorn over TLS
with ALPN ``h2``, both with ``keep_alive_timeout`` 0.5 s (``run_hypercorn``): an
HTTP/1.1 connection is closed 0.5 s after its last response, an HTTP/2 one 0.5 s
after its last stream. The load comes in bursts of 500-3,000 requests, 50 at a
time, separated by pauses of 0.35-0.65 s, so at the start of each burst the pool
holds idle connections the server has closed, is closing right now, or will keep:
the stale keep-alive race, dozens of connections at a time, thousands of times.

Every request is an idempotent ``GET /headers?rid=N`` whose answer echoes its id.
The pool retries such a request transparently when a reused connection turns out
dead before any response byte, so none may fail; a failure is tallied by class
(those a closing server can cause apart from the rest) before the test fails.
Afterwards the same checks as the chaos runs: pool settled, fds back, RSS growth
under 10 MB, no loop error, no ResourceWarning.
"""

from __future__ import annotations

import asyncio
import collections
import random
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

import aio
from tests.peers.hypercorn_server import HypercornPeer
from tests.stress.answers import echoed_rid
from tests.stress.vitals import (
    CountingBackend,
    Figures,
    LoopWatch,
    collect_garbage,
    final_checkup,
    loop_name,
    prime_loop,
    rss_bytes,
    timed,
)

pytestmark = [pytest.mark.stress, pytest.mark.asyncio]

REQUESTS = 100_000
WARMUP_REQUESTS = 3_000  # two bursts and a pause, before the memory baseline
CONCURRENCY = 50
BURST = (500, 3_000)  # requests per burst
PAUSE = (0.35, 0.65)  # seconds between bursts: either side of the 0.5 s idle close
STUCK_AFTER = 30.0  # one request taking longer than this is stuck: a failure
RUN_TIMEOUT = 600.0
SAMPLES = 5
# What a server closing a connection under a request can cause, if the pool did
# not retry it: the soak expects none of them either (every request is a GET).
CLOSING_SERVER_ERRORS = (
    aio.ReadError,
    aio.WriteError,
    aio.RemoteProtocolError,
    aio.ConnectionNotAvailable,
)


@dataclass(frozen=True)
class Burst:
    """Requests ``rids`` sent 50 at a time, then ``pause`` seconds of silence."""

    rids: range
    pause: float


def make_bursts(first: int, count: int, rng: random.Random) -> list[Burst]:
    """Split ids ``first .. first+count-1`` into seeded bursts and pauses."""
    bursts = []
    start, end = first, first + count
    while start < end:
        size = min(rng.randint(*BURST), end - start)
        bursts.append(Burst(range(start, start + size), rng.uniform(*PAUSE)))
        start += size
    return bursts


class Soak:
    """Sends the bursts through one pool to both origins and tallies outcomes."""

    def __init__(
        self,
        pool: aio.AsyncConnectionPool,
        h1: HypercornPeer,
        h2: HypercornPeer,
        uses_h2: Sequence[bool],
        figures: Figures,
    ) -> None:
        self.pool = pool
        self.origins = {False: h1.url, True: h2.url}
        self.uses_h2 = uses_h2
        self.figures = figures
        self.unexpected: collections.Counter[str] = collections.Counter()
        self.samples: list[str] = []
        self.paused = 0.0

    async def drive(self, bursts: Sequence[Burst]) -> None:
        """Every burst, then its pause; fail if it all takes over ``RUN_TIMEOUT``."""
        async with asyncio.timeout(RUN_TIMEOUT):
            for burst in bursts:
                pending = iter(burst.rids)  # shared: each id is taken by one worker
                async with asyncio.TaskGroup() as group:
                    for _ in range(CONCURRENCY):
                        group.create_task(self.worker(pending))
                await asyncio.sleep(burst.pause)
                self.paused += burst.pause

    async def worker(self, pending: Iterator[int]) -> None:
        """Send the burst's requests one after another until none is left."""
        for rid in pending:
            await self.one(rid)

    async def one(self, rid: int) -> None:
        """GET ``/headers?rid=N`` from the request's origin; check the echoed id."""
        http2 = self.uses_h2[rid]
        url = f"{self.origins[http2]}/headers?rid={rid}"
        try:
            async with asyncio.timeout(STUCK_AFTER):
                response = await self.pool.request("GET", url)
        except TimeoutError:
            self.fail(url, "stuck", f"not done after {STUCK_AFTER}s")
            return
        except CLOSING_SERVER_ERRORS as exc:
            self.fail(url, type(exc).__name__, repr(exc))
            return
        except Exception as exc:
            self.unexpected[type(exc).__name__] += 1
            self.fail(url, type(exc).__name__, repr(exc))
            return
        self.figures.completed += 1
        version = response.extensions["http_version"]
        if (
            response.status != 200
            or echoed_rid(response.content) != rid
            or version != (b"HTTP/2" if http2 else b"HTTP/1.1")
        ):
            self.figures.wrong += 1
            self.sample(
                f"wrong answer to {url}: {response.status} {version!r} "
                f"{response.content[:200]!r}"
            )

    def fail(self, url: str, kind: str, detail: str) -> None:
        self.figures.failed[kind] += 1
        self.sample(f"GET {url}: {detail}")

    def sample(self, line: str) -> None:
        if len(self.samples) < SAMPLES:
            self.samples.append(line)


@pytest.mark.timeout(900)
async def test_soak(
    idle_hypercorn_plain: HypercornPeer,
    idle_hypercorn_h2: HypercornPeer,
    stress_seed: int,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """100,000 GETs over h1 and h2 against servers dropping idle connections:
    all succeed with their own answer, and nothing leaks."""
    h1, h2 = idle_hypercorn_plain, idle_hypercorn_h2
    rng = random.Random(stress_seed)
    total = WARMUP_REQUESTS + REQUESTS
    uses_h2 = [rng.random() < 0.5 for _ in range(total)]
    warmup = make_bursts(REQUESTS, WARMUP_REQUESTS, rng)
    bursts = make_bursts(0, REQUESTS, rng)
    figures = Figures("soak h1+h2", loop_name(), stress_seed, REQUESTS)
    scratch = Figures("warm-up", figures.loop, stress_seed, WARMUP_REQUESTS)
    await prime_loop(f"{h2.url}/", client_ssl_context)
    figures.take_fd_baseline()
    backend = CountingBackend()
    pool = aio.AsyncConnectionPool(
        ssl_context=client_ssl_context,
        http2=True,
        max_connections=100,
        network_backend=backend,
    )
    with LoopWatch() as watch:
        try:
            warm = Soak(pool, h1, h2, uses_h2, scratch)
            await warm.drive(warmup)
            collect_garbage()
            figures.rss_before = rss_bytes()
            opened_in_warmup = backend.opened.copy()
            soak = Soak(pool, h1, h2, uses_h2, figures)
            with timed(figures):
                await soak.drive(bursts)
        finally:
            problems = await final_checkup(pool, figures, watch)
    opened = backend.opened - opened_in_warmup
    figures.connections_opened = {"h1": opened[h1.port], "h2": opened[h2.port]}
    figures.notes = {
        "h2_requests": sum(uses_h2[:REQUESTS]),
        "bursts": len(bursts),
        "paused_seconds": round(soak.paused, 1),
        "req_per_busy_second": round(REQUESTS / (figures.seconds - soak.paused)),
        "warm_up_failed": {str(k): n for k, n in scratch.failed.items()},
        "unexpected_errors": {str(k): n for k, n in soak.unexpected.items()},
        "asyncio_warnings": dict(watch.warnings),
        "samples": soak.samples + warm.samples,
    }
    figures.report()

    assert not problems, problems
    assert figures.completed + figures.failed.total() == REQUESTS, figures.summary()
    assert figures.wrong == 0, soak.samples
    assert not soak.unexpected, (dict(soak.unexpected), soak.samples)
    assert not figures.failed, (dict(figures.failed), soak.samples)
    assert scratch.failed.total() == scratch.wrong == 0, warm.samples
    # The servers really dropped idle connections: far more were opened than the
    # 50 (h1) and 1 (h2) a pool that never lost one would need.
    assert opened[h1.port] > 2 * CONCURRENCY, figures.connections_opened
    assert opened[h2.port] > len(bursts) // 4, figures.connections_opened
