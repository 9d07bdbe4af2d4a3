"""What every fault-matrix test asserts about the pool once a fault has been raised.

A fault may cost a connection, never the pool's consistency: no request still holds a
slot or waits for one, no connection is left connecting, and the connections that
remain are exactly those the scenario expects (``idle`` reusable ones, none carrying a
request). ``pool.stats()`` is the pool's own bookkeeping and ``pool.connections`` its
public list; both must agree.
"""

from __future__ import annotations

import aio


def assert_pool_settled(pool: aio.AsyncConnectionPool, *, idle: int = 0) -> None:
    """Assert that ``pool`` holds exactly ``idle`` idle connections and nothing else."""
    stats = pool.stats()
    assert stats == {
        "connections_connecting": 0,
        "connections_active": 0,
        "connections_idle": idle,
        "requests_active": 0,
        "requests_waiting": 0,
    }, stats
    connections = pool.connections
    assert len(connections) == idle, connections
    for connection in connections:
        assert connection.is_idle(), connection
        assert not connection.is_closed(), connection
