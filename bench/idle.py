"""Idle-pool measurements: memory per idle connection, per-request cost vs pool size.

Both make a pool hold N connections to the one nginx origin the same way: N
GETs started one after the other, each holding its response open (its
connection busy) once the head has arrived, so that every next GET finds all
connections busy and the pool opens another; then the held responses are read
and closed one by one. Afterwards the N connections sit idle in the pool.
Staggering both ways keeps the number of requests a pool juggles at once small
(httpcore's pool does work per request per connection on every event: with
1,000 requests released together it runs for minutes).

- ``measure_rss``: resident set size (``/proc/self/statm``) after one warm-up
  request (one connection open) and after the N connections; the difference
  over the connections added is the cost of one idle pooled connection,
  including what the allocator keeps from opening them. HTTP/2 uses the nginx
  listener that allows one stream per connection, so that an HTTP/2 pool also
  has to open one connection per held request.
- ``measure_pool_cost``: with 10, then (in the same process) 1,000 idle
  connections held open, the CPU time per request of sequential GETs and of
  GETs from ``POOL_COST_CONCURRENCY`` tasks (fewer than the smallest pool, so
  no connection is opened while timing). A pool whose per-request work does
  not grow with its size costs the same with 10 and with 1,000 idle
  connections.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Sequence

from bench.base import BenchClient, BenchError
from bench.scenarios import get_many
from bench.server import SMALL_BODY, SMALL_PATH

__all__ = [
    "POOL_COST_CONCURRENCY",
    "measure_pool_cost",
    "measure_rss",
    "open_idle_connections",
    "rss_bytes",
]

POOL_COST_CONCURRENCY = 10
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """This process's resident set size, from ``/proc/self/statm``."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


class _Hold:
    """One held request: it reports its response head, then waits for release."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.arrived: asyncio.Future[None] = loop.create_future()
        self.released: asyncio.Future[None] = loop.create_future()

    async def __call__(self) -> None:
        self.arrived.set_result(None)
        await self.released


async def open_idle_connections(client: BenchClient, count: int) -> int:
    """Hold ``count`` responses open at once, then release them all: the pool
    reuses its idle connections first and opens the rest, so it ends up
    holding ``count`` busy-then-idle connections (or more, if it had more).

    Returns:
        The connections the client holds afterwards (``count`` if it cannot tell).

    Raises:
        BenchError: the client cannot hold responses, or a bad response.
    """
    loop = asyncio.get_running_loop()
    small = len(SMALL_BODY)
    held: list[tuple[_Hold, asyncio.Task[None]]] = []
    try:
        for _ in range(count):
            hold = _Hold(loop)
            task = loop.create_task(client.get_holding(SMALL_PATH, small, hold))
            held.append((hold, task))
            await asyncio.wait(
                (hold.arrived, task), return_when=asyncio.FIRST_COMPLETED
            )
            if task.done():
                task.result()  # raises what went wrong
                raise BenchError("a held request finished before it was released")
        for hold, task in held:
            hold.released.set_result(None)
            await task
    finally:
        for _, task in held:
            task.cancel()
    connections = client.open_connections()
    return count if connections is None else connections


async def measure_rss(client: BenchClient, count: int) -> dict[str, float | int]:
    """RSS before and after ``count`` idle pooled connections.

    Returns:
        ``rss_before``, ``rss_after`` (bytes), ``connections`` (as the client
        reports them) and ``kib_per_connection``.

    Raises:
        BenchError: fewer than ``count`` connections stayed open.
    """
    await client.start()
    await client.get(SMALL_PATH, len(SMALL_BODY))
    opened_before = client.open_connections() or 1
    gc.collect()
    before = rss_bytes()
    connections = await open_idle_connections(client, count)
    gc.collect()
    after = rss_bytes()
    if connections < count:
        raise BenchError(f"only {connections} of {count} connections stayed open")
    return {
        "rss_before": before,
        "rss_after": after,
        "connections": connections,
        "kib_per_connection": (after - before) / 1024 / (connections - opened_before),
    }


async def measure_pool_cost(
    client: BenchClient, sizes: Sequence[int], requests: int
) -> dict[str, dict[str, float | int]]:
    """CPU per request with each of ``sizes`` (ascending) idle connections,
    measured one after the other in this one process: the ratio between two
    sizes is then not moved by the machine's slower and faster phases.

    Returns:
        Per size (as a string): ``connections`` held, ``sequential_cpu`` and
        ``concurrent_cpu`` (seconds per request), ``sequential_wall`` and
        ``concurrent_wall`` (seconds in all).

    Raises:
        BenchError: the pool did not keep exactly the connections asked for.
    """
    await client.start()
    results: dict[str, dict[str, float | int]] = {}
    for size in sizes:
        # Holding ``size`` responses at once reuses the idle connections and
        # opens the rest: the pool then holds ``size``.
        connections = await open_idle_connections(client, size)
        if connections != size:
            raise BenchError(f"{connections} connections open, expected {size}")
        # An untimed round of each mode first, at every size alike: the first
        # size measured would otherwise also pay for warming the process up.
        for concurrency in (1, POOL_COST_CONCURRENCY):
            await get_many(client, requests, concurrency)
        result: dict[str, float | int] = {"connections": connections}
        for mode, concurrency in (
            ("sequential", 1),
            ("concurrent", POOL_COST_CONCURRENCY),
        ):
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            await get_many(client, requests, concurrency)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            result[f"{mode}_cpu"] = cpu / requests
            result[f"{mode}_wall"] = wall
        held = client.open_connections()
        if held is not None and held != connections:
            raise BenchError(f"the pool went from {connections} to {held} connections")
        results[str(size)] = result
    return results
