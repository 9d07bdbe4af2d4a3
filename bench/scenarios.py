"""The four scenarios: what each sends, and the timed section that measures it.

Each measurement runs in a fresh worker process (``bench.worker``). The client
first connects and warms up (untimed: connections opened, the HTTP version
checked, one round of the scenario's own traffic), then the timed section runs
between two readings of ``time.perf_counter`` (wall) and
``time.process_time`` (the process's user + system CPU, every thread).
Throughput is requests (or bytes) over wall time; CPU per request is CPU time
over requests (per download for S4).
"""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass
from typing import Literal

from bench.base import BenchClient, BenchError
from bench.server import LARGE_PATH, LARGE_SIZE, SMALL_BODY, SMALL_PATH

__all__ = ["SCENARIOS", "Measurement", "Scenario", "get_many", "run_scenario"]


@dataclass(frozen=True)
class Scenario:
    """One workload.

    Attributes:
        key: ``S1`` ... ``S4``.
        title: the table's heading.
        listener: which nginx listener (``plain`` or ``h2``).
        max_connections: the pool size given to every client.
        concurrency: tasks issuing requests at once.
        requests: requests (downloads for S4) in the timed section.
        quick_requests: the same with ``--quick``.
        download: S4: stream ``LARGE_PATH``, else GET ``SMALL_PATH``.
    """

    key: str
    title: str
    listener: Literal["plain", "h2"]
    max_connections: int
    concurrency: int
    requests: int
    quick_requests: int
    download: bool = False

    @property
    def http2(self) -> bool:
        """Over HTTP/2 (TLS, ALPN h2)."""
        return self.listener == "h2"

    def count(self, quick: bool) -> int:
        """Requests (or downloads) in the timed section."""
        return self.quick_requests if quick else self.requests


SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario(
            "S1",
            "S1: 5,000 sequential small GETs, 1 keep-alive connection, HTTP/1.1",
            "plain",
            max_connections=1,
            concurrency=1,
            requests=5_000,
            quick_requests=1_000,
        ),
        Scenario(
            "S2",
            "S2: 10,000 GETs from 100 tasks through a 10-connection HTTP/1.1 pool",
            "plain",
            max_connections=10,
            concurrency=100,
            requests=10_000,
            quick_requests=2_000,
        ),
        Scenario(
            "S3",
            "S3: 10,000 GETs as 100 concurrent streams on 1 HTTP/2 TLS connection",
            "h2",
            max_connections=1,
            concurrency=100,
            requests=10_000,
            quick_requests=2_000,
        ),
        Scenario(
            "S4",
            "S4: 50 MB download, HTTP/1.1, streamed and discarded (MB/s, CPU ms each)",
            "plain",
            max_connections=1,
            concurrency=1,
            requests=8,
            quick_requests=2,
            download=True,
        ),
    )
}


@dataclass(frozen=True)
class Measurement:
    """One timed section."""

    wall: float
    cpu: float
    requests: int
    bytes: int

    def as_dict(self) -> dict[str, float | int]:
        """For the JSON results."""
        return {
            "wall": self.wall,
            "cpu": self.cpu,
            "requests": self.requests,
            "bytes": self.bytes,
        }


async def get_many(client: BenchClient, count: int, concurrency: int) -> None:
    """``count`` small GETs from ``concurrency`` tasks (count % concurrency == 0)."""
    small = len(SMALL_BODY)
    if concurrency == 1:
        for _ in range(count):
            await client.get(SMALL_PATH, small)
        return

    async def one_task(requests: int) -> None:
        for _ in range(requests):
            await client.get(SMALL_PATH, small)

    per_task, extra = divmod(count, concurrency)
    async with asyncio.TaskGroup() as group:
        for index in range(concurrency):
            group.create_task(one_task(per_task + (index < extra)))


async def _download_many(client: BenchClient, count: int) -> int:
    received = 0
    for _ in range(count):
        length = await client.download(LARGE_PATH)
        if length != LARGE_SIZE:
            raise BenchError(f"downloaded {length} bytes, expected {LARGE_SIZE}")
        received += length
    return received


async def _warm_up(client: BenchClient, scenario: Scenario) -> None:
    await client.start()
    version = await client.http_version(SMALL_PATH)
    expected = "HTTP/2" if scenario.http2 else "HTTP/1.1"
    if version is not None and version != expected:
        raise BenchError(f"spoke {version}, expected {expected}")
    if scenario.download:
        await _download_many(client, 1)
    else:
        await get_many(client, 2 * scenario.concurrency, scenario.concurrency)


async def run_scenario(
    client: BenchClient, scenario: Scenario, *, quick: bool
) -> Measurement:
    """Warm ``client`` up, then time the scenario's requests.

    Raises:
        BenchError: a bad response, the wrong HTTP version, or a short download.
    """
    count = scenario.count(quick)
    await _warm_up(client, scenario)
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    if scenario.download:
        received = await _download_many(client, count)
    else:
        await get_many(client, count, scenario.concurrency)
        received = count * len(SMALL_BODY)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if scenario.max_connections == 1 and client.open_connections() not in (None, 1):
        raise BenchError(f"{client.open_connections()} connections, expected 1")
    return Measurement(wall=wall, cpu=cpu, requests=count, bytes=received)
