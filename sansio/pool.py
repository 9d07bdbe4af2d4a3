"""Connection-pool decisions with no I/O and no clock: ``PoolState``.

Theory of operation
-------------------
The pool's driver tells ``PoolState`` what happened (a request arrived, a
connection connected or failed, a response was released, a request was
cancelled, time passed) and gets back *actions* to carry out: open a connection
for a request, send a request on a connection, close a connection. Requests the
state cannot serve yet wait in FIFO order; the driver wakes them when an action
names them. ``now`` is always passed in.

Every connection is in one :class:`PoolConnectionState`; every request in one
:class:`PoolRequestState`. A connection is keyed by :data:`PoolKey` (scheme,
host, port and ``sni_hostname``), so different SNI names never share one.

The rules, each fixing a bug httpcore users met:

* ``max_connections`` bounds connections in any state, CONNECTING included.
* ``max_keepalive_connections`` bounds *idle* connections only.
* A request whose connection is still connecting and is cancelled takes that
  connection with it (it was opened for that request): nothing stays CONNECTING.
* HTTP/2 connections (and connections that will probably be HTTP/2 once
  connected) take more requests while the driver says they have a free stream;
  when none has, another connection opens, up to ``max_connections``.
* Every operation costs O(1) in the number of pooled connections, amortised:
  per-key idle and waiting queues, a global FIFO of waiting requests and a
  global LRU of idle connections, with lazy removal of stale entries.
"""

from __future__ import annotations

import enum
import itertools
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ._frozen import quick_init

__all__ = [
    "AssignRequest",
    "CloseConnection",
    "OpenConnection",
    "PoolAction",
    "PoolConnectionState",
    "PoolKey",
    "PoolRequestState",
    "PoolState",
]

PoolKey = tuple[bytes, bytes, int, str | None]


class PoolConnectionState(enum.Enum):
    """Where a pooled connection is in its life."""

    CONNECTING = "CONNECTING"  # opened for a request; not usable yet
    ACTIVE = "ACTIVE"  # carrying at least one request
    IDLE = "IDLE"  # carrying nothing; reusable until it expires
    CLOSED = "CLOSED"  # gone; never comes back


class PoolRequestState(enum.Enum):
    """Where a request is in the pool."""

    WAITING = "WAITING"  # queued: no connection could take it
    CONNECTING = "CONNECTING"  # assigned to a connection that is connecting
    ACTIVE = "ACTIVE"  # assigned to a usable connection
    DONE = "DONE"  # released, cancelled or timed out


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class OpenConnection:
    """Open a new connection ``connection_id`` for ``key`` and send the request."""

    request_id: int
    connection_id: int
    key: PoolKey


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class AssignRequest:
    """Send ``request_id`` on the existing connection ``connection_id``."""

    request_id: int
    connection_id: int


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class CloseConnection:
    """Close ``connection_id`` (it is already CLOSED in the state)."""

    connection_id: int


PoolAction = OpenConnection | AssignRequest | CloseConnection
# Made positionally on the reuse path (see sansio._frozen.quick_init).
_assign_request: Callable[[int, int], AssignRequest] = AssignRequest._positional  # type: ignore[attr-defined]

# The members as module constants: on Python 3.11 every attribute of an Enum
# class goes through EnumType.__getattr__'s hook, several times slower than a
# global, and the pool reads them on every request.
_CONNECTING, _ACTIVE, _IDLE, _CLOSED = PoolConnectionState
_WAITING, _CONNECTING_REQUEST, _ACTIVE_REQUEST, _DONE = PoolRequestState


@dataclass(slots=True)
class _Connection:
    id: int
    key: PoolKey
    state: PoolConnectionState
    shared: bool  # may carry several requests at once (HTTP/2, or maybe-HTTP/2)
    available: bool  # a shared connection taking streams, per the driver
    active: int = 0
    expires_at: float | None = None
    # Requests waiting for this connection to finish connecting.
    connecting_requests: list[int] = field(default_factory=list)
    # Streams a shared connection may carry at once (the server's
    # MAX_CONCURRENT_STREAMS), when the driver knows it.
    capacity: int | None = None

    def has_free_stream(self) -> bool:
        return self.available and (self.capacity is None or self.active < self.capacity)


@dataclass(slots=True)
class _Request:
    id: int
    key: PoolKey
    shared: bool  # whether a connection opened for it may be shared
    state: PoolRequestState
    connection_id: int | None = None
    # A retry after a dead reused connection: only a connection being opened
    # will do, even when it is placed later, from the queue.
    fresh: bool = False


@dataclass(slots=True)
class _Key:
    idle: deque[int]  # idle unshared connections, most recently used last
    shared: dict[int, None]  # shared connections that are not closed (ordered)
    waiting: deque[int]


class PoolState:
    """The pool's bookkeeping and decisions.

    Args:
        max_connections: Connections in any state at most (None: unbounded).
        max_keepalive_connections: Idle connections kept at most (None: no bound).
        keepalive_expiry: Seconds an idle connection stays reusable (None: ever).
    """

    def __init__(
        self,
        *,
        max_connections: int | None = 10,
        max_keepalive_connections: int | None = None,
        keepalive_expiry: float | None = None,
    ) -> None:
        if max_connections is not None and max_connections < 1:
            raise ValueError("max_connections must be at least 1 (or None)")
        if max_keepalive_connections is not None and max_keepalive_connections < 0:
            raise ValueError("max_keepalive_connections must be at least 0 (or None)")
        self._max_connections = max_connections
        self._max_keepalive = max_keepalive_connections
        self._keepalive_expiry = keepalive_expiry
        self._ids = itertools.count(1)
        self._connections: dict[int, _Connection] = {}
        self._requests: dict[int, _Request] = {}
        self._keys: dict[PoolKey, _Key] = {}
        self._waiting: deque[int] = deque()  # every waiting request, FIFO
        # Idle connections, oldest first; an OrderedDict so that the oldest is
        # found in O(1) however many were removed from the front.
        self._idle_lru: OrderedDict[int, None] = OrderedDict()
        self._open_count = 0  # connections not CLOSED

    # -- views ---------------------------------------------------------------

    def connection_state(self, connection_id: int) -> PoolConnectionState:
        """The state of a connection (CLOSED once forgotten)."""
        connection = self._connections.get(connection_id)
        return _CLOSED if connection is None else connection.state

    def request_state(self, request_id: int) -> PoolRequestState:
        """The state of a request (DONE once forgotten)."""
        request = self._requests.get(request_id)
        return _DONE if request is None else request.state

    def counts(self) -> dict[str, int]:
        """Connections by state and requests by state, for repr() and stats."""
        result = {
            "connections_connecting": 0,
            "connections_active": 0,
            "connections_idle": 0,
            "requests_active": 0,
            "requests_waiting": 0,
        }
        for connection in self._connections.values():
            result[f"connections_{connection.state.value.lower()}"] += 1
        for request in self._requests.values():
            if request.state is _WAITING:
                result["requests_waiting"] += 1
            else:
                result["requests_active"] += 1
        return result

    # -- events from the driver ----------------------------------------------

    def request_arrived(
        self, key: PoolKey, *, shared: bool, now: float
    ) -> tuple[int, list[PoolAction]]:
        """A request for ``key`` wants a connection.

        ``shared`` says whether a connection opened for it may carry other
        requests before it is known to be HTTP/2 (http2 allowed and https, or
        prior knowledge). Returns the request id and the actions; with no action
        for this request, it waits.
        """
        request_id = next(self._ids)
        request = _Request(request_id, key, shared, _WAITING)
        self._requests[request_id] = request
        actions: list[PoolAction] = []
        if not self._place(request, now, actions):
            self._queue(request)
        return request_id, actions

    def connection_ready(
        self,
        connection_id: int,
        *,
        shared: bool,
        available: bool,
        now: float,
        capacity: int | None = None,
    ) -> list[PoolAction]:
        """A connection finished connecting; ``shared`` if it is HTTP/2.

        Requests that waited on it while it connected go ahead on their own; a
        shared connection with ``available`` streams takes waiting requests, up
        to ``capacity`` at once when given (the server's stream limit).
        """
        connection = self._connections.get(connection_id)
        if connection is None:  # closed connections are not kept
            return []
        was_shared = connection.shared
        connection.shared = shared
        connection.available = shared and available
        connection.capacity = capacity
        connection.state = _ACTIVE
        for request_id in connection.connecting_requests:
            request = self._requests.get(request_id)
            if (
                request is not None
                and request.connection_id == connection_id
                and request.state is _CONNECTING_REQUEST
            ):
                request.state = _ACTIVE_REQUEST
        connection.connecting_requests.clear()
        keyed = self._key(connection.key)
        if shared and not was_shared:
            keyed.shared[connection_id] = None
        elif was_shared and not shared:
            keyed.shared.pop(connection_id, None)
        actions: list[PoolAction] = []
        if connection.has_free_stream():
            self._serve_waiting(keyed, connection, actions)
        return actions

    def connection_failed(self, connection_id: int, now: float) -> list[PoolAction]:
        """A connection could not connect, or died: it is gone.

        Requests on it are the driver's to fail or retry (``requeue``); freed
        capacity goes to waiting requests.
        """
        actions: list[PoolAction] = []
        self._close(connection_id, actions, announce=False)
        self._fill_capacity(now, actions)
        return actions

    def stream_capacity(
        self,
        connection_id: int,
        *,
        available: bool,
        now: float,
        capacity: int | None = None,
    ) -> list[PoolAction]:
        """A shared connection gained or lost its free streams (SETTINGS, GOAWAY);
        ``capacity`` updates its stream limit when given."""
        connection = self._connections.get(connection_id)
        if connection is None or not connection.shared:
            return []
        connection.available = available
        if capacity is not None:
            connection.capacity = capacity
        actions: list[PoolAction] = []
        if available and connection.state is _ACTIVE:
            self._serve_waiting(self._key(connection.key), connection, actions)
        return actions

    def request_released(
        self, request_id: int, *, reusable: bool, now: float
    ) -> list[PoolAction]:
        """A request is finished with its connection.

        ``reusable`` is whether the connection may carry another request (the
        response completed cleanly); if not, the connection is closed.
        """
        request = self._requests.pop(request_id, None)
        actions: list[PoolAction] = []
        if request is None:
            return actions
        connection_id = request.connection_id
        state = request.state
        request.state = _DONE
        if state is _WAITING or connection_id is None:
            return actions
        connection = self._connections.get(connection_id)
        if connection is None:
            return actions
        connection.active -= 1
        if not reusable or connection.state is _CONNECTING:
            # A connection opened for this request that never became usable
            # goes with it: nothing is ever left CONNECTING.
            if not connection.shared or connection.active <= 0:
                self._close(connection_id, actions)
                self._fill_capacity(now, actions)
            return actions
        if connection.shared:
            if connection.active == 0:
                self._make_idle(connection, now, actions)
            else:
                self._serve_waiting(self._key(connection.key), connection, actions)
            return actions
        if connection.active <= 0:
            self._make_idle(connection, now, actions)
        # Else requests that queued on it while it connected are still booked
        # on it (it turned out HTTP/1.1): it stays ACTIVE until they requeue.
        return actions

    def request_cancelled(self, request_id: int, now: float) -> list[PoolAction]:
        """A request gave up (cancelled, or its pool timeout expired).

        A waiting request leaves the queue; an assigned one is released without
        reuse, since its connection may be mid-exchange.
        """
        request = self._requests.get(request_id)
        if request is None:
            return []
        if request.state is _WAITING:
            del self._requests[request_id]
            request.state = _DONE  # lazily dropped from queues
            return []
        return self.request_released(request_id, reusable=False, now=now)

    def requeue(
        self,
        request_id: int,
        now: float,
        *,
        connection_dead: bool = False,
        fresh: bool = False,
    ) -> list[PoolAction]:
        """Move a request off its connection and place it again, at the front.

        For ``ConnectionNotAvailable`` (GOAWAY, refused stream, a connection
        that turned out HTTP/1.1 and busy) and for the one retry after a reused
        connection failed before any response byte. With ``connection_dead``
        the old connection is closed; its room goes to this request first, then
        to the others waiting. Otherwise the old connection stays, idle once
        nothing uses it. With ``fresh`` the request is placed only on a
        connection being opened (for it, or still connecting), now or when it
        leaves the queue: after a reused connection turned out dead, the other
        idle ones, left idle as long, may be just as dead.
        """
        request = self._requests.get(request_id)
        actions: list[PoolAction] = []
        if request is None:
            return actions
        connection = (
            None
            if request.connection_id is None
            else self._connections.get(request.connection_id)
        )
        detached = connection is not None and request.state is not _WAITING
        if detached and connection is not None:
            connection.active -= 1
            if connection_dead:
                self._close(connection.id, actions)
        request.connection_id = None
        request.state = _WAITING
        # The request is placed first: it keeps its turn ahead of everyone
        # who waited less. Only then may its old connection serve others.
        request.fresh = fresh
        placed = self._place(request, now, actions, avoid=connection)
        if not placed:
            self._queue(request, front=True)
        if (
            detached
            and connection is not None
            and not connection_dead
            and connection.active <= 0
            and connection.state is _CONNECTING
        ):
            # Nothing else waits for it: a connection left CONNECTING with no
            # request would never be used or closed.
            self._close(connection.id, actions)
            connection_dead = True
        if (
            detached
            and connection is not None
            and not connection_dead
            and connection.active <= 0
            and connection.state is _ACTIVE
        ):
            if placed:
                # It merely could not take this request (a busy HTTP/1.1 one, a
                # full HTTP/2 one): it stays, idle now that nothing uses it.
                self._make_idle(connection, now, actions)
            else:
                # Idle, it would be handed straight back to the request it
                # refused: close it, and its room serves the request instead.
                self._close(connection.id, actions)
                connection_dead = True
        if connection_dead:
            self._fill_capacity(now, actions)
        return actions

    def expire(self, now: float) -> list[PoolAction]:
        """Close idle connections whose keep-alive expired (oldest first)."""
        actions: list[PoolAction] = []
        if self._keepalive_expiry is None and not self._waiting:
            return actions  # nothing expires, nobody waits for the room
        idle_lru = self._idle_lru
        while idle_lru:  # O(expired), not O(idle): this runs on every request
            connection_id = next(iter(idle_lru))
            connection = self._connections[connection_id]
            if connection.expires_at is None or connection.expires_at > now:
                break  # the LRU is in idle-since order; later ones expire later
            self._close(connection_id, actions)
        self._fill_capacity(now, actions)
        return actions

    def discard(self, connection_id: int, now: float) -> list[PoolAction]:
        """The driver found a connection unusable (the server closed it while
        idle): close it, and let waiting requests use the freed capacity."""
        actions: list[PoolAction] = []
        self._close(connection_id, actions, announce=False)
        self._fill_capacity(now, actions)
        return actions

    def close_all(self) -> list[PoolAction]:
        """Close every connection and forget every request (pool shutdown)."""
        actions: list[PoolAction] = []
        for connection_id in list(self._connections):
            self._close(connection_id, actions)
        for request in self._requests.values():
            request.state = _DONE
        self._requests.clear()
        self._waiting.clear()
        for keyed in self._keys.values():
            keyed.waiting.clear()
        return actions

    # -- decisions -----------------------------------------------------------

    def _key(self, key: PoolKey) -> _Key:
        keyed = self._keys.get(key)
        if keyed is None:
            keyed = self._keys[key] = _Key(deque(), {}, deque())
        return keyed

    def _queue(self, request: _Request, *, front: bool = False) -> None:
        request.state = _WAITING
        keyed = self._key(request.key)
        if front:
            keyed.waiting.appendleft(request.id)
            self._waiting.appendleft(request.id)
        else:
            keyed.waiting.append(request.id)
            self._waiting.append(request.id)

    def _place(
        self,
        request: _Request,
        now: float,
        actions: list[PoolAction],
        *,
        avoid: _Connection | None = None,
    ) -> bool:
        # The key is there for any request reusing a connection: _key (a call
        # more) only when it is not.
        keyed = self._keys.get(request.key) or self._key(request.key)
        fresh = request.fresh
        # 1. A shared connection with a free stream (or one still connecting
        #    that will probably be shared: its requests queue on its connect).
        for connection_id in list(keyed.shared) if keyed.shared else ():
            connection = self._connections[connection_id]
            if connection is avoid or (fresh and connection.state is not _CONNECTING):
                continue
            if (
                connection.state is _IDLE
                and connection.expires_at is not None
                and connection.expires_at <= now
            ):
                self._close(connection_id, actions)
                continue
            if connection.state is _CONNECTING or connection.has_free_stream():
                self._assign(request, connection, actions)
                return True
        # 2. An idle connection of this key, most recently used first.
        while keyed.idle and not fresh:
            idle = self._connections.get(keyed.idle.pop())
            if idle is None or idle.state is not _IDLE:
                continue
            if idle.expires_at is not None and idle.expires_at <= now:
                self._close(idle.id, actions)
                continue
            self._assign(request, idle, actions)  # (off the LRU there)
            return True
        # 3. A new connection, making room by closing the oldest idle one.
        if not self._has_room():
            if not self._idle_lru:
                return False
            self._close(next(iter(self._idle_lru)), actions)
        self._open(request, actions)
        return True

    def _has_room(self) -> bool:
        return self._max_connections is None or self._open_count < self._max_connections

    def _assign(
        self, request: _Request, connection: _Connection, actions: list[PoolAction]
    ) -> None:
        request.connection_id = connection.id
        connection.active += 1
        if connection.state is _CONNECTING:
            request.state = _CONNECTING_REQUEST
            connection.connecting_requests.append(request.id)
        else:
            request.state = _ACTIVE_REQUEST
            connection.state = _ACTIVE
            connection.expires_at = None
            # In use again: no longer idle, whichever way it was found.
            self._idle_lru.pop(connection.id, None)
        actions.append(_assign_request(request.id, connection.id))

    def _open(self, request: _Request, actions: list[PoolAction]) -> None:
        connection = _Connection(
            id=next(self._ids),
            key=request.key,
            state=_CONNECTING,
            shared=request.shared,
            available=False,
            active=1,
            connecting_requests=[request.id],
        )
        self._connections[connection.id] = connection
        self._open_count += 1
        if request.shared:
            self._key(request.key).shared[connection.id] = None
        request.connection_id = connection.id
        request.state = _CONNECTING_REQUEST
        actions.append(
            OpenConnection(
                request_id=request.id, connection_id=connection.id, key=request.key
            )
        )

    def _make_idle(
        self, connection: _Connection, now: float, actions: list[PoolAction]
    ) -> None:
        keyed = self._key(connection.key)
        connection.active = 0
        connection.state = _IDLE
        if self._keepalive_expiry is not None:
            connection.expires_at = now + self._keepalive_expiry
        if not connection.shared:
            keyed.idle.append(connection.id)
        self._idle_lru.pop(connection.id, None)
        self._idle_lru[connection.id] = None
        if self._max_keepalive is not None:
            while len(self._idle_lru) > self._max_keepalive:
                self._close(next(iter(self._idle_lru)), actions)
        # Waiting requests are served in arrival order, whatever their key:
        # the oldest takes this connection (same key) or its room (another key).
        if self._waiting:
            self._fill_capacity(now, actions)

    def _serve_waiting(
        self, keyed: _Key, connection: _Connection, actions: list[PoolAction]
    ) -> None:
        """A shared connection with free streams takes its key's waiting requests."""
        while keyed.waiting and connection.has_free_stream():
            request = self._requests.get(keyed.waiting[0])
            if request is None or request.state is not _WAITING:
                keyed.waiting.popleft()
                continue
            keyed.waiting.popleft()
            self._assign(request, connection, actions)

    def _fill_capacity(self, now: float, actions: list[PoolAction]) -> None:
        """Let waiting requests (any key, FIFO) open connections while room lasts."""
        while self._waiting:
            request = self._requests.get(self._waiting[0])
            if request is None or request.state is not _WAITING:
                self._waiting.popleft()
                continue
            # No early "no room" exit: a shared connection (even one still
            # connecting) takes more requests without needing room.
            self._waiting.popleft()
            keyed = self._key(request.key)
            if keyed.waiting and keyed.waiting[0] == request.id:
                keyed.waiting.popleft()
            if not self._place(request, now, actions):
                self._queue(request, front=True)
                return

    def _close(
        self, connection_id: int, actions: list[PoolAction], *, announce: bool = True
    ) -> None:
        connection = self._connections.pop(connection_id, None)
        if connection is None:
            return
        # Only live connections are kept, so each one counted once here.
        self._open_count -= 1
        connection.state = _CLOSED
        self._idle_lru.pop(connection_id, None)
        keyed = self._keys.get(connection.key)
        if keyed is not None:
            keyed.shared.pop(connection_id, None)
            # Forget origins with nothing left, so a pool that meets many
            # origins (a crawler) does not grow without bound.
            if (
                not keyed.shared
                and not keyed.waiting
                and not any(cid in self._connections for cid in keyed.idle)
            ):
                del self._keys[connection.key]
        if announce:
            actions.append(CloseConnection(connection_id=connection_id))
