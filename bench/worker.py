"""One measurement in a fresh process: ``python -m bench.worker '<job JSON>'``.

The worker pins itself to the client CPU, raises its open-file limit, builds
the one client it measures on the event loop it was given (asyncio or uvloop),
runs the job under a deadline and prints one JSON line: the job's result, or
``{"error": ...}`` with exit status 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import sys
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from bench.base import BenchClient, Endpoint
from bench.clients import make_client
from bench.idle import measure_pool_cost, measure_rss
from bench.scenarios import SCENARIOS, run_scenario

__all__ = ["CLIENT_CPU", "Job", "loop_factory", "main"]

CLIENT_CPU = 1  # nginx's worker runs on CPU 0
NOFILE = 16_384


@dataclass(frozen=True)
class Job:
    """What one worker process measures.

    Attributes:
        kind: ``scenario``, ``rss`` or ``pool``.
        client: a name from ``bench.clients.CLIENTS``.
        loop: ``asyncio`` or ``uvloop``.
        host: nginx's address.
        port: the listener the job uses.
        tls: whether that listener is TLS (ALPN h2).
        cafile: the CA of nginx's certificate.
        timeout: seconds the whole job may take in the worker.
        scenario: the scenario key (``scenario`` jobs).
        quick: fewer requests (``scenario`` jobs).
        http2: HTTP/2 (``rss`` jobs; scenarios know their protocol).
        connections: idle connections to open (``rss`` jobs; ``pool`` jobs:
            the smaller of the two sizes measured).
        max_connections: the pool's size for ``pool`` jobs, and the larger
            size measured (default: ``connections``).
        requests: timed requests per mode (``pool`` jobs).
    """

    kind: str
    client: str
    loop: str
    host: str
    port: int
    tls: bool
    cafile: str
    timeout: float
    scenario: str = ""
    quick: bool = False
    http2: bool = False
    connections: int = 0
    max_connections: int = 0
    requests: int = 0

    def to_json(self) -> str:
        """The worker's argument."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Job:
        """Parse the worker's argument."""
        return cls(**json.loads(text))


def _setup_process() -> None:
    if hasattr(os, "sched_setaffinity") and CLIENT_CPU in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {CLIENT_CPU})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The ``asyncio.Runner`` loop factory for ``asyncio`` or ``uvloop``."""
    if loop == "uvloop":
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    if loop == "asyncio":
        return asyncio.new_event_loop
    raise ValueError(f"unknown loop {loop!r}")


async def _run(job: Job) -> dict[str, Any]:
    if job.kind == "scenario":
        scenario = SCENARIOS[job.scenario]
        connections = scenario.max_connections
        http2 = scenario.http2
    else:
        connections = job.max_connections or job.connections
        http2 = job.http2
    endpoint = Endpoint(
        host=job.host,
        port=job.port,
        tls=job.tls,
        http2=http2,
        max_connections=connections,
        cafile=job.cafile,
    )
    async with contextlib.AsyncExitStack() as closing:
        # Every client made is closed, each under its own time limit, even
        # when another's close fails.
        client = make_client(job.client, endpoint, holding=job.kind != "scenario")
        closing.push_async_callback(_close, client)
        async with asyncio.timeout(job.timeout):
            if job.kind == "scenario":
                result = await run_scenario(client, scenario, quick=job.quick)
                return result.as_dict()
            if job.kind == "rss":
                return await measure_rss(client, job.connections)
            if job.kind == "pool":
                # A second pool, the same, for the other size (timed in turns).
                other = make_client(job.client, endpoint, holding=True)
                closing.push_async_callback(_close, other)
                sizes = (job.connections, job.max_connections)
                return await measure_pool_cost([client, other], sizes, job.requests)
            raise ValueError(f"unknown job kind {job.kind!r}")


async def _close(client: BenchClient) -> None:
    async with asyncio.timeout(10):
        await client.aclose()


def _describe(exc: BaseException, job: Job) -> str:
    """``Type: message`` of the first leaf of an exception group."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError):
        return f"timed out after {job.timeout:.0f} s"
    return f"{type(exc).__name__}: {exc}"


def main(argv: list[str]) -> int:
    """Run the job given as JSON in ``argv[0]``; print its result as JSON."""
    job = Job.from_json(argv[0])
    _setup_process()
    try:
        with asyncio.Runner(loop_factory=loop_factory(job.loop)) as runner:
            result = runner.run(_run(job))
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        print(json.dumps({"error": _describe(exc, job)}), flush=True)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
