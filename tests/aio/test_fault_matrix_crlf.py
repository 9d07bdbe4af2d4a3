"""The fault matrix, part CRLF injection: every input that reaches the wire.

An injection attempt (CR, LF, NUL, CRLF-space, a space where it would split the
request line) in the method, URL path, query, host, port text or scheme, header
names and values, ``Host``, h2 pseudo-header names, the ``target`` and
``sni_hostname`` extensions, proxy credentials and headers, or the CONNECT
authority is refused, through ``pool.request()``, ``pool.stream()`` and the
``aio.Request`` constructor, on HTTP/1.1 and HTTP/2 (prior knowledge), with
``LocalProtocolError`` (``UnsupportedProtocol`` for a scheme, as documented in
docs/exceptions.md) and a message naming the rule. The server accepts no
connection and receives zero bytes, the pool is empty, and the next clean
request on the same pool works. A ``Request`` or ``Proxy`` mutated after its
checks is checked again when serialised: not a byte of it is sent (the request
may cost the connection it was given). Request trailers are not tested: the
API has no way to send any.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

import aio
from tests.aio.faults import assert_pool_settled
from tests.peers.h2_server import H2Server, h2_server
from tests.peers.proxy_server import proxy_server
from tests.peers.scripted import ScriptedServer, canned_server

HTTP_VERSION = {"http1": b"HTTP/1.1", "http2": b"HTTP/2"}
PROTOCOLS = ("http1", "http2")
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
COVERED_SNI = "sni.wireline.test"  # a name on certs/server.pem
SLOW = 10.0  # every timeout: generous, a loaded machine must pass


# -- inputs of a request ------------------------------------------------------

UrlFactory = Callable[[int], "aio.URL | str | bytes"]


def at(path: str, scheme: str = "http") -> UrlFactory:
    """A URL to 127.0.0.1 on the test server's port, ending in ``path``."""
    return lambda port: f"{scheme}://127.0.0.1:{port}{path}"


def parts(**fields: Any) -> UrlFactory:
    """An ``aio.URL`` built from parts, built when the request is made."""

    def make(port: int) -> aio.URL:
        merged: dict[str, Any] = {
            "scheme": b"http",
            "host": b"127.0.0.1",
            "port": port,
            "target": b"/",
        }
        merged.update(fields)
        return aio.URL(**merged)

    return make


ROOT = at("/")


@dataclass(frozen=True)
class Injection:
    """A request with an injection attempt in one input, and the refusal due."""

    match: str
    method: str | bytes = "GET"
    url: UrlFactory = ROOT
    headers: Any = None
    extensions: dict[str, Any] = field(default_factory=dict)
    error: type[Exception] = aio.LocalProtocolError
    in_request: bool = True  # the aio.Request constructor refuses it too


EVIL = "X-Evil: 1"
METHOD = "invalid request method"
TARGET = "invalid request target"
URL_CTL = "TAB, CR and LF are not allowed"
HOST = "invalid URL host"
PORT = "invalid URL port"
NAME = "invalid header name"
VALUE = "invalid value for header"
SNI = "is not a valid host name"


def _value(value: str | bytes, name: str | bytes = "X-Id") -> Injection:
    return Injection(VALUE, headers=[(name, value)])


def _name(name: str | bytes) -> Injection:
    return Injection(NAME, headers=[(name, "1")])


INJECTIONS = [
    pytest.param(Injection(METHOD, method=f"GET\r\n{EVIL}"), id="method-crlf"),
    pytest.param(Injection(METHOD, method="GET\n"), id="method-lf"),
    pytest.param(Injection(METHOD, method="GET\r"), id="method-cr"),
    pytest.param(Injection(METHOD, method="GET\x00"), id="method-nul"),
    pytest.param(Injection(METHOD, method=b"GET\r\n "), id="method-crlf-space"),
    pytest.param(
        Injection(METHOD, method="GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\nGET"),
        id="method-whole-request",
    ),
    pytest.param(Injection(URL_CTL, url=at(f"/a\r\n{EVIL}")), id="path-crlf"),
    pytest.param(Injection(URL_CTL, url=at("/a\nb")), id="path-lf"),
    pytest.param(Injection(URL_CTL, url=at("/a\rb")), id="path-cr"),
    pytest.param(Injection(TARGET, url=at("/a\x00b")), id="path-nul"),
    pytest.param(Injection(URL_CTL, url=at("/a\r\n b")), id="path-crlf-space"),
    pytest.param(Injection(TARGET, url=at("/a HTTP/1.1")), id="path-space"),
    pytest.param(Injection(URL_CTL, url=at(f"/?q=1\r\n{EVIL}")), id="query-crlf"),
    pytest.param(Injection(TARGET, url=at("/?q=\x00")), id="query-nul"),
    pytest.param(Injection(TARGET, url=at("/?q=a b")), id="query-space"),
    pytest.param(
        Injection(URL_CTL, url=lambda port: f"http://127.0.0.1:{port}/\r\n".encode()),
        id="url-bytes-crlf",
    ),
    pytest.param(
        Injection(TARGET, url=parts(target=f"/\r\n{EVIL}".encode())),
        id="url-parts-target-crlf",
    ),
    pytest.param(
        Injection(TARGET, extensions={"target": f"/\r\n{EVIL}".encode()}),
        id="target-extension-crlf",
    ),
    pytest.param(
        Injection(TARGET, extensions={"target": b"/\x00"}),
        id="target-extension-nul",
    ),
    pytest.param(
        Injection(URL_CTL, url=lambda port: f"http://127.0.0.1\r\n{EVIL}:{port}/"),
        id="host-crlf",
    ),
    pytest.param(
        Injection(HOST, url=lambda port: f"http://127.0.0.1\x00.evil:{port}/"),
        id="host-nul",
    ),
    pytest.param(
        Injection(HOST, url=lambda port: f"http://127.0.0.1 .evil:{port}/"),
        id="host-space",
    ),
    pytest.param(
        Injection(HOST, url=parts(host=f"127.0.0.1\r\n{EVIL}".encode())),
        id="url-parts-host-crlf",
    ),
    pytest.param(
        Injection(VALUE, headers={"Host": f"127.0.0.1\r\n{EVIL}"}),
        id="host-header-crlf",
    ),
    pytest.param(
        Injection(URL_CTL, url=lambda port: f"http://127.0.0.1:{port}\r\n{EVIL}/"),
        id="port-crlf",
    ),
    pytest.param(
        Injection(PORT, url=lambda port: f"http://127.0.0.1:{port}\x00/"),
        id="port-nul",
    ),
    pytest.param(
        Injection(PORT, url=lambda port: f"http://127.0.0.1: {port}/"),
        id="port-space",
    ),
    pytest.param(
        Injection(PORT, url=lambda port: f"http://127.0.0.1:+{port}/"),
        id="port-sign",
    ),
    pytest.param(
        Injection(PORT, url=parts(port=65536 + 80)),
        id="url-parts-port-out-of-range",
    ),
    pytest.param(
        Injection(
            "unsupported protocol",
            url=parts(scheme=f"http\r\n{EVIL}".encode()),
            error=aio.UnsupportedProtocol,
            in_request=False,  # documented: the scheme is checked when sent
        ),
        id="url-parts-scheme-crlf",
    ),
    pytest.param(_name(f"X-Id\r\n{EVIL}"), id="header-name-crlf"),
    pytest.param(_name("X-Id\n"), id="header-name-lf"),
    pytest.param(_name("X-Id\r"), id="header-name-cr"),
    pytest.param(_name("X-Id\x00"), id="header-name-nul"),
    pytest.param(_name("X Id"), id="header-name-space"),
    pytest.param(_name("X-Id:"), id="header-name-colon"),
    pytest.param(_name(""), id="header-name-empty"),
    pytest.param(_name(b"X-Id\r\n "), id="header-name-bytes-crlf-space"),
    pytest.param(_name(":path"), id="h2-pseudo-header-path"),
    pytest.param(_name(":authority"), id="h2-pseudo-header-authority"),
    pytest.param(_name(":method"), id="h2-pseudo-header-method"),
    pytest.param(_value(f"1\r\n{EVIL}"), id="header-value-crlf"),
    pytest.param(_value("1\nX-Evil: 1"), id="header-value-lf"),
    pytest.param(_value("1\rX-Evil: 1"), id="header-value-cr"),
    pytest.param(_value("1\x00"), id="header-value-nul"),
    pytest.param(_value("1\r\n X-Evil"), id="header-value-crlf-space"),
    pytest.param(
        _value(f"1\r\n{EVIL}".encode(), b"X-Id"), id="header-value-bytes-crlf"
    ),
    pytest.param(
        Injection(VALUE, headers={"X-Id": f"1\r\n{EVIL}"}),
        id="header-value-mapping-crlf",
    ),
    pytest.param(
        Injection(
            SNI,
            url=at("/", "https"),
            extensions={"sni_hostname": f"{COVERED_SNI}\r\n{EVIL}"},
        ),
        id="sni-hostname-crlf",
    ),
    pytest.param(
        Injection(
            SNI, url=at("/", "https"), extensions={"sni_hostname": "sni\x00.test"}
        ),
        id="sni-hostname-nul",
    ),
    pytest.param(
        Injection(
            SNI, url=at("/", "https"), extensions={"sni_hostname": b"sni.test\r\n "}
        ),
        id="sni-hostname-bytes-crlf-space",
    ),
]


@contextlib.asynccontextmanager
async def tripwire(protocol: str) -> AsyncIterator[ScriptedServer | H2Server]:
    """A working clear-text origin (h2 by prior knowledge for ``http2``) that
    records every connection it accepts and everything it receives."""
    if protocol == "http1":
        async with canned_server([OK], close_after=False) as server:
            yield server
    else:
        async with h2_server() as h2:
            yield h2


def received_requests(server: ScriptedServer | H2Server) -> list[bytes]:
    """What each request carried: raw HTTP/1.1 bytes, or h2 header blocks."""
    if isinstance(server, ScriptedServer):
        return [data for data in server.received if data]
    return [
        b"".join(name + b": " + value + b"\n" for name, value in headers)
        for _, headers in server.requests
    ]


def pool_for(protocol: str) -> aio.AsyncConnectionPool:
    """HTTP/1.1 only, or HTTP/2 only (prior knowledge in clear text)."""
    if protocol == "http1":
        return aio.AsyncConnectionPool()
    return aio.AsyncConnectionPool(http1=False, http2=True)


async def send(
    pool: aio.AsyncConnectionPool, entry: str, injection: Injection, port: int
) -> None:
    """Send the injection through ``pool.request()`` or ``pool.stream()``."""
    url = injection.url(port)
    extensions = {"timeout": {"connect": SLOW, "read": SLOW}, **injection.extensions}
    if entry == "request":
        await pool.request(
            injection.method, url, headers=injection.headers, extensions=extensions
        )
        return
    async with pool.stream(
        injection.method, url, headers=injection.headers, extensions=extensions
    ) as response:
        await response.aread()


async def assert_clean_request_works(
    pool: aio.AsyncConnectionPool, server: ScriptedServer | H2Server, protocol: str
) -> None:
    """The next request on ``pool`` succeeds, on the only connection the server
    ever accepted (connections are accepted in order, so a stray connect made for
    the refused request would have been counted first), and nothing injected
    ever reached the server."""
    response = await pool.request(
        "GET",
        f"http://127.0.0.1:{server.port}/after",
        extensions={"timeout": {"connect": SLOW, "read": SLOW}},
    )
    assert response.status == 200
    assert response.extensions["http_version"] == HTTP_VERSION[protocol]
    assert server.connections == 1
    (seen,) = received_requests(server)
    assert b"/after" in seen
    assert b"evil" not in seen.lower()
    assert_pool_settled(pool, idle=1)


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("entry", ["request", "stream"])
@pytest.mark.parametrize("injection", INJECTIONS)
async def test_crlf_injection_is_refused_before_connecting(
    injection: Injection, entry: str, protocol: str
) -> None:
    """An input that could split the request is refused before any connection
    is attempted: no connection accepted, zero bytes received, an empty pool,
    and the next clean request on the same pool works."""
    async with tripwire(protocol) as server, pool_for(protocol) as pool:
        with pytest.raises(injection.error, match=injection.match) as caught:
            await send(pool, entry, injection, server.port)
        assert type(caught.value) is injection.error
        assert server.connections == 0
        assert received_requests(server) == []
        assert_pool_settled(pool, idle=0)
        await assert_clean_request_works(pool, server, protocol)


@pytest.mark.parametrize(
    "injection", [param for param in INJECTIONS if param.values[0].in_request]
)
def test_crlf_injection_is_refused_by_the_request_constructor(
    injection: Injection,
) -> None:
    """``aio.Request(...)`` refuses the same inputs when it is built (all but
    the scheme, which is documented to be checked when the request is sent)."""
    with pytest.raises(injection.error, match=injection.match) as caught:
        aio.Request(
            injection.method,
            injection.url(443),
            headers=injection.headers,
            extensions=injection.extensions,
        )
    assert type(caught.value) is injection.error


def _append_header(name: bytes, value: bytes) -> Callable[[aio.Request], None]:
    return lambda request: request.headers.append((name, value))


def _set_method(request: aio.Request) -> None:
    request.method = b"GET\r\nX-Evil: 1"


def _set_target(request: aio.Request) -> None:
    request.url.target = b"/\r\nX-Evil: 1"


def _set_sni(request: aio.Request) -> None:
    request.extensions["sni_hostname"] = "evil\r\nX-Evil: 1"


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("mutate", "match", "may_connect"),
    [
        pytest.param(
            _append_header(b"X-Id", b"1\r\nX-Evil: 1"),
            "invalid value for header",
            True,
            id="value",
        ),
        pytest.param(
            _append_header(b"X-Evil\r\nX-Id", b"1"),
            "invalid header name",
            True,
            id="name",
        ),
        pytest.param(
            _append_header(b":path", b"/evil"),
            r"invalid header name|pseudo-header fields are derived",
            True,
            id="pseudo-header",
        ),
        pytest.param(
            _set_method,
            r"Illegal method characters|invalid request method",
            True,
            id="method",
        ),
        pytest.param(
            _set_target,
            r"Illegal target characters|invalid request target",
            True,
            id="target",
        ),
        pytest.param(_set_sni, SNI, False, id="sni-hostname"),
    ],
)
async def test_crlf_injected_after_the_request_was_built(
    mutate: Callable[[aio.Request], None], match: str, may_connect: bool, protocol: str
) -> None:
    """A ``Request`` mutated after validation is checked again when serialised
    (h11 for HTTP/1.1, the sans-IO core for HTTP/2): LocalProtocolError and not
    one byte of the request sent. The check comes once a connection is made
    (only ``sni_hostname`` is checked again before): HTTP/2 keeps it for the
    next request, HTTP/1.1 discards it."""
    async with tripwire(protocol) as server, pool_for(protocol) as pool:
        url = f"http://127.0.0.1:{server.port}/"
        request = aio.Request(
            "GET", url, headers=[("Host", f"127.0.0.1:{server.port}")]
        )
        mutate(request)
        with pytest.raises(aio.LocalProtocolError, match=match) as caught:
            await pool.handle_async_request(request)
        assert type(caught.value) is aio.LocalProtocolError
        # HTTP/2 checks the head before h2 encodes any of it, so its connection
        # lost nothing and stays; HTTP/1.1's h11 is left in ERROR, so that
        # connection is discarded (with not a byte of the request written).
        kept = may_connect and protocol == "http2"
        assert_pool_settled(pool, idle=1 if kept else 0)
        response = await pool.request("GET", f"http://127.0.0.1:{server.port}/after")
        assert response.status == 200
        # The refused request cost at most the connection it was given (and
        # HTTP/2 carried this one on it)...
        assert server.connections <= (1 if kept or not may_connect else 2)
        # ...and not one byte of it: the only request received is the clean one.
        (seen,) = received_requests(server)
        assert b"/after" in seen
        assert b"evil" not in seen.lower()
        assert_pool_settled(pool, idle=1)


# -- CRLF injection into proxy inputs ----------------------------------------------


CREDENTIALS = "must not contain control characters such as CR, LF or NUL"

PROXY_CONSTRUCTIONS = [
    pytest.param(
        lambda url: aio.Proxy(url, auth=("wi\r\nre", "line")),
        CREDENTIALS,
        id="proxy-auth-crlf",
    ),
    pytest.param(
        lambda url: aio.Proxy(url, auth=("wire", "li\x00ne")),
        CREDENTIALS,
        id="proxy-auth-nul",
    ),
    pytest.param(
        lambda url: aio.Proxy(url, headers={"X-Id": f"1\r\n{EVIL}"}),
        VALUE,
        id="proxy-header-value-crlf",
    ),
    pytest.param(
        lambda url: aio.Proxy(url, headers=[(f"X-Id\r\n{EVIL}", "1")]),
        NAME,
        id="proxy-header-name-crlf",
    ),
    pytest.param(
        lambda url: aio.AsyncHTTPProxy(url, proxy_headers={"X-Id": "1\n\x00"}),
        VALUE,
        id="http-proxy-pool-header-value",
    ),
    pytest.param(
        lambda url: aio.AsyncHTTPProxy(url, proxy_auth=("wire\r\n", "line")),
        CREDENTIALS,
        id="http-proxy-pool-auth-crlf",
    ),
    pytest.param(
        lambda url: aio.Proxy(
            url.replace("http://", "socks5://"), auth=("wire", "line\r\n")
        ),
        CREDENTIALS,
        id="socks-auth-crlf",
    ),
    pytest.param(
        lambda url: aio.AsyncSOCKSProxy(
            url.replace("http://", "socks5h://"), proxy_auth=("wi\x00re", "line")
        ),
        CREDENTIALS,
        id="socks-pool-auth-nul",
    ),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("build", "match"), PROXY_CONSTRUCTIONS)
async def test_crlf_in_proxy_configuration_is_refused_before_connecting(
    build: Callable[[str], object], match: str
) -> None:
    """Proxy credentials and headers are checked when the proxy is configured:
    LocalProtocolError, before any pool exists to connect anywhere."""
    async with proxy_server() as proxy:
        with pytest.raises(aio.LocalProtocolError, match=match) as caught:
            build(proxy.url)
        assert type(caught.value) is aio.LocalProtocolError
        assert proxy.server.connections == 0


PROXIED_INJECTIONS = [
    pytest.param(
        Injection(URL_CTL, url=lambda port: f"https://origin.test\r\n{EVIL}/"),
        id="connect-authority-crlf",
    ),
    pytest.param(
        Injection(HOST, url=lambda port: "https://origin.test\x00.evil:443/"),
        id="connect-authority-nul",
    ),
    pytest.param(
        Injection(HOST, url=parts(scheme=b"https", host=b"origin.test\r\n", port=443)),
        id="connect-authority-url-parts",
    ),
    pytest.param(
        Injection(
            TARGET,
            method="CONNECT",
            extensions={"target": f"origin.test:443\r\n{EVIL}".encode()},
        ),
        id="connect-target-extension",
    ),
    pytest.param(
        Injection(
            SNI,
            url=at("/", "https"),
            extensions={"sni_hostname": f"{COVERED_SNI}\r\n{EVIL}"},
        ),
        id="tunnel-sni-hostname-crlf",
    ),
    pytest.param(_value(f"1\r\n{EVIL}"), id="forwarded-header-value-crlf"),
    pytest.param(Injection(METHOD, method=f"GET\r\n{EVIL}"), id="forwarded-method"),
    pytest.param(Injection(URL_CTL, url=at(f"/\r\n{EVIL}")), id="forwarded-path"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("injection", PROXIED_INJECTIONS)
async def test_crlf_through_a_proxy_is_refused_before_connecting(
    injection: Injection,
) -> None:
    """Through an HTTP proxy (CONNECT or forwarding), an injection attempt never
    reaches the proxy; the pool stays empty and then forwards a clean request."""
    async with (
        canned_server([OK]) as origin,
        proxy_server() as proxy,
        aio.AsyncConnectionPool(proxy=aio.Proxy(proxy.url)) as pool,
    ):
        with pytest.raises(injection.error, match=injection.match) as caught:
            await send(pool, "request", injection, origin.port)
        assert type(caught.value) is injection.error
        assert proxy.server.connections == 0
        assert proxy.requests == []
        assert_pool_settled(pool, idle=0)

        response = await pool.request("GET", origin.url + "/after")
        assert response.status == 200
        assert proxy.server.connections == 1  # accepted in order: no stray one
        (head,) = proxy.requests
        assert head.startswith(b"GET http://127.0.0.1:")
        assert b"evil" not in head.lower()
        assert_pool_settled(pool, idle=1)


@pytest.mark.asyncio
@pytest.mark.parametrize("scheme", ["http", "https"], ids=["forwarded", "tunnel"])
async def test_crlf_in_proxy_headers_mutated_after_configuration(
    scheme: str, server_ssl_context: ssl.SSLContext, ssl_context: ssl.SSLContext
) -> None:
    """``Proxy.headers`` edited after the checks is checked again before the
    forwarded request or the CONNECT is written: not one byte reaches the
    proxy, and once the header is gone the same pool works."""
    context = server_ssl_context if scheme == "https" else None
    async with (
        canned_server([OK], ssl=context) as origin,
        proxy_server() as proxy_peer,
    ):
        proxy = aio.Proxy(proxy_peer.url)
        proxy.headers.append((b"X-Id", f"1\r\n{EVIL}".encode()))
        async with aio.AsyncConnectionPool(
            proxy=proxy, ssl_context=ssl_context
        ) as pool:
            with pytest.raises(aio.LocalProtocolError, match=VALUE) as caught:
                await pool.request("GET", origin.url + "/")
            assert type(caught.value) is aio.LocalProtocolError
            assert proxy_peer.requests == []
            assert_pool_settled(pool, idle=0)

            proxy.headers.pop()
            response = await pool.request("GET", origin.url + "/after")
            assert response.status == 200
            (head,) = proxy_peer.requests
            assert b"evil" not in head.lower()
            assert_pool_settled(pool, idle=1)
