"""A blocking HTTP/1.1 and HTTP/2 client on wireline's sans-IO core: no asyncio.

``sansio`` turns requests into bytes and bytes into events; this file only moves
those bytes over a ``socket`` (wrapped by ``ssl`` for https). HTTP/2 is spoken
when ALPN selects ``h2``; ``fetch_many`` then sends every request at once as
streams of one connection, multiplexed by the core inside one blocking loop.
Over HTTP/1.1 ``fetch_many`` reuses the connection (keep-alive) request after
request. Run it as::

    python examples/blocking_client.py https://127.0.0.1:8443/ --http2 --cacert ca.pem
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import sansio

READ_SIZE = 64 * 1024  # bytes asked of the socket per recv()


@dataclass(frozen=True)
class Result:
    """A complete response: status, ``b"HTTP/1.1"`` or ``b"HTTP/2"``, fields, body."""

    status: int
    http_version: bytes
    headers: sansio.Headers
    body: bytes


@dataclass(frozen=True)
class _Request:
    method: bytes
    url: sansio.URL
    headers: sansio.Headers  # Host first; Content-Length added for a body
    body: bytes


@dataclass
class _Response:
    """A response being assembled from the events of its stream."""

    head: sansio.ResponseReceived | None = None
    body: bytearray = field(default_factory=bytearray)

    def result(self) -> Result:
        assert self.head is not None, "the head always comes first"
        head = self.head
        return Result(head.status, head.http_version, head.headers, bytes(self.body))


def _request(
    url: str, method: str, headers: sansio.HeaderInput, body: bytes
) -> _Request:
    """Validate a request (the core refuses CR/LF/NUL) and add Host/Content-Length."""
    parsed = sansio.URL(url)
    if parsed.scheme not in (b"http", b"https"):
        raise ValueError(f"only http:// and https:// URLs are supported, not {url!r}")
    fields = sansio.normalize_headers(headers)
    if not sansio.has_header(fields, b"host"):
        fields.insert(0, (b"Host", sansio.host_header_value(parsed)))
    if body and not sansio.has_header(fields, b"content-length"):
        fields.append((b"Content-Length", b"%d" % len(body)))
    return _Request(sansio.enforce_bytes(method, name="method"), parsed, fields, body)


def _connect(
    url: sansio.URL, http2: bool, cafile: str | None, sni: str | None, timeout: float
) -> socket.socket:
    """Open TCP to the URL's origin, then TLS for https (offering h2 if asked).

    ``timeout`` bounds the connect, the handshake and every later send and recv.
    """
    origin = url.origin
    host = origin.host.decode("ascii")
    sock = socket.create_connection((host, origin.port), timeout=timeout)
    if origin.scheme == b"http":
        return sock  # no ALPN without TLS: always HTTP/1.1
    context = ssl.create_default_context(cafile=cafile)
    context.set_alpn_protocols(["h2", "http/1.1"] if http2 else ["http/1.1"])
    try:
        return context.wrap_socket(sock, server_hostname=sni or host)
    except BaseException:
        sock.close()
        raise


def _handle(event: sansio.Event, responses: dict[int, _Response]) -> int | None:
    """Fold one event into its response; return the stream id it completed.

    1xx, trailers, WindowUpdated and SettingsChanged need nothing: the HTTP/2
    loop asks the core afresh, every turn, what it may send.
    """
    if isinstance(event, sansio.ResponseReceived):
        responses[event.stream_id].head = event
    elif isinstance(event, sansio.DataReceived):
        responses[event.stream_id].body += event.data
    elif isinstance(event, sansio.ResponseComplete):
        return event.stream_id
    elif isinstance(event, sansio.StreamReset):
        raise sansio.RemoteProtocolError(
            f"stream {event.stream_id} was reset (error code {event.error_code})"
        )
    elif isinstance(event, sansio.ConnectionTerminated) and event.retry_stream_ids:
        raise sansio.RemoteProtocolError(
            f"GOAWAY: the server will not answer streams {event.retry_stream_ids}"
        )
    return None


def _http11(sock: socket.socket, conn: sansio.HTTP11State, request: _Request) -> Result:
    """One request/response cycle on an IDLE HTTP/1.1 connection."""
    conn.send_request(request.method, request.url.target, request.headers)
    conn.send_body(request.body)
    conn.end_request()
    sock.sendall(conn.data_to_send())
    responses = {conn.stream_id: _Response()}
    while True:
        if conn.pending_error is not None:
            raise conn.pending_error  # found after events we already used
        data = sock.recv(READ_SIZE)
        for event in conn.receive_data(data) if data else conn.receive_eof():
            if (done := _handle(event, responses)) is not None:
                return responses[done].result()


def _http2(sock: socket.socket, requests: Sequence[_Request]) -> list[Result]:
    """Send every request as its own stream; read frames until all have ended.

    Each turn of the one loop: open streams while the server's concurrency
    limit allows, queue as much of each body as flow control allows, write
    whatever the core queued (our frames and its SETTINGS/PING ACKs and
    WINDOW_UPDATEs), then block on one read and feed it to the core.
    """
    conn = sansio.HTTP2State()
    conn.initiate()  # connection preface and our SETTINGS
    waiting = deque(enumerate(requests))
    index: dict[int, int] = {}  # stream id -> position in ``requests``
    responses: dict[int, _Response] = {}
    uploads: dict[int, memoryview] = {}  # stream id -> body not yet sent
    results: dict[int, Result] = {}
    while waiting or responses:
        while waiting and conn.can_open_stream:
            position, request = waiting.popleft()
            stream_id = conn.send_request(
                request.method,
                request.url.scheme,
                request.url.target,
                request.headers,
                end_stream=not request.body,
            )
            index[stream_id], responses[stream_id] = position, _Response()
            if request.body:
                uploads[stream_id] = memoryview(request.body)
        for stream_id, rest in list(uploads.items()):
            size = min(len(rest), conn.available_window(stream_id))
            conn.send_body(stream_id, bytes(rest[:size]))
            uploads[stream_id] = rest[size:]
            if size == len(rest):
                conn.end_request(stream_id)
                del uploads[stream_id]
        sock.sendall(conn.data_to_send())
        if conn.pending_error is not None:
            raise conn.pending_error
        data = sock.recv(READ_SIZE)
        if not data:
            conn.receive_eof()
            raise sansio.RemoteProtocolError(
                "server closed the connection mid-response"
            )
        for event in conn.receive_data(data):
            if isinstance(event, sansio.DataReceived):
                # We consumed these bytes: let the server send more (the core
                # queues a WINDOW_UPDATE, written on the next turn).
                conn.acknowledge_data(event.stream_id, len(event.data))
            if (done := _handle(event, responses)) is not None:
                results[index[done]] = responses.pop(done).result()
                if uploads.pop(done, None) is not None:  # answered before upload end
                    conn.reset_stream(done, sansio.ErrorCode.NO_ERROR)
    conn.close()  # GOAWAY: a polite goodbye
    sock.sendall(conn.data_to_send())
    return [results[position] for position in range(len(requests))]


def fetch_many(
    urls: Sequence[str],
    *,
    method: str = "GET",
    headers: sansio.HeaderInput = (),
    body: bytes = b"",
    http2: bool = False,
    cafile: str | None = None,
    sni_hostname: str | None = None,
    timeout: float = 10.0,
) -> list[Result]:
    """Fetch URLs of one origin over one connection; results follow ``urls``.

    HTTP/2 (``http2=True`` and the server's ALPN picks ``h2``): every request
    is in flight at once. HTTP/1.1: one after another on the same socket,
    reconnecting only if the server did not keep the connection alive.

    Raises:
        ValueError: No URL, several origins, or a scheme other than http(s).
        sansio.LocalProtocolError: A bad method, header or ``sni_hostname``
            (before any socket opens).
        ssl.SSLCertVerificationError, OSError, sansio.RemoteProtocolError.
    """
    requests = [_request(url, method, headers, body) for url in urls]
    if len({request.url.origin for request in requests}) != 1:
        raise ValueError("fetch_many needs one or more URLs of a single origin")
    sni = None if sni_hostname is None else sansio.validate_sni_hostname(sni_hostname)
    url = requests[0].url
    sock = _connect(url, http2, cafile, sni, timeout)
    try:
        if isinstance(sock, ssl.SSLSocket) and sock.selected_alpn_protocol() == "h2":
            return _http2(sock, requests)
        conn, results = sansio.HTTP11State(), []
        for request in requests:
            if conn.state is not sansio.HTTP11ConnectionState.IDLE:  # no keep-alive
                sock.close()
                sock = _connect(url, http2, cafile, sni, timeout)
                conn = sansio.HTTP11State()
            results.append(_http11(sock, conn, request))
        return results
    finally:
        sock.close()


def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: sansio.HeaderInput = (),
    body: bytes = b"",
    http2: bool = False,
    cafile: str | None = None,
    sni_hostname: str | None = None,
    timeout: float = 10.0,
) -> Result:
    """Fetch one URL; HTTP/2 if ``http2`` and ALPN selects ``h2``, else HTTP/1.1.

    ``sni_hostname`` is sent as SNI and checked against the certificate instead
    of the URL's host; ``timeout`` bounds each connect, send and recv.
    """
    return fetch_many(
        [url],
        method=method,
        headers=headers,
        body=body,
        http2=http2,
        cafile=cafile,
        sni_hostname=sni_hostname,
        timeout=timeout,
    )[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print the status line, the header fields and the body."""
    parser = argparse.ArgumentParser(description="Fetch a URL, blocking.")
    parser.add_argument("url")
    parser.add_argument("--http2", action="store_true", help="offer h2 via ALPN")
    parser.add_argument("--cacert", help="trust this CA file, not the system's")
    parser.add_argument("--sni-hostname", help="TLS name to send and verify")
    args = parser.parse_args(argv)
    result = fetch(
        args.url, http2=args.http2, cafile=args.cacert, sni_hostname=args.sni_hostname
    )
    print(result.http_version.decode("ascii"), result.status)
    for name, value in result.headers:
        print(f"{name.decode('latin-1')}: {value.decode('latin-1')}")
    print(flush=True)
    sys.stdout.buffer.write(result.body)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
