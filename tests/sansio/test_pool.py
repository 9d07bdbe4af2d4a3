"""Tests for sansio.pool: PoolState as a pure function of events and ``now``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from sansio.pool import (
    AssignRequest,
    CloseConnection,
    OpenConnection,
    PoolAction,
    PoolConnectionState,
    PoolKey,
    PoolRequestState,
    PoolState,
)

A: PoolKey = (b"http", b"a.example", 80, None)
B: PoolKey = (b"http", b"b.example", 80, None)
C: PoolKey = (b"http", b"c.example", 80, None)
D: PoolKey = (b"http", b"d.example", 80, None)
H2: PoolKey = (b"https", b"h2.example", 443, "h2.example")

CONNECTING = PoolConnectionState.CONNECTING
ACTIVE = PoolConnectionState.ACTIVE
IDLE = PoolConnectionState.IDLE
CLOSED = PoolConnectionState.CLOSED

WAITING = PoolRequestState.WAITING
REQ_CONNECTING = PoolRequestState.CONNECTING
REQ_ACTIVE = PoolRequestState.ACTIVE
DONE = PoolRequestState.DONE


# -- helpers -------------------------------------------------------------------


def counts(
    *,
    connecting: int = 0,
    active: int = 0,
    idle: int = 0,
    requests_active: int = 0,
    waiting: int = 0,
) -> dict[str, int]:
    """The ``counts()`` dict, with zeros for everything not named."""
    return {
        "connections_connecting": connecting,
        "connections_active": active,
        "connections_idle": idle,
        "requests_active": requests_active,
        "requests_waiting": waiting,
    }


def open_new(
    pool: PoolState, key: PoolKey, now: float = 0.0, *, shared: bool = False
) -> tuple[int, int]:
    """A request that must open a fresh connection: (request id, connection id)."""
    request_id, actions = pool.request_arrived(key, shared=shared, now=now)
    assert len(actions) == 1
    action = actions[0]
    assert isinstance(action, OpenConnection)
    assert action == OpenConnection(
        request_id=request_id, connection_id=action.connection_id, key=key
    )
    assert action.connection_id != request_id
    assert pool.connection_state(action.connection_id) is CONNECTING
    assert pool.request_state(request_id) is REQ_CONNECTING
    return request_id, action.connection_id


def connected(
    pool: PoolState, key: PoolKey, now: float = 0.0, *, http2: bool = False
) -> tuple[int, int]:
    """A request on a freshly opened connection that is now ready."""
    request_id, connection_id = open_new(pool, key, now, shared=http2)
    actions = pool.connection_ready(
        connection_id, shared=http2, available=http2, now=now
    )
    assert actions == []
    assert pool.connection_state(connection_id) is ACTIVE
    return request_id, connection_id


def idle_connection(
    pool: PoolState, key: PoolKey, now: float = 0.0, *, http2: bool = False
) -> int:
    """A connection that carried one request and went idle at ``now``."""
    request_id, connection_id = connected(pool, key, now, http2=http2)
    assert pool.request_released(request_id, reusable=True, now=now) == []
    assert pool.connection_state(connection_id) is IDLE
    return connection_id


def waits(
    pool: PoolState, key: PoolKey, now: float = 0.0, *, shared: bool = False
) -> int:
    """A request that finds no capacity and queues."""
    request_id, actions = pool.request_arrived(key, shared=shared, now=now)
    assert actions == []
    assert pool.request_state(request_id) is WAITING
    return request_id


def only_open(actions: list[PoolAction], request_id: int, key: PoolKey) -> int:
    """Assert ``actions`` is a single OpenConnection for the request; its id."""
    assert len(actions) == 1
    action = actions[0]
    assert isinstance(action, OpenConnection)
    assert (action.request_id, action.key) == (request_id, key)
    return action.connection_id


# -- construction and views ----------------------------------------------------


@pytest.mark.parametrize("max_connections", [0, -1])
def test_max_connections_below_one_rejected(max_connections: int) -> None:
    """max_connections=0 (or negative) can serve nothing and is refused."""
    with pytest.raises(ValueError, match="max_connections"):
        PoolState(max_connections=max_connections)


def test_negative_max_keepalive_rejected() -> None:
    """max_keepalive_connections=-1 is refused (it used to crash the first release)."""
    with pytest.raises(ValueError, match="max_keepalive_connections"):
        PoolState(max_keepalive_connections=-1)


def test_new_pool_is_empty() -> None:
    """A new pool counts nothing; unknown ids read as CLOSED and DONE."""
    pool = PoolState()
    assert pool.counts() == counts()
    assert pool.connection_state(12345) is CLOSED
    assert pool.request_state(12345) is DONE


UNKNOWN_ID_EVENTS: dict[str, Callable[[PoolState], list[PoolAction]]] = {
    "ready": lambda p: p.connection_ready(999, shared=True, available=True, now=1.0),
    "failed": lambda p: p.connection_failed(999, 1.0),
    "capacity": lambda p: p.stream_capacity(999, available=True, now=1.0),
    "released": lambda p: p.request_released(999, reusable=False, now=1.0),
    "cancelled": lambda p: p.request_cancelled(999, 1.0),
    "requeue": lambda p: p.requeue(999, 1.0),
    "discard": lambda p: p.discard(999, 1.0),
}


@pytest.mark.parametrize("event", UNKNOWN_ID_EVENTS.values(), ids=UNKNOWN_ID_EVENTS)
def test_events_for_unknown_ids_do_nothing(
    event: Callable[[PoolState], list[PoolAction]],
) -> None:
    """Late or duplicate events for unknown ids return no action, change nothing."""
    pool = PoolState(max_connections=2)
    connecting_request, connecting = open_new(pool, A)
    active_request, active = connected(pool, B)
    waiter = waits(pool, B)
    before = pool.counts()
    assert event(pool) == []
    assert (
        pool.counts()
        == before
        == counts(connecting=1, active=1, requests_active=2, waiting=1)
    )
    assert [pool.connection_state(c) for c in (connecting, active)] == [
        CONNECTING,
        ACTIVE,
    ]
    assert pool.request_released(active_request, reusable=True, now=2.0) == [
        AssignRequest(request_id=waiter, connection_id=active)
    ]
    assert pool.request_state(connecting_request) is REQ_CONNECTING


# -- lifecycle -----------------------------------------------------------------


def test_first_request_opens_a_connection() -> None:
    """The first request opens a connection; both are CONNECTING."""
    pool = PoolState()
    request_id, actions = pool.request_arrived(A, shared=False, now=0.0)
    connection_id = only_open(actions, request_id, A)
    assert pool.request_state(request_id) is REQ_CONNECTING
    assert pool.connection_state(connection_id) is CONNECTING
    assert pool.counts() == counts(connecting=1, requests_active=1)


def test_connection_ready_makes_its_request_active() -> None:
    """Once its connection is ready a request reads ACTIVE, not CONNECTING."""
    pool = PoolState()
    request_id, connection_id = open_new(pool, A)
    assert (
        pool.connection_ready(connection_id, shared=False, available=False, now=1.0)
        == []
    )
    assert pool.connection_state(connection_id) is ACTIVE
    assert pool.counts() == counts(active=1, requests_active=1)
    assert pool.request_state(request_id) is REQ_ACTIVE


def test_reusable_release_makes_connection_idle() -> None:
    """A clean release leaves the connection IDLE and forgets the request."""
    pool = PoolState()
    request_id, connection_id = connected(pool, A)
    assert pool.request_released(request_id, reusable=True, now=1.0) == []
    assert pool.connection_state(connection_id) is IDLE
    assert pool.request_state(request_id) is DONE
    assert pool.counts() == counts(idle=1)
    assert pool.request_released(request_id, reusable=True, now=2.0) == []
    assert pool.counts() == counts(idle=1)


def test_unreusable_release_closes_connection() -> None:
    """A release that is not reusable closes the connection."""
    pool = PoolState()
    request_id, connection_id = connected(pool, A)
    actions = pool.request_released(request_id, reusable=False, now=1.0)
    assert actions == [CloseConnection(connection_id=connection_id)]
    assert pool.connection_state(connection_id) is CLOSED
    assert pool.counts() == counts()


def test_idle_connection_is_reused() -> None:
    """A request for a key with an idle connection is sent on it."""
    pool = PoolState()
    connection_id = idle_connection(pool, A)
    request_id, actions = pool.request_arrived(A, shared=False, now=1.0)
    assert actions == [
        AssignRequest(request_id=request_id, connection_id=connection_id)
    ]
    assert pool.connection_state(connection_id) is ACTIVE
    assert pool.request_state(request_id) is REQ_ACTIVE
    assert pool.counts() == counts(active=1, requests_active=1)


def test_most_recently_used_idle_connection_is_reused() -> None:
    """Of several idle connections of a key, the one idle most recently is used."""
    pool = PoolState()
    r1, c1 = connected(pool, A)
    r2, c2 = connected(pool, A)
    r3, c3 = connected(pool, A)
    for request_id, now in [(r2, 1.0), (r3, 2.0), (r1, 3.0)]:
        assert pool.request_released(request_id, reusable=True, now=now) == []
    first, actions = pool.request_arrived(A, shared=False, now=4.0)
    assert actions == [AssignRequest(request_id=first, connection_id=c1)]
    second, actions = pool.request_arrived(A, shared=False, now=4.0)
    assert actions == [AssignRequest(request_id=second, connection_id=c3)]
    assert pool.counts() == counts(active=2, idle=1, requests_active=2)
    assert pool.connection_state(c2) is IDLE


# -- keys ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (
            (b"https", b"a.example", 443, None),
            (b"https", b"a.example", 443, "b.example"),
        ),
        (
            (b"https", b"a.example", 443, "x.example"),
            (b"https", b"a.example", 443, "y.example"),
        ),
        ((b"http", b"a.example", 443, None), (b"https", b"a.example", 443, None)),
        ((b"http", b"a.example", 80, None), (b"http", b"b.example", 80, None)),
        ((b"http", b"a.example", 80, None), (b"http", b"a.example", 8080, None)),
    ],
    ids=["sni-vs-none", "sni-vs-sni", "scheme", "host", "port"],
)
def test_keys_differing_in_any_part_never_share(
    first: PoolKey, second: PoolKey
) -> None:
    """Scheme, host, port and sni_hostname all separate connections."""
    pool = PoolState()
    idle = idle_connection(pool, first)
    request_id, actions = pool.request_arrived(second, shared=False, now=1.0)
    assert only_open(actions, request_id, second) != idle
    assert pool.connection_state(idle) is IDLE
    assert pool.counts() == counts(connecting=1, idle=1, requests_active=1)


def test_different_sni_never_share_http2_connection() -> None:
    """A shared (HTTP/2) connection is not used for another sni_hostname."""
    pool = PoolState()
    _, connection_id = connected(pool, H2, http2=True)
    other_sni = (H2[0], H2[1], H2[2], "other.example")
    request_id, actions = pool.request_arrived(other_sni, shared=True, now=1.0)
    assert only_open(actions, request_id, other_sni) != connection_id
    assert pool.counts() == counts(connecting=1, active=1, requests_active=2)


# -- max_connections -----------------------------------------------------------


@pytest.mark.parametrize("ready", [False, True], ids=["connecting", "active"])
def test_max_connections_bounds_every_state(ready: bool) -> None:
    """Connections count against max_connections while CONNECTING too."""
    pool = PoolState(max_connections=2)
    for key in (A, B):
        _, connection_id = open_new(pool, key)
        if ready:
            pool.connection_ready(connection_id, shared=False, available=False, now=0.0)
    request_id = waits(pool, C)
    state = "connections_active" if ready else "connections_connecting"
    assert pool.counts()[state] == 2
    assert pool.counts()["requests_waiting"] == 1
    assert pool.request_state(request_id) is WAITING


def test_release_hands_connection_to_waiting_request_of_same_key() -> None:
    """A released connection goes straight to a waiting request of its key."""
    pool = PoolState(max_connections=1)
    r1, connection_id = connected(pool, A)
    r2 = waits(pool, A)
    actions = pool.request_released(r1, reusable=True, now=1.0)
    assert actions == [AssignRequest(request_id=r2, connection_id=connection_id)]
    assert pool.connection_state(connection_id) is ACTIVE
    assert pool.request_state(r2) is REQ_ACTIVE
    assert pool.counts() == counts(active=1, requests_active=1)


def test_release_makes_room_for_waiting_request_of_other_key() -> None:
    """A released connection of another key is closed so a waiter can open one."""
    pool = PoolState(max_connections=1)
    r1, connection_id = connected(pool, A)
    r2 = waits(pool, B)
    actions = pool.request_released(r1, reusable=True, now=1.0)
    assert actions[0] == CloseConnection(connection_id=connection_id)
    only_open(actions[1:], r2, B)
    assert pool.connection_state(connection_id) is CLOSED
    assert pool.counts() == counts(connecting=1, requests_active=1)


@pytest.mark.parametrize(
    ("reuse", "closed_index"),
    [(None, 0), (0, 1), (1, 0)],
    ids=["oldest", "reused-oldest-moves-back", "reused-middle"],
)
def test_room_is_made_by_closing_oldest_idle(
    reuse: int | None, closed_index: int
) -> None:
    """With the pool full, the least recently used idle connection is closed."""
    pool = PoolState(max_connections=3)
    idle = [
        idle_connection(pool, key, now) for key, now in [(A, 1.0), (B, 2.0), (C, 3.0)]
    ]
    if reuse is not None:
        key = (A, B, C)[reuse]
        request_id, actions = pool.request_arrived(key, shared=False, now=4.0)
        assert actions == [
            AssignRequest(request_id=request_id, connection_id=idle[reuse])
        ]
        assert pool.request_released(request_id, reusable=True, now=5.0) == []
    request_id, actions = pool.request_arrived(D, shared=False, now=6.0)
    assert actions[0] == CloseConnection(connection_id=idle[closed_index])
    only_open(actions[1:], request_id, D)
    assert pool.counts() == counts(connecting=1, idle=2, requests_active=1)


def test_unbounded_pool_opens_a_connection_per_request() -> None:
    """max_connections=None never makes a request wait."""
    pool = PoolState(max_connections=None)
    connection_ids = {open_new(pool, A)[1] for _ in range(200)}
    assert len(connection_ids) == 200
    assert pool.counts() == counts(connecting=200, requests_active=200)


def test_unreusable_release_gives_room_to_waiter() -> None:
    """A connection closed on release frees its slot for the next waiter."""
    pool = PoolState(max_connections=1)
    r1, connection_id = connected(pool, A)
    r2 = waits(pool, A)
    actions = pool.request_released(r1, reusable=False, now=1.0)
    assert actions[0] == CloseConnection(connection_id=connection_id)
    only_open(actions[1:], r2, A)
    assert pool.counts() == counts(connecting=1, requests_active=1)


# -- max_keepalive_connections -------------------------------------------------


def test_keepalive_bounds_idle_connections_only() -> None:
    """Five busy connections released one by one keep two idle: oldest closed."""
    pool = PoolState(max_connections=10, max_keepalive_connections=2)
    busy = [connected(pool, A) for _ in range(5)]
    assert pool.counts() == counts(active=5, requests_active=5)
    ids = [connection_id for _, connection_id in busy]
    expected = [[], [], [ids[0]], [ids[1]], [ids[2]]]
    for now, ((request_id, _), closed) in enumerate(zip(busy, expected, strict=True)):
        actions = pool.request_released(request_id, reusable=True, now=float(now))
        assert actions == [CloseConnection(connection_id=c) for c in closed]
    assert pool.counts() == counts(idle=2)
    assert [pool.connection_state(c) for c in ids] == [
        CLOSED,
        CLOSED,
        CLOSED,
        IDLE,
        IDLE,
    ]


def test_keepalive_zero_closes_every_released_connection() -> None:
    """max_keepalive_connections=0 keeps no idle connection at all."""
    pool = PoolState(max_keepalive_connections=0)
    request_id, connection_id = connected(pool, A)
    actions = pool.request_released(request_id, reusable=True, now=1.0)
    assert actions == [CloseConnection(connection_id=connection_id)]
    assert pool.counts() == counts()


# -- keepalive_expiry ----------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expired"),
    [(10.0, False), (14.999, False), (15.0, True), (100.0, True)],
)
def test_idle_connection_expires_at_deadline(now: float, expired: bool) -> None:
    """An idle connection expires once now >= idle_since + keepalive_expiry."""
    pool = PoolState(keepalive_expiry=5.0)
    connection_id = idle_connection(pool, A, now=10.0)
    actions = pool.expire(now)
    if expired:
        assert actions == [CloseConnection(connection_id=connection_id)]
        assert pool.counts() == counts()
    else:
        assert actions == []
        assert pool.counts() == counts(idle=1)


def test_expire_closes_only_expired_oldest_first() -> None:
    """expire() closes expired connections in idle order and keeps fresh ones."""
    pool = PoolState(keepalive_expiry=5.0)
    c1 = idle_connection(pool, A, now=0.0)
    c2 = idle_connection(pool, B, now=1.0)
    c3 = idle_connection(pool, C, now=3.0)
    assert pool.expire(6.0) == [
        CloseConnection(connection_id=c1),
        CloseConnection(connection_id=c2),
    ]
    assert pool.connection_state(c3) is IDLE
    assert pool.expire(7.9) == []
    assert pool.expire(8.0) == [CloseConnection(connection_id=c3)]


def test_expired_connection_is_never_assigned() -> None:
    """A request after the expiry closes the stale connection and opens a new one."""
    pool = PoolState(keepalive_expiry=5.0)
    old = idle_connection(pool, A, now=0.0)
    request_id, actions = pool.request_arrived(A, shared=False, now=5.0)
    assert actions[0] == CloseConnection(connection_id=old)
    assert only_open(actions[1:], request_id, A) != old
    assert pool.counts() == counts(connecting=1, requests_active=1)


def test_reuse_restarts_the_expiry_clock() -> None:
    """Expiry counts from the last time the connection went idle."""
    pool = PoolState(keepalive_expiry=5.0)
    connection_id = idle_connection(pool, A, now=0.0)
    request_id, actions = pool.request_arrived(A, shared=False, now=4.0)
    assert actions == [
        AssignRequest(request_id=request_id, connection_id=connection_id)
    ]
    assert pool.expire(100.0) == []  # busy connections never expire
    assert pool.request_released(request_id, reusable=True, now=8.0) == []
    assert pool.expire(12.9) == []
    assert pool.expire(13.0) == [CloseConnection(connection_id=connection_id)]


def test_no_expiry_when_keepalive_expiry_is_none() -> None:
    """keepalive_expiry=None keeps an idle connection reusable for ever."""
    pool = PoolState(keepalive_expiry=None)
    connection_id = idle_connection(pool, A, now=0.0)
    assert pool.expire(1e12) == []
    request_id, actions = pool.request_arrived(A, shared=False, now=1e12)
    assert actions == [
        AssignRequest(request_id=request_id, connection_id=connection_id)
    ]


# -- cancellation --------------------------------------------------------------


def test_cancelled_waiting_request_leaves_the_queue() -> None:
    """A cancelled waiter is skipped; the others are still served in order."""
    pool = PoolState(max_connections=1)
    r1, connection_id = connected(pool, A)
    r2, r3, r4 = (waits(pool, A) for _ in range(3))
    assert pool.request_cancelled(r3, 1.0) == []
    assert pool.request_state(r3) is DONE
    assert pool.counts() == counts(active=1, requests_active=1, waiting=2)
    for done, served in [(r1, r2), (r2, r4)]:
        actions = pool.request_released(done, reusable=True, now=2.0)
        assert actions == [
            AssignRequest(request_id=served, connection_id=connection_id)
        ]
    assert pool.request_released(r4, reusable=True, now=3.0) == []
    assert pool.counts() == counts(idle=1)


def test_cancel_while_connecting_closes_the_connection() -> None:
    """A request cancelled while connecting takes its connection with it."""
    pool = PoolState()
    request_id, connection_id = open_new(pool, A)
    actions = pool.request_cancelled(request_id, 1.0)
    assert actions == [CloseConnection(connection_id=connection_id)]
    assert pool.connection_state(connection_id) is CLOSED
    assert pool.request_state(request_id) is DONE
    assert pool.counts() == counts()
    # The connect finishing late must not resurrect it.
    assert (
        pool.connection_ready(connection_id, shared=False, available=False, now=2.0)
        == []
    )
    assert pool.counts() == counts()


def test_cancel_while_connecting_gives_room_to_waiter() -> None:
    """The slot of a connection cancelled while connecting goes to the next waiter."""
    pool = PoolState(max_connections=1)
    r1, connection_id = open_new(pool, A)
    r2 = waits(pool, B)
    actions = pool.request_cancelled(r1, 1.0)
    assert actions[0] == CloseConnection(connection_id=connection_id)
    only_open(actions[1:], r2, B)
    assert pool.counts() == counts(connecting=1, requests_active=1)


def test_cancel_active_http11_request_closes_connection() -> None:
    """A cancelled HTTP/1.1 exchange leaves its connection unusable: closed."""
    pool = PoolState()
    request_id, connection_id = connected(pool, A)
    actions = pool.request_cancelled(request_id, 1.0)
    assert actions == [CloseConnection(connection_id=connection_id)]
    assert pool.counts() == counts()


def test_cancel_on_shared_connecting_connection_keeps_it_for_others() -> None:
    """A shared connecting connection closes only when its last request cancels."""
    pool = PoolState()
    r1, connection_id = open_new(pool, H2, shared=True)
    r2, actions = pool.request_arrived(H2, shared=True, now=0.0)
    assert actions == [AssignRequest(request_id=r2, connection_id=connection_id)]
    assert pool.request_cancelled(r1, 1.0) == []
    assert pool.connection_state(connection_id) is CONNECTING
    assert pool.request_state(r2) is REQ_CONNECTING
    assert pool.request_cancelled(r2, 1.0) == [
        CloseConnection(connection_id=connection_id)
    ]
    assert pool.counts() == counts()


def test_cancel_one_http2_stream_keeps_connection() -> None:
    """Cancelling one of several HTTP/2 streams leaves the connection ACTIVE."""
    pool = PoolState()
    r1, connection_id = connected(pool, H2, http2=True)
    r2, actions = pool.request_arrived(H2, shared=True, now=1.0)
    assert actions == [AssignRequest(request_id=r2, connection_id=connection_id)]
    assert pool.request_cancelled(r1, 2.0) == []
    assert pool.connection_state(connection_id) is ACTIVE
    assert pool.counts() == counts(active=1, requests_active=1)


def test_cancel_done_request_is_a_no_op() -> None:
    """Cancelling a request after release changes nothing."""
    pool = PoolState()
    request_id, connection_id = connected(pool, A)
    assert pool.request_released(request_id, reusable=True, now=1.0) == []
    assert pool.request_cancelled(request_id, 2.0) == []
    assert pool.connection_state(connection_id) is IDLE


# -- FIFO across keys ----------------------------------------------------------


def test_waiters_of_different_keys_served_in_arrival_order() -> None:
    """Freed capacity goes to waiting requests in arrival order, whatever the key."""
    pool = PoolState(max_connections=1)
    request_id, connection_id = connected(pool, A)
    waiters = [(waits(pool, key), key) for key in (B, C, D)]
    for waiter, key in waiters:
        actions = pool.request_released(request_id, reusable=False, now=1.0)
        assert actions[0] == CloseConnection(connection_id=connection_id)
        connection_id = only_open(actions[1:], waiter, key)
        assert [pool.request_state(w) for w, _ in waiters].count(WAITING) == (
            len(waiters) - 1 - waiters.index((waiter, key))
        )
        request_id = waiter
    assert pool.counts() == counts(connecting=1, requests_active=1)


def test_release_serves_oldest_waiter_even_of_another_key() -> None:
    """An older waiter of another key is not overtaken by a newer same-key waiter."""
    pool = PoolState(max_connections=1)
    r1, connection_id = connected(pool, A)
    older_b = waits(pool, B, now=1.0)
    newer_a = waits(pool, A, now=2.0)
    actions = pool.request_released(r1, reusable=True, now=3.0)
    # Same-key preference here starves B for as long as A keeps the pool busy.
    assert actions[0] == CloseConnection(connection_id=connection_id)
    only_open(actions[1:], older_b, B)
    assert pool.request_state(newer_a) is WAITING


# -- HTTP/2 sharing ------------------------------------------------------------


def test_shared_requests_queue_on_a_connecting_connection() -> None:
    """Requests that may share wait on the connecting connection, not a new one."""
    pool = PoolState(max_connections=10)
    r1, connection_id = open_new(pool, H2, shared=True)
    for _ in range(3):
        request_id, actions = pool.request_arrived(H2, shared=True, now=0.0)
        assert actions == [
            AssignRequest(request_id=request_id, connection_id=connection_id)
        ]
        assert pool.request_state(request_id) is REQ_CONNECTING
    assert pool.counts() == counts(connecting=1, requests_active=4)
    assert pool.request_state(r1) is REQ_CONNECTING


def test_http2_ready_makes_queued_requests_active() -> None:
    """Requests queued on a connecting HTTP/2 connection run once it is ready."""
    pool = PoolState()
    r1, connection_id = open_new(pool, H2, shared=True)
    r2, _ = pool.request_arrived(H2, shared=True, now=0.0)
    assert (
        pool.connection_ready(connection_id, shared=True, available=True, now=1.0) == []
    )
    assert pool.counts() == counts(active=1, requests_active=2)
    assert [pool.request_state(r) for r in (r1, r2)] == [REQ_ACTIVE, REQ_ACTIVE]


def test_ready_leaves_requests_that_moved_away_alone() -> None:
    """A request requeued off a connecting connection stays CONNECTING elsewhere."""
    pool = PoolState()
    _, c1 = open_new(pool, H2, shared=True)
    moved, actions = pool.request_arrived(H2, shared=True, now=0.0)
    assert actions == [AssignRequest(request_id=moved, connection_id=c1)]
    c2 = only_open(pool.requeue(moved, 1.0), moved, H2)
    assert pool.connection_ready(c1, shared=True, available=True, now=2.0) == []
    assert pool.connection_state(c2) is CONNECTING
    assert pool.request_state(moved) is REQ_CONNECTING


def test_connection_turning_out_http2_takes_waiting_requests() -> None:
    """A connection that connects as HTTP/2 takes the waiting requests of its key."""
    pool = PoolState(max_connections=1)
    _, connection_id = open_new(pool, H2, shared=False)
    r2 = waits(pool, H2)
    r3 = waits(pool, H2)
    actions = pool.connection_ready(connection_id, shared=True, available=True, now=1.0)
    assert actions == [
        AssignRequest(request_id=r2, connection_id=connection_id),
        AssignRequest(request_id=r3, connection_id=connection_id),
    ]
    assert pool.counts() == counts(active=1, requests_active=3)


def test_freed_capacity_opens_one_shared_connection_for_all_waiters() -> None:
    """Freed capacity opens one shared connection; every HTTP/2 waiter ends on it."""
    pool = PoolState(max_connections=1)
    r1, old = connected(pool, A)
    r2 = waits(pool, H2, shared=True)
    r3 = waits(pool, H2, shared=True)
    actions = pool.request_released(r1, reusable=True, now=1.0)
    assert actions[0] == CloseConnection(connection_id=old)
    new = only_open(actions[1:2], r2, H2)
    # r3 may queue on the connect now or wait for the connection to be ready.
    actions = actions[2:]
    actions += pool.connection_ready(new, shared=True, available=True, now=2.0)
    assert actions == [AssignRequest(request_id=r3, connection_id=new)]
    assert pool.counts() == counts(active=1, requests_active=2)


def test_waiting_shared_request_is_not_overtaken() -> None:
    """A waiting HTTP/2 request is not overtaken by a later one of its key."""
    pool = PoolState(max_connections=1)
    r1, old = connected(pool, A)
    r2 = waits(pool, H2, shared=True)
    r3 = waits(pool, H2, shared=True)
    actions = pool.request_released(r1, reusable=True, now=1.0)
    assert actions[0] == CloseConnection(connection_id=old)
    new = only_open(actions[1:2], r2, H2)
    r4, actions = pool.request_arrived(H2, shared=True, now=2.0)
    if pool.request_state(r4) is not WAITING:
        # r4 queues on the connect, so r3 (older) must already be there.
        assert actions == [AssignRequest(request_id=r4, connection_id=new)]
        assert pool.request_state(r3) is REQ_CONNECTING


@pytest.mark.parametrize(
    ("max_connections", "opens"), [(1, False), (2, True), (None, True)]
)
def test_full_http2_connection_opens_another_up_to_the_limit(
    max_connections: int | None, opens: bool
) -> None:
    """With no free stream a shared request opens a second connection or waits."""
    pool = PoolState(max_connections=max_connections)
    _, first = connected(pool, H2, http2=True)
    assert pool.stream_capacity(first, available=False, now=1.0) == []
    request_id, actions = pool.request_arrived(H2, shared=True, now=2.0)
    if opens:
        assert only_open(actions, request_id, H2) != first
        assert pool.counts() == counts(connecting=1, active=1, requests_active=2)
    else:
        assert actions == []
        assert pool.counts() == counts(active=1, requests_active=1, waiting=1)


def test_stream_capacity_serves_waiting_requests() -> None:
    """A shared connection that regains streams takes the waiters of its key."""
    pool = PoolState(max_connections=1)
    _, connection_id = connected(pool, H2, http2=True)
    pool.stream_capacity(connection_id, available=False, now=1.0)
    r2 = waits(pool, H2, shared=True)
    r3 = waits(pool, H2, shared=True)
    actions = pool.stream_capacity(connection_id, available=True, now=2.0)
    assert actions == [
        AssignRequest(request_id=r2, connection_id=connection_id),
        AssignRequest(request_id=r3, connection_id=connection_id),
    ]
    assert pool.counts() == counts(active=1, requests_active=3)


def test_stream_capacity_on_unshared_connection_is_ignored() -> None:
    """An HTTP/1.1 connection never becomes shared through stream_capacity."""
    pool = PoolState()
    _, connection_id = connected(pool, A)
    assert pool.stream_capacity(connection_id, available=True, now=1.0) == []
    request_id, actions = pool.request_arrived(A, shared=True, now=1.0)
    assert only_open(actions, request_id, A) != connection_id


def test_http11_answer_stops_sharing() -> None:
    """A shared-intended connection that comes up HTTP/1.1 takes no more requests."""
    pool = PoolState()
    _, connection_id = open_new(pool, H2, shared=True)
    assert (
        pool.connection_ready(connection_id, shared=False, available=True, now=1.0)
        == []
    )
    request_id, actions = pool.request_arrived(H2, shared=True, now=2.0)
    assert only_open(actions, request_id, H2) != connection_id
    assert pool.counts() == counts(connecting=1, active=1, requests_active=2)


def test_http11_answer_never_double_books_the_connection() -> None:
    """After an HTTP/1.1 answer, a slow retry of a queued request kills no bystander."""
    pool = PoolState()
    r1, c1 = open_new(pool, H2, shared=True)
    r2, actions = pool.request_arrived(H2, shared=True, now=0.0)
    assert actions == [AssignRequest(request_id=r2, connection_id=c1)]
    assert pool.connection_ready(c1, shared=False, available=False, now=1.0) == []
    # r1 finishes before r2's task gets round to requeueing itself.
    pool.request_released(r1, reusable=True, now=2.0)
    r3, actions = pool.request_arrived(H2, shared=True, now=3.0)
    placed = [a for a in actions if not isinstance(a, CloseConnection)]
    assert [a.request_id for a in placed] == [r3]
    r3_connection = placed[0].connection_id
    actions = pool.requeue(r2, 4.0)
    assert CloseConnection(connection_id=r3_connection) not in actions
    # r3 still runs on its connection: it is neither closed nor idle.
    assert pool.connection_state(r3_connection) in {CONNECTING, ACTIVE}


def test_released_http2_connection_is_reused() -> None:
    """An HTTP/2 connection goes idle after its last stream and is reused."""
    pool = PoolState()
    r1, connection_id = connected(pool, H2, http2=True)
    r2, actions = pool.request_arrived(H2, shared=True, now=1.0)
    assert actions == [AssignRequest(request_id=r2, connection_id=connection_id)]
    assert pool.request_released(r1, reusable=True, now=2.0) == []
    assert pool.connection_state(connection_id) is ACTIVE
    assert pool.request_released(r2, reusable=True, now=3.0) == []
    assert pool.connection_state(connection_id) is IDLE
    r3, actions = pool.request_arrived(H2, shared=True, now=4.0)
    assert actions == [AssignRequest(request_id=r3, connection_id=connection_id)]
    assert pool.counts() == counts(active=1, requests_active=1)


def test_reused_http2_connection_is_not_closed_to_make_room() -> None:
    """A reused HTTP/2 connection is busy: it is never closed as 'oldest idle'."""
    pool = PoolState(max_connections=1)
    connection_id = idle_connection(pool, H2, now=0.0, http2=True)
    busy, actions = pool.request_arrived(H2, shared=True, now=1.0)
    assert actions == [AssignRequest(request_id=busy, connection_id=connection_id)]
    waiter, actions = pool.request_arrived(A, shared=False, now=2.0)
    assert actions == []
    assert pool.connection_state(connection_id) is ACTIVE
    assert pool.request_state(waiter) is WAITING
    assert pool.counts() == counts(active=1, requests_active=1, waiting=1)


def test_reused_http2_connection_does_not_count_as_idle() -> None:
    """max_keepalive_connections never closes a reused (busy) HTTP/2 connection."""
    pool = PoolState(max_keepalive_connections=1)
    h2 = idle_connection(pool, H2, now=0.0, http2=True)
    busy, actions = pool.request_arrived(H2, shared=True, now=1.0)
    assert actions == [AssignRequest(request_id=busy, connection_id=h2)]
    h1 = idle_connection(pool, A, now=2.0)
    assert pool.connection_state(h2) is ACTIVE
    assert pool.connection_state(h1) is IDLE
    assert pool.counts() == counts(active=1, idle=1, requests_active=1)


def test_reused_http2_connection_does_not_block_expiry() -> None:
    """expire() still closes expired idle connections behind a reused HTTP/2 one."""
    pool = PoolState(keepalive_expiry=5.0)
    h2 = idle_connection(pool, H2, now=0.0, http2=True)
    busy, actions = pool.request_arrived(H2, shared=True, now=1.0)
    assert actions == [AssignRequest(request_id=busy, connection_id=h2)]
    h1 = idle_connection(pool, A, now=2.0)
    assert pool.expire(10.0) == [CloseConnection(connection_id=h1)]
    assert pool.counts() == counts(active=1, requests_active=1)


def test_expired_http2_connection_is_never_assigned() -> None:
    """An idle HTTP/2 connection past its expiry is closed, not reused."""
    pool = PoolState(keepalive_expiry=5.0)
    old = idle_connection(pool, H2, now=0.0, http2=True)
    request_id, actions = pool.request_arrived(H2, shared=True, now=5.0)
    assert actions[0] == CloseConnection(connection_id=old)
    assert only_open(actions[1:], request_id, H2) != old


# -- requeue and failures ------------------------------------------------------


def test_requeue_closes_refusing_http11_connection() -> None:
    """A request refused by a dead HTTP/1.1 connection moves on; it closes."""
    pool = PoolState()
    request_id, connection_id = connected(pool, A)
    actions = pool.requeue(request_id, 1.0, connection_dead=True)
    assert actions[0] == CloseConnection(connection_id=connection_id)
    assert only_open(actions[1:], request_id, A) != connection_id
    assert pool.counts() == counts(connecting=1, requests_active=1)


def test_requeue_goes_ahead_of_waiting_requests() -> None:
    """A requeued request takes the freed slot before older waiters."""
    pool = PoolState(max_connections=1)
    r1, connection_id = connected(pool, A)
    r2 = waits(pool, A)
    actions = pool.requeue(r1, 1.0, connection_dead=True)
    assert actions[0] == CloseConnection(connection_id=connection_id)
    only_open(actions[1:], r1, A)
    assert pool.request_state(r2) is WAITING


def test_requeue_waits_at_front_of_queue() -> None:
    """With no capacity a requeued request waits ahead of every older waiter."""
    pool = PoolState(max_connections=2)
    r1, c1 = connected(pool, H2, http2=True)
    r1b, actions = pool.request_arrived(H2, shared=True, now=0.0)
    assert actions == [AssignRequest(request_id=r1b, connection_id=c1)]
    pool.stream_capacity(c1, available=False, now=0.0)
    r3, c2 = open_new(pool, H2, shared=True)
    pool.connection_ready(c2, shared=True, available=False, now=0.0)
    r2 = waits(pool, H2, shared=True)
    assert pool.requeue(r1, 1.0) == []  # never back onto c1; nothing else free
    assert pool.request_state(r1) is WAITING
    assert pool.counts() == counts(active=2, requests_active=2, waiting=2)
    actions = pool.stream_capacity(c2, available=True, now=2.0)
    assert actions == [
        AssignRequest(request_id=r1, connection_id=c2),
        AssignRequest(request_id=r2, connection_id=c2),
    ]
    assert pool.request_state(r3) is not WAITING


def test_requeue_never_lands_on_the_same_connection() -> None:
    """A request refused by an HTTP/2 connection with free streams goes elsewhere."""
    pool = PoolState()
    r1, connection_id = connected(pool, H2, http2=True)
    r2, actions = pool.request_arrived(H2, shared=True, now=0.0)
    assert actions == [AssignRequest(request_id=r2, connection_id=connection_id)]
    actions = pool.requeue(r1, 1.0)
    assert only_open(actions, r1, H2) != connection_id
    assert pool.connection_state(connection_id) is ACTIVE
    assert pool.counts() == counts(connecting=1, active=1, requests_active=2)


@pytest.mark.parametrize("max_connections", [1, 2])
def test_requeue_off_a_connecting_connection_leaves_no_zombie(
    max_connections: int,
) -> None:
    """Requeued off its own connecting connection, a request closes it: no zombie."""
    pool = PoolState(max_connections=max_connections)
    request_id, connection_id = open_new(pool, A)
    actions = pool.requeue(request_id, 1.0)
    assert CloseConnection(connection_id=connection_id) in actions
    placed = [a for a in actions if not isinstance(a, CloseConnection)]
    assert only_open(placed, request_id, A) != connection_id
    assert pool.connection_state(connection_id) is CLOSED
    assert pool.counts() == counts(connecting=1, requests_active=1)


def test_requeue_frees_room_for_waiters() -> None:
    """A connection closed by a requeue gives its slot to the waiters."""
    pool = PoolState(max_connections=2)
    r1, c1 = connected(pool, H2, http2=True)
    pool.stream_capacity(c1, available=False, now=0.0)  # GOAWAY
    _, c2 = connected(pool, H2, http2=True)
    waiter = waits(pool, A)
    # Above GOAWAY's last stream id, and the draining connection is done.
    actions = pool.requeue(r1, 1.0, connection_dead=True)
    assert actions[:2] == [
        CloseConnection(connection_id=c1),
        AssignRequest(request_id=r1, connection_id=c2),
    ]
    only_open(actions[2:], waiter, A)
    assert pool.counts() == counts(connecting=1, active=1, requests_active=3)


def test_connection_failed_then_requeue_opens_afresh() -> None:
    """A failed connect is gone at once; the retried request opens a new one."""
    pool = PoolState()
    request_id, connection_id = open_new(pool, A)
    assert pool.connection_failed(connection_id, 1.0) == []
    assert pool.connection_state(connection_id) is CLOSED
    assert pool.counts()["connections_connecting"] == 0
    actions = pool.requeue(request_id, 2.0)
    assert only_open(actions, request_id, A) != connection_id
    assert pool.counts() == counts(connecting=1, requests_active=1)


def test_connection_failed_frees_capacity_for_waiters() -> None:
    """The slot of a failed connection goes to the next waiter."""
    pool = PoolState(max_connections=1)
    r1, connection_id = open_new(pool, A)
    r2 = waits(pool, B)
    actions = pool.connection_failed(connection_id, 1.0)
    only_open(actions, r2, B)
    assert pool.request_released(r1, reusable=False, now=1.0) == []
    assert pool.request_state(r1) is DONE
    assert pool.counts() == counts(connecting=1, requests_active=1)


# -- discard and close_all -----------------------------------------------------


def test_discard_idle_connection() -> None:
    """An idle connection the server closed is dropped and never reused."""
    pool = PoolState()
    connection_id = idle_connection(pool, A)
    assert pool.discard(connection_id, 1.0) == []
    assert pool.connection_state(connection_id) is CLOSED
    assert pool.counts() == counts()
    request_id, actions = pool.request_arrived(A, shared=False, now=2.0)
    assert only_open(actions, request_id, A) != connection_id


def test_discard_gives_capacity_to_waiters() -> None:
    """A discarded connection's slot goes to the next waiter."""
    pool = PoolState(max_connections=1)
    r1, connection_id = connected(pool, A)
    r2 = waits(pool, B)
    actions = pool.discard(connection_id, 1.0)
    only_open(actions, r2, B)
    assert pool.request_released(r1, reusable=False, now=1.0) == []
    assert pool.counts() == counts(connecting=1, requests_active=1)


def test_close_all_closes_everything() -> None:
    """close_all closes every connection and ends every request, waiting or not."""
    pool = PoolState(max_connections=3)
    active_request, active = connected(pool, B)
    connecting_request, connecting = open_new(pool, C)
    h2_request, h2 = connected(pool, H2, http2=True)
    stream, actions = pool.request_arrived(H2, shared=True, now=0.0)
    assert actions == [AssignRequest(request_id=stream, connection_id=h2)]
    assert pool.stream_capacity(h2, available=False, now=0.0) == []
    waiter = waits(pool, D)
    assert pool.counts() == counts(connecting=1, active=2, requests_active=4, waiting=1)
    actions = pool.close_all()
    assert sorted(actions, key=lambda a: a.connection_id) == [
        CloseConnection(connection_id=c) for c in sorted((active, connecting, h2))
    ]
    assert pool.counts() == counts()
    requests = (active_request, connecting_request, h2_request, stream, waiter)
    assert {pool.request_state(r) for r in requests} == {DONE}
    assert {pool.connection_state(c) for c in (active, connecting, h2)} == {CLOSED}
    # Late events from the driver change nothing; the pool still serves.
    assert pool.request_released(active_request, reusable=True, now=1.0) == []
    assert (
        pool.connection_ready(connecting, shared=False, available=False, now=1.0) == []
    )
    assert pool.stream_capacity(h2, available=True, now=1.0) == []
    assert pool.counts() == counts()
    request_id, actions = pool.request_arrived(D, shared=False, now=2.0)
    only_open(actions, request_id, D)
    assert pool.counts() == counts(connecting=1, requests_active=1)


def test_close_all_closes_idle_connections() -> None:
    """close_all closes idle connections, which then never expire or get reused."""
    pool = PoolState(keepalive_expiry=5.0)
    first = idle_connection(pool, A, now=0.0)
    second = idle_connection(pool, B, now=1.0)
    assert pool.close_all() == [
        CloseConnection(connection_id=first),
        CloseConnection(connection_id=second),
    ]
    assert pool.expire(100.0) == []
    assert pool.counts() == counts()
    request_id, actions = pool.request_arrived(A, shared=False, now=100.0)
    assert only_open(actions, request_id, A) not in (first, second)


# -- invariants under random events --------------------------------------------

MACHINE_KEYS: dict[PoolKey, bool] = {A: False, H2: True, (*H2[:3], "x"): True}
# (http2, available) for a connection that could be shared: mostly HTTP/2.
READY_OUTCOMES = [(True, True), (True, True), (True, False), (False, False)]
EVENT_WEIGHTS = {
    "arrive": 4,
    "ready": 6,
    "release": 8,
    "capacity": 2,
    "requeue_one": 1,
    "cancel": 1,
    "fail": 1,
    "discard": 1,
    "expire": 2,
    "close_all": 1,
}


@dataclass
class _Conn:
    key: PoolKey
    shared: bool
    requests: list[int] = field(default_factory=list)
    ready: bool = False
    idle_since: float | None = None

    @property
    def idle(self) -> bool:
        return self.ready and not self.requests


class PoolMachine(RuleBasedStateMachine):
    """A driver model that mirrors the pool from the actions alone."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = PoolState()
        self.max_connections: int | None = 10
        self.max_keepalive: int | None = None
        self.expiry: float | None = None
        self.now = 0.0
        self.conns: dict[int, _Conn] = {}
        self.where: dict[int, int | None] = {}  # live request -> connection
        self.keys: dict[int, PoolKey] = {}

    @initialize(
        max_connections=st.sampled_from([1, 2, 3, 4, None]),
        max_keepalive=st.sampled_from([0, 1, 2, 3, None]),
        expiry=st.sampled_from([1.0, 2.5, 5.0, None]),
    )
    def setup(
        self,
        max_connections: int | None,
        max_keepalive: int | None,
        expiry: float | None,
    ) -> None:
        self.max_connections = max_connections
        self.max_keepalive = max_keepalive
        self.expiry = expiry
        self.pool = PoolState(
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive,
            keepalive_expiry=expiry,
        )

    # -- the model ----------------------------------------------------------

    def _apply(self, actions: list[PoolAction]) -> None:
        for action in actions:
            if isinstance(action, CloseConnection):
                conn = self.conns.pop(action.connection_id, None)
                assert conn is not None, f"closed unknown {action}"
                assert not conn.requests, f"{action} under requests {conn.requests}"
            elif isinstance(action, OpenConnection):
                rid = action.request_id
                assert self.where.get(rid, -1) is None, f"{action}: request not waiting"
                assert action.key == self.keys[rid]
                assert action.connection_id not in self.conns
                self.conns[action.connection_id] = _Conn(
                    action.key, MACHINE_KEYS[action.key], [rid]
                )
                self.where[rid] = action.connection_id
                if self.max_connections is not None:
                    assert len(self.conns) <= self.max_connections, f"{action}"
            else:
                rid = action.request_id
                assert self.where.get(rid, -1) is None, f"{action}: request not waiting"
                conn = self.conns.get(action.connection_id)
                assert conn is not None, f"{action}: connection is closed"
                assert conn.key == self.keys[rid]
                if not conn.shared:
                    assert not conn.requests, f"{action}: unshared connection is busy"
                if conn.idle and conn.idle_since is not None and self.expiry:
                    assert conn.idle_since + self.expiry > self.now, (
                        f"{action}: expired"
                    )
                conn.requests.append(rid)
                conn.idle_since = None
                self.where[rid] = action.connection_id

    def _detach(self, rid: int) -> int | None:
        cid = self.where[rid]
        if cid is not None:
            self.conns[cid].requests.remove(rid)
        return cid

    def _requeue(self, rid: int, data: st.DataObject, *, dead: bool = False) -> None:
        old = self._detach(rid)
        self.where[rid] = None
        orphans: list[int] = []
        if dead and old is not None:
            # A dead connection closes under its other requests too.
            orphans = self.conns[old].requests
            self.conns[old].requests = []
            self.where.update(dict.fromkeys(orphans))
        actions = self.pool.requeue(rid, self.now, connection_dead=dead)
        assert AssignRequest(request_id=rid, connection_id=old) not in actions
        self._apply(actions)
        if dead:
            assert old not in self.conns, "dead connection kept"
        self._retry_or_fail(orphans, data)

    def _retry_or_fail(self, orphans: list[int], data: st.DataObject) -> None:
        """The driver retries or fails each request of a connection that died."""
        for rid in orphans:
            if data.draw(st.booleans(), label="retry"):
                self._apply(self.pool.requeue(rid, self.now))
            else:
                del self.where[rid]
                assert self.pool.request_cancelled(rid, self.now) == []
                assert self.pool.request_state(rid) is DONE

    def _requests_on(self, predicate: Callable[[_Conn], bool]) -> list[int]:
        return sorted(
            rid
            for rid, cid in self.where.items()
            if cid is not None and predicate(self.conns[cid])
        )

    # -- events ----------------------------------------------------------------
    # One rule draws the next event from EVENT_WEIGHTS among those that apply
    # now: uniform rule choice spends most steps cancelling and failing, and
    # connections then rarely live long enough to go idle and be reused.

    @rule(data=st.data())
    def event(self, data: st.DataObject) -> None:
        enabled = [
            name
            for name, weight in EVENT_WEIGHTS.items()
            if getattr(self, f"_can_{name}")()
            for _ in range(weight)
        ]
        name = data.draw(st.sampled_from(enabled), label="event")
        getattr(self, f"_{name}")(data)

    def _can_arrive(self) -> bool:
        return True

    def _arrive(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(list(MACHINE_KEYS)), label="key")
        rid, actions = self.pool.request_arrived(
            key, shared=MACHINE_KEYS[key], now=self.now
        )
        self.where[rid] = None
        self.keys[rid] = key
        self._apply(actions)

    def _can_ready(self) -> bool:
        return any(not c.ready for c in self.conns.values())

    def _ready(self, data: st.DataObject) -> None:
        cid = data.draw(
            st.sampled_from(sorted(c for c, m in self.conns.items() if not m.ready))
        )
        conn = self.conns[cid]
        shared, available = False, False
        if MACHINE_KEYS[conn.key]:
            shared, available = data.draw(
                st.sampled_from(READY_OUTCOMES),
                label="http2, available",
            )
        actions = self.pool.connection_ready(
            cid, shared=shared, available=available, now=self.now
        )
        conn.ready = True
        conn.shared = shared
        self._apply(actions)
        if not shared:  # HTTP/1.1: all but the first get ConnectionNotAvailable
            for rid in conn.requests[1:]:
                self._requeue(rid, data)

    def _can_fail(self) -> bool:
        return bool(self.conns)

    def _fail(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(sorted(self.conns)))
        conn = self.conns.pop(cid)
        actions = self.pool.connection_failed(cid, self.now)
        self.where.update(dict.fromkeys(conn.requests))
        self._apply(actions)
        self._retry_or_fail(conn.requests, data)

    def _can_capacity(self) -> bool:
        return any(c.ready and c.shared for c in self.conns.values())

    def _capacity(self, data: st.DataObject) -> None:
        cid = data.draw(
            st.sampled_from(
                sorted(c for c, m in self.conns.items() if m.ready and m.shared)
            )
        )
        available = data.draw(st.booleans(), label="available")
        self._apply(self.pool.stream_capacity(cid, available=available, now=self.now))

    def _can_release(self) -> bool:
        return any(c.ready and c.requests for c in self.conns.values())

    def _release(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(self._requests_on(lambda c: c.ready)))
        reusable = data.draw(
            st.sampled_from([True, True, True, False]), label="reusable"
        )
        cid = self._detach(rid)
        assert cid is not None
        was_shared = self.conns[cid].shared
        del self.where[rid]
        actions = self.pool.request_released(rid, reusable=reusable, now=self.now)
        assert self.pool.request_state(rid) is DONE
        self._apply(actions)
        if not reusable and not was_shared:
            assert cid not in self.conns, "unreusable HTTP/1.1 connection kept"

    def _can_cancel(self) -> bool:
        return bool(self.where)

    def _cancel(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(sorted(self.where)))
        cid = self._detach(rid)
        was_shared = cid is not None and self.conns[cid].shared
        del self.where[rid]
        actions = self.pool.request_cancelled(rid, self.now)
        assert self.pool.request_state(rid) is DONE
        self._apply(actions)
        if cid is not None and not was_shared:
            assert cid not in self.conns, "cancelled HTTP/1.1 connection kept"

    def _can_requeue_one(self) -> bool:
        return any(c.requests for c in self.conns.values())

    def _requeue_one(self, data: st.DataObject) -> None:
        # ConnectionNotAvailable can come before the first response head, while
        # the pool still counts the connection as CONNECTING.
        rid = data.draw(st.sampled_from(self._requests_on(lambda c: True)))
        self._requeue(rid, data, dead=data.draw(st.booleans(), label="dead"))

    def _can_discard(self) -> bool:
        return any(c.idle for c in self.conns.values())

    def _discard(self, data: st.DataObject) -> None:
        cid = data.draw(
            st.sampled_from(sorted(c for c, m in self.conns.items() if m.idle))
        )
        del self.conns[cid]
        self._apply(self.pool.discard(cid, self.now))

    def _can_expire(self) -> bool:
        return True

    def _expire(self, data: st.DataObject) -> None:
        self.now += data.draw(st.sampled_from([0.0, 0.5, 1.0, 2.5, 5.0]), label="dt")
        self._apply(self.pool.expire(self.now))
        if self.expiry is not None:
            for cid, conn in self.conns.items():
                if conn.idle:
                    assert conn.idle_since is not None
                    assert conn.idle_since + self.expiry > self.now, f"{cid} kept"

    def _can_close_all(self) -> bool:
        return len(self.conns) + len(self.where) >= 6

    def _close_all(self, data: st.DataObject) -> None:
        actions = self.pool.close_all()
        assert sorted(actions, key=lambda a: a.connection_id) == [
            CloseConnection(connection_id=cid) for cid in sorted(self.conns)
        ]
        for rid in self.where:
            assert self.pool.request_state(rid) is DONE
        self.conns.clear()
        self.where.clear()

    # -- invariants -------------------------------------------------------------

    @invariant()
    def matches_model(self) -> None:
        for conn in self.conns.values():
            if conn.idle and conn.idle_since is None:
                conn.idle_since = self.now
        waiting = [rid for rid, cid in self.where.items() if cid is None]
        expected = counts(
            connecting=sum(not c.ready for c in self.conns.values()),
            active=sum(c.ready and bool(c.requests) for c in self.conns.values()),
            idle=sum(c.idle for c in self.conns.values()),
            requests_active=len(self.where) - len(waiting),
            waiting=len(waiting),
        )
        assert self.pool.counts() == expected
        for cid, conn in self.conns.items():
            state = CONNECTING if not conn.ready else ACTIVE if conn.requests else IDLE
            assert self.pool.connection_state(cid) is state, cid
            assert conn.ready or conn.requests, f"{cid} CONNECTING with no request"
        for rid in waiting:
            assert self.pool.request_state(rid) is WAITING, rid
        for rid, cid in self.where.items():
            if cid is not None:
                assert self.pool.connection_state(cid) is not CLOSED
                allowed = (
                    {REQ_ACTIVE, REQ_CONNECTING}
                    if self.conns[cid].ready
                    else {REQ_CONNECTING}
                )
                assert self.pool.request_state(rid) in allowed, rid

    @invariant()
    def within_limits(self) -> None:
        if self.max_connections is not None:
            assert len(self.conns) <= self.max_connections
        if self.max_keepalive is not None:
            assert sum(c.idle for c in self.conns.values()) <= self.max_keepalive

    @invariant()
    def waits_only_when_full(self) -> None:
        if any(cid is None for cid in self.where.values()):
            full = (
                self.max_connections is not None
                and len(self.conns) >= self.max_connections
            )
            assert full, "a request waits while there is room"
            assert not any(c.idle for c in self.conns.values()), (
                "waits beside an idle one"
            )


# Shrinking a failure can take minutes; passing runs take about 4 s.
@pytest.mark.timeout(300)
def test_pool_invariants_hold_under_random_events() -> None:
    """Random event sequences keep every limit, the model and the counts in step."""
    run_state_machine_as_test(
        PoolMachine,
        settings=settings(
            max_examples=200,
            stateful_step_count=50,
            deadline=None,
            report_multiple_bugs=False,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_stream_capacity_opens_another_shared_connection_when_full() -> None:
    """With capacity=1 reported, a second shared request opens a second
    connection (room permitting) instead of queueing on the full one; a freed
    stream serves the waiting request."""
    key = (b"https", b"h2.example", 443, None)
    pool = PoolState(max_connections=2)
    r1, actions = pool.request_arrived(key, shared=True, now=0.0)
    (opened,) = actions
    assert isinstance(opened, OpenConnection)
    c1 = opened.connection_id
    pool.connection_ready(c1, shared=True, available=True, now=0.0, capacity=1)
    r2, actions = pool.request_arrived(key, shared=True, now=0.0)
    (second,) = actions
    assert isinstance(second, OpenConnection)
    assert second.connection_id != c1
    pool.connection_ready(
        second.connection_id, shared=True, available=True, now=0.0, capacity=1
    )
    r3, actions = pool.request_arrived(key, shared=True, now=0.0)
    assert actions == []  # both full, no room: it waits
    actions = pool.request_released(r1, reusable=True, now=1.0)
    assert actions == [AssignRequest(request_id=r3, connection_id=c1)]
    assert pool.request_state(r2) is PoolRequestState.ACTIVE


def test_origins_are_forgotten_when_their_last_connection_closes() -> None:
    """Per-origin records do not outlive their connections (bounded memory)."""
    pool = PoolState(max_connections=1)
    for n in range(50):
        key = (b"http", b"host%d.example" % n, 80, None)
        request_id, actions = pool.request_arrived(key, shared=False, now=float(n))
        for action in actions:
            if isinstance(action, OpenConnection):
                pool.connection_ready(
                    action.connection_id, shared=False, available=False, now=n
                )
        pool.request_released(request_id, reusable=True, now=float(n))
    assert len(pool._keys) == 1  # only the origin whose connection is idle


def test_stream_capacity_updates_the_stream_limit() -> None:
    """A SETTINGS change reported with ``capacity`` sets how many of the waiters
    a shared connection takes; waiters that gave up are passed over."""
    pool = PoolState(max_connections=1)
    r1, actions = pool.request_arrived(H2, shared=True, now=0.0)
    connection_id = only_open(actions, r1, H2)
    pool.connection_ready(
        connection_id, shared=True, available=True, now=0.0, capacity=1
    )
    gave_up = waits(pool, H2, shared=True)
    r3 = waits(pool, H2, shared=True)
    r4 = waits(pool, H2, shared=True)
    r5 = waits(pool, H2, shared=True)
    assert pool.request_cancelled(gave_up, now=0.5) == []
    actions = pool.stream_capacity(connection_id, available=True, now=1.0, capacity=3)
    assert actions == [
        AssignRequest(request_id=r3, connection_id=connection_id),
        AssignRequest(request_id=r4, connection_id=connection_id),
    ]
    assert pool.request_state(r5) is WAITING
    assert pool.counts() == counts(active=1, requests_active=3, waiting=1)


def test_release_after_the_connection_died_changes_nothing() -> None:
    """The driver may release a request after reporting its connection dead:
    the connection is already gone, so there is nothing left to free."""
    pool = PoolState(max_connections=1)
    request_id, connection_id = connected(pool, A)
    assert pool.connection_failed(connection_id, now=1.0) == []
    assert pool.counts() == counts(requests_active=1)
    assert pool.request_released(request_id, reusable=True, now=2.0) == []
    assert pool.counts() == counts()
    assert pool.request_state(request_id) is DONE


def test_release_of_a_waiting_request_only_forgets_it() -> None:
    """A request released while it still waits (a requeued request the driver
    gives up on) leaves the queue and frees nothing else."""
    pool = PoolState(max_connections=1)
    r1, connection_id = connected(pool, A)
    r2 = waits(pool, A)
    assert pool.request_released(r2, reusable=True, now=1.0) == []
    assert pool.request_state(r2) is DONE
    assert pool.counts() == counts(active=1, requests_active=1)
    assert pool.request_released(r1, reusable=True, now=2.0) == []
    assert pool.connection_state(connection_id) is IDLE


def test_fresh_requeue_skips_idle_connections() -> None:
    """A retry after a reused connection died goes on a new connection, not on
    another idle one (left idle as long, it may be just as dead)."""
    pool = PoolState(max_connections=3)
    r1, older = connected(pool, A)
    r2, newer = connected(pool, A)
    pool.request_released(r1, reusable=True, now=0.0)
    pool.request_released(r2, reusable=True, now=0.0)
    request_id, actions = pool.request_arrived(A, shared=False, now=1.0)
    (assigned,) = actions
    assert isinstance(assigned, AssignRequest)
    dead = assigned.connection_id
    assert dead == newer  # most recently used first
    closed, *actions = pool.requeue(request_id, 2.0, connection_dead=True, fresh=True)
    assert closed == CloseConnection(connection_id=dead)
    assert only_open(actions, request_id, A) not in (older, dead)
    assert pool.connection_state(older) is IDLE


def test_fresh_requeue_skips_live_shared_connections_but_joins_a_connecting_one() -> (
    None
):
    """For HTTP/2 the same holds: a shared connection already in use is passed
    over, one still connecting is as fresh as a new one."""
    pool = PoolState()
    _, shared = connected(pool, H2, http2=True)
    request_id, actions = pool.request_arrived(H2, shared=True, now=0.0)
    assert actions == [AssignRequest(request_id=request_id, connection_id=shared)]
    actions = pool.requeue(request_id, 1.0, fresh=True)
    opened = only_open(actions, request_id, H2)
    assert opened != shared
    joiner, actions = pool.request_arrived(H2, shared=True, now=1.0)
    assert actions == [AssignRequest(request_id=joiner, connection_id=shared)]
    pool.request_released(joiner, reusable=True, now=1.0)
    assert pool.requeue(joiner, 1.5, fresh=True) == []
    second, actions = pool.request_arrived(H2, shared=True, now=2.0)
    assert actions == [AssignRequest(request_id=second, connection_id=shared)]
    assert pool.requeue(second, 2.0, fresh=True) == [
        AssignRequest(request_id=second, connection_id=opened)
    ]


def test_fresh_retry_waiting_in_the_queue_still_gets_a_new_connection() -> None:
    """With no room, the retry queues; when room appears later it still goes
    on a new connection, not on the idle one it would otherwise be given."""
    pool = PoolState(max_connections=1)
    r1, c1 = connected(pool, H2, http2=True)
    r2, actions = pool.request_arrived(H2, shared=True, now=0.0)
    assert actions == [AssignRequest(request_id=r2, connection_id=c1)]
    assert pool.requeue(r2, 1.0, fresh=True) == []  # c1 busy with r1, no room
    assert pool.request_state(r2) is WAITING
    actions = pool.request_released(r1, reusable=True, now=2.0)
    closed, opened = actions
    assert closed == CloseConnection(connection_id=c1)
    assert only_open([opened], r2, H2) != c1
