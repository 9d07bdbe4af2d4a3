"""A tiny framework-free ASGI app that the hypercorn peer serves.

Routes (any method unless noted):

``/``                        200 ``Hello, world!`` (text/plain)
``/echo``                    200, the request body echoed back with content-length
``/headers``                 200 JSON: method, path, query_string, headers, http_version
``/stream?chunks=N&size=M``  200, N chunks of M ``b"x"`` bytes, no content-length
                             (so HTTP/1.1 uses chunked); optional ``&delay=S`` sleeps
                             S seconds before each chunk
``/slow?delay=S``            sleeps S seconds, then 200 ``slow``
``/status/NNN``              status NNN (200-599) with an empty body
``/bytes?n=N``               200, N ``b"x"`` bytes with content-length
``/sni``                     200 JSON: every TLS SNI server name this process has
                             seen so far, in handshake order (``null`` for a
                             handshake without SNI); ``[]`` over plain TCP
anything else                404 ``Not Found``
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_NO_BODY_STATUSES = frozenset({204, 304})

#: SNI server names seen by this process's TLS handshakes, oldest first; the
#: hypercorn peer's SSL context appends to it (see ``hypercorn_server``).
SNI_NAMES: list[str | None] = []


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Dispatch one ASGI connection scope (``lifespan`` or ``http``)."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    elif scope["type"] == "http":
        await _http(scope, receive, send)
    else:  # pragma: no cover - websocket is not served
        raise RuntimeError(f"unsupported scope type {scope['type']!r}")


async def _lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown so hypercorn logs no lifespan noise."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Receive) -> bytes:
    """Read the whole request body (empty if the client disconnects)."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return bytes(body)
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return bytes(body)


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes = b"text/plain"
) -> None:
    """Send a complete response with content-length (none for 204/304)."""
    headers = [(b"content-type", content_type)]
    if status not in _NO_BODY_STATUSES:
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _query(scope: Scope) -> dict[str, str]:
    """Return the query string as a dict of last values."""
    raw = scope["query_string"].decode("latin-1")
    return {key: values[-1] for key, values in parse_qs(raw).items()}


async def _http(scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one HTTP request."""
    path: str = scope["path"]
    query = _query(scope)
    body = await _read_body(receive)

    if path == "/":
        await _respond(send, 200, b"Hello, world!")
    elif path == "/echo":
        await _respond(send, 200, body, b"application/octet-stream")
    elif path == "/headers":
        info = {
            "method": scope["method"],
            "path": path,
            "query_string": scope["query_string"].decode("latin-1"),
            "headers": [
                [name.decode("latin-1"), value.decode("latin-1")]
                for name, value in scope["headers"]
            ],
            "http_version": scope["http_version"],
        }
        await _respond(send, 200, json.dumps(info).encode(), b"application/json")
    elif path == "/stream":
        await _stream(
            send,
            int(query.get("chunks", "3")),
            int(query.get("size", "5")),
            float(query.get("delay", "0")),
        )
    elif path == "/slow":
        await asyncio.sleep(float(query.get("delay", "1")))
        await _respond(send, 200, b"slow")
    elif path.startswith("/status/") and path[8:].isdigit():
        status = int(path[8:])
        if 200 <= status <= 599:
            await _respond(send, status, b"")
        else:
            await _respond(send, 400, b"status must be 200-599")
    elif path == "/bytes":
        await _respond(send, 200, b"x" * int(query.get("n", "0")))
    elif path == "/sni":
        await _respond(send, 200, json.dumps(SNI_NAMES).encode(), b"application/json")
    else:
        await _respond(send, 404, b"Not Found")


async def _stream(send: Send, chunks: int, size: int, delay: float) -> None:
    """Send ``chunks`` body messages of ``size`` bytes without content-length."""
    headers = [(b"content-type", b"application/octet-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for _ in range(chunks):
        if delay:
            await asyncio.sleep(delay)
        await send(
            {"type": "http.response.body", "body": b"x" * size, "more_body": True}
        )
    await send({"type": "http.response.body", "body": b""})
