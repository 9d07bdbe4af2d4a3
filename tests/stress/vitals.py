"""What a chaos or soak run must leave behind: nothing, and figures that say so.

Every run ends with the same checks: the pool's bookkeeping is back to idle
connections only (nothing active, queued or connecting), the process has the file
descriptors it had before the pool existed, resident memory grew by less than
``RSS_GROWTH_LIMIT`` over the run, the event loop reported no error (no "Task was
destroyed but it is pending!", no exception nobody retrieved) and a final
``gc.collect()`` raises no ``ResourceWarning``. ``Figures`` holds what the run
did and is printed (``make stress PYTEST_ARGS=-s`` shows it) and written as JSON
under ``tests/stress/results/``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import logging
import os
import ssl
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import aio

__all__ = [
    "RSS_GROWTH_LIMIT",
    "CountingBackend",
    "Figures",
    "LoopWatch",
    "collect_garbage",
    "final_checkup",
    "loop_name",
    "open_fds",
    "pool_leaks",
    "prime_loop",
    "rss_bytes",
    "settle_fds",
    "timed",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RSS_GROWTH_LIMIT = 10 * 2**20  # the brief: under 10 MB over a whole run
FD_SETTLE_TIMEOUT = 10.0  # closed transports release their sockets a tick later


def open_fds() -> int:
    """How many file descriptors this process has open (the listing's own excluded)."""
    return len(os.listdir("/proc/self/fd")) - 1


def fd_targets() -> dict[int, str]:
    """Each open file descriptor and what it points at (``socket:[inode]``, ...)."""
    targets = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor
            targets[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return targets


def rss_bytes() -> int:
    """This process's resident set size (``VmRSS`` in ``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def settle_fds(baseline: int) -> int:
    """Wait (bounded) until at most ``baseline`` fds are open; return the count."""
    deadline = time.monotonic() + FD_SETTLE_TIMEOUT
    while (  # noqa: ASYNC110 - polled: nothing signals the kernel's close
        count := open_fds()
    ) > baseline and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return count


async def prime_loop(url: str, ssl_context: ssl.SSLContext | None) -> None:
    """One request through a throwaway pool, then wait until its socket is gone.

    Some loops allocate a descriptor once, on first use (uvloop: libuv's spare
    ``/dev/null`` for running out of descriptors); priming keeps it out of the
    comparison. Raises if the request fails or its socket stays open.
    """
    before = fd_targets()
    async with aio.AsyncConnectionPool(ssl_context=ssl_context) as pool:
        response = await pool.request("GET", url)
        assert response.status == 200, response
    deadline = time.monotonic() + FD_SETTLE_TIMEOUT
    while any(  # polled: nothing signals the kernel's close
        target.startswith("socket:") and before.get(fd) != target
        for fd, target in fd_targets().items()
    ):
        if time.monotonic() > deadline:
            raise RuntimeError(f"prime_loop: a socket stayed open: {fd_targets()}")
        await asyncio.sleep(0.05)


def loop_name() -> str:
    """``asyncio`` or ``uvloop``: the package of the running loop's class."""
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


class CountingBackend(aio.AsyncIOBackend):
    """The default backend, counting the TCP connections opened per port."""

    def __init__(self) -> None:
        self.opened: collections.Counter[int] = collections.Counter()

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.opened[port] += 1
        return await super().connect_tcp(host, port, *args, **kwargs)


class LoopWatch:
    """Record what the event loop reports while the block runs.

    The loop's exception handler (where "Task was destroyed but it is pending!"
    and "Task exception was never retrieved" end up) and ERROR records of the
    ``asyncio`` logger are ``problems``. WARNING records (asyncio's "socket.send()
    raised exception." for writes after a connection was lost) are counted in
    ``warnings``, which the final checkup reports as problems too. While the
    block runs the ``asyncio`` logger does not propagate, so pytest does not
    hold thousands of records in memory during a soak.
    """

    def __init__(self) -> None:
        self.contexts: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.warnings: collections.Counter[str] = collections.Counter()
        self._handler = _WatchHandler(self)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: Any = None
        self._propagate = True

    @property
    def problems(self) -> list[str]:
        """One line per recorded loop error or logged asyncio error."""
        lines = [
            f"{context.get('message')}: {context.get('exception')!r} "
            f"({context.get('task') or context.get('future') or ''})"
            for context in self.contexts
        ]
        return lines + self.errors

    def __enter__(self) -> LoopWatch:
        self._loop = asyncio.get_running_loop()
        self._previous = self._loop.get_exception_handler()
        self._loop.set_exception_handler(self._record)
        logger = logging.getLogger("asyncio")
        logger.addHandler(self._handler)
        self._propagate, logger.propagate = logger.propagate, False
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        logger = logging.getLogger("asyncio")
        logger.removeHandler(self._handler)
        logger.propagate = self._propagate
        assert self._loop is not None
        self._loop.set_exception_handler(self._previous)

    def _record(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.contexts.append(context)


class _WatchHandler(logging.Handler):
    def __init__(self, watch: LoopWatch) -> None:
        super().__init__(logging.WARNING)
        self.watch = watch

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.watch.errors.append(record.getMessage())
        else:
            self.watch.warnings[record.getMessage()] += 1


def collect_garbage() -> list[str]:
    """Run ``gc.collect()``; return every warning or unraisable error it caused.

    Inside ``warnings.catch_warnings`` with every warning recorded (not raised:
    a ``ResourceWarning`` from a finaliser would otherwise only reach
    ``sys.unraisablehook``), which is captured too.
    """
    problems: list[str] = []
    previous_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:
        problems.append(f"unraisable: {info.exc_value!r} in {info.object!r}")

    sys.unraisablehook = unraisable
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gc.collect()
            gc.collect()
    finally:
        sys.unraisablehook = previous_hook
    problems += [f"{w.category.__name__}: {w.message}" for w in caught]
    return problems


def pool_leaks(pool: aio.AsyncConnectionPool) -> list[str]:
    """What the pool still holds besides idle connections (empty when settled).

    ``stats()`` must be all zero except ``connections_idle``, and the pool's
    connections must be exactly those idle ones, none of them connecting.
    """
    stats = pool.stats()
    settled = {
        "connections_connecting": 0,
        "connections_active": 0,
        "connections_idle": stats["connections_idle"],
        "requests_active": 0,
        "requests_waiting": 0,
    }
    problems = [] if stats == settled else [f"leaked pool slots: {stats}"]
    connections = pool.connections
    if len(connections) != stats["connections_idle"]:
        problems.append(f"pool lists {connections} but counts {stats}")
    problems += [
        f"connection not idle after the run: {connection!r}"
        for connection in connections
        if "CONNECTING" in connection.info() or not connection.is_idle()
    ]
    return problems


async def final_checkup(
    pool: aio.AsyncConnectionPool, figures: Figures, watch: LoopWatch
) -> list[str]:
    """Close ``pool`` and list every way the run leaked (empty when clean).

    Fills ``figures.fds_after`` and ``figures.rss_after``; ``figures.fds_before``
    and ``figures.rss_before`` must have been taken already.
    """
    problems = pool_leaks(pool)
    await pool.aclose()
    figures.fds_after = await settle_fds(figures.fds_before)
    if figures.fds_after != figures.fds_before:
        new = {
            fd: target
            for fd, target in fd_targets().items()
            if figures.fd_targets.get(fd) != target
        }
        problems.append(
            f"{figures.fds_after} fds open after pool.aclose(), "
            f"{figures.fds_before} before the pool; new: {new}"
        )
    problems += collect_garbage()
    figures.rss_after = rss_bytes()
    growth = figures.rss_after - figures.rss_before
    if growth >= RSS_GROWTH_LIMIT:
        problems.append(f"RSS grew by {growth / 2**20:.1f} MiB")
    problems += [f"event loop: {problem}" for problem in watch.problems]
    # asyncio's "socket.send() raised exception." meant writes into a TLS
    # connection whose socket was already gone; wireline now refuses those.
    problems += [f"asyncio warned {n}x: {text}" for text, n in watch.warnings.items()]
    return problems


@dataclass
class Figures:
    """What one run did; ``report()`` prints it and writes it as JSON."""

    test: str
    loop: str
    seed: int
    requests: int = 0
    completed: int = 0
    cancelled: int = 0
    cancel_too_late: int = 0
    wrong: int = 0
    failed: collections.Counter[str] = field(default_factory=collections.Counter)
    seconds: float = 0.0
    fds_before: int = 0
    fds_after: int = 0
    fd_targets: dict[int, str] = field(default_factory=dict, repr=False)
    rss_before: int = 0
    rss_after: int = 0
    connections_opened: dict[str, int] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def take_fd_baseline(self) -> None:
        """Note the descriptors open now (before the pool exists)."""
        self.fd_targets = fd_targets()
        self.fds_before = len(self.fd_targets)

    @property
    def rate(self) -> float:
        """Requests per second over the measured run."""
        return self.requests / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        """The figures as a few readable lines."""
        mib = 2**20
        failed = dict(self.failed) or "none"
        return (
            f"\n{self.test} [{self.loop}] seed={self.seed}\n"
            f"  requests={self.requests} completed={self.completed} "
            f"cancelled={self.cancelled} (cancel too late: {self.cancel_too_late}) "
            f"wrong={self.wrong} failed={failed}\n"
            f"  {self.seconds:.1f} s, {self.rate:.0f} req/s; "
            f"connections opened {self.connections_opened}\n"
            f"  fds {self.fds_before} -> {self.fds_after}; "
            f"RSS {self.rss_before / mib:.1f} -> {self.rss_after / mib:.1f} MiB "
            f"({(self.rss_after - self.rss_before) / mib:+.1f})\n"
            f"  {self.notes}"
        )

    def report(self) -> None:
        """Print the summary and write ``results/<test>-<loop>.json``."""
        print(self.summary())
        RESULTS_DIR.mkdir(exist_ok=True)
        data = asdict(self) | {"rate": round(self.rate, 1)}
        del data["fd_targets"]
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.test)
        path = RESULTS_DIR / f"{name}-{self.loop}.json"
        path.write_text(json.dumps(_jsonable(data), indent=2, default=str) + "\n")


def _jsonable(value: Any) -> Any:
    """``value`` with every mapping key made a str (JSON allows no other)."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


@contextlib.contextmanager
def timed(figures: Figures) -> Iterator[None]:
    """Add the block's wall-clock time to ``figures.seconds``."""
    start = time.monotonic()
    try:
        yield
    finally:
        figures.seconds += time.monotonic() - start
