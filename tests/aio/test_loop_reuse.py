"""A pool used under successive event loops (each ``asyncio.run()`` its own)."""

from __future__ import annotations

import asyncio

import aio


def test_a_pool_outlives_its_first_event_loop() -> None:
    """The loop a pool keeps (it asks for the running loop once, not per
    request) is asked for again under a new ``asyncio.run()``: a request that
    queues for the one connection waits on the new loop, not the closed one."""
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    pool = aio.AsyncConnectionPool(
        max_connections=1, network_backend=aio.AsyncMockBackend([response] * 4)
    )
    timeout = {"timeout": {"pool": 5.0}}

    async def two_at_once() -> list[bytes]:
        async with pool.stream(
            "GET", "http://example.test/", extensions=timeout
        ) as held:
            # Queued behind the held connection, without a deadline.
            queued = asyncio.create_task(pool.request("GET", "http://example.test/"))
            await asyncio.sleep(0.01)
            assert not queued.done()
            first = await held.aread()
        return [first, (await queued).content]

    assert asyncio.run(two_at_once()) == [b"ok", b"ok"]
    assert asyncio.run(two_at_once()) == [b"ok", b"ok"]
    asyncio.run(pool.aclose())
