"""Cancellation safety of AsyncConnectionPool against hypercorn.

A request cancelled (once, twice, or by an ``asyncio.timeout``) at each await
point it reaches (connect, start_tls, every write and read, aclose, and the
pool's wait for a connection) leaves the pool with nothing active, queued or
connecting, no socket open beyond the pooled connections, and able to serve the
next request at once. A seeded random run of 2,000 requests (990 over HTTP/2)
with 30% of them cancelled leaks nothing either.

The await points are counted by a network backend wrapping
:class:`aio.AsyncIOBackend` and by a pool subclass around its wait. At point
``k`` the request's task is cancelled just before the operation is awaited, so
the cancellation lands while that operation is in progress; a point reached by
another task (HTTP/2's reader and flusher) cancels the request wherever it waits.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import ssl
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import aio
from tests.peers.hypercorn_server import HypercornPeer

pytestmark = pytest.mark.asyncio

# Every parametrised sweep stops here: a request reaching more await points
# than this is itself a failure (the sweep would not be bounded otherwise).
MAX_POINTS = 60
# How long one cancelled request (and its sibling) may take to finish.
RUN_TIMEOUT = 2.0
# How long the pool may take to serve the request after a cancelled one.
FOLLOW_UP_TIMEOUT = 1.0

# The request under test: a streamed two-chunk upload (chunked on HTTP/1.1,
# DATA frames on HTTP/2) answered by three body chunks sent 1 ms apart, so it
# writes several times and reads several times.
TARGET_PATH = "/stream?chunks=3&size=64&delay=0.001"
TARGET_BODY = b"x" * 192
# The sibling that holds the only connection (HTTP/1.1) or shares it (HTTP/2).
HOLDER_PATH = "/stream?chunks=2&size=10"
HOLDER_BODY = b"x" * 20


# -- counting await points ---------------------------------------------------


def open_sockets() -> int:
    """The number of this process's file descriptors that are sockets."""
    count = 0
    for entry in os.scandir("/proc/self/fd"):
        try:
            if os.readlink(entry.path).startswith("socket:"):
                count += 1
        except FileNotFoundError:  # the scandir descriptor itself, or a race
            pass
    return count


class Points:
    """Numbers the await points reached while the target request runs and,
    at point ``at``, cancels the target (``mode``: ``cancel``; ``double``:
    cancel twice, and once more at the next point; ``timeout``: expire the
    target's ``asyncio.timeout`` now)."""

    def __init__(self, *, mode: str = "cancel", at: int | None = None) -> None:
        self.mode = mode
        self.at = at
        self.count = 0
        self.labels: list[str] = []
        self.armed = False
        self.fired = False
        self.target: asyncio.Task[Any] | None = None
        self.scope: asyncio.Timeout | None = None
        # Set when a request queues in the pool or the target finishes.
        self.queued_or_done = asyncio.Event()

    def hit(self, label: str) -> None:
        """Count one await point; act on the target if it is point ``at``."""
        if not self.armed:
            return
        self.count += 1
        self.labels.append(label)
        target = self.target
        if target is None or target.done():
            return
        if self.count == self.at:
            self.fired = True
            if self.mode == "timeout":
                assert self.scope is not None
                self.scope.reschedule(asyncio.get_running_loop().time())
            else:
                target.cancel()
                if self.mode == "double":
                    target.cancel()
        elif self.mode == "double" and self.fired and self.count == self.at + 1:
            target.cancel()  # the cleanup of the first cancellation is cancelled too

    @property
    def hit_label(self) -> str:
        """What point ``at`` was, for messages."""
        if self.at is None or self.at > len(self.labels):
            return "not reached"
        return self.labels[self.at - 1]


class CountingStream(aio.AsyncNetworkStream):
    """A stream with httpcore's interface (no ``abort()``) around an
    :class:`aio.AsyncIOStream`, whose every await is a counted point."""

    def __init__(self, inner: aio.AsyncNetworkStream, points: Points) -> None:
        self._inner = inner
        self._points = points

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._points.hit("read")
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._points.hit("write")
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        self._points.hit("aclose")
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> aio.AsyncNetworkStream:
        self._points.hit("start_tls")
        stream = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return type(self)(stream, self._points)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class AbortableCountingStream(CountingStream):
    """A counting stream that also offers :class:`aio.AsyncIOStream`'s
    synchronous ``abort()``, as the default backend's streams do."""

    def abort(self) -> None:
        """Drop the connection now."""
        abort = getattr(self._inner, "abort", None)
        assert abort is not None
        abort()


class CountingBackend(aio.AsyncNetworkBackend):
    """:class:`aio.AsyncIOBackend` with counted connects and counting streams."""

    def __init__(self, points: Points, *, abortable: bool = True) -> None:
        self._inner = aio.AsyncIOBackend()
        self._points = points
        self._stream = AbortableCountingStream if abortable else CountingStream
        # Every transport opened, so a failed test can still close them all
        # (after its assertions) instead of leaking them into the next test.
        self.opened: list[aio.AsyncIOStream] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[aio.SOCKET_OPTION] | None = None,
    ) -> aio.AsyncNetworkStream:
        self._points.hit("connect_tcp")
        stream = await self._inner.connect_tcp(
            host, port, timeout, local_address, socket_options
        )
        assert isinstance(stream, aio.AsyncIOStream)
        self.opened.append(stream)
        return self._stream(stream, self._points)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[aio.SOCKET_OPTION] | None = None,
    ) -> aio.AsyncNetworkStream:
        self._points.hit("connect_unix_socket")
        stream = await self._inner.connect_unix_socket(path, timeout, socket_options)
        assert isinstance(stream, aio.AsyncIOStream)
        self.opened.append(stream)
        return self._stream(stream, self._points)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class CountingPool(aio.AsyncConnectionPool):
    """The pool, with its wait for a connection (when queued) a counted point."""

    points: Points
    backend: CountingBackend

    def abort_all_transports(self) -> None:
        """Abort every transport the backend opened (a failed test's cleanup,
        after its assertions, so one leak does not spill into the next test)."""
        for stream in self.backend.opened:
            stream.abort()

    async def _wait(
        self, request_id: int, deadline: float | None, timeout: float | None
    ) -> tuple[int, bool]:
        self.points.hit("pool_wait")
        self.points.queued_or_done.set()
        return await super()._wait(request_id, deadline, timeout)


# -- protocols ---------------------------------------------------------------


@dataclass(frozen=True)
class Protocol:
    """How to reach one hypercorn peer, and with which pool settings."""

    name: str
    fixture: str
    http1: bool
    http2: bool
    alpn: tuple[str, ...] | None  # None: plain text, no SSLContext


H1_PLAIN = Protocol("h1-plain", "hypercorn_plain", True, False, None)
H1_TLS = Protocol("h1-tls", "hypercorn_tls", True, False, ())
H2_TLS = Protocol("h2-tls", "hypercorn_h2_tls", True, True, ("h2", "http/1.1"))
H2C = Protocol("h2c", "hypercorn_h2c", False, True, None)
PROTOCOLS = [H1_PLAIN, H1_TLS, H2_TLS, H2C]


@dataclass(frozen=True)
class Env:
    """A protocol bound to its running peer and client TLS context."""

    protocol: Protocol
    url: str
    ssl_context: ssl.SSLContext | None

    def pool(
        self, points: Points | None = None, *, abortable: bool = True, **kwargs: Any
    ) -> CountingPool:
        """A pool for this peer; with ``points``, its await points are counted;
        ``abortable=False`` gives it streams with httpcore's interface only."""
        points = points or Points()
        backend = CountingBackend(points, abortable=abortable)
        pool = CountingPool(
            ssl_context=self.ssl_context,
            http1=self.protocol.http1,
            http2=self.protocol.http2,
            network_backend=backend,
            **kwargs,
        )
        pool.points = points
        pool.backend = backend
        return pool

    @property
    def http_version(self) -> bytes:
        """What every response on this peer must say."""
        return b"HTTP/2" if self.protocol.http2 else b"HTTP/1.1"


def make_env(
    protocol: Protocol, fixtures: pytest.FixtureRequest, certs_dir: Path
) -> Env:
    """Start (or reuse) the protocol's peer and build its client context."""
    peer: HypercornPeer = fixtures.getfixturevalue(protocol.fixture)
    context = None
    if protocol.alpn is not None:
        context = ssl.create_default_context(cafile=certs_dir / "ca.pem")
        if protocol.alpn:
            context.set_alpn_protocols(list(protocol.alpn))
    return Env(protocol, peer.url, context)


async def settle_sockets(expected_at_most: int) -> int:
    """Let aborted transports finish closing; return the open socket count."""
    deadline = time.monotonic() + 1.0
    count = open_sockets()
    while count > expected_at_most and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        count = open_sockets()
    return count


async def socket_baseline(env: Env) -> int:
    """Open sockets once the loop has made one request on a closed pool:
    whatever a loop opens lazily on first use is in the baseline, so every
    later comparison can be exact."""
    async with env.pool() as pool:
        response = await pool.request("GET", env.url + "/")
        assert response.status == 200
    pool.abort_all_transports()
    await asyncio.sleep(0.05)
    return await settle_sockets(0)


def assert_pool_settled(pool: aio.AsyncConnectionPool, where: str) -> None:
    """Nothing active, queued or connecting; every pooled connection idle."""
    assert "Requests: 0 active, 0 queued" in repr(pool), f"{where}: {pool!r}"
    counts = pool._state.counts()
    assert counts["connections_connecting"] == 0, f"{where}: {counts}"
    assert counts["requests_active"] == counts["requests_waiting"] == 0, where
    for connection in pool.connections:
        assert "CONNECTING" not in repr(connection), f"{where}: {connection!r}"
        # No request in the pool, so none in flight on its connections either
        # (an HTTP/2 stream that was never released would keep it ACTIVE).
        assert connection.is_idle(), f"{where}: {connection!r}"


async def follow_up_succeeds(pool: aio.AsyncConnectionPool, env: Env) -> None:
    """The next request on the same pool succeeds within a second."""
    async with asyncio.timeout(FOLLOW_UP_TIMEOUT):
        response = await pool.request("GET", env.url + "/")
    assert response.status == 200
    assert response.content == b"Hello, world!"
    assert response.extensions["http_version"] == env.http_version


# -- one cancelled request ---------------------------------------------------


async def two_chunks() -> AsyncIterator[bytes]:
    """A streamed request body of two 16-byte chunks."""
    yield b"a" * 16
    yield b"b" * 16


async def target_request(pool: aio.AsyncConnectionPool, env: Env) -> aio.Response:
    """The request under test: upload two chunks, read three."""
    return await pool.request("POST", env.url + TARGET_PATH, content=two_chunks())


async def run_target(
    pool: aio.AsyncConnectionPool, env: Env, points: Points
) -> aio.Response:
    """Count points while the target runs (inside an asyncio.timeout for
    ``timeout`` mode)."""
    points.armed = True
    try:
        if points.mode == "timeout":
            async with asyncio.timeout(None) as scope:
                points.scope = scope
                return await target_request(pool, env)
        return await target_request(pool, env)
    finally:
        points.armed = False


async def hold(pool: aio.AsyncConnectionPool, env: Env, points: Points) -> bytes:
    """Take the connection first; give it up once the target queued behind it
    (HTTP/1.1) or finished (HTTP/2, where both share the connection)."""
    async with pool.stream("GET", env.url + HOLDER_PATH) as response:
        await points.queued_or_done.wait()
        body = await response.aread()
        # Its connection delivered a response: the pool must know it connected,
        # whatever happened to the target meanwhile.
        counts = pool._state.counts()
        assert counts["connections_connecting"] == 0, (
            f"the sibling's connection delivered its response, yet the pool "
            f"still counts it CONNECTING: {counts}"
        )
        return body


@dataclass
class Run:
    """What one cancelled (or completed) run reached."""

    labels: list[str]
    completed: bool


async def run_once(
    env: Env,
    scenario: str,
    mode: str,
    at: int,
    baseline: int,
    *,
    abortable: bool = True,
) -> Run:
    """One request cancelled at point ``at``, then every invariant checked."""
    points = Points(mode=mode, at=at)
    pool = env.pool(points, abortable=abortable, max_connections=1)
    where = f"{env.protocol.name} {scenario} {mode} at point {at}"
    holder: asyncio.Task[bytes] | None = None
    target: asyncio.Task[aio.Response] | None = None
    try:
        if scenario == "reused":
            warm = await pool.request("GET", env.url + "/")
            assert warm.status == 200
            assert len(pool.connections) == 1
        if scenario == "queued":
            # Created first, so it runs first and gets the only connection.
            holder = asyncio.create_task(hold(pool, env, points))
        target = points.target = asyncio.create_task(run_target(pool, env, points))
        target.add_done_callback(lambda _: points.queued_or_done.set())
        done, _ = await asyncio.wait({target}, timeout=RUN_TIMEOUT)
        where += f" ({points.hit_label}; reached {points.labels})"
        assert target in done, f"{where}: the request is stuck"
        if holder is not None:
            done, _ = await asyncio.wait({holder}, timeout=RUN_TIMEOUT)
            assert holder in done, f"{where}: the sibling request is stuck"
            # The sibling is unaffected by the target's cancellation.
            assert not holder.cancelled(), where
            error = holder.exception()
            assert error is None, f"{where}: the sibling failed: {error}"
            assert holder.result() == HOLDER_BODY, where

        completed = points.count < at
        if completed:
            assert not points.fired
            response = target.result()
            assert response.status == 200, where
            assert response.content == TARGET_BODY, where
        elif mode == "timeout":
            assert points.scope is not None
            assert not target.cancelled(), f"{where}: cancelled, not timed out"
            if points.scope.expired():
                assert isinstance(target.exception(), TimeoutError), where
            else:
                # The timer fired after the request's last suspension.
                assert target.result().content == TARGET_BODY, where
        else:
            assert points.fired, where
            assert target.cancelled(), (
                f"{where}: the cancellation was lost: "
                f"{target.exception() or target.result()!r}"
            )

        assert_pool_settled(pool, where)
        count = await settle_sockets(baseline + len(pool.connections))
        assert count <= baseline + len(pool.connections), (
            f"{where}: {count} sockets open, baseline {baseline}, "
            f"pooled connections {pool.connections}"
        )
        await follow_up_succeeds(pool, env)
        assert_pool_settled(pool, where + ", after the follow-up")
        await pool.aclose()
        count = await settle_sockets(baseline)
        assert count == baseline, f"{where}: {count} sockets open after aclose()"
        return Run(points.labels, completed)
    finally:
        for task in (target, holder):
            if task is not None and not task.done():
                task.cancel()
            elif task is not None and not task.cancelled():
                task.exception()  # reported above if it mattered; not logged
        await pool.aclose()
        pool.abort_all_transports()


def expected_labels(protocol: Protocol, scenario: str) -> set[str]:
    """Points a sweep of ``scenario`` on ``protocol`` must reach somewhere
    (proof that the counting is wired where it should be)."""
    labels = {"write", "read"}
    if scenario == "fresh":
        labels.add("connect_tcp")
        if protocol.alpn is not None:
            labels.add("start_tls")
    if scenario == "queued" and not protocol.http2:
        labels.add("pool_wait")
    return labels


async def sweep(env: Env, mode: str, *, abortable: bool = True) -> None:
    """Cancel at point k = 1, 2, ... of each scenario until a run completes."""
    baseline = await socket_baseline(env)
    for scenario in ("fresh", "reused", "queued"):
        seen: set[str] = set()
        for at in range(1, MAX_POINTS + 1):
            run = await run_once(env, scenario, mode, at, baseline, abortable=abortable)
            seen.update(run.labels)
            if run.completed:
                break
        else:
            pytest.fail(f"{scenario}: still reaching point {MAX_POINTS}")
        assert at > 2, f"{scenario}: only {at - 1} await points"
        assert expected_labels(env.protocol, scenario) <= seen, (scenario, seen)


@pytest.mark.parametrize("mode", ["cancel", "double", "timeout"])
@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.name)
async def test_cancellation_at_every_await_point(
    protocol: Protocol, mode: str, request: pytest.FixtureRequest, certs_dir: Path
) -> None:
    """Cancel at await point k = 1, 2, ... until a request completes: after each
    run the pool is settled, sockets are back and the next request succeeds."""
    await sweep(make_env(protocol, request, certs_dir), mode)


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.name)
async def test_cancellation_with_streams_without_abort(
    protocol: Protocol, request: pytest.FixtureRequest, certs_dir: Path
) -> None:
    """The same sweep with streams offering only httpcore's interface (no
    abort()): discarded connections and pool.aclose() must still close them."""
    await sweep(make_env(protocol, request, certs_dir), "cancel", abortable=False)


# -- random cancellations ----------------------------------------------------

# 2,000 requests per loop, over HTTP/1.1 and over HTTP/2.
RANDOM_REQUESTS = {"h1-plain": 2000, "h2-tls": 2000}
RANDOM_CONCURRENCY = 50
RANDOM_CANCEL_SHARE = 0.3
RANDOM_CANCEL_AFTER = (0.0, 0.02)
RANDOM_SEED = 20240611


@dataclass(frozen=True)
class Kind:
    """One sort of request in the random run and the body it must get."""

    method: str
    path: str
    body: bytes
    streamed_upload: bool = False
    upload: bytes | None = None


KINDS = [
    Kind("GET", "/", b"Hello, world!"),
    Kind("GET", "/stream?chunks=4&size=512&delay=0.002", b"x" * 2048),
    Kind("POST", "/echo", b"y" * 4096, upload=b"y" * 4096),
    Kind("GET", "/slow?delay=0.01", b"slow"),
    Kind("POST", "/stream?chunks=2&size=64", b"x" * 128, streamed_upload=True),
]


async def random_request(
    pool: aio.AsyncConnectionPool, env: Env, kind: Kind
) -> aio.Response:
    """Send one request of ``kind`` and read it whole."""
    content: Any = two_chunks() if kind.streamed_upload else kind.upload
    return await pool.request(kind.method, env.url + kind.path, content=content)


@pytest.mark.parametrize("protocol", [H1_PLAIN, H2_TLS], ids=lambda p: p.name)
async def test_random_cancellations_leak_nothing(
    protocol: Protocol, request: pytest.FixtureRequest, certs_dir: Path
) -> None:
    """2,000 (h2: 990) mixed requests, 50 at a time, 30% cancelled after 0-20 ms:
    nothing is left active, queued, connecting or open, and the pool still works."""
    env = make_env(protocol, request, certs_dir)
    baseline = await socket_baseline(env)
    rng = random.Random(RANDOM_SEED)
    plans = [
        (
            rng.choice(KINDS),
            rng.random() < RANDOM_CANCEL_SHARE,
            rng.uniform(*RANDOM_CANCEL_AFTER),
        )
        for _ in range(RANDOM_REQUESTS[protocol.name])
    ]
    loop = asyncio.get_running_loop()
    semaphore = asyncio.Semaphore(RANDOM_CONCURRENCY)
    stats: collections.Counter[str] = collections.Counter()
    errors: list[str] = []
    pool = env.pool()

    async def one(kind: Kind, cancel: bool, delay: float) -> None:
        async with semaphore:
            task = asyncio.create_task(random_request(pool, env, kind))
            timer = loop.call_later(delay, task.cancel) if cancel else None
            try:
                done, _ = await asyncio.wait({task}, timeout=RUN_TIMEOUT)
            finally:
                if timer is not None:
                    timer.cancel()
                if not task.done():
                    task.cancel()
                    await asyncio.wait({task})
                    done = set()
            if not done:
                errors.append(f"{kind.path}: stuck for {RUN_TIMEOUT}s")
            elif task.cancelled():
                stats["cancelled"] += 1
            elif task.exception() is not None:
                errors.append(f"{kind.path}: {task.exception()!r}")
            else:
                response = task.result()
                if response.status != 200 or response.content != kind.body:
                    errors.append(f"{kind.path}: {response.status} {response!r}")
                elif response.extensions["http_version"] != env.http_version:
                    errors.append(f"{kind.path}: {response.extensions}")
                stats["completed"] += 1
                stats["cancel_too_late"] += cancel

    start = time.monotonic()
    try:
        try:
            async with asyncio.timeout(20):
                await asyncio.gather(*[one(*plan) for plan in plans])
        except TimeoutError:
            pytest.fail(
                f"the run did not finish in 20 s: {dict(stats)}, "
                f"{len(errors)} failed ({errors[:3]}), {pool!r}"
            )
        elapsed = time.monotonic() - start
        if errors:  # fail fast, before a stuck pool makes the checks below wait
            pytest.fail(f"{len(errors)} requests failed: {errors[:5]}")
        counts = pool._state.counts()
        pooled = len(pool.connections)
        connecting = sum("CONNECTING" in repr(c) for c in pool.connections)
        busy = sum(not c.is_idle() for c in pool.connections)  # streams left open
        open_with_pool = await settle_sockets(baseline + pooled)
        follow_up_error = None
        try:
            await follow_up_succeeds(pool, env)
            assert_pool_settled(pool, "after the follow-up")
        except Exception as exc:
            follow_up_error = exc
        await pool.aclose()
        open_after_close = await settle_sockets(baseline)
    finally:
        await pool.aclose()
        pool.abort_all_transports()
    leaked = (
        counts["requests_active"]
        + counts["requests_waiting"]
        + max(counts["connections_connecting"], connecting)
        + busy
        + max(0, open_with_pool - baseline - pooled)
        + max(0, open_after_close - baseline)
    )
    loop_name = type(loop).__module__.split(".")[0]
    print(
        f"\nrandom run {protocol.name} on {loop_name}: "
        f"requests={len(plans)} cancelled={stats['cancelled']} "
        f"completed={stats['completed']} "
        f"(cancel came too late for {stats['cancel_too_late']}) "
        f"errors={len(errors)} leaked={leaked} in {elapsed:.1f}s"
    )
    assert stats["cancelled"] + stats["completed"] == len(plans)
    assert stats["cancelled"] > len(plans) * RANDOM_CANCEL_SHARE / 3
    assert leaked == 0, (counts, pooled, open_with_pool, open_after_close, baseline)
    assert follow_up_error is None, f"the follow-up request: {follow_up_error}"
