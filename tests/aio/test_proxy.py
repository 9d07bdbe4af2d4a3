"""Proxies against real peers on 127.0.0.1: tinyproxy (forward and CONNECT),
microsocks (SOCKS5, with and without auth), and an in-process HTTPS proxy
(TLS to the proxy, then TLS-in-TLS to the origin); origins are hypercorn over
TLS (HTTP/1.1 and HTTP/2) and in clear text. Every async test runs on asyncio
and uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import aio
from tests.aio.test_backends import unanswered_port
from tests.conftest import PROXY_CREDENTIALS
from tests.peers.hypercorn_server import HypercornPeer
from tests.peers.microsocks import MicrosocksPeer
from tests.peers.proxy_server import proxy_server
from tests.peers.scripted import read_head, scripted_server
from tests.peers.tinyproxy import TinyproxyPeer

pytestmark = pytest.mark.asyncio

SNI = "sni.wireline.test"  # covered by the server certificate, not by the URL
PROXY_KINDS = (
    "tinyproxy",
    "tinyproxy_auth",
    "https_proxy",
    "socks5",
    "socks5h",
    "socks5_auth",
)


@pytest.fixture
def h2_context(certs_dir: Path) -> ssl.SSLContext:
    """Trusts the test CA and offers ALPN h2 (aio never changes a caller's context)."""
    context = ssl.create_default_context(cafile=certs_dir / "ca.pem")
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


@contextlib.asynccontextmanager
async def running_proxy(
    kind: str,
    request: pytest.FixtureRequest,
    server_ssl_context: ssl.SSLContext,
    ssl_context: ssl.SSLContext,
) -> AsyncIterator[aio.Proxy]:
    """A live proxy of ``kind`` and the :class:`aio.Proxy` that reaches it."""
    if kind in ("tinyproxy", "tinyproxy_auth"):
        tiny: TinyproxyPeer = request.getfixturevalue(kind)
        auth = PROXY_CREDENTIALS if kind == "tinyproxy_auth" else None
        yield aio.Proxy(tiny.url, auth=auth)
    elif kind == "https_proxy":
        async with proxy_server(ssl=server_ssl_context) as server:
            yield aio.Proxy(server.url, ssl_context=ssl_context)
    else:
        socks: MicrosocksPeer = request.getfixturevalue(
            "microsocks_auth" if kind == "socks5_auth" else "microsocks"
        )
        scheme = "socks5h" if kind == "socks5h" else "socks5"
        auth = PROXY_CREDENTIALS if kind == "socks5_auth" else None
        yield aio.Proxy(f"{scheme}://{socks.host}:{socks.port}", auth=auth)


async def origin_sni(pool: aio.AsyncConnectionPool, url: str) -> str | None:
    """The SNI name the origin saw last, asked on the same (pooled) connection."""
    response = await pool.request("GET", url + "/sni", extensions={"sni_hostname": SNI})
    names: list[str | None] = json.loads(response.content)
    return names[-1]


@pytest.mark.parametrize("kind", PROXY_KINDS)
@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/2"])
async def test_https_through_every_proxy_with_sni(
    kind: str,
    version: str,
    request: pytest.FixtureRequest,
    hypercorn_h2_tls: HypercornPeer,
    server_ssl_context: ssl.SSLContext,
    ssl_context: ssl.SSLContext,
    h2_context: ssl.SSLContext,
) -> None:
    """https:// through each proxy, over HTTP/1.1 or HTTP/2 by ALPN inside the
    tunnel; sni_hostname is what the origin's TLS received."""
    http2 = version == "HTTP/2"
    async with (
        running_proxy(kind, request, server_ssl_context, ssl_context) as proxy,
        aio.AsyncConnectionPool(
            ssl_context=h2_context if http2 else ssl_context, proxy=proxy, http2=http2
        ) as pool,
    ):
        response = await pool.request(
            "GET",
            hypercorn_h2_tls.url + "/echo",
            content=b"through the proxy",
            extensions={"sni_hostname": SNI, "timeout": {"connect": 5, "read": 5}},
        )
        assert response.status == 200
        assert response.content == b"through the proxy"
        assert response.extensions["http_version"] == version.encode()
        assert await origin_sni(pool, hypercorn_h2_tls.url) == SNI
        (connection,) = pool.connections  # the second request reused the tunnel
        expected = "AsyncSocks5Connection" if "socks" in kind else "Tunnel"
        assert expected in repr(connection)


@pytest.mark.parametrize("kind", PROXY_KINDS)
async def test_plain_http_through_every_proxy(
    kind: str,
    request: pytest.FixtureRequest,
    hypercorn_plain: HypercornPeer,
    server_ssl_context: ssl.SSLContext,
    ssl_context: ssl.SSLContext,
) -> None:
    """http:// is forwarded in absolute form by HTTP proxies, tunnelled by SOCKS.

    tinyproxy closes the client connection after each response without saying
    ``Connection: close`` (RFC 9112 §9.6 says it must): the GETs that follow
    may meet that closed connection and are retried transparently, as
    idempotent requests on a reused connection are.
    """
    async with (
        running_proxy(kind, request, server_ssl_context, ssl_context) as proxy,
        aio.AsyncConnectionPool(proxy=proxy) as pool,
    ):
        response = await pool.request(
            "POST", hypercorn_plain.url + "/echo", content=b"forwarded"
        )
        assert response.status == 200
        assert response.content == b"forwarded"
        for _ in range(3):
            response = await pool.request("GET", hypercorn_plain.url + "/")
            assert response.content == b"Hello, world!"
        response = await pool.request("GET", hypercorn_plain.url + "/headers")
        seen = json.loads(response.content)
        host = dict(seen["headers"])["host"]
        assert host == f"{hypercorn_plain.host}:{hypercorn_plain.port}"
        kinds = {type(connection).__name__ for connection in pool.connections}
        if "socks" in kind:
            assert kinds == {"AsyncSocks5Connection"}
        else:
            assert kinds == {"AsyncForwardHTTPConnection"}


async def test_forwarded_request_is_absolute_form_with_proxy_headers(
    hypercorn_plain: HypercornPeer,
) -> None:
    """The forward proxy receives the absolute-form target, our Proxy-Authorization
    and proxy headers; the origin never sees Proxy-Authorization."""
    async with proxy_server(auth=PROXY_CREDENTIALS) as server:
        proxy = aio.Proxy(
            server.url, auth=PROXY_CREDENTIALS, headers={"X-Proxy-Note": "hello"}
        )
        async with aio.AsyncConnectionPool(proxy=proxy) as pool:
            response = await pool.request(
                "GET",
                hypercorn_plain.url + "/headers?a=1",
                extensions={"sni_hostname": SNI},  # meaningless for http: ignored
            )
        assert response.status == 200
        origin_headers = dict(json.loads(response.content)["headers"])
        assert "proxy-authorization" not in origin_headers
        head = server.requests[0]
        target = f"{hypercorn_plain.url}/headers?a=1".encode()
        assert head.startswith(b"GET " + target + b" HTTP/1.1\r\n")
        assert server.proxy_authorization is not None
        expected = f"Proxy-Authorization: {server.proxy_authorization}\r\n"
        assert expected.encode() in head
        assert b"X-Proxy-Note: hello\r\n" in head


async def test_connect_request_carries_authority_and_credentials(
    hypercorn_tls: HypercornPeer, ssl_context: ssl.SSLContext
) -> None:
    """CONNECT host:port with Host and Proxy-Authorization, then TLS inside."""
    async with (
        proxy_server(auth=PROXY_CREDENTIALS) as server,
        aio.AsyncHTTPProxy(
            server.url, proxy_auth=PROXY_CREDENTIALS, ssl_context=ssl_context
        ) as pool,
    ):
        response = await pool.request("GET", hypercorn_tls.url + "/")
        assert response.content == b"Hello, world!"
        authority = f"127.0.0.1:{hypercorn_tls.port}"
        assert server.connect_targets == [authority]
        head = server.requests[0]
        assert head.startswith(f"CONNECT {authority} HTTP/1.1\r\n".encode())
        assert f"Host: {authority}\r\n".encode() in head
        assert f"Proxy-Authorization: {server.proxy_authorization}".encode() in head


async def test_trace_events_through_a_tunnel(
    hypercorn_tls: HypercornPeer,
    server_ssl_context: ssl.SSLContext,
    ssl_context: ssl.SSLContext,
) -> None:
    """HTTPS proxy: connect and TLS to the proxy, CONNECT over http11, then
    proxy.start_tls with the SNI name, then the origin's exchange."""
    events: list[tuple[str, dict[str, Any]]] = []

    async def trace(name: str, info: dict[str, Any]) -> None:
        events.append((name, info))

    async with (
        proxy_server(ssl=server_ssl_context) as server,
        aio.AsyncHTTPProxy(
            server.url, ssl_context=ssl_context, proxy_ssl_context=ssl_context
        ) as pool,
    ):
        await pool.request(
            "GET",
            hypercorn_tls.url + "/",
            extensions={"trace": trace, "sni_hostname": SNI},
        )
    names = [
        name
        for name, _ in events
        if not name.endswith(".started") and not name.startswith("pool.")
    ]
    assert names == [
        "connection.connect_tcp.complete",
        "connection.start_tls.complete",
        "http11.send_request_headers.complete",
        "http11.send_request_body.complete",
        "http11.receive_response_headers.complete",
        "proxy.start_tls.complete",
        "http11.send_request_headers.complete",
        "http11.send_request_body.complete",
        "http11.receive_response_headers.complete",
        "http11.receive_response_body.complete",
        "http11.response_closed.complete",
    ]
    started = dict(events)
    assert started["connection.connect_tcp.started"]["port"] == server.port
    assert started["connection.start_tls.started"]["server_hostname"] == "127.0.0.1"
    assert started["proxy.start_tls.started"]["server_hostname"] == SNI
    tls = started["proxy.start_tls.complete"]["return_value"]
    assert tls.get_extra_info("ssl_object").server_hostname == SNI
    assert server.sni_names == [None]  # an IP address is never sent as SNI


async def test_socks_trace_events(
    microsocks_auth: MicrosocksPeer,
    hypercorn_tls: HypercornPeer,
    ssl_context: ssl.SSLContext,
) -> None:
    """socks.connect_tcp, socks.setup_socks5_connection (stream, host, port,
    auth), socks.start_tls, then the origin's exchange."""
    events: list[tuple[str, dict[str, Any]]] = []

    def trace(name: str, info: dict[str, Any]) -> None:
        if not name.startswith("pool."):
            events.append((name, info))

    async with aio.AsyncSOCKSProxy(
        microsocks_auth.url, proxy_auth=PROXY_CREDENTIALS, ssl_context=ssl_context
    ) as pool:
        await pool.request("GET", hypercorn_tls.url + "/", extensions={"trace": trace})
    names = [name for name, _ in events]
    assert names[:6] == [
        "socks.connect_tcp.started",
        "socks.connect_tcp.complete",
        "socks.setup_socks5_connection.started",
        "socks.setup_socks5_connection.complete",
        "socks.start_tls.started",
        "socks.start_tls.complete",
    ]
    setup = events[2][1]
    assert setup["host"] == "127.0.0.1"
    assert setup["port"] == hypercorn_tls.port
    assert setup["auth"] == (b"wire", b"line")
    assert setup["stream"] is events[1][1]["return_value"]
    assert names[6] == "http11.send_request_headers.started"


async def test_wrong_sni_through_tunnel_fails_verification(
    tinyproxy: TinyproxyPeer, hypercorn_tls: HypercornPeer, ssl_context: ssl.SSLContext
) -> None:
    """sni_hostname is also what the origin's certificate is checked against."""
    async with aio.AsyncHTTPProxy(tinyproxy.url, ssl_context=ssl_context) as pool:
        with pytest.raises(aio.ConnectError):
            await pool.request(
                "GET",
                hypercorn_tls.url + "/",
                extensions={"sni_hostname": "wrong.wireline.test"},
            )
        assert pool.connections == []


async def test_sni_names_and_origins_never_share_a_connection(
    tinyproxy: TinyproxyPeer,
    hypercorn_tls: HypercornPeer,
    hypercorn_h2_tls: HypercornPeer,
    ssl_context: ssl.SSLContext,
) -> None:
    """The pool key has scheme, host, port and sni_hostname: three distinct keys,
    three tunnels; repeating a key reuses its tunnel."""
    async with aio.AsyncHTTPProxy(tinyproxy.url, ssl_context=ssl_context) as pool:
        for _ in range(2):
            await pool.request("GET", hypercorn_tls.url + "/")
            await pool.request(
                "GET", hypercorn_tls.url + "/", extensions={"sni_hostname": SNI}
            )
            await pool.request("GET", hypercorn_h2_tls.url + "/")
        assert len(pool.connections) == 3
        counts = sorted(repr(c).count("Request Count: 2") for c in pool.connections)
        assert counts == [1, 1, 1]


async def test_proxy_407_raises_proxy_error_with_status_and_headers(
    tinyproxy_auth: TinyproxyPeer,
    hypercorn_tls: HypercornPeer,
    ssl_context: ssl.SSLContext,
) -> None:
    """A CONNECT refused with 407: ProxyError carrying the status and the
    Proxy-Authenticate challenge; the connection is closed, the pool empty."""
    async with aio.AsyncHTTPProxy(tinyproxy_auth.url, ssl_context=ssl_context) as pool:
        with pytest.raises(aio.ProxyError) as caught:
            await pool.request("GET", hypercorn_tls.url + "/")
        assert pool.connections == []
    assert str(caught.value).startswith("407 ")
    assert caught.value.status == 407
    assert caught.value.headers is not None
    challenge = dict((k.lower(), v) for k, v in caught.value.headers)
    assert challenge[b"proxy-authenticate"].startswith(b"Basic")


async def test_forward_407_is_an_ordinary_response(
    tinyproxy_auth: TinyproxyPeer, hypercorn_plain: HypercornPeer
) -> None:
    """Forwarded requests get the proxy's 407 as their response (as httpcore)."""
    async with aio.AsyncHTTPProxy(tinyproxy_auth.url) as pool:
        response = await pool.request("GET", hypercorn_plain.url + "/")
    assert response.status == 407
    assert any(k.lower() == b"proxy-authenticate" for k, _ in response.headers)


async def test_connect_rejected_with_403(
    hypercorn_tls: HypercornPeer, ssl_context: ssl.SSLContext
) -> None:
    """Any non-2xx CONNECT answer is a ProxyError naming status and reason."""
    async with (
        proxy_server(mode="reject") as server,
        aio.AsyncHTTPProxy(server.url, ssl_context=ssl_context) as pool,
    ):
        with pytest.raises(aio.ProxyError, match=r"^403 Forbidden$") as caught:
            await pool.request("GET", hypercorn_tls.url + "/")
        assert caught.value.status == 403
        assert pool.connections == []


@pytest.mark.parametrize("mode", ["close_after_head", "close_mid_response"])
async def test_proxy_closing_mid_handshake(
    mode: Any, hypercorn_tls: HypercornPeer, ssl_context: ssl.SSLContext
) -> None:
    """A proxy that closes before a complete CONNECT answer: ProxyError, no
    retry loop, nothing left in the pool."""
    async with (
        proxy_server(mode=mode) as server,
        aio.AsyncHTTPProxy(server.url, ssl_context=ssl_context, retries=2) as pool,
    ):
        with pytest.raises(aio.ProxyError, match=r"CONNECT 127\.0\.0\.1:"):
            await pool.request("GET", hypercorn_tls.url + "/")
        assert pool.connections == []
        assert len(server.connect_targets) == 1


async def test_proxy_never_answering_connect_is_a_connect_timeout(
    hypercorn_tls: HypercornPeer, ssl_context: ssl.SSLContext
) -> None:
    """The CONNECT exchange is part of connecting: it obeys timeout.connect."""
    async with (
        proxy_server(mode="never_answer") as server,
        aio.AsyncHTTPProxy(server.url, ssl_context=ssl_context) as pool,
    ):
        start = time.monotonic()
        with pytest.raises(aio.ConnectTimeout):
            await pool.request(
                "GET",
                hypercorn_tls.url + "/",
                extensions={"timeout": {"connect": 0.3, "read": 10}},
            )
        assert 0.298 <= time.monotonic() - start < 2.0
        assert pool.connections == []


@pytest.mark.parametrize("scheme", ["http", "socks5"])
async def test_proxy_that_never_accepts_is_a_connect_timeout(scheme: str) -> None:
    """A proxy whose accept queue is full: ConnectTimeout, HTTP and SOCKS alike."""
    with unanswered_port() as port:
        async with aio.AsyncConnectionPool(
            proxy=aio.Proxy(f"{scheme}://127.0.0.1:{port}")
        ) as pool:
            with pytest.raises(aio.ConnectTimeout):
                await pool.request(
                    "GET",
                    "https://127.0.0.1:1/",
                    extensions={"timeout": {"connect": 0.2}},
                )
            assert pool.connections == []


async def test_socks_server_never_answering_is_a_connect_timeout() -> None:
    """httpcore has no timeout on the SOCKS handshake; ours runs under connect."""

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(3)
        await asyncio.sleep(10)

    async with (
        scripted_server(mute) as server,
        aio.AsyncSOCKSProxy(f"socks5h://127.0.0.1:{server.port}") as pool,
    ):
        start = time.monotonic()
        with pytest.raises(aio.ConnectTimeout, match="SOCKS5 handshake"):
            await pool.request(
                "GET", "http://origin.test/", extensions={"timeout": {"connect": 0.3}}
            )
        assert 0.298 <= time.monotonic() - start < 2.0
        assert pool.connections == []


async def test_socks_auth_rejected(microsocks_auth: MicrosocksPeer) -> None:
    """Wrong credentials: httpcore's message; the pool stays empty."""
    async with aio.AsyncSOCKSProxy(
        microsocks_auth.url, proxy_auth=("wire", "wrong")
    ) as pool:
        with pytest.raises(aio.ProxyError, match=r"^Invalid username/password$"):
            await pool.request("GET", "http://127.0.0.1:1/")
        assert pool.connections == []


async def test_socks_auth_required_but_not_offered(
    microsocks_auth: MicrosocksPeer,
) -> None:
    """Offering no authentication to a proxy that requires it."""
    async with aio.AsyncSOCKSProxy(microsocks_auth.url) as pool:
        with pytest.raises(
            aio.ProxyError,
            match=r"^Requested NO AUTHENTICATION REQUIRED from proxy server, but got ",
        ):
            await pool.request("GET", "http://127.0.0.1:1/")
        assert pool.connections == []


async def test_socks_origin_refused(microsocks: MicrosocksPeer) -> None:
    """The proxy could not reach the origin: the reply code, named."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: refused
        async with aio.AsyncSOCKSProxy(microsocks.url) as pool:
            with pytest.raises(
                aio.ProxyError, match=r"^Proxy Server could not connect"
            ):
                await pool.request("GET", f"http://127.0.0.1:{port}/")
            assert pool.connections == []


def socks_script(reply: bytes, *, split: bool = False, then_serve: bool = True) -> Any:
    """A SOCKS5 server answering no-auth, then ``reply`` (byte by byte when
    ``split``), then acting as an HTTP origin itself."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        assert await reader.readexactly(3) == b"\x05\x01\x00"
        writer.write(b"\x05\x00")
        head = await reader.readexactly(5)
        await reader.readexactly(head[4] + 2)  # domain name and port
        for index in range(len(reply)) if split else [None]:
            writer.write(reply if index is None else reply[index : index + 1])
            await writer.drain()
            if split:
                await asyncio.sleep(0.002)
        if then_serve and await read_head(reader):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        await reader.read()

    return handler


async def test_socks_reply_split_across_reads() -> None:
    """Each reply byte in its own segment: the handshake still completes."""
    reply = b"\x05\x00\x00\x03\x0bexample.com\x01\xbb"
    async with (
        scripted_server(socks_script(reply, split=True)) as server,
        aio.AsyncSOCKSProxy(f"socks5h://127.0.0.1:{server.port}") as pool,
    ):
        response = await pool.request("GET", "http://origin.test/")
        assert response.content == b"ok"
        assert b"\x03\x0borigin.test\x00\x50" in server.received[0]


async def test_socks_unsupported_address_type() -> None:
    """A success reply with ATYP 0x05: ProxyError naming RFC 1928."""
    async with (
        scripted_server(socks_script(b"\x05\x00\x00\x05", then_serve=False)) as server,
        aio.AsyncSOCKSProxy(f"socks5h://127.0.0.1:{server.port}") as pool,
    ):
        with pytest.raises(aio.ProxyError, match=r"address type 0x05.*RFC 1928"):
            await pool.request("GET", "http://origin.test/")
        assert pool.connections == []


async def test_socks_server_closing_mid_handshake() -> None:
    """EOF in the middle of the reply: ProxyError, not a hang."""

    async def closer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readexactly(3)
        writer.write(b"\x05")

    async with (
        scripted_server(closer) as server,
        aio.AsyncSOCKSProxy(f"socks5h://127.0.0.1:{server.port}") as pool,
    ):
        with pytest.raises(aio.ProxyError, match="closed the connection"):
            await pool.request("GET", "http://origin.test/")
        assert pool.connections == []


async def test_socks5_resolves_locally_and_socks5h_remotely(
    microsocks: MicrosocksPeer, hypercorn_plain: HypercornPeer
) -> None:
    """socks5:// sends an address, socks5h:// the name (seen on the wire by a
    recording relay in front of microsocks)."""
    sent: list[bytes] = []

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(
            microsocks.host, microsocks.port
        )
        try:
            greeting = await reader.readexactly(3)
            up_writer.write(greeting)
            writer.write(await up_reader.readexactly(2))
            request = await reader.read(300)
            sent.append(request)
            up_writer.write(request)
            await asyncio.gather(_pipe(up_reader, writer), _pipe(reader, up_writer))
        finally:
            up_writer.close()

    async with scripted_server(relay) as server:
        for scheme in ("socks5", "socks5h"):
            async with aio.AsyncSOCKSProxy(
                f"{scheme}://127.0.0.1:{server.port}"
            ) as pool:
                url = f"http://localhost:{hypercorn_plain.port}/"
                response = await pool.request("GET", url)
                assert response.content == b"Hello, world!"
    local, remote = sent
    assert local[3] in (0x01, 0x04)  # an IPv4 or IPv6 address, resolved here
    assert b"localhost" not in local
    assert remote[3:5] == b"\x03\x09"
    assert remote[5:14] == b"localhost"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.mark.parametrize(
    ("auth", "scheme"),
    [
        (("us\r\ner", "pass"), "http"),
        (("user", "pa\nss"), "https"),
        (("us:er", "pass"), "http"),
        (("user", "pa\x00ss"), "socks5"),
        (("", "pass"), "socks5h"),
        (("user", "p" * 256), "socks5"),
    ],
)
async def test_bad_proxy_credentials_rejected_before_any_byte(
    auth: tuple[str, str], scheme: str
) -> None:
    """CR/LF/NUL, ':' in a Basic username, SOCKS lengths: LocalProtocolError
    when the proxy is configured, and no connection is ever attempted."""

    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise AssertionError("nothing may connect")

    async with scripted_server(never) as server:
        with pytest.raises(aio.LocalProtocolError):
            aio.Proxy(f"{scheme}://127.0.0.1:{server.port}", auth=auth)
        if scheme.startswith("http"):
            with pytest.raises(aio.LocalProtocolError):
                aio.AsyncHTTPProxy(
                    f"{scheme}://127.0.0.1:{server.port}", proxy_auth=auth
                )
        else:
            with pytest.raises(aio.LocalProtocolError):
                aio.AsyncSOCKSProxy(
                    f"{scheme}://127.0.0.1:{server.port}", proxy_auth=auth
                )
        await asyncio.sleep(0.05)
        assert server.connections == 0


async def test_crlf_in_connect_authority_rejected_before_any_byte() -> None:
    """A CONNECT target with CR/LF (via the target extension) never reaches the
    proxy; neither does a host with CR/LF."""

    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise AssertionError("nothing may connect")

    async with scripted_server(never) as server, aio.AsyncConnectionPool() as pool:
        with pytest.raises(aio.LocalProtocolError):
            await pool.request(
                "CONNECT",
                server.url,
                extensions={"target": b"origin.test:443\r\nX-Evil: 1"},
            )
        with pytest.raises(aio.LocalProtocolError):
            aio.URL(scheme=b"https", host=b"origin.test\r\nX-Evil: 1", port=443)
        async with aio.AsyncHTTPProxy(server.url) as proxied:
            with pytest.raises(aio.LocalProtocolError):
                await proxied.request("GET", "https://origin.test\r\n.x/")
        await asyncio.sleep(0.05)
        assert server.connections == 0


async def test_proxy_url_schemes_checked() -> None:
    """Unknown proxy schemes and the wrong pool class fail at construction."""
    with pytest.raises(aio.UnsupportedProtocol, match="ftp"):
        aio.Proxy("ftp://127.0.0.1:21")
    with pytest.raises(aio.UnsupportedProtocol, match="AsyncSOCKSProxy"):
        aio.AsyncHTTPProxy("socks5://127.0.0.1:1080")
    with pytest.raises(aio.UnsupportedProtocol, match="AsyncHTTPProxy"):
        aio.AsyncSOCKSProxy("http://127.0.0.1:8080")
    with pytest.raises(TypeError):
        aio.AsyncConnectionPool(proxy="http://127.0.0.1:8080")  # type: ignore[arg-type]


@pytest.mark.parametrize("scheme", ["http", "socks5"])
async def test_retries_apply_to_proxied_connections(scheme: str) -> None:
    """retries= reconnects to the proxy (httpcore ignores it there)."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        events: list[str] = []

        def trace(name: str, info: dict[str, Any]) -> None:
            events.append(name)

        async with aio.AsyncConnectionPool(
            proxy=aio.Proxy(f"{scheme}://127.0.0.1:{port}"),
            retries=2,
            network_backend=_FastBackend(),
        ) as pool:
            with pytest.raises(aio.ConnectError):
                await pool.request(
                    "GET", "https://127.0.0.1:1/", extensions={"trace": trace}
                )
    assert events.count("connection.retry.complete") == 2
    prefix = "socks" if scheme == "socks5" else "connection"
    assert events.count(f"{prefix}.connect_tcp.failed") == 3


class _FastBackend(aio.AsyncIOBackend):
    """Skips the retry backoff sleeps."""

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


@pytest.mark.parametrize("kind", ["https_proxy", "socks5"])
async def test_local_address_and_socket_options_apply_to_the_proxy_connection(
    kind: str,
    request: pytest.FixtureRequest,
    hypercorn_tls: HypercornPeer,
    server_ssl_context: ssl.SSLContext,
    ssl_context: ssl.SSLContext,
) -> None:
    """local_address binds the socket to the proxy; socket_options are set on it."""
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    async with running_proxy(kind, request, server_ssl_context, ssl_context) as proxy:
        async with aio.AsyncConnectionPool(
            proxy=proxy,
            ssl_context=ssl_context,
            local_address="127.0.0.2",
            socket_options=options,
        ) as pool:
            async with pool.stream("GET", hypercorn_tls.url + "/") as response:
                stream = response.extensions["network_stream"]
                sock = stream.get_extra_info("socket")
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                assert stream.get_extra_info("client_addr")[0] == "127.0.0.2"
                await response.aread()


async def test_user_sent_connect_gives_the_tunnel_as_network_stream(
    tinyproxy: TinyproxyPeer, hypercorn_tls: HypercornPeer, ssl_context: ssl.SSLContext
) -> None:
    """CONNECT by hand through stream(): the network stream is the tunnel; TLS
    and a raw HTTP/1.1 exchange run on it."""
    authority = f"127.0.0.1:{hypercorn_tls.port}"
    async with (
        aio.AsyncConnectionPool() as pool,
        pool.stream(
            "CONNECT",
            tinyproxy.url,
            headers={"Host": authority},
            extensions={"target": authority.encode()},
        ) as response,
    ):
        assert response.status == 200
        stream = response.extensions["network_stream"]
        tls = await stream.start_tls(ssl_context, server_hostname=SNI)
        await tls.write(
            b"GET / HTTP/1.1\r\nHost: " + authority.encode() + b"\r\n"
            b"Connection: close\r\n\r\n"
        )
        received = b""
        while data := await tls.read(65536, timeout=5):
            received += data
        assert received.startswith(b"HTTP/1.1 200")
        assert received.endswith(b"Hello, world!")
        await tls.aclose()


async def test_bytes_after_connect_200_come_first(
    hypercorn_plain: HypercornPeer,
) -> None:
    """Bytes that arrived with the 200 are the first read() of the tunnel."""
    authority = f"127.0.0.1:{hypercorn_plain.port}"
    async with (
        proxy_server(mode="bytes_after_200") as server,
        aio.AsyncConnectionPool() as pool,
        pool.stream(
            "CONNECT",
            server.url,
            headers={"Host": authority},
            extensions={"target": authority.encode()},
        ) as response,
    ):
        stream = response.extensions["network_stream"]
        assert await stream.read(65536, timeout=5) == b"early"
        await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = b""
        while data := await stream.read(65536, timeout=5):
            received += data
        assert received.endswith(b"Hello, world!")


async def test_tunnel_where_the_proxy_speaks_before_tls(
    hypercorn_tls: HypercornPeer, ssl_context: ssl.SSLContext
) -> None:
    """Bytes before our ClientHello cannot be a TLS server flight: ConnectError."""
    async with (
        proxy_server(mode="bytes_after_200") as server,
        aio.AsyncHTTPProxy(server.url, ssl_context=ssl_context) as pool,
    ):
        with pytest.raises(aio.ConnectError, match="spoke before the TLS handshake"):
            await pool.request("GET", hypercorn_tls.url + "/")
        assert pool.connections == []


async def test_concurrent_requests_share_an_http2_tunnel(
    tinyproxy: TinyproxyPeer,
    hypercorn_h2_tls: HypercornPeer,
    h2_context: ssl.SSLContext,
) -> None:
    """Twenty concurrent requests through one CONNECT tunnel speaking HTTP/2."""
    async with aio.AsyncHTTPProxy(
        tinyproxy.url, ssl_context=h2_context, http2=True
    ) as pool:
        responses = await asyncio.gather(
            *(pool.request("GET", hypercorn_h2_tls.url + "/") for _ in range(20))
        )
        assert {r.extensions["http_version"] for r in responses} == {b"HTTP/2"}
        assert len(pool.connections) == 1


@pytest.mark.parametrize("stage", ["connect", "socks"])
async def test_cancelled_during_the_proxy_handshake(
    stage: str, hypercorn_tls: HypercornPeer, ssl_context: ssl.SSLContext
) -> None:
    """Cancelling while CONNECT or the SOCKS handshake waits leaves no
    connection, no slot and no open socket (warnings are errors here)."""

    async def mute_socks(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readexactly(3)
        await asyncio.sleep(10)

    async with contextlib.AsyncExitStack() as stack:
        if stage == "connect":
            server = await stack.enter_async_context(proxy_server(mode="never_answer"))
            proxy = aio.Proxy(server.url)
        else:
            scripted = await stack.enter_async_context(scripted_server(mute_socks))
            proxy = aio.Proxy(f"socks5h://127.0.0.1:{scripted.port}")
        pool = await stack.enter_async_context(
            aio.AsyncConnectionPool(proxy=proxy, ssl_context=ssl_context)
        )
        task = asyncio.create_task(pool.request("GET", hypercorn_tls.url + "/"))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.connections == []
        assert "Requests: 0 active, 0 queued" in repr(pool)


async def test_uds_reaches_the_proxy(uds_path: str) -> None:
    """uds= connects to the proxy over a Unix socket; the request is still in
    absolute form for the origin."""

    async def forward_proxy(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if await read_head(reader):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    async with (
        scripted_server(forward_proxy, uds_path=uds_path) as server,
        aio.AsyncHTTPProxy("http://proxy.invalid:3128", uds=uds_path) as pool,
    ):
        response = await pool.request("GET", "http://origin.test:8080/path")
        assert response.content == b"ok"
        assert server.received[0].startswith(
            b"GET http://origin.test:8080/path HTTP/1.1\r\n"
        )
