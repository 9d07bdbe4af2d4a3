"""``aio.httpx.AsyncTransport`` under httpx and httpx2 clients, end to end.

Every test taking ``lib`` runs once with ``httpx`` and once with ``httpx2``,
and every async test on asyncio and uvloop. Peers: hypercorn (plain, TLS with
ALPN h2, h2c, Unix socket), scripted servers for exact bytes and failures,
tinyproxy, microsocks and the in-process HTTPS proxy; only 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import importlib
import json
import socket
import ssl
import struct
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import aio
from aio.httpx import AsyncTransport
from tests.aio.test_backends import closed_port, unanswered_port
from tests.conftest import PROXY_CREDENTIALS
from tests.peers.hypercorn_server import HypercornPeer
from tests.peers.microsocks import MicrosocksPeer
from tests.peers.proxy_server import proxy_server
from tests.peers.scripted import (
    canned_server,
    read_body,
    read_head,
    scripted_server,
    tolerant_server,
)
from tests.peers.tinyproxy import TinyproxyPeer

LIBRARIES = ("httpx", "httpx2")
TIMEOUT = 5.0  # every client's default: nothing here waits longer
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
SNI = "sni.wireline.test"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=LIBRARIES)
def lib(request: pytest.FixtureRequest) -> ModuleType:
    """The client library under test: httpx, then httpx2."""
    return importlib.import_module(request.param)


@pytest.fixture
def ca_file(certs_dir: Path) -> str:
    """The test CA's PEM file, as a path string (``verify=<path>``)."""
    return str(certs_dir / "ca.pem")


@pytest.fixture
def no_ssl_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No $SSL_CERT_FILE / $SSL_CERT_DIR: verify=True means certifi."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


@pytest.fixture
def h2_context(certs_dir: Path) -> ssl.SSLContext:
    """Trusts the test CA and offers ALPN h2 (aio never changes a caller's context)."""
    context = ssl.create_default_context(cafile=certs_dir / "ca.pem")
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


def client(lib: ModuleType, transport: AsyncTransport, **kwargs: Any) -> Any:
    """``lib.AsyncClient`` on ``transport`` with the tests' default timeout."""
    kwargs.setdefault("timeout", TIMEOUT)
    return lib.AsyncClient(transport=transport, **kwargs)


async def body(*parts: bytes) -> AsyncIterator[bytes]:
    """A streaming request body (no length known in advance)."""
    for part in parts:
        await asyncio.sleep(0)
        yield part


def assert_mapped(exc: BaseException, lib: ModuleType, name: str) -> None:
    """``exc`` is ``lib.<name>``, raised from aio's error of that name, same
    message, with its request set."""
    assert type(exc) is getattr(lib, name)
    cause = exc.__cause__
    assert type(cause) is getattr(aio, name)
    assert str(exc) == str(cause)
    assert isinstance(exc.request, lib.Request)  # type: ignore[attr-defined]


# -- requests and responses -------------------------------------------------


@pytest.mark.asyncio
async def test_get_over_http11(lib: ModuleType, hypercorn_plain: HypercornPeer) -> None:
    """A GET through the client: status, headers, body, the response extensions
    and the library's own Response and AsyncByteStream types."""
    async with client(lib, AsyncTransport()) as http:
        response = await http.get(hypercorn_plain.url + "/")
    assert isinstance(response, lib.Response)
    assert isinstance(response.stream, lib.AsyncByteStream)
    assert response.status_code == 200
    assert response.text == "Hello, world!"
    assert response.headers["content-type"] == "text/plain"
    assert response.http_version == "HTTP/1.1"
    assert response.reason_phrase == ""  # hypercorn sends "200 " without one
    assert set(response.extensions) >= {
        "http_version",
        "reason_phrase",
        "network_stream",
    }
    assert "stream_id" not in response.extensions


@pytest.mark.asyncio
@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/2"])
async def test_post_over_tls(
    lib: ModuleType, version: str, hypercorn_h2_tls: HypercornPeer, ca_file: str
) -> None:
    """POST over TLS with verify=<CA path>: ALPN on the context built for it
    picks HTTP/2 when http2=True; HTTP/2 responses carry stream_id."""
    transport = AsyncTransport(verify=ca_file, http2=version == "HTTP/2")
    async with client(lib, transport) as http:
        response = await http.post(hypercorn_h2_tls.url + "/echo", content=b"hello")
    assert response.content == b"hello"
    assert response.http_version == version
    assert ("stream_id" in response.extensions) == (version == "HTTP/2")
    if version == "HTTP/2":  # no reason phrase in h2: httpx's fallback
        assert response.reason_phrase == "OK"


@pytest.mark.asyncio
async def test_http2_requests_share_one_connection(
    lib: ModuleType, hypercorn_h2_tls: HypercornPeer, ca_file: str
) -> None:
    """30 concurrent requests ride one HTTP/2 connection."""
    transport = AsyncTransport(verify=ca_file, http2=True)
    async with client(lib, transport) as http:
        responses = await asyncio.gather(
            *[http.get(f"{hypercorn_h2_tls.url}/bytes?n={n}") for n in range(30)]
        )
        assert [len(r.content) for r in responses] == list(range(30))
        assert {r.http_version for r in responses} == {"HTTP/2"}
        assert len(transport.pool.connections) == 1


@pytest.mark.asyncio
async def test_h2c_prior_knowledge(
    lib: ModuleType, hypercorn_h2c: HypercornPeer
) -> None:
    """http1=False, http2=True speaks HTTP/2 in clear text."""
    async with client(lib, AsyncTransport(http1=False, http2=True)) as http:
        response = await http.get(hypercorn_h2c.url + "/")
    assert response.http_version == "HTTP/2"
    assert response.text == "Hello, world!"


@pytest.mark.asyncio
@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/2"])
async def test_streaming_upload(
    lib: ModuleType, version: str, hypercorn_h2_tls: HypercornPeer, ca_file: str
) -> None:
    """An async generator body streams up (chunked on HTTP/1.1, DATA on h2)."""
    transport = AsyncTransport(verify=ca_file, http2=version == "HTTP/2")
    parts = [b"a" * 10_000, b"b" * 50_000, b"", b"c"]
    async with client(lib, transport) as http:
        response = await http.post(hypercorn_h2_tls.url + "/echo", content=body(*parts))
    assert response.http_version == version
    assert response.content == b"".join(parts)


@pytest.mark.asyncio
@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/2"])
async def test_streaming_download(
    lib: ModuleType, version: str, hypercorn_h2_tls: HypercornPeer, ca_file: str
) -> None:
    """client.stream() with aiter_raw / aiter_bytes: the body arrives in parts
    as the server sends them, and closing the block releases the connection."""
    transport = AsyncTransport(verify=ca_file, http2=version == "HTTP/2")
    url = hypercorn_h2_tls.url + "/stream?chunks=5&size=1000&delay=0.02"
    async with client(lib, transport) as http:
        async with http.stream("GET", url) as response:
            assert response.http_version == version
            raw = [chunk async for chunk in response.aiter_raw()]
        assert b"".join(raw) == b"x" * 5000
        assert len(raw) >= 2  # streamed, not read in one go
        async with http.stream("GET", url) as response:
            chunks = [chunk async for chunk in response.aiter_bytes(chunk_size=2000)]
        assert [len(chunk) for chunk in chunks] == [2000, 2000, 1000]
        assert "Requests: 0 active" in repr(transport.pool)


@pytest.mark.asyncio
async def test_gzip_is_decoded_by_httpx_not_by_us(lib: ModuleType) -> None:
    """Content-Encoding is left to httpx: content is the decoded body, aiter_raw
    the gzip bytes as they came off the wire."""
    plain = b"wireline " * 1000
    packed = gzip.compress(plain)
    response_bytes = (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: %d\r\n\r\n%b" % (len(packed), packed)
    )
    async with canned_server([response_bytes, response_bytes]) as server:
        async with client(lib, AsyncTransport()) as http:
            response = await http.get(server.url + "/")
            assert response.headers["content-encoding"] == "gzip"
            assert response.content == plain
            async with http.stream("GET", server.url + "/") as streamed:
                raw = b"".join([chunk async for chunk in streamed.aiter_raw()])
            assert raw == packed


@pytest.mark.asyncio
async def test_raw_target_and_headers_go_on_the_wire_as_given(
    lib: ModuleType,
) -> None:
    """The request line carries url.raw_path (percent-encoding kept, query
    included); header names keep their case and order."""
    async with canned_server([OK]) as server:
        async with client(lib, AsyncTransport()) as http:
            response = await http.get(
                server.url + "/a%2Fb/c%20d;p?q=%2F+x&r=%C3%A9",
                headers={"X-Custom-Name": "Value"},
            )
    assert response.text == "ok"
    assert response.reason_phrase == "OK"
    head = server.received[0]
    assert head.startswith(b"GET /a%2Fb/c%20d;p?q=%2F+x&r=%C3%A9 HTTP/1.1\r\n")
    assert b"\r\nX-Custom-Name: Value\r\n" in head
    assert f"\r\nHost: 127.0.0.1:{server.port}\r\n".encode() in head


@pytest.mark.asyncio
async def test_ipv6_origin(lib: ModuleType) -> None:
    """An IPv6 literal: connected to without brackets, bracketed in Host."""
    async with canned_server([OK], host="::1") as server:
        async with client(lib, AsyncTransport()) as http:
            response = await http.get(server.url + "/")
    assert response.text == "ok"
    assert f"\r\nHost: [::1]:{server.port}\r\n".encode() in server.received[0]


@pytest.mark.asyncio
async def test_trace_and_sni_hostname_extensions_pass_through(
    lib: ModuleType, hypercorn_tls: HypercornPeer, ca_file: str
) -> None:
    """Request extensions reach aio: trace sees httpcore's events, and the
    origin's TLS received sni_hostname instead of the URL's host."""
    events: list[str] = []

    async def trace(name: str, info: dict[str, Any]) -> None:
        events.append(name)

    async with client(lib, AsyncTransport(verify=ca_file)) as http:
        response = await http.get(
            hypercorn_tls.url + "/sni",
            extensions={"trace": trace, "sni_hostname": SNI},
        )
    assert json.loads(response.content)[-1] == SNI
    for name in (
        "connection.connect_tcp.started",
        "connection.start_tls.complete",
        "http11.send_request_headers.started",
        "http11.receive_response_body.complete",
        "http11.response_closed.complete",
    ):
        assert name in events


@pytest.mark.asyncio
async def test_redirects_are_followed_by_the_client(lib: ModuleType) -> None:
    """A 302 and a 303 answered on the same kept-alive connection: httpx follows
    both (the 303 turns the POST into a GET) and records the history."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while (head := await read_head(reader)) is not None:
            await read_body(reader, head)
            method, target = head.split(b" ")[:2]
            if target == b"/start":
                writer.write(
                    b"HTTP/1.1 302 Found\r\nLocation: /middle\r\n"
                    b"Content-Length: 0\r\n\r\n"
                )
            elif target == b"/middle":
                writer.write(
                    b"HTTP/1.1 303 See Other\r\nLocation: /end\r\n"
                    b"Content-Length: 0\r\n\r\n"
                )
            else:
                text = method + b" " + target
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(text)
                )
                writer.write(text)
            await writer.drain()

    async with tolerant_server(handler) as server:
        async with client(lib, AsyncTransport(), follow_redirects=True) as http:
            response = await http.post(server.url + "/start", content=b"data")
    assert response.text == "GET /end"
    assert [r.status_code for r in response.history] == [302, 303]
    assert response.url == lib.URL(server.url + "/end")
    assert server.connections == 1


@pytest.mark.asyncio
async def test_direct_use_of_the_transport(
    lib: ModuleType, hypercorn_plain: HypercornPeer
) -> None:
    """handle_async_request without a client: the response has its request
    and the library's stream type; reading and closing it releases the
    connection."""
    async with AsyncTransport() as transport:
        request = lib.Request("GET", hypercorn_plain.url + "/")
        response = await transport.handle_async_request(request)
        assert isinstance(response, lib.Response)
        assert response.request is request
        assert isinstance(response.stream, lib.AsyncByteStream)
        assert await response.aread() == b"Hello, world!"
        await response.aclose()
        assert "Connections: 0 active, 1 idle" in repr(transport)
    assert transport.pool.connections == []


@pytest.mark.asyncio
async def test_one_transport_serves_both_libraries(
    hypercorn_plain: HypercornPeer,
) -> None:
    """The same transport mounted on an httpx and an httpx2 client: each gets
    its own library's responses, over the one shared pool."""
    import httpx
    import httpx2

    transport = AsyncTransport()
    async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as one:
        async with httpx2.AsyncClient(transport=transport, timeout=TIMEOUT) as two:
            first = await one.get(hypercorn_plain.url + "/")
            second = await two.get(hypercorn_plain.url + "/")
            assert type(first) is httpx.Response
            assert type(second) is httpx2.Response
            assert first.content == second.content == b"Hello, world!"
            (connection,) = transport.pool.connections
            assert "Request Count: 2" in repr(connection)
    assert transport.pool.connections == []


@pytest.mark.asyncio
async def test_rejects_requests_of_other_libraries() -> None:
    """Anything but an httpx/httpx2 Request is a TypeError naming its type."""
    async with AsyncTransport() as transport:
        with pytest.raises(TypeError, match=r"not aio\.models\.Request"):
            await transport.handle_async_request(  # type: ignore[call-overload]
                aio.Request("GET", "http://127.0.0.1/")
            )


# -- constructor options ------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_ssl_env")
async def test_verify_false_and_default_verification(
    lib: ModuleType, hypercorn_tls: HypercornPeer
) -> None:
    """verify=False accepts the test CA's certificate; the default (certifi)
    refuses it with a ConnectError."""
    async with client(lib, AsyncTransport(verify=False)) as http:
        response = await http.get(hypercorn_tls.url + "/")
        assert response.text == "Hello, world!"
    async with client(lib, AsyncTransport()) as http:
        with pytest.raises(
            lib.ConnectError, match="CERTIFICATE_VERIFY_FAILED"
        ) as caught:
            await http.get(hypercorn_tls.url + "/")
    assert_mapped(caught.value, lib, "ConnectError")


@pytest.mark.asyncio
async def test_verify_false_offers_h2(
    lib: ModuleType, hypercorn_h2_tls: HypercornPeer, certs_dir: Path
) -> None:
    """Contexts the transport builds get ALPN: verify=False and verify=<Path>
    negotiate HTTP/2 with http2=True, HTTP/1.1 without."""
    for verify in (False, certs_dir / "ca.pem"):
        for http2, version in ((True, "HTTP/2"), (False, "HTTP/1.1")):
            transport = AsyncTransport(verify=verify, http2=http2)
            async with client(lib, transport) as http:
                response = await http.get(hypercorn_h2_tls.url + "/")
            assert response.http_version == version


@pytest.mark.asyncio
async def test_caller_context_is_used_as_it_is(
    lib: ModuleType,
    hypercorn_h2_tls: HypercornPeer,
    ssl_context: ssl.SSLContext,
    h2_context: ssl.SSLContext,
) -> None:
    """verify=<SSLContext> is not modified: without ALPN of its own it gets
    HTTP/1.1 even with http2=True (httpcore would have set ALPN on it)."""
    async with client(lib, AsyncTransport(verify=ssl_context, http2=True)) as http:
        response = await http.get(hypercorn_h2_tls.url + "/")
    assert response.http_version == "HTTP/1.1"
    async with client(lib, AsyncTransport(verify=h2_context, http2=True)) as http:
        response = await http.get(hypercorn_h2_tls.url + "/")
    assert response.http_version == "HTTP/2"


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_ssl_env")
@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "SSL_CERT_DIR"])
async def test_trust_env_reads_ssl_cert_variables(
    lib: ModuleType,
    variable: str,
    hypercorn_tls: HypercornPeer,
    certs_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With trust_env, $SSL_CERT_FILE / $SSL_CERT_DIR replace certifi for
    verify=True; trust_env=False ignores them."""
    if variable == "SSL_CERT_FILE":
        monkeypatch.setenv(variable, str(certs_dir / "ca.pem"))
    else:  # an OpenSSL hashed directory: <subject hash>.0
        (tmp_path / _subject_hash_name(certs_dir / "ca.pem")).write_bytes(
            (certs_dir / "ca.pem").read_bytes()
        )
        monkeypatch.setenv(variable, str(tmp_path))
    async with client(lib, AsyncTransport()) as http:
        response = await http.get(hypercorn_tls.url + "/")
        assert response.status_code == 200
    async with client(lib, AsyncTransport(trust_env=False)) as http:
        with pytest.raises(lib.ConnectError):
            await http.get(hypercorn_tls.url + "/")


def _subject_hash_name(pem: Path) -> str:
    """``<openssl x509 -subject_hash>.0`` for the certificate in ``pem``."""
    import subprocess

    result = subprocess.run(
        ["openssl", "x509", "-subject_hash", "-noout", "-in", str(pem)],
        check=True,
        capture_output=True,
        text=True,
        timeout=10,
    )
    return result.stdout.strip() + ".0"


@pytest.mark.asyncio
@pytest.mark.parametrize("form", ["pair", "single_file"])
async def test_client_certificate(
    lib: ModuleType,
    form: str,
    certs_dir: Path,
    server_ssl_context: ssl.SSLContext,
    ca_file: str,
    tmp_path: Path,
) -> None:
    """cert= is loaded into the context: a server requiring a client
    certificate signed by the test CA sees ours."""
    server_ssl_context.verify_mode = ssl.CERT_REQUIRED
    server_ssl_context.load_verify_locations(certs_dir / "ca.pem")
    cert: str | tuple[str, str]
    if form == "pair":
        cert = (str(certs_dir / "server.pem"), str(certs_dir / "server.key.pem"))
    else:
        combined = tmp_path / "client.pem"
        combined.write_bytes(
            (certs_dir / "server.pem").read_bytes()
            + (certs_dir / "server.key.pem").read_bytes()
        )
        cert = str(combined)

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_head(reader)
        peer = writer.get_extra_info("peercert")
        names = [value for rdn in peer["subject"] for key, value in rdn]
        text = ",".join(names).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(text), text)
        )
        await writer.drain()

    async with scripted_server(handler, ssl=server_ssl_context) as server:
        async with client(lib, AsyncTransport(verify=ca_file, cert=cert)) as http:
            response = await http.get(f"https://localhost:{server.port}/")
    assert "wireline test server" in response.text


@pytest.mark.asyncio
async def test_unix_socket(lib: ModuleType, hypercorn_uds: HypercornPeer) -> None:
    """uds= sends every request over the Unix socket."""
    assert hypercorn_uds.uds_path is not None
    async with client(lib, AsyncTransport(uds=hypercorn_uds.uds_path)) as http:
        response = await http.get(hypercorn_uds.url + "/headers")
    info = json.loads(response.content)
    assert info["path"] == "/headers"


@pytest.mark.asyncio
async def test_limits(lib: ModuleType, hypercorn_plain: HypercornPeer) -> None:
    """Limits map onto the pool: at most max_connections open, at most
    max_keepalive_connections kept idle, idle ones expire after
    keepalive_expiry."""
    limits = lib.Limits(
        max_connections=2, max_keepalive_connections=1, keepalive_expiry=0.2
    )
    transport = AsyncTransport(limits=limits)
    seen: list[int] = []

    async def get() -> int:
        response = await http.get(hypercorn_plain.url + "/slow?delay=0.05")
        seen.append(len(transport.pool.connections))
        return int(response.status_code)

    async with client(lib, transport) as http:
        assert await asyncio.gather(*[get() for _ in range(6)]) == [200] * 6
        assert max(seen) <= 2
        (kept,) = transport.pool.connections
        await asyncio.sleep(0.4)
        await http.get(hypercorn_plain.url + "/")
        (fresh,) = transport.pool.connections
        assert fresh is not kept


@pytest.mark.asyncio
async def test_local_address_and_socket_options(
    lib: ModuleType, hypercorn_plain: HypercornPeer
) -> None:
    """local_address and socket_options reach the socket, which the
    network_stream extension exposes."""
    transport = AsyncTransport(
        local_address="127.0.0.1",
        socket_options=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)],
    )
    async with client(lib, transport) as http:
        async with http.stream("GET", hypercorn_plain.url + "/") as response:
            stream = response.extensions["network_stream"]
            sock = stream.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert stream.get_extra_info("client_addr")[0] == "127.0.0.1"
            await response.aread()


@pytest.mark.asyncio
async def test_retries(lib: ModuleType) -> None:
    """retries=N: N more connection attempts after a refused one, then the
    ConnectError."""
    events: list[str] = []

    def trace(name: str, info: dict[str, Any]) -> None:
        events.append(name)

    async with client(lib, AsyncTransport(retries=1)) as http:
        with pytest.raises(lib.ConnectError):
            await http.get(
                f"http://127.0.0.1:{closed_port()}/", extensions={"trace": trace}
            )
    assert events.count("connection.connect_tcp.failed") == 2
    assert "connection.retry.started" in events


# -- proxies ----------------------------------------------------------------


def proxy_value(lib: ModuleType, form: str, url: str) -> Any:
    """``url`` as the ``proxy=`` argument in the given form."""
    if form == "str":
        return url
    if form == "URL":
        return lib.URL(url)
    return lib.Proxy(url)


@pytest.mark.asyncio
@pytest.mark.parametrize("form", ["str", "URL", "Proxy"])
async def test_tinyproxy_forwards_http_and_tunnels_https(
    lib: ModuleType,
    form: str,
    tinyproxy: TinyproxyPeer,
    hypercorn_plain: HypercornPeer,
    hypercorn_tls: HypercornPeer,
    ca_file: str,
) -> None:
    """http:// is forwarded by tinyproxy, https:// tunnelled with CONNECT."""
    transport = AsyncTransport(
        verify=ca_file, proxy=proxy_value(lib, form, tinyproxy.url)
    )
    async with client(lib, transport) as http:
        forwarded = await http.post(hypercorn_plain.url + "/echo", content=b"plain")
        tunnelled = await http.post(hypercorn_tls.url + "/echo", content=b"secret")
        kinds = {type(c).__name__ for c in transport.pool.connections}
    assert forwarded.content == b"plain"
    assert tunnelled.content == b"secret"
    assert "AsyncTunnelHTTPConnection" in kinds


@pytest.mark.asyncio
@pytest.mark.parametrize("where", ["url", "auth"])
async def test_proxy_credentials(
    lib: ModuleType,
    where: str,
    tinyproxy_auth: TinyproxyPeer,
    hypercorn_tls: HypercornPeer,
    ca_file: str,
) -> None:
    """Credentials in the proxy URL or in Proxy(auth=) pass tinyproxy's check."""
    user, password = PROXY_CREDENTIALS
    if where == "url":
        proxy: Any = (
            f"http://{user}:{password}@{tinyproxy_auth.host}:{tinyproxy_auth.port}"
        )
    else:
        proxy = lib.Proxy(tinyproxy_auth.url, auth=PROXY_CREDENTIALS)
    async with client(lib, AsyncTransport(verify=ca_file, proxy=proxy)) as http:
        response = await http.get(hypercorn_tls.url + "/")
    assert response.text == "Hello, world!"


@pytest.mark.asyncio
async def test_proxy_407_is_a_proxy_error(
    lib: ModuleType,
    tinyproxy_auth: TinyproxyPeer,
    hypercorn_tls: HypercornPeer,
    ca_file: str,
) -> None:
    """A CONNECT refused with 407 is the library's ProxyError; aio's error,
    with the status and the challenge, is its __cause__."""
    transport = AsyncTransport(verify=ca_file, proxy=tinyproxy_auth.url)
    async with client(lib, transport) as http:
        with pytest.raises(lib.ProxyError, match=r"^407 ") as caught:
            await http.get(hypercorn_tls.url + "/")
    assert_mapped(caught.value, lib, "ProxyError")
    cause = caught.value.__cause__
    assert isinstance(cause, aio.ProxyError)
    assert cause.status == 407


@pytest.mark.asyncio
async def test_https_proxy_with_its_ssl_context_and_headers(
    lib: ModuleType,
    hypercorn_h2_tls: HypercornPeer,
    server_ssl_context: ssl.SSLContext,
    ssl_context: ssl.SSLContext,
    ca_file: str,
) -> None:
    """An https:// proxy reached with Proxy(ssl_context=...), its headers on
    the CONNECT; HTTP/2 to the origin inside the TLS-in-TLS tunnel."""
    async with proxy_server(ssl=server_ssl_context) as server:
        proxy = lib.Proxy(
            server.url, ssl_context=ssl_context, headers={"X-Proxy-Note": "hello"}
        )
        transport = AsyncTransport(verify=ca_file, http2=True, proxy=proxy)
        async with client(lib, transport) as http:
            response = await http.get(hypercorn_h2_tls.url + "/")
    assert response.text == "Hello, world!"
    assert response.http_version == "HTTP/2"
    (head,) = server.requests
    assert head.startswith(b"CONNECT 127.0.0.1:")
    assert b"\r\nX-Proxy-Note: hello\r\n" in head


@pytest.mark.asyncio
@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
@pytest.mark.parametrize("auth", [False, True])
async def test_socks5(
    lib: ModuleType,
    scheme: str,
    auth: bool,
    request: pytest.FixtureRequest,
    hypercorn_plain: HypercornPeer,
    hypercorn_tls: HypercornPeer,
    ca_file: str,
) -> None:
    """socks5:// and socks5h:// through microsocks, with credentials from the
    URL where it wants them; http:// and https:// origins."""
    peer: MicrosocksPeer = request.getfixturevalue(
        "microsocks_auth" if auth else "microsocks"
    )
    userinfo = "{}:{}@".format(*PROXY_CREDENTIALS) if auth else ""
    proxy = f"{scheme}://{userinfo}{peer.host}:{peer.port}"
    async with client(lib, AsyncTransport(verify=ca_file, proxy=proxy)) as http:
        plain = await http.get(hypercorn_plain.url + "/")
        secure = await http.get(hypercorn_tls.url + "/")
        kinds = {type(c).__name__ for c in transport_of(http).pool.connections}
    assert plain.text == secure.text == "Hello, world!"
    assert kinds == {"AsyncSocks5Connection"}


def transport_of(http: Any) -> AsyncTransport:
    """The AsyncTransport a client was built with."""
    transport = http._transport
    assert isinstance(transport, AsyncTransport)
    return transport


@pytest.mark.parametrize(
    "proxy", ["ftp://127.0.0.1:21", "ftp://user:secret@127.0.0.1:21"]
)
def test_proxy_with_unknown_scheme(proxy: str) -> None:
    """An unknown proxy scheme is a ValueError (as httpx), without the URL's
    credentials in the message."""
    with pytest.raises(ValueError, match="'ftp'") as caught:
        AsyncTransport(proxy=proxy)
    assert "secret" not in str(caught.value)


# -- errors -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_connect_error(lib: ModuleType) -> None:
    """A refused connection is the library's ConnectError."""
    async with client(lib, AsyncTransport()) as http:
        with pytest.raises(lib.ConnectError, match=r"refused|failed") as caught:
            await http.get(f"http://127.0.0.1:{closed_port()}/")
    assert_mapped(caught.value, lib, "ConnectError")


@pytest.mark.asyncio
async def test_connect_timeout(lib: ModuleType) -> None:
    """A connect that hangs past the connect timeout is ConnectTimeout."""
    timeout = lib.Timeout(TIMEOUT, connect=0.2)
    with unanswered_port() as port:
        async with client(lib, AsyncTransport(), timeout=timeout) as http:
            start = time.monotonic()
            with pytest.raises(lib.ConnectTimeout) as caught:
                await http.get(f"http://127.0.0.1:{port}/")
    assert time.monotonic() - start < 2.0
    assert_mapped(caught.value, lib, "ConnectTimeout")


@pytest.mark.asyncio
async def test_read_timeout(lib: ModuleType, hypercorn_plain: HypercornPeer) -> None:
    """A response slower than the read timeout is ReadTimeout, with the
    request that timed out."""
    timeout = lib.Timeout(TIMEOUT, read=0.2)
    async with client(lib, AsyncTransport(), timeout=timeout) as http:
        start = time.monotonic()
        with pytest.raises(lib.ReadTimeout) as caught:
            await http.get(hypercorn_plain.url + "/slow?delay=2")
    assert time.monotonic() - start < 1.5
    assert_mapped(caught.value, lib, "ReadTimeout")
    assert caught.value.request.url.path == "/slow"


@pytest.mark.asyncio
async def test_read_timeout_in_the_body(lib: ModuleType) -> None:
    """A body that stops arriving is ReadTimeout from the body iterator."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
        await writer.drain()
        await reader.read()  # until the client gives up

    timeout = lib.Timeout(TIMEOUT, read=0.2)
    async with tolerant_server(handler) as server:
        async with client(lib, AsyncTransport(), timeout=timeout) as http:
            async with http.stream("GET", server.url + "/") as response:
                received = bytearray()

                async def drain() -> None:
                    async for chunk in response.aiter_raw():
                        received.extend(chunk)

                with pytest.raises(lib.ReadTimeout) as caught:
                    await drain()
            assert received == b"hello"
            assert_mapped(caught.value, lib, "ReadTimeout")
            assert transport_of(http).pool.connections == []


@pytest.mark.asyncio
async def test_write_timeout(lib: ModuleType) -> None:
    """An upload the server never reads is WriteTimeout once the socket
    buffers are full."""

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await reader.read(1)
        await asyncio.sleep(TIMEOUT)  # never reads on; the client gives up first

    async def upload() -> AsyncIterator[bytes]:
        chunk = b"x" * 2**20
        for _ in range(256):
            yield chunk

    timeout = lib.Timeout(TIMEOUT, write=0.3)
    async with tolerant_server(stall) as server:
        async with client(lib, AsyncTransport(), timeout=timeout) as http:
            start = time.monotonic()
            with pytest.raises(lib.WriteTimeout) as caught:
                await http.post(server.url + "/", content=upload())
    assert time.monotonic() - start < 2.0
    assert_mapped(caught.value, lib, "WriteTimeout")


@pytest.mark.asyncio
async def test_pool_timeout(lib: ModuleType, hypercorn_plain: HypercornPeer) -> None:
    """No free connection within the pool timeout is PoolTimeout."""
    transport = AsyncTransport(limits=lib.Limits(max_connections=1))
    timeout = lib.Timeout(TIMEOUT, pool=0.2)
    async with client(lib, transport, timeout=timeout) as http:
        async with http.stream("GET", hypercorn_plain.url + "/"):
            with pytest.raises(lib.PoolTimeout) as caught:
                await http.get(hypercorn_plain.url + "/")
        assert_mapped(caught.value, lib, "PoolTimeout")
        response = await http.get(hypercorn_plain.url + "/")
        assert response.status_code == 200


@pytest.mark.asyncio
async def test_server_closes_without_responding(lib: ModuleType) -> None:
    """EOF before any response byte is RemoteProtocolError."""
    async with canned_server([]) as server:
        async with client(lib, AsyncTransport()) as http:
            with pytest.raises(
                lib.RemoteProtocolError,
                match=r"^Server disconnected without sending a response\.$",
            ) as caught:
                await http.get(server.url + "/")
    assert_mapped(caught.value, lib, "RemoteProtocolError")


@pytest.mark.asyncio
async def test_body_cut_short(lib: ModuleType) -> None:
    """A body shorter than its Content-Length is RemoteProtocolError raised
    while reading it, with the request set; the connection is gone."""
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10
    async with canned_server([cut]) as server:
        async with client(lib, AsyncTransport()) as http:
            with pytest.raises(lib.RemoteProtocolError) as caught:
                await http.get(server.url + "/")
            assert transport_of(http).pool.connections == []
    assert_mapped(caught.value, lib, "RemoteProtocolError")


@pytest.mark.asyncio
async def test_local_protocol_error(lib: ModuleType) -> None:
    """What httpx lets through but cannot go on the wire (a LF in a header
    value, a bad sni_hostname) is LocalProtocolError, before any connection
    (the port is closed: connecting would be a ConnectError)."""
    url = f"http://127.0.0.1:{closed_port()}/"
    async with client(lib, AsyncTransport()) as http:
        with pytest.raises(lib.LocalProtocolError) as caught:
            await http.get(url, headers={"X-Bad": "a\nb"})
        assert_mapped(caught.value, lib, "LocalProtocolError")
        with pytest.raises(lib.LocalProtocolError, match="sni_hostname"):
            await http.get(url, extensions={"sni_hostname": "bad host"})
        assert transport_of(http).pool.connections == []


@pytest.mark.asyncio
async def test_unsupported_protocol(lib: ModuleType) -> None:
    """A scheme aio does not speak is UnsupportedProtocol."""
    async with AsyncTransport() as transport:
        with pytest.raises(lib.UnsupportedProtocol, match="'ftp://'") as caught:
            await transport.handle_async_request(lib.Request("GET", "ftp://127.0.0.1/"))
    assert_mapped(caught.value, lib, "UnsupportedProtocol")


@pytest.mark.asyncio
async def test_stale_keep_alive_connection_is_retried_for_bytes_bodies(
    lib: ModuleType,
) -> None:
    """A kept-alive connection the server drops on the next request: an
    idempotent request with an in-memory body (GET, PUT content=bytes) is
    retried on a fresh connection; a streaming body cannot be replayed and
    fails with RemoteProtocolError."""
    accepted = 0

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal accepted
        accepted += 1
        served = 0
        while (head := await read_head(reader)) is not None:
            await read_body(reader, head)
            if served == 1:
                return  # the second request on a connection: close, no answer
            writer.write(OK)
            await writer.drain()
            served += 1

    async with tolerant_server(handler) as server:
        async with client(lib, AsyncTransport()) as http:
            for method, content in (("GET", None), ("PUT", b"again")):
                await http.get(server.url + "/")  # leaves a used keep-alive connection
                response = await http.request(method, server.url + "/", content=content)
                assert response.text == "ok"
            await http.get(server.url + "/")
            with pytest.raises(lib.RemoteProtocolError):
                await http.put(server.url + "/", content=body(b"streamed"))
    assert accepted == 5


@pytest.mark.asyncio
@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/2"])
async def test_closing_a_stream_early_releases_the_connection(
    lib: ModuleType, version: str, hypercorn_h2_tls: HypercornPeer, ca_file: str
) -> None:
    """Leaving client.stream() after one chunk releases the connection: an
    HTTP/1.1 one (body unread) is closed, an HTTP/2 one only resets the stream
    and carries the next request."""
    transport = AsyncTransport(verify=ca_file, http2=version == "HTTP/2")
    url = hypercorn_h2_tls.url + "/stream?chunks=50&size=10000&delay=0.01"
    async with client(lib, transport) as http:
        async with http.stream("GET", url) as response:
            async for _chunk in response.aiter_raw():
                break
        assert "Requests: 0 active" in repr(transport.pool)
        kept = transport.pool.connections
        assert len(kept) == (1 if version == "HTTP/2" else 0)
        response = await http.get(hypercorn_h2_tls.url + "/")
        assert response.http_version == version
        assert transport.pool.connections[: len(kept)] == kept


@pytest.mark.asyncio
@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/2"])
async def test_cancellation_is_not_translated(
    lib: ModuleType, version: str, hypercorn_h2_tls: HypercornPeer, ca_file: str
) -> None:
    """Cancelling a request (here by asyncio.timeout) passes through as
    cancellation and leaves the pool with no active request."""
    transport = AsyncTransport(verify=ca_file, http2=version == "HTTP/2")
    async with client(lib, transport) as http:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await http.get(hypercorn_h2_tls.url + "/slow?delay=2")
        url = hypercorn_h2_tls.url + "/stream?chunks=5&size=10&delay=1"
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await http.get(url)
        assert "Requests: 0 active, 0 queued" in repr(transport.pool)
        response = await http.get(hypercorn_h2_tls.url + "/")
        assert response.http_version == version


@pytest.mark.asyncio
async def test_aclose_closes_everything(
    lib: ModuleType,
    hypercorn_plain: HypercornPeer,
    hypercorn_h2_tls: HypercornPeer,
    ca_file: str,
) -> None:
    """client.aclose() closes the pool: idle HTTP/1.1 and HTTP/2 connections
    and one with a response still unread; no socket is left for the garbage
    collector (ResourceWarning is an error here)."""
    transport = AsyncTransport(verify=ca_file, http2=True)
    http = client(lib, transport)
    try:
        await http.get(hypercorn_h2_tls.url + "/")
        await http.get(hypercorn_plain.url + "/")
        pending = await http.send(  # on the idle HTTP/1.1 connection
            http.build_request("GET", hypercorn_plain.url + "/stream?chunks=3"),
            stream=True,
        )
        await http.get(hypercorn_plain.url + "/")  # so on a second one
        assert len(transport.pool.connections) == 3
    finally:
        await http.aclose()
    assert transport.pool.connections == []
    await pending.aclose()
    with pytest.raises(RuntimeError):
        await http.get(hypercorn_plain.url + "/")
    with pytest.raises(RuntimeError, match="pool is closed"):
        await transport.handle_async_request(lib.Request("GET", hypercorn_plain.url))
    del http, pending
    gc.collect()


# -- network_stream: Upgrade, WebSocket -------------------------------------

UPGRADED = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n"
)


@pytest.mark.asyncio
async def test_network_stream_raises_httpcore_errors(lib: ModuleType) -> None:
    """After a 101, network_stream reads and writes the raw connection; its
    errors are httpcore's (httpcore2's for httpx2), as with the library's own
    transport, chained from aio's."""
    core = importlib.import_module(
        {"httpx": "httpcore", "httpx2": "httpcore2"}[lib.__name__]
    )

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_head(reader)
        writer.write(UPGRADED + b"early")
        await writer.drain()
        data = await reader.readexactly(4)
        writer.write(data.upper())
        await writer.drain()
        await reader.read()  # silent until the client closes

    async with tolerant_server(handler) as server:
        async with client(lib, AsyncTransport()) as http:
            headers = {"Connection": "Upgrade", "Upgrade": "echo"}
            async with http.stream(
                "GET", server.url + "/", headers=headers
            ) as response:
                assert response.status_code == 101
                stream = response.extensions["network_stream"]
                assert await stream.read(100) == b"early"
                await stream.write(b"ping")
                assert await stream.read(100) == b"PING"
                assert stream.get_extra_info("server_addr")[1] == server.port
                with pytest.raises(core.ReadTimeout) as caught:
                    await stream.read(100, timeout=0.1)
                assert type(caught.value.__cause__) is aio.ReadTimeout
                await stream.aclose()


@pytest.mark.asyncio
@pytest.mark.parametrize("scheme", ["ws", "wss"])
async def test_httpx2_websocket(
    scheme: str, server_ssl_context: ssl.SSLContext, ca_file: str
) -> None:
    """httpx2's client.websocket() runs over this transport's network_stream."""
    import httpx2
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(connection: ServerConnection) -> None:
        async for message in connection:
            await connection.send(message)

    tls = server_ssl_context if scheme == "wss" else None
    async with serve(echo, "127.0.0.1", 0, ssl=tls) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        transport = AsyncTransport(verify=ca_file)
        async with httpx2.AsyncClient(transport=transport, timeout=TIMEOUT) as http:
            async with http.websocket(f"{scheme}://127.0.0.1:{port}/") as ws:
                await ws.send_text("hello")
                assert await ws.receive_text() == "hello"
                await ws.send_bytes(b"\x00\x01")
                assert await ws.receive_bytes() == b"\x00\x01"
            assert "Requests: 0 active" in repr(transport.pool)


@pytest.mark.asyncio
async def test_httpx2_websocket_reset_like_the_default_transport() -> None:
    """A WebSocket server that resets the connection: the session fails the
    same way over this transport as over httpx2's own (no aio error leaks)."""
    import httpx2
    from websockets.asyncio.server import ServerConnection, serve

    async def reset(connection: ServerConnection) -> None:
        await connection.recv()
        sock = connection.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.transport.abort()

    async def session(http: Any) -> None:
        async with http.websocket(
            f"ws://127.0.0.1:{port}/", keepalive_ping_interval_seconds=None
        ) as ws:
            await ws.send_text("hello")
            await asyncio.sleep(0.2)  # the reset arrives
            await ws.send_text("again")

    async def failure(transport: Any) -> list[str]:
        async with httpx2.AsyncClient(transport=transport, timeout=TIMEOUT) as http:
            with pytest.raises(BaseExceptionGroup) as caught:
                await session(http)
        return [type(exc).__qualname__ for exc in caught.value.exceptions]

    async with serve(reset, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        ours = await failure(AsyncTransport())
        theirs = await failure(httpx2.AsyncHTTPTransport())
    assert ours == theirs


# -- every aio error, in every phase ----------------------------------------

ERROR_NAMES = (
    "ConnectTimeout",
    "ReadTimeout",
    "WriteTimeout",
    "PoolTimeout",
    "TimeoutException",
    "ConnectError",
    "ReadError",
    "WriteError",
    "NetworkError",
    "ProxyError",
    "UnsupportedProtocol",
    "LocalProtocolError",
    "RemoteProtocolError",
    "ProtocolError",
)


class FailingStream:
    """A response body that yields one chunk, then raises ``body_error``;
    its ``aclose`` raises ``close_error``."""

    def __init__(
        self, body_error: Exception | None, close_error: Exception | None
    ) -> None:
        self.body_error = body_error
        self.close_error = close_error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"partial"
        if self.body_error is not None:
            raise self.body_error

    async def aclose(self) -> None:
        if self.close_error is not None:
            raise self.close_error


@pytest.mark.asyncio
@pytest.mark.parametrize("phase", ["send", "body", "close"])
@pytest.mark.parametrize("name", ERROR_NAMES)
async def test_every_aio_error_is_mapped(
    lib: ModuleType, name: str, phase: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each aio error, raised while sending, while reading the body or when
    closing it, becomes the library's error of the same name: same message,
    chained from aio's, with the request set."""
    error = getattr(aio, name)(f"{name} in {phase}")
    transport = AsyncTransport()

    async def handle(request: aio.Request) -> aio.Response:
        if phase == "send":
            raise error
        stream = FailingStream(
            error if phase == "body" else None, error if phase == "close" else None
        )
        return aio.Response(200, content=stream)

    monkeypatch.setattr(transport.pool, "handle_async_request", handle)
    request = lib.Request("GET", "http://127.0.0.1/")
    expected = getattr(lib, name)
    if phase == "send":
        with pytest.raises(expected) as caught:
            await transport.handle_async_request(request)
    else:
        response = await transport.handle_async_request(request)
        if phase == "body":
            with pytest.raises(expected) as caught:
                await response.aread()
            await response.aclose()
        else:  # without reading: aread() closes the stream once read
            with pytest.raises(expected) as caught:
                await response.aclose()
    assert type(caught.value) is getattr(lib, name)
    assert caught.value.__cause__ is error
    assert str(caught.value) == f"{name} in {phase}"
    assert caught.value.request is request
    await transport.aclose()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "error",
    [RuntimeError("pool closed"), ValueError("x"), aio.ConnectionNotAvailable()],
)
async def test_other_errors_pass_through(
    lib: ModuleType, error: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Errors that are not aio's transport errors are not translated."""
    transport = AsyncTransport()

    async def handle(request: aio.Request) -> aio.Response:
        raise error

    monkeypatch.setattr(transport.pool, "handle_async_request", handle)
    with pytest.raises(type(error)) as caught:
        await transport.handle_async_request(lib.Request("GET", "http://127.0.0.1/"))
    assert caught.value is error
    await transport.aclose()


# -- packaging: either library alone ----------------------------------------

SCRIPT = """
import asyncio, importlib, sys

mode = sys.argv[1]
blocked = {"httpx-only": "httpx2", "httpx2-only": "httpx"}.get(mode)
if blocked:
    sys.modules[blocked] = None  # `import blocked` now raises ImportError
from aio.httpx import AsyncTransport
assert sys.modules.get("httpx") is sys.modules.get("httpx2") is None
if mode == "alias":
    import httpx2
    httpx2.alias_httpx()  # refused if httpx had been imported already
    import httpx
    assert httpx is httpx2
    lib = httpx
else:
    lib = importlib.import_module(mode.removesuffix("-only"))

async def main():
    async def serve(reader, writer):
        head = await reader.readuntil(b"\\r\\n\\r\\n")
        if b"/missing" not in head:  # else close without answering
            writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        async with lib.AsyncClient(transport=AsyncTransport(), timeout=5) as http:
            response = await http.get(f"http://127.0.0.1:{port}/")
            try:
                await http.get(f"http://127.0.0.1:{port}/missing")
            except lib.RemoteProtocolError as exc:
                error = type(exc).__module__
    print(type(response).__module__, response.text, error, blocked in sys.modules)

asyncio.run(main())
"""


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("httpx-only", "httpx ok httpx True"),
        ("httpx2-only", "httpx2 ok httpx2 True"),
        ("alias", "httpx2 ok httpx2 False"),
    ],
)
async def test_works_with_either_library_alone(mode: str, expected: str) -> None:
    """Importing aio.httpx imports neither library; with the other one
    unimportable each works alone, and httpx2.alias_httpx() still works
    after the import."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "error",
        "-c",
        SCRIPT,
        mode,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(20):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode().strip() == expected
