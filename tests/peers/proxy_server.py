"""An in-process asyncio HTTP forward proxy (and HTTPS proxy) for tests.

``proxy_server()`` runs on the test's own event loop (so it works unchanged under
asyncio and uvloop), on top of ``scripted.scripted_server``, and yields a
``ProxyServer`` recording what it saw. It understands:

* ``CONNECT host:port`` - opens a TCP connection to the target, answers
  ``HTTP/1.1 200 Connection established`` and relays bytes both ways until either
  side closes (then both are closed). Targets other than ``127.0.0.1``, ``::1``
  and ``localhost`` get ``403``; an unreachable target gets ``502``.
* absolute-form requests (``GET http://host:port/path HTTP/1.1``) - forwarded in
  origin-form over a new upstream connection per request, sent with
  ``Connection: close`` and with the hop-by-hop headers (``Connection``,
  ``Keep-Alive``, ``Proxy-Connection``, ``Proxy-Authorization`` and any listed in
  ``Connection``) removed; the request body (Content-Length or chunked) streams
  through. The response is relayed with its own framing, so the *client*
  connection stays alive for further requests unless the client asked to close
  or the response is delimited by EOF (then ``Connection: close`` is added).
  1xx interim responses are passed on; upgrades are not supported.

With ``ssl`` the listener speaks TLS first (an HTTPS proxy): the CONNECT travels
inside that TLS, so a client tunnelling to a TLS origin runs TLS inside TLS.
With ``auth=(user, password)`` every request needs
``Proxy-Authorization: Basic base64(user:password)``; otherwise the answer is
``407`` with ``Proxy-Authenticate: Basic realm="wireline"`` and
``Content-Length: 0``, and the connection stays open for a retry.

``mode`` scripts a failure, applied to every request that passed the auth check:

``normal``              behave as above
``close_after_head``    read the request head, then close without answering
``close_mid_response``  write ``HTTP/1.1 200 Conn``, then close
``never_answer``        read the head, then never answer (until the client closes
                        or the server is torn down)
``reject``              ``403 Forbidden`` with a text body and ``Connection: close``
``bytes_after_200``     CONNECT: the 200 and ``b"early"`` in one write, then relay
                        (absolute-form requests are forwarded as in ``normal``)

Leaving the context manager closes the listener, cancels every handler and
relay task and aborts every client and upstream connection, so nothing leaks a
``ResourceWarning``. Client disconnects and TLS errors are not errors here, but
any other exception in the proxy is re-raised on exit (as ``scripted_server``
does). Only 127.0.0.1 and ::1 are ever bound or connected to.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ssl as ssl_module
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from tests.peers.scripted import (
    ScriptedServer,
    close_writer,
    parse_headers,
    read_head,
    scripted_server,
)

Mode = Literal[
    "normal",
    "close_after_head",
    "close_mid_response",
    "never_answer",
    "reject",
    "bytes_after_200",
]
MODES: tuple[str, ...] = get_args(Mode)

LOOPBACK_TARGETS = frozenset({"127.0.0.1", "::1", "localhost"})
CONNECT_TIMEOUT = 5.0  # seconds to reach a CONNECT target or an origin
WAIT_TIMEOUT = 5.0  # ProxyServer.wait_for gives up after this many seconds
CHUNK = 65536
REALM = "wireline"

#: Request headers never forwarded upstream (plus any named in ``Connection``).
_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization"}
)


class PeerProtocolError(Exception):
    """A client or origin sent something the proxy cannot frame (bad chunk size)."""


#: Errors that only mean a peer went away, spoke broken TLS or broken HTTP.
_DISCONNECTS = (
    ConnectionError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
    ssl_module.SSLError,
    PeerProtocolError,
)


@dataclass(eq=False)
class ProxyServer:
    """A running proxy: where it listens and what it saw, in arrival order."""

    host: str
    port: int
    tls: bool
    auth: tuple[str, str] | None
    mode: Mode
    server: ScriptedServer = field(repr=False)
    #: Raw request heads (through ``\\r\\n\\r\\n``; plaintext under TLS), every
    #: request on every connection, including ones answered 407 or scripted away.
    requests: list[bytes] = field(default_factory=list)
    #: The authority of every CONNECT request received (``"127.0.0.1:443"``),
    #: whatever it was answered.
    connect_targets: list[str] = field(default_factory=list)
    #: ``getpeername()`` of every accepted client connection (TLS: handshake done).
    client_addrs: list[tuple[Any, ...]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def url(self) -> str:
        """Proxy URL, e.g. ``http://127.0.0.1:1234`` or ``https://[::1]:1234``."""
        scheme = "https" if self.tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def sni_names(self) -> list[str | None]:
        """SNI each TLS client sent to the proxy itself (None for none)."""
        return self.server.sni_names

    @property
    def proxy_authorization(self) -> str | None:
        """The ``Proxy-Authorization`` value ``auth`` expects (None without)."""
        return basic_credentials(self.auth) if self.auth else None

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, re-checked after each new record.

        Gives up with ``TimeoutError`` after ``WAIT_TIMEOUT`` seconds.
        """
        async with asyncio.timeout(WAIT_TIMEOUT):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def _note(self) -> None:
        self._changed.set()


def basic_credentials(credentials: tuple[str, str]) -> str:
    """``Basic base64(user:pass)``, as sent in ``Proxy-Authorization``."""
    user, password = credentials
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


@contextlib.asynccontextmanager
async def proxy_server(
    *,
    ssl: ssl_module.SSLContext | None = None,
    auth: tuple[str, str] | None = None,
    mode: Mode = "normal",
    host: str = "127.0.0.1",
) -> AsyncIterator[ProxyServer]:
    """Run the proxy on ``host`` (127.0.0.1 or ::1), an ephemeral port, until exit.

    ``ssl`` is a server-side context: the proxy is then an HTTPS proxy.
    """
    if mode not in MODES:
        raise ValueError(f"unknown proxy mode {mode!r}; expected one of {MODES}")
    state: ProxyServer | None = None

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        assert state is not None
        await _Connection(state, reader, writer).serve()

    async with scripted_server(handler, ssl=ssl, host=host) as server:
        state = ProxyServer(
            host=server.host,
            port=server.port,
            tls=ssl is not None,
            auth=auth,
            mode=mode,
            server=server,
        )
        yield state


class _Connection:
    """One client connection to the proxy."""

    def __init__(
        self,
        state: ProxyServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.state = state
        self.reader = reader
        self.writer = writer

    async def serve(self) -> None:
        """Serve requests until one ends the connection or the client leaves."""
        self.state.client_addrs.append(tuple(self.writer.get_extra_info("peername")))
        self.state._note()
        with contextlib.suppress(*_DISCONNECTS):
            while await self._serve_one():
                pass

    async def _serve_one(self) -> bool:
        """Serve one request; True if the connection may carry another."""
        state = self.state
        head = await read_head(self.reader)
        if head is None:
            return False
        state.requests.append(head)
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3:
            await self._respond(400, "Bad Request", b"malformed request line\n")
            return False
        method, target, version = parts
        if method == "CONNECT":
            state.connect_targets.append(target)
        state._note()
        headers = parse_headers(head)

        if state.auth is not None and not _authorized(headers, state.auth):
            if method != "CONNECT":
                await _copy_body(self.reader, None, headers)
            await self._send(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                + f'Proxy-Authenticate: Basic realm="{REALM}"\r\n'.encode()
                + b"Content-Length: 0\r\n\r\n"
            )
            return True

        if state.mode == "close_after_head":
            return False
        if state.mode == "close_mid_response":
            await self._send(b"HTTP/1.1 200 Conn")
            return False
        if state.mode == "never_answer":
            while await self.reader.read(CHUNK):  # until the client gives up
                pass
            return False
        if state.mode == "reject":
            await self._respond(403, "Forbidden", b"proxy says no\n")
            return False
        if method == "CONNECT":
            await self._tunnel(target)
            return False
        return await self._forward(method, target, version, head, headers)

    async def _tunnel(self, target: str) -> None:
        """Answer a CONNECT and relay until either side closes."""
        address = _split_authority(target)
        if address is None:
            await self._respond(400, "Bad Request", b"bad CONNECT authority\n")
            return
        if address[0] not in LOOPBACK_TARGETS:
            await self._respond(403, "Forbidden", b"only loopback targets\n")
            return
        upstream = await self._open_upstream(*address)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        async with _closing(up_writer):
            reply = b"HTTP/1.1 200 Connection established\r\n\r\n"
            if self.state.mode == "bytes_after_200":
                reply += b"early"
            await self._send(reply)
            await _relay(self.reader, self.writer, up_reader, up_writer)

    async def _forward(
        self,
        method: str,
        target: str,
        version: str,
        head: bytes,
        headers: list[tuple[bytes, bytes]],
    ) -> bool:
        """Forward an absolute-form request; True if the client may send more."""
        try:
            url = urlsplit(target)
            host, port = url.hostname, url.port or 80
        except ValueError:  # bad IPv6 brackets or port
            host = None
        if host is None or url.scheme != "http":
            await self._respond(400, "Bad Request", b"need an absolute http URL\n")
            return False
        if host not in LOOPBACK_TARGETS:
            await self._respond(403, "Forbidden", b"only loopback targets\n")
            return False
        upstream = await self._open_upstream(host, port)
        if upstream is None:
            return False
        up_reader, up_writer = upstream
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        dropped = _HOP_BY_HOP | _connection_tokens(headers)
        lines = [f"{method} {path} {version}".encode("latin-1")]
        lines += [line for line in _header_lines(head) if _name(line) not in dropped]
        lines.append(b"Connection: close")
        client_close = _wants_close(headers, version)
        async with _closing(up_writer):
            up_writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
            upload = asyncio.create_task(_copy_body(self.reader, up_writer, headers))
            try:
                keep_alive = await self._relay_response(up_reader, method, client_close)
            finally:
                upload.cancel()
                (result,) = await asyncio.gather(upload, return_exceptions=True)
            if isinstance(result, BaseException):  # cancelled: body not all sent
                if not isinstance(result, (*_DISCONNECTS, asyncio.CancelledError)):
                    raise result
                return False
            return keep_alive

    async def _relay_response(
        self, up_reader: asyncio.StreamReader, method: str, client_close: bool
    ) -> bool:
        """Pass the origin's response on; True if the client connection survives."""
        while True:
            head = await read_head(up_reader)
            status = _status(head)
            if head is None or status is None:
                await self._respond(502, "Bad Gateway", b"bad upstream response\n")
                return False
            if not 100 <= status < 200:
                break
            await self._send(head)  # interim response, e.g. 100 Continue
        headers = parse_headers(head)
        dropped = _HOP_BY_HOP | _connection_tokens(headers)
        lines = [
            line for line in head.split(b"\r\n")[:-2] if _name(line) not in dropped
        ]
        no_body = method == "HEAD" or status in (204, 304)
        framed = no_body or _is_chunked(headers) or _content_length(headers) is not None
        keep_alive = framed and not client_close
        if not keep_alive:
            lines.append(b"Connection: close")
        await self._send(b"\r\n".join(lines) + b"\r\n\r\n")
        if no_body:
            return keep_alive
        if framed:
            await _copy_body(up_reader, self.writer, headers)
        else:
            await _copy_to_eof(up_reader, self.writer)
        return keep_alive

    async def _open_upstream(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Connect to a loopback target, or answer 502 and return None."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                return await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as exc:
            body = f"cannot reach {host}:{port}: {exc}\n".encode()
            await self._respond(502, "Bad Gateway", body)
            return None

    async def _respond(self, status: int, reason: str, body: bytes) -> None:
        """Send a complete text response that closes the connection."""
        await self._send(
            f"HTTP/1.1 {status} {reason}\r\n".encode()
            + b"Content-Type: text/plain\r\n"
            + f"Content-Length: {len(body)}\r\n".encode()
            + b"Connection: close\r\n\r\n"
            + body
        )

    async def _send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


@contextlib.asynccontextmanager
async def _closing(writer: asyncio.StreamWriter) -> AsyncIterator[None]:
    """Close ``writer`` on exit: gracefully normally, aborted on any exception."""
    failed = True
    try:
        yield
        failed = False
    finally:
        await close_writer(writer, abort=failed)


async def _relay(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> None:
    """Copy a->b and b->a until either side reaches EOF (or fails)."""
    tasks = [
        asyncio.create_task(_copy_to_eof(a_reader, b_writer)),
        asyncio.create_task(_copy_to_eof(b_reader, a_writer)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception) and not isinstance(result, _DISCONNECTS):
            raise result


async def _copy_to_eof(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    while data := await src.read(CHUNK):
        dst.write(data)
        await dst.drain()


async def _copy_exact(
    src: asyncio.StreamReader, dst: asyncio.StreamWriter | None, size: int
) -> None:
    while size:
        data = await src.read(min(size, CHUNK))
        if not data:
            raise asyncio.IncompleteReadError(b"", size)
        size -= len(data)
        if dst is not None:
            dst.write(data)
            await dst.drain()


async def _copy_body(
    src: asyncio.StreamReader,
    dst: asyncio.StreamWriter | None,
    headers: Sequence[tuple[bytes, bytes]],
) -> None:
    """Copy (or with ``dst=None`` discard) the body ``headers`` frame, verbatim."""
    if _is_chunked(headers):
        while True:
            line = await src.readuntil(b"\r\n")
            if dst is not None:
                dst.write(line)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise PeerProtocolError(f"bad chunk size line {line!r}") from None
            if size == 0:
                break
            await _copy_exact(src, dst, size + 2)
        while True:  # trailers, then the final empty line
            line = await src.readuntil(b"\r\n")
            if dst is not None:
                dst.write(line)
            if line == b"\r\n":
                break
        if dst is not None:
            await dst.drain()
    else:
        await _copy_exact(src, dst, _content_length(headers) or 0)


def _authorized(headers: Sequence[tuple[bytes, bytes]], auth: tuple[str, str]) -> bool:
    """Whether a ``Proxy-Authorization: Basic`` header carries ``auth``."""
    expected = f"{auth[0]}:{auth[1]}".encode()
    for name, value in headers:
        if name != b"proxy-authorization":
            continue
        scheme, _, token = value.partition(b" ")
        if scheme.lower() != b"basic":
            continue
        try:
            if base64.b64decode(token.strip(), validate=True) == expected:
                return True
        except binascii.Error:
            continue
    return False


def _split_authority(authority: str) -> tuple[str, int] | None:
    """``host:port`` or ``[v6]:port`` to ``(host, port)``; None if malformed."""
    host, sep, port = authority.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return (host, int(port)) if host else None


def _header_lines(head: bytes) -> list[bytes]:
    """The raw header lines of a head (no start line, no final blank line)."""
    return head.split(b"\r\n")[1:-2]


def _name(line: bytes) -> bytes:
    """The lowercased field name of a raw header line."""
    return line.partition(b":")[0].strip().lower()


def _values(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """Comma-separated tokens of every ``name`` header, lowercased."""
    return [
        token.strip().lower()
        for key, value in headers
        if key == name
        for token in value.split(b",")
    ]


def _connection_tokens(headers: Sequence[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Header names listed in ``Connection`` (hop-by-hop by declaration)."""
    return frozenset(_values(headers, b"connection"))


def _wants_close(headers: Sequence[tuple[bytes, bytes]], version: str) -> bool:
    """Whether the client asked to close after this request."""
    tokens = _values(headers, b"connection") + _values(headers, b"proxy-connection")
    if version == "HTTP/1.0":
        return b"keep-alive" not in tokens
    return b"close" in tokens


def _is_chunked(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    return b"chunked" in _values(headers, b"transfer-encoding")


def _content_length(headers: Sequence[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


def _status(head: bytes | None) -> int | None:
    """The status code of a response head, None if absent or malformed."""
    if head is None:
        return None
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return None
    return int(parts[1])
