"""Self-tests for the proxy peers, using blocking sockets and asyncio streams.

tinyproxy and microsocks are driven with blocking stdlib sockets (plain tests);
the in-process ``proxy_server`` with asyncio streams, on asyncio and uvloop.
The origins are the hypercorn peers; ``/sni`` reports the SNI names hypercorn saw.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import struct
from collections.abc import Iterator
from contextlib import contextmanager

import h11
import pytest

from tests.conftest import PROXY_CREDENTIALS
from tests.peers.hypercorn_server import HypercornPeer
from tests.peers.microsocks import MicrosocksPeer
from tests.peers.proxy_server import (
    Mode,
    ProxyServer,
    basic_credentials,
    proxy_server,
)
from tests.peers.tinyproxy import TinyproxyPeer

pytestmark = pytest.mark.usefixtures("no_asyncio_errors")

SNI_NAME = "sni.wireline.test"  # covered by the test server certificate
TIMEOUT = 5.0  # seconds for any blocking socket operation / async read here
AUTH_HEADER = f"Proxy-Authorization: {basic_credentials(PROXY_CREDENTIALS)}\r\n"


# -- blocking helpers (tinyproxy, microsocks) -----------------------------------


@contextmanager
def connect(host: str, port: int) -> Iterator[socket.socket]:
    """A blocking TCP connection with ``TIMEOUT`` on every operation."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        yield sock


def recv_head(sock: socket.socket | ssl.SSLSocket) -> bytes:
    """Read byte by byte through ``\\r\\n\\r\\n`` (so nothing after it is consumed)."""
    head = bytearray()
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            raise EOFError(f"EOF inside a head: {bytes(head)!r}")
        head += byte
    return bytes(head)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """Read exactly ``size`` bytes, failing on EOF."""
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError(f"EOF after {bytes(data)!r}, wanted {size} bytes")
        data += chunk
    return bytes(data)


def recv_all(sock: socket.socket | ssl.SSLSocket) -> bytes:
    """Read until EOF."""
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    return bytes(data)


def get_and_close(sock: socket.socket | ssl.SSLSocket, path: str) -> bytes:
    """Send ``GET path`` with ``Connection: close`` and return the raw response."""
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
    )
    return recv_all(sock)


def body_of(response: bytes) -> bytes:
    """The body of a raw response (everything after the head)."""
    return response.partition(b"\r\n\r\n")[2]


def connect_request(port: int, extra: str = "") -> bytes:
    """A CONNECT request for 127.0.0.1:port."""
    target = f"127.0.0.1:{port}"
    return f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{extra}\r\n".encode()


# -- tinyproxy -----------------------------------------------------------------


def test_tinyproxy_connect_then_get(
    tinyproxy: TinyproxyPeer, hypercorn_plain: HypercornPeer
) -> None:
    """CONNECT to an ephemeral port is allowed (no ConnectPort); a GET goes through."""
    with connect(tinyproxy.host, tinyproxy.port) as sock:
        sock.sendall(connect_request(hypercorn_plain.port))
        head = recv_head(sock)
        response = get_and_close(sock, "/")
    assert head.startswith(b"HTTP/1.0 200 Connection established\r\n")
    assert response.startswith(b"HTTP/1.1 200 ")
    assert body_of(response) == b"Hello, world!"
    assert tinyproxy.url == f"http://127.0.0.1:{tinyproxy.port}"
    target = f"127.0.0.1:{hypercorn_plain.port}"
    assert f"CONNECT {target} HTTP/1.1" in tinyproxy.read_log()


def test_tinyproxy_absolute_form_get(
    tinyproxy: TinyproxyPeer, hypercorn_plain: HypercornPeer
) -> None:
    """An absolute-form GET is forwarded in origin-form without Via/X-Tinyproxy."""
    url = f"{hypercorn_plain.url}/headers?q=1"
    with connect(tinyproxy.host, tinyproxy.port) as sock:
        sock.sendall(
            f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1:{hypercorn_plain.port}\r\n"
            "X-Test: yes\r\n\r\n".encode()
        )
        response = recv_all(sock)  # tinyproxy closes after each request
    head, _, body = response.partition(b"\r\n\r\n")
    info = json.loads(body)
    names = {name for name, _ in info["headers"]}
    # The origin's status line, but no Connection header although it closes.
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"connection:" not in head.lower()
    assert (info["method"], info["path"], info["query_string"]) == (
        "GET",
        "/headers",
        "q=1",
    )
    assert ["x-test", "yes"] in info["headers"]
    assert not names & {"via", "x-tinyproxy", "proxy-connection"}


def test_tinyproxy_auth_answers_407_then_accepts_credentials(
    tinyproxy_auth: TinyproxyPeer, hypercorn_plain: HypercornPeer
) -> None:
    """Without credentials: 407 + Proxy-Authenticate; right ones: 200; wrong: 401."""
    port = hypercorn_plain.port
    with connect(tinyproxy_auth.host, tinyproxy_auth.port) as sock:
        sock.sendall(connect_request(port))
        missing = recv_all(sock)
    with connect(tinyproxy_auth.host, tinyproxy_auth.port) as sock:
        sock.sendall(f"GET {hypercorn_plain.url}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        missing_get = recv_all(sock)
    with connect(tinyproxy_auth.host, tinyproxy_auth.port) as sock:
        sock.sendall(connect_request(port, AUTH_HEADER))
        granted = recv_head(sock)
        tunnelled = get_and_close(sock, "/")
    wrong = basic_credentials(("wire", "wrong"))
    with connect(tinyproxy_auth.host, tinyproxy_auth.port) as sock:
        sock.sendall(connect_request(port, f"Proxy-Authorization: {wrong}\r\n"))
        refused = recv_all(sock)

    for response in (missing, missing_get):
        head = response.partition(b"\r\n\r\n")[0].split(b"\r\n")
        assert head[0] == b"HTTP/1.0 407 Proxy Authentication Required"
        assert b'Proxy-Authenticate: Basic realm="Tinyproxy"' in head
        assert b"Connection: close" in head
    assert tinyproxy_auth.proxy_authorization == basic_credentials(PROXY_CREDENTIALS)
    assert granted.startswith(b"HTTP/1.0 200 Connection established\r\n")
    assert body_of(tunnelled) == b"Hello, world!"
    # tinyproxy 1.11.1 answers *wrong* credentials with a plain 401.
    assert refused.startswith(b"HTTP/1.0 401 Unauthorized\r\n")
    assert b"WWW-Authenticate: Basic" in refused


def test_tinyproxy_tunnel_carries_tls_sni_to_origin(
    tinyproxy: TinyproxyPeer,
    hypercorn_tls: HypercornPeer,
    ssl_context: ssl.SSLContext,
) -> None:
    """TLS through a tinyproxy tunnel reaches the origin with the client's SNI."""
    with connect(tinyproxy.host, tinyproxy.port) as raw:
        raw.sendall(connect_request(hypercorn_tls.port))
        assert recv_head(raw).startswith(b"HTTP/1.0 200 ")
        with ssl_context.wrap_socket(raw, server_hostname=SNI_NAME) as tls:
            names = json.loads(body_of(get_and_close(tls, "/sni")))
    assert names[-1] == SNI_NAME


# -- microsocks ------------------------------------------------------------------

SOCKS_OK = b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"  # BND.ADDR 0.0.0.0:0


def socks_connect_request(port: int) -> bytes:
    """SOCKS5 CONNECT to 127.0.0.1:port (ATYP IPv4)."""
    return b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", port)


def username_password(user: str, password: str) -> bytes:
    """An RFC 1929 username/password request."""
    name, secret = user.encode(), password.encode()
    return b"\x01" + bytes([len(name)]) + name + bytes([len(secret)]) + secret


def test_microsocks_no_auth_connect(
    microsocks: MicrosocksPeer, hypercorn_plain: HypercornPeer
) -> None:
    """Greeting, CONNECT by IPv4, then HTTP through the tunnel."""
    with connect(microsocks.host, microsocks.port) as sock:
        sock.sendall(b"\x05\x01\x00")
        method = recv_exactly(sock, 2)
        sock.sendall(socks_connect_request(hypercorn_plain.port))
        reply = recv_exactly(sock, 10)
        response = get_and_close(sock, "/")
    assert (method, reply) == (b"\x05\x00", SOCKS_OK)
    assert body_of(response) == b"Hello, world!"
    assert microsocks.url == f"socks5://127.0.0.1:{microsocks.port}"
    assert f"connected to 127.0.0.1:{hypercorn_plain.port}" in microsocks.read_log()


def test_microsocks_refused_target(
    microsocks: MicrosocksPeer, hypercorn_plain: HypercornPeer
) -> None:
    """A target that refuses gets REP 05 (connection refused), then EOF."""
    with socket.socket() as unused:  # bound, never listening: connect is refused
        unused.bind(("127.0.0.1", 0))
        with connect(microsocks.host, microsocks.port) as sock:
            sock.sendall(b"\x05\x01\x00")
            assert recv_exactly(sock, 2) == b"\x05\x00"
            sock.sendall(socks_connect_request(unused.getsockname()[1]))
            assert recv_exactly(sock, 10)[:2] == b"\x05\x05"
            assert recv_all(sock) == b""


def test_microsocks_username_password(
    microsocks_auth: MicrosocksPeer,
    hypercorn_tls: HypercornPeer,
    ssl_context: ssl.SSLContext,
) -> None:
    """RFC 1929 auth succeeds with the right credentials; TLS keeps its SNI."""
    user, password = PROXY_CREDENTIALS
    with connect(microsocks_auth.host, microsocks_auth.port) as raw:
        raw.sendall(b"\x05\x02\x00\x02")  # offers no-auth and user/pass
        method = recv_exactly(raw, 2)
        raw.sendall(username_password(user, password))
        status = recv_exactly(raw, 2)
        raw.sendall(socks_connect_request(hypercorn_tls.port))
        reply = recv_exactly(raw, 10)
        with ssl_context.wrap_socket(raw, server_hostname=SNI_NAME) as tls:
            names = json.loads(body_of(get_and_close(tls, "/sni")))
    assert (method, status, reply) == (b"\x05\x02", b"\x01\x00", SOCKS_OK)
    assert microsocks_auth.auth == PROXY_CREDENTIALS
    assert names[-1] == SNI_NAME


def test_microsocks_auth_failures(microsocks_auth: MicrosocksPeer) -> None:
    """Only no-auth offered: ``05 FF`` + close; wrong password: ``01 02`` + close."""
    with connect(microsocks_auth.host, microsocks_auth.port) as sock:
        sock.sendall(b"\x05\x01\x00")
        assert recv_all(sock) == b"\x05\xff"
    with connect(microsocks_auth.host, microsocks_auth.port) as sock:
        sock.sendall(b"\x05\x01\x02")
        assert recv_exactly(sock, 2) == b"\x05\x02"
        sock.sendall(username_password(PROXY_CREDENTIALS[0], "wrong"))
        assert recv_all(sock) == b"\x01\x02"


# -- hypercorn /sni ----------------------------------------------------------------


def test_hypercorn_sni_route(
    hypercorn_tls: HypercornPeer,
    hypercorn_plain: HypercornPeer,
    ssl_context: ssl.SSLContext,
) -> None:
    """``/sni`` lists the SNI of each handshake, None when the client sent none."""
    names: list[object] = []
    for server_hostname in (SNI_NAME, "127.0.0.1", "localhost"):
        with (
            connect(hypercorn_tls.host, hypercorn_tls.port) as raw,
            ssl_context.wrap_socket(raw, server_hostname=server_hostname) as tls,
        ):
            names.append(json.loads(body_of(get_and_close(tls, "/sni")))[-1])
    with connect(hypercorn_plain.host, hypercorn_plain.port) as sock:
        plain = json.loads(body_of(get_and_close(sock, "/sni")))
    assert names == [SNI_NAME, None, "localhost"]  # no SNI is sent for an IP
    assert plain == []  # the plain peer is another process without TLS


# -- in-process proxy_server -------------------------------------------------------


async def read_response(
    reader: asyncio.StreamReader, method: str = "GET"
) -> tuple[h11.Response, bytes]:
    """Read one complete HTTP/1.1 response with h11 (bounded by ``TIMEOUT``)."""
    conn = h11.Connection(h11.CLIENT)
    # h11 needs to have "sent" a request to parse a response to it.
    conn.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
    conn.send(h11.EndOfMessage())
    response: h11.Response | None = None
    body = bytearray()
    async with asyncio.timeout(TIMEOUT):
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(1))  # never over-read
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert response is not None
                return response, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                raise EOFError("connection closed before the response ended")


async def open_proxy(
    proxy: ProxyServer, ssl_context: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to the proxy (over TLS with SNI ``localhost`` when it is HTTPS)."""
    if proxy.tls:
        return await asyncio.open_connection(
            proxy.host, proxy.port, ssl=ssl_context, server_hostname="localhost"
        )
    return await asyncio.open_connection(proxy.host, proxy.port)


async def close(writer: asyncio.StreamWriter) -> None:
    """Close a client writer and wait for it."""
    writer.close()
    await writer.wait_closed()


async def send_connect(
    writer: asyncio.StreamWriter, port: int, extra: str = ""
) -> None:
    """Write a CONNECT request for 127.0.0.1:port."""
    writer.write(connect_request(port, extra))
    await writer.drain()


async def read_head_async(reader: asyncio.StreamReader) -> bytes:
    """Read through ``\\r\\n\\r\\n`` within ``TIMEOUT``."""
    async with asyncio.timeout(TIMEOUT):
        return await reader.readuntil(b"\r\n\r\n")


async def get(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    target: str,
    headers: str = "",
) -> tuple[h11.Response, bytes]:
    """Send a GET for ``target`` (origin- or absolute-form) and read the response."""
    writer.write(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n".encode())
    await writer.drain()
    return await read_response(reader)


@pytest.mark.asyncio
async def test_proxy_server_connect_then_get(hypercorn_plain: HypercornPeer) -> None:
    """CONNECT answers 200 and relays; everything is recorded."""
    async with proxy_server() as proxy:
        reader, writer = await open_proxy(proxy)
        try:
            await send_connect(writer, hypercorn_plain.port)
            head = await read_head_async(reader)
            first = await get(reader, writer, "/")
            second = await get(reader, writer, "/bytes?n=3")
        finally:
            await close(writer)
        local = writer.get_extra_info("sockname")
    target = f"127.0.0.1:{hypercorn_plain.port}"
    assert head == b"HTTP/1.1 200 Connection established\r\n\r\n"
    assert (first[0].status_code, first[1]) == (200, b"Hello, world!")
    assert second[1] == b"xxx"
    assert proxy.url == f"http://127.0.0.1:{proxy.port}"
    assert proxy.connect_targets == [target]
    assert proxy.requests == [connect_request(hypercorn_plain.port)]
    assert proxy.client_addrs == [tuple(local)]
    assert proxy.sni_names == []


@pytest.mark.asyncio
async def test_proxy_server_forwards_absolute_form_with_keep_alive(
    hypercorn_plain: HypercornPeer,
) -> None:
    """Absolute-form requests go upstream in origin-form; the client link stays up."""
    base = hypercorn_plain.url
    async with proxy_server() as proxy:
        reader, writer = await open_proxy(proxy)
        try:
            info = await get(
                reader,
                writer,
                f"{base}/headers?a=1",
                "Proxy-Connection: keep-alive\r\n",
            )
            stream = await get(reader, writer, f"{base}/stream?chunks=3&size=2")
            writer.write(
                f"POST {base}/echo HTTP/1.1\r\nHost: x\r\n"
                "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".encode()
            )
            echo = await read_response(reader)
            closing = await get(reader, writer, f"{base}/", "Connection: close\r\n")
            async with asyncio.timeout(TIMEOUT):
                assert await reader.read() == b""
        finally:
            await close(writer)
    seen = json.loads(info[1])
    names = {name for name, _ in seen["headers"]}
    assert (seen["path"], seen["query_string"]) == ("/headers", "a=1")
    assert not names & {"proxy-connection", "proxy-authorization"}
    assert ["connection", "close"] in seen["headers"]  # sent upstream by the proxy
    assert (b"transfer-encoding", b"chunked") in stream[0].headers
    assert stream[1] == b"xxxxxx"
    assert echo[1] == b"abc"
    assert closing[1] == b"Hello, world!"
    assert (b"connection", b"close") in closing[0].headers
    assert len(proxy.requests) == 4
    assert proxy.requests[0].startswith(f"GET {base}/headers?a=1 HTTP/1.1".encode())
    assert proxy.connect_targets == []
    assert len(proxy.client_addrs) == 1


@pytest.mark.asyncio
async def test_https_proxy_tls_in_tls_keeps_origin_sni(
    hypercorn_tls: HypercornPeer,
    ssl_context: ssl.SSLContext,
    server_ssl_context: ssl.SSLContext,
) -> None:
    """An HTTPS proxy: TLS to the proxy, CONNECT inside, TLS to the origin inside."""
    async with proxy_server(ssl=server_ssl_context) as proxy:
        reader, writer = await open_proxy(proxy, ssl_context)
        try:
            await send_connect(writer, hypercorn_tls.port)
            head = await read_head_async(reader)
            async with asyncio.timeout(TIMEOUT):
                await writer.start_tls(ssl_context, server_hostname=SNI_NAME)
            response, body = await get(reader, writer, "/sni")
        finally:
            await close(writer)
    assert proxy.url == f"https://127.0.0.1:{proxy.port}"
    assert head.startswith(b"HTTP/1.1 200 ")
    assert response.status_code == 200
    assert json.loads(body)[-1] == SNI_NAME  # what the origin saw
    assert proxy.sni_names == ["localhost"]  # what the proxy saw
    assert proxy.connect_targets == [f"127.0.0.1:{hypercorn_tls.port}"]


@pytest.mark.asyncio
async def test_proxy_server_auth(hypercorn_plain: HypercornPeer) -> None:
    """Missing or wrong credentials get 407 and the connection stays open."""
    async with proxy_server(auth=PROXY_CREDENTIALS) as proxy:
        reader, writer = await open_proxy(proxy)
        try:
            await send_connect(writer, hypercorn_plain.port)
            missing = await read_head_async(reader)
            wrong = basic_credentials(("wire", "wrong"))
            await send_connect(
                writer, hypercorn_plain.port, f"Proxy-Authorization: {wrong}\r\n"
            )
            refused = await read_head_async(reader)
            await send_connect(writer, hypercorn_plain.port, AUTH_HEADER)
            granted = await read_head_async(reader)
            response = await get(reader, writer, "/")
        finally:
            await close(writer)
    assert (
        missing
        == refused
        == (
            b"HTTP/1.1 407 Proxy Authentication Required\r\n"
            b'Proxy-Authenticate: Basic realm="wireline"\r\n'
            b"Content-Length: 0\r\n\r\n"
        )
    )
    assert granted.startswith(b"HTTP/1.1 200 ")
    assert response[1] == b"Hello, world!"
    assert proxy.proxy_authorization == basic_credentials(PROXY_CREDENTIALS)
    assert len(proxy.connect_targets) == 3


@pytest.mark.asyncio
async def test_proxy_server_auth_on_absolute_form(
    hypercorn_plain: HypercornPeer,
) -> None:
    """Forwarded requests need credentials too; the 407'd body is consumed."""
    url = f"{hypercorn_plain.url}/echo"
    post = f"POST {url} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
    async with proxy_server(auth=PROXY_CREDENTIALS) as proxy:
        reader, writer = await open_proxy(proxy)
        try:
            writer.write(f"{post}\r\nhi".encode())
            missing = await read_response(reader)
            writer.write(f"{post}{AUTH_HEADER}\r\nok".encode())
            echoed = await read_response(reader)
        finally:
            await close(writer)
    assert missing[0].status_code == 407
    assert (echoed[0].status_code, echoed[1]) == (200, b"ok")
    assert b"proxy-authorization" not in proxy.requests[0].lower()
    assert AUTH_HEADER.encode() in proxy.requests[1]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("close_after_head", b""),
        ("close_mid_response", b"HTTP/1.1 200 Conn"),
        (
            "reject",
            b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 14\r\nConnection: close\r\n\r\nproxy says no\n",
        ),
    ],
)
async def test_proxy_server_failure_modes_that_close(
    mode: Mode, expected: bytes, hypercorn_plain: HypercornPeer
) -> None:
    """Each closing failure mode writes exactly ``expected``, then EOF."""
    async with proxy_server(mode=mode) as proxy:
        reader, writer = await open_proxy(proxy)
        try:
            await send_connect(writer, hypercorn_plain.port)
            async with asyncio.timeout(TIMEOUT):
                received = await reader.read()
        finally:
            await close(writer)
    assert received == expected
    assert proxy.connect_targets == [f"127.0.0.1:{hypercorn_plain.port}"]


@pytest.mark.asyncio
async def test_proxy_server_never_answer(hypercorn_plain: HypercornPeer) -> None:
    """``never_answer`` reads the CONNECT and stays silent; teardown is clean."""
    async with proxy_server(mode="never_answer") as proxy:
        reader, writer = await open_proxy(proxy)
        await send_connect(writer, hypercorn_plain.port)
        await proxy.wait_for(lambda: len(proxy.requests) == 1)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await reader.read(1)
    # Leaving the proxy aborted the connection under the still-open client.
    async with asyncio.timeout(TIMEOUT):
        assert await reader.read() == b""
    await close(writer)


@pytest.mark.asyncio
async def test_proxy_server_bytes_after_200(hypercorn_plain: HypercornPeer) -> None:
    """The 200 and ``early`` arrive together; the tunnel then relays as usual."""
    async with proxy_server(mode="bytes_after_200") as proxy:
        reader, writer = await open_proxy(proxy)
        try:
            await send_connect(writer, hypercorn_plain.port)
            head = await read_head_async(reader)
            async with asyncio.timeout(TIMEOUT):
                early = await reader.readexactly(5)
            response = await get(reader, writer, "/")
        finally:
            await close(writer)
    assert head == b"HTTP/1.1 200 Connection established\r\n\r\n"
    assert early == b"early"
    assert response[1] == b"Hello, world!"
    assert proxy.mode == "bytes_after_200"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 403),
        (b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", 403),
        (b"CONNECT nonsense HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /origin-form HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ],
)
async def test_proxy_server_refuses(request_head: bytes, status: int) -> None:
    """Non-loopback targets get 403 (no lookup is made); malformed ones 400."""
    async with proxy_server() as proxy:
        reader, writer = await open_proxy(proxy)
        try:
            writer.write(request_head)
            response, _ = await read_response(reader)
        finally:
            await close(writer)
    assert response.status_code == status
    assert proxy.requests == [request_head]


@pytest.mark.asyncio
async def test_proxy_server_unreachable_target_is_502() -> None:
    """A CONNECT to a loopback port nobody listens on gets 502."""
    with socket.socket() as unused:  # bound, never listening: connect is refused
        unused.bind(("127.0.0.1", 0))
        async with proxy_server() as proxy:
            reader, writer = await open_proxy(proxy)
            try:
                await send_connect(writer, unused.getsockname()[1])
                response, _ = await read_response(reader)
            finally:
                await close(writer)
    assert response.status_code == 502


@pytest.mark.asyncio
async def test_proxy_server_teardown_with_open_tunnel(
    hypercorn_plain: HypercornPeer,
) -> None:
    """Leaving with a live tunnel cancels the relay and aborts both connections."""
    async with proxy_server(host="::1") as proxy:
        reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
        await send_connect(writer, hypercorn_plain.port)
        await read_head_async(reader)
        assert proxy.url == f"http://[::1]:{proxy.port}"
    async with asyncio.timeout(TIMEOUT):
        assert await reader.read() == b""
    await close(writer)
    assert proxy.client_addrs[0][0] == "::1"


@pytest.mark.asyncio
async def test_proxy_server_teardown_mid_forward(
    hypercorn_plain: HypercornPeer,
) -> None:
    """Leaving while a forwarded request waits upstream aborts it cleanly."""
    async with proxy_server() as proxy:
        reader, writer = await open_proxy(proxy)
        target = f"{hypercorn_plain.url}/slow?delay=10"
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        await proxy.wait_for(lambda: len(proxy.requests) == 1)
        await asyncio.sleep(0.05)  # let the proxy reach the origin
    async with asyncio.timeout(TIMEOUT):
        assert await reader.read() == b""
    await close(writer)


@pytest.mark.asyncio
async def test_https_proxy_teardown_with_open_tls_in_tls(
    hypercorn_tls: HypercornPeer,
    ssl_context: ssl.SSLContext,
    server_ssl_context: ssl.SSLContext,
) -> None:
    """Leaving with a live TLS-in-TLS tunnel closes everything without warnings."""
    async with proxy_server(ssl=server_ssl_context) as proxy:
        reader, writer = await open_proxy(proxy, ssl_context)
        await send_connect(writer, hypercorn_tls.port)
        await read_head_async(reader)
        async with asyncio.timeout(TIMEOUT):
            await writer.start_tls(ssl_context, server_hostname=SNI_NAME)
        response, _ = await get(reader, writer, "/")
    with pytest.raises((ConnectionError, ssl.SSLError, EOFError)):
        await get(reader, writer, "/")
    writer.transport.abort()
    assert response.status_code == 200


@pytest.mark.asyncio
async def test_proxy_server_rejects_unknown_mode() -> None:
    """An unknown mode fails at once."""
    with pytest.raises(ValueError, match="unknown proxy mode"):
        async with proxy_server(mode="bogus"):  # type: ignore[arg-type]
            pass
