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
- ``measure_pool_cost``: two pools of one client in the same process, one
  holding 10 idle connections and the other 1,000; the CPU time per request of
  sequential GETs and of GETs from ``POOL_COST_CONCURRENCY`` tasks (fewer than
  the smallest pool, so no connection is opened while timing), timed in
  slices that take turns between the two pools. A pool whose per-request work
  does not grow with its size costs the same with 10 and with 1,000 idle
  connections.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import time
from collections.abc import Sequence

from bench.base import BenchClient, BenchError
from bench.scenarios import get_many
from bench.server import SMALL_BODY, SMALL_PATH

__all__ = [
    "POOL_COST_CONCURRENCY",
    "POOL_COST_SLICES",
    "measure_pool_cost",
    "measure_rss",
    "open_idle_connections",
    "rss_bytes",
]

POOL_COST_CONCURRENCY = 10
# Timed slices per mode and pool size, taking turns between the sizes.
POOL_COST_SLICES = 10
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
    clients: Sequence[BenchClient], sizes: Sequence[int], requests: int
) -> dict[str, dict[str, float | int]]:
    """CPU per request of ``clients[i]`` holding ``sizes[i]`` idle connections
    (one pool per size, all in this one process), measured in alternation.

    Each mode's ``requests`` are timed in ``POOL_COST_SLICES`` slices, and the
    slices take turns between the pools (10, 1,000, 10, 1,000...): a slower or
    faster phase of the machine then lands on every size alike, where timing
    one size after the other let it decide the ratio. Both pools exist
    throughout, so what the process pays for holding 1,000 sockets (the
    kernel's share, the allocator's) is in both sizes' figures, and their ratio
    is the pools' own growth.

    Returns:
        Per size (as a string): ``connections`` held, ``sequential_cpu`` and
        ``concurrent_cpu`` (the median over slices, seconds per request),
        ``sequential_wall`` and ``concurrent_wall`` (seconds in all).

    Raises:
        BenchError: a pool did not keep exactly the connections asked for.
    """
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"pool sizes must differ, not {sizes}")
    # Whole rounds for every task in every slice (get_many splits them evenly).
    per_slice = requests // POOL_COST_SLICES
    per_slice -= per_slice % POOL_COST_CONCURRENCY
    if per_slice <= 0:
        raise ValueError(
            f"{requests} requests make no slice of {POOL_COST_CONCURRENCY} per pool"
        )
    for client, size in zip(clients, sizes, strict=True):
        await client.start()
        # Holding ``size`` responses at once reuses the idle connections and
        # opens the rest: the pool then holds ``size``.
        connections = await open_idle_connections(client, size)
        if connections != size:
            raise BenchError(f"{connections} connections open, expected {size}")
        # An untimed round of each mode first, for every pool alike.
        for concurrency in (1, POOL_COST_CONCURRENCY):
            await get_many(client, per_slice * POOL_COST_SLICES, concurrency)
    cpu: dict[tuple[int, str], list[float]] = {}
    wall: dict[tuple[int, str], float] = {}
    pools = list(zip(clients, sizes, strict=True))
    for mode, concurrency in (("sequential", 1), ("concurrent", POOL_COST_CONCURRENCY)):
        for index in range(POOL_COST_SLICES):
            # 10, 1,000, then 1,000, 10: neither size is always timed first.
            for client, size in pools if index % 2 == 0 else pools[::-1]:
                gc.collect()
                started, used = time.perf_counter(), time.process_time()
                await get_many(client, per_slice, concurrency)
                cpu.setdefault((size, mode), []).append(
                    (time.process_time() - used) / per_slice
                )
                wall[size, mode] = wall.get((size, mode), 0.0) + (
                    time.perf_counter() - started
                )
    results: dict[str, dict[str, float | int]] = {}
    for client, size in zip(clients, sizes, strict=True):
        held = client.open_connections()
        if held is not None and held != size:
            raise BenchError(f"the pool went from {size} to {held} connections")
        result: dict[str, float | int] = {"connections": size}
        for mode in ("sequential", "concurrent"):
            result[f"{mode}_cpu"] = statistics.median(cpu[size, mode])
            result[f"{mode}_wall"] = wall[size, mode]
        results[str(size)] = result
    return results
