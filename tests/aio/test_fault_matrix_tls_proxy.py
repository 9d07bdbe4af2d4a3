"""The fault matrix, part TLS and proxies.

Each scenario is one parametrised test (asyncio and uvloop) asserting the exact
httpcore exception class, a message fragment naming the rule, then the pool's
state with ``assert_pool_settled``, and that the next request on the same pool
succeeds where the fault was the target's. CRLF injection, the third part of
this helper's share, is in ``test_fault_matrix_crlf.py``.

* **TLS handshake faults**, over HTTP/1.1 and HTTP/2 (ALPN): an expired
  certificate, one from an unknown CA, a URL host or ``sni_hostname`` the
  certificate does not cover, a plain-text server on the TLS port (hypercorn, or a
  server that speaks first), a server that hangs up on the ClientHello, a silent
  one under a connect timeout, a TLS 1.3-only server against a client capped at
  TLS 1.2: ``ConnectError`` (``ConnectTimeout`` for the silent one), an empty pool,
  and the next request to a good origin on the same pool works. An
  ``sni_hostname`` that the certificate covers is accepted even when the URL host
  is not covered.
* **Proxy faults**, in one table: the proxy refuses the connection; CONNECT
  answered 407, 403, 500 or 502; the proxy closes mid-CONNECT or stays silent;
  SOCKS5 authentication refused or the target unreachable; the proxy's or the
  origin's certificate untrusted; a forwarding proxy that hangs up or stays
  silent. ``tests/aio/test_proxy.py`` checks these messages in detail; this adds
  the pool state after every one, and recovery where the fault was the target's.

Peers: scripted TLS servers (HTTP/1.1) and ``h2_server`` (HTTP/2) with the
certificates in ``certs/`` plus two made here with trustme, hypercorn,
tinyproxy, microsocks and the in-process proxy of ``tests/peers/proxy_server.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

import aio
from tests.aio.faults import assert_pool_settled
from tests.peers.h2_server import h2_server
from tests.peers.hypercorn_server import HypercornPeer
from tests.peers.microsocks import MicrosocksPeer
from tests.peers.proxy_server import Mode, proxy_server
from tests.peers.scripted import canned_server, tolerant_server
from tests.peers.tinyproxy import TinyproxyPeer

PROTOCOLS = ("http1", "http2")
ALPN: dict[str, list[str]] = {"http1": ["http/1.1"], "http2": ["h2", "http/1.1"]}
HTTP_VERSION = {"http1": b"HTTP/1.1", "http2": b"HTTP/2"}
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
ELSEWHERE = "elsewhere.wireline.test"  # the only name on the "elsewhere" leaf
COVERED_SNI = "sni.wireline.test"  # on certs/server.pem, never a URL host
UNCOVERED_SNI = "wrong.wireline.test"  # on no certificate
FAST = 0.3  # connect/read timeout where a silent peer is the fault
SLOW = 10.0  # every other timeout: generous, a loaded machine must pass

# OpenSSL's X509_V_ERR_* codes, as ssl.SSLCertVerificationError.verify_code.
CERT_HAS_EXPIRED = 10
UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
HOSTNAME_MISMATCH = 62
IP_ADDRESS_MISMATCH = 64

CertFiles = tuple[Path, Path]  # certificate chain, private key


# -- TLS material and peers -------------------------------------------------


@dataclass(frozen=True)
class TLSMaterial:
    """The certificates the matrix serves, and the extra CA clients trust."""

    matrix_ca: Path  # trusted next to certs/ca.pem
    certs: dict[str, CertFiles]  # good, expired, elsewhere, rogue


@pytest.fixture(scope="module")
def tls(certs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    """certs/ plus two trustme leaves: ``elsewhere`` (only ELSEWHERE, signed by a
    CA clients trust) and ``rogue`` (the loopback names, signed by a CA nobody
    trusts)."""
    folder = tmp_path_factory.mktemp("tls-matrix")
    matrix_ca = trustme.CA(organization_name="wireline matrix CA")
    rogue_ca = trustme.CA(organization_name="wireline rogue CA")
    matrix_ca.cert_pem.write_to_path(str(folder / "matrix-ca.pem"))
    leaves = {
        "elsewhere": matrix_ca.issue_cert(ELSEWHERE),
        "rogue": rogue_ca.issue_cert("localhost", "127.0.0.1", "::1"),
    }
    certs = {
        "good": (certs_dir / "server.pem", certs_dir / "server.key.pem"),
        "expired": (certs_dir / "expired.pem", certs_dir / "expired.key.pem"),
    }
    for name, leaf in leaves.items():
        chain, key = folder / f"{name}.pem", folder / f"{name}.key.pem"
        chain.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(key))
        certs[name] = (chain, key)
    return TLSMaterial(matrix_ca=folder / "matrix-ca.pem", certs=certs)


def server_context(files: CertFiles, *, tls13_only: bool = False) -> ssl.SSLContext:
    """A server context presenting ``files``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*files)
    if tls13_only:
        context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


def client_context(
    certs_dir: Path, tls: TLSMaterial, protocol: str, *, max_tls12: bool = False
) -> ssl.SSLContext:
    """A client context trusting certs/ca.pem and the matrix CA, offering ALPN
    for ``protocol``."""
    context = ssl.create_default_context(cafile=certs_dir / "ca.pem")
    context.load_verify_locations(tls.matrix_ca)
    context.set_alpn_protocols(ALPN[protocol])
    if max_tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


def record_sni(context: ssl.SSLContext) -> list[str | None]:
    """Make ``context`` record the SNI name of every handshake it serves."""
    names: list[str | None] = []

    def callback(
        sslobj: ssl.SSLObject, name: str | None, context: ssl.SSLContext
    ) -> None:
        names.append(name)

    context.sni_callback = callback  # type: ignore[assignment]
    return names


@contextlib.asynccontextmanager
async def tls_origin(
    protocol: str, context: ssl.SSLContext
) -> AsyncIterator[tuple[int, list[str | None]]]:
    """A TLS origin answering 200: scripted HTTP/1.1 (keep-alive) or h2_server.

    Yields its port and the SNI names its handshakes saw.
    """
    names = record_sni(context)
    if protocol == "http1":
        async with canned_server([OK] * 8, close_after=False, ssl=context) as srv:
            yield srv.port, names
    else:
        async with h2_server(tls=context) as h2:
            yield h2.port, names


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await reader.read(65536):  # takes the ClientHello, never answers
        pass


async def _speaks_first(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    await _silent(reader, writer)


async def _hangs_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readexactly(5)  # the ClientHello's record header, then close


SCRIPTED_FAULTS = {
    "silent": _silent,
    "speaks-first": _speaks_first,
    "hangs-up": _hangs_up,
}


@contextlib.asynccontextmanager
async def faulty_tls_server(
    kind: str, protocol: str, tls: TLSMaterial, request: pytest.FixtureRequest
) -> AsyncIterator[int]:
    """The port of a server that fails the handshake in the way ``kind`` names:
    a certificate name, ``tls13-only``, ``hypercorn-plain`` or a scripted one."""
    if kind == "hypercorn-plain":
        peer: HypercornPeer = request.getfixturevalue("hypercorn_plain")
        yield peer.port
    elif kind in SCRIPTED_FAULTS:
        async with tolerant_server(SCRIPTED_FAULTS[kind]) as server:
            yield server.port
    else:
        tls13_only = kind == "tls13-only"
        files = tls.certs["good" if tls13_only else kind]
        context = server_context(files, tls13_only=tls13_only)
        async with tls_origin(protocol, context) as (port, _):
            yield port


# -- TLS: the matrix ----------------------------------------------------------


@dataclass(frozen=True)
class TLSFault:
    """A handshake that must fail: who answers, how the client asks, what it gets."""

    server: str
    error: type[Exception]
    match: str
    host: str = "127.0.0.1"
    sni: str | None = None
    verify_code: int | None = None
    max_tls12: bool = False
    connect_timeout: float = SLOW


TLS_FAULTS = [
    pytest.param(
        TLSFault(
            "expired",
            aio.ConnectError,
            r"^TLS handshake failed: .*certificate has expired",
            verify_code=CERT_HAS_EXPIRED,
        ),
        id="expired-certificate",
    ),
    pytest.param(
        TLSFault(
            "rogue",
            aio.ConnectError,
            r"^TLS handshake failed: .*unable to get local issuer certificate",
            verify_code=UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
        ),
        id="unknown-ca",
    ),
    pytest.param(
        TLSFault(
            "elsewhere",
            aio.ConnectError,
            r"^TLS handshake failed: .*IP address mismatch",
            verify_code=IP_ADDRESS_MISMATCH,
        ),
        id="wrong-name-ip-host",
    ),
    pytest.param(
        TLSFault(
            "elsewhere",
            aio.ConnectError,
            r"^TLS handshake failed: .*Hostname mismatch.*'localhost'",
            host="localhost",
            verify_code=HOSTNAME_MISMATCH,
        ),
        id="wrong-name-dns-host",
    ),
    pytest.param(
        TLSFault(
            "good",
            aio.ConnectError,
            rf"^TLS handshake failed: .*Hostname mismatch.*'{UNCOVERED_SNI}'",
            sni=UNCOVERED_SNI,
            verify_code=HOSTNAME_MISMATCH,
        ),
        id="wrong-name-sni-not-on-cert",
    ),
    pytest.param(
        TLSFault(
            "elsewhere",
            aio.ConnectError,
            rf"^TLS handshake failed: .*Hostname mismatch.*'{COVERED_SNI}'",
            sni=COVERED_SNI,  # on certs/server.pem, not on this one
            verify_code=HOSTNAME_MISMATCH,
        ),
        id="wrong-name-sni-and-host-not-on-cert",
    ),
    pytest.param(
        TLSFault(
            "hypercorn-plain",
            aio.ConnectError,
            r"^TLS handshake failed: ",
        ),
        id="plain-http-server-on-tls-port",
    ),
    pytest.param(
        TLSFault(
            "speaks-first",
            aio.ConnectError,
            r"(spoke before the TLS handshake|WRONG_VERSION_NUMBER)",
        ),
        id="plain-server-speaks-first",
    ),
    pytest.param(
        TLSFault("hangs-up", aio.ConnectError, r"^TLS handshake failed: "),
        id="hangs-up-on-client-hello",
    ),
    pytest.param(
        TLSFault(
            "silent",
            aio.ConnectTimeout,
            rf"^TLS handshake timed out after {FAST}s$",
            connect_timeout=FAST,
        ),
        id="silent-server",
    ),
    pytest.param(
        TLSFault(
            "tls13-only",
            aio.ConnectError,
            r"^TLS handshake failed: ",
            max_tls12=True,
        ),
        id="tls13-server-tls12-client",
    ),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", TLS_FAULTS)
async def test_tls_handshake_fault(
    fault: TLSFault,
    protocol: str,
    certs_dir: Path,
    tls: TLSMaterial,
    request: pytest.FixtureRequest,
) -> None:
    """A failed handshake: ConnectError (ConnectTimeout when silent), no
    connection kept, and the same pool then reaches a good origin."""
    context = client_context(certs_dir, tls, protocol, max_tls12=fault.max_tls12)
    timeout = {"connect": fault.connect_timeout, "read": SLOW}
    extensions: dict[str, Any] = {"timeout": timeout}
    if fault.sni is not None:
        extensions["sni_hostname"] = fault.sni
    good = server_context(tls.certs["good"])
    async with (
        tls_origin(protocol, good) as (good_port, _),
        faulty_tls_server(fault.server, protocol, tls, request) as port,
        aio.AsyncConnectionPool(ssl_context=context, http2=protocol == "http2") as pool,
    ):
        with pytest.raises(fault.error, match=fault.match) as caught:
            await pool.request(
                "GET", f"https://{fault.host}:{port}/", extensions=extensions
            )
        assert type(caught.value) is fault.error
        if fault.verify_code is not None:
            cause = caught.value.__cause__
            assert isinstance(cause, ssl.SSLCertVerificationError)
            assert cause.verify_code == fault.verify_code
        assert_pool_settled(pool, idle=0)

        response = await pool.request(
            "GET", f"https://127.0.0.1:{good_port}/", extensions={"timeout": timeout}
        )
        assert response.status == 200
        assert response.extensions["http_version"] == HTTP_VERSION[protocol]
        assert_pool_settled(pool, idle=1)


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("cert", "host", "sni", "host_alone_verifies"),
    [
        pytest.param("elsewhere", "127.0.0.1", ELSEWHERE, False, id="ip-host"),
        pytest.param("elsewhere", "localhost", ELSEWHERE, False, id="dns-host"),
        pytest.param("good", "127.0.0.1", COVERED_SNI, True, id="second-name"),
        # Sent and verified without its dot (RFC 6066 §3).
        pytest.param(
            "good", "127.0.0.1", COVERED_SNI + ".", True, id="fully-qualified-name"
        ),
    ],
)
async def test_sni_hostname_on_the_certificate_is_accepted(
    cert: str,
    host: str,
    sni: str,
    host_alone_verifies: bool,
    protocol: str,
    certs_dir: Path,
    tls: TLSMaterial,
) -> None:
    """An sni_hostname the certificate covers is sent, checked and accepted even
    when the URL host is not on the certificate; without it the URL host is what
    must verify, on a connection of its own (sni_hostname is in the pool key)."""
    context = client_context(certs_dir, tls, protocol)
    async with (
        tls_origin(protocol, server_context(tls.certs[cert])) as (port, names),
        aio.AsyncConnectionPool(ssl_context=context, http2=protocol == "http2") as pool,
    ):
        url = f"https://{host}:{port}/"
        timeout = {"timeout": {"connect": SLOW, "read": SLOW}}
        response = await pool.request(
            "GET", url, extensions={**timeout, "sni_hostname": sni}
        )
        assert response.status == 200
        assert response.extensions["http_version"] == HTTP_VERSION[protocol]
        assert names == [sni.removesuffix(".")]
        assert_pool_settled(pool, idle=1)

        if host_alone_verifies:
            await pool.request("GET", url, extensions=timeout)
            assert_pool_settled(pool, idle=2)
        else:
            with pytest.raises(aio.ConnectError, match="mismatch") as caught:
                await pool.request("GET", url, extensions=timeout)
            assert type(caught.value) is aio.ConnectError
            assert_pool_settled(pool, idle=1)  # the sni_hostname connection stays


# -- proxies --------------------------------------------------------------------


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A 127.0.0.1 port that is bound but not listening: connects are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


async def _socks_silent(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await reader.readexactly(3)  # the SOCKS5 greeting, never answered
    await _silent(reader, writer)


@dataclass(frozen=True)
class ProxyFault:
    """A request through a proxy that must fail.

    ``proxy`` names the peer: ``refused-http``/``refused-socks`` (a closed port),
    ``tinyproxy``/``tinyproxy_auth``, ``socks``/``socks_auth`` (microsocks),
    ``socks-silent`` and ``https-silent`` (scripted, never answering),
    ``https-untrusted`` (the in-process proxy over TLS with a certificate the
    client does not trust) or a ``proxy_server`` mode.
    ``origin`` is ``tls`` (a good TLS origin), ``rogue`` (a TLS origin with an
    untrusted certificate), ``closed`` (refuses) or ``plain`` (clear text).
    ``recovers``: the fault was the target's, so the next request through the
    same pool to the good origin succeeds.
    """

    proxy: str
    origin: str
    error: type[Exception]
    match: str
    status: int | None = None
    auth: tuple[str, str] | None = None
    recovers: bool = False
    silent: str | None = None  # the timeout the proxy's silence must trip


PROXY_FAULTS = [
    pytest.param(
        ProxyFault(
            "refused-http", "tls", aio.ConnectError, r"^connecting to .* failed"
        ),
        id="http-proxy-refuses-connection",
    ),
    pytest.param(
        ProxyFault(
            "refused-socks", "tls", aio.ConnectError, r"^connecting to .* failed"
        ),
        id="socks-proxy-refuses-connection",
    ),
    pytest.param(
        ProxyFault(
            "tinyproxy_auth",
            "tls",
            aio.ProxyError,
            r"^407 Proxy Authentication Required$",
            status=407,
        ),
        id="connect-407",
    ),
    pytest.param(
        ProxyFault("reject", "tls", aio.ProxyError, r"^403 Forbidden$", status=403),
        id="connect-403",
    ),
    pytest.param(
        ProxyFault(
            "normal",
            "closed",
            aio.ProxyError,
            r"^502 Bad Gateway$",
            status=502,
            recovers=True,
        ),
        id="connect-502",
    ),
    pytest.param(
        ProxyFault(
            "tinyproxy",
            "closed",
            aio.ProxyError,
            r"^500 Unable to connect$",
            status=500,
            recovers=True,
        ),
        id="connect-500-tinyproxy",
    ),
    pytest.param(
        ProxyFault(
            "close_after_head", "tls", aio.ProxyError, r"^CONNECT 127\.0\.0\.1:\d+ "
        ),
        id="proxy-closes-before-answering-connect",
    ),
    pytest.param(
        ProxyFault(
            "close_mid_response", "tls", aio.ProxyError, r"^CONNECT 127\.0\.0\.1:\d+ "
        ),
        id="proxy-closes-mid-connect-answer",
    ),
    pytest.param(
        ProxyFault(
            "never_answer",
            "tls",
            aio.ConnectTimeout,
            rf"^CONNECT 127\.0\.0\.1:\d+ through the proxy timed out after {FAST}s$",
            silent="connect",
        ),
        id="proxy-silent-on-connect",
    ),
    pytest.param(
        ProxyFault(
            "socks-silent",
            "tls",
            aio.ConnectTimeout,
            rf"^SOCKS5 handshake timed out after {FAST}s$",
            silent="connect",
        ),
        id="socks-proxy-silent",
    ),
    pytest.param(
        ProxyFault(
            "socks_auth",
            "tls",
            aio.ProxyError,
            r"^Invalid username/password$",
            auth=("wire", "wrong"),
        ),
        id="socks-auth-refused",
    ),
    pytest.param(
        ProxyFault(
            "socks_auth",
            "tls",
            aio.ProxyError,
            r"^Requested NO AUTHENTICATION REQUIRED from proxy server, but got ",
        ),
        id="socks-auth-required-not-offered",
    ),
    pytest.param(
        ProxyFault(
            "socks",
            "closed",
            aio.ProxyError,
            r"^Proxy Server could not connect",
            recovers=True,
        ),
        id="socks-target-unreachable",
    ),
    pytest.param(
        ProxyFault(
            "https-untrusted",
            "tls",
            aio.ConnectError,
            r"^TLS handshake failed: .*CERTIFICATE_VERIFY_FAILED",
        ),
        id="https-proxy-untrusted-certificate",
    ),
    pytest.param(
        ProxyFault(
            "https-silent",
            "tls",
            aio.ConnectTimeout,
            rf"^TLS handshake timed out after {FAST}s$",
            silent="connect",
        ),
        id="https-proxy-silent-on-client-hello",
    ),
    pytest.param(
        ProxyFault(
            "tinyproxy",
            "rogue",
            aio.ConnectError,
            r"^TLS handshake failed: .*CERTIFICATE_VERIFY_FAILED",
            recovers=True,
        ),
        id="tunnelled-origin-untrusted-certificate",
    ),
    pytest.param(
        ProxyFault(
            "socks",
            "rogue",
            aio.ConnectError,
            r"^TLS handshake failed: .*CERTIFICATE_VERIFY_FAILED",
            recovers=True,
        ),
        id="socks-origin-untrusted-certificate",
    ),
    pytest.param(
        ProxyFault(
            "close_after_head",
            "plain",
            aio.RemoteProtocolError,
            r"^Server disconnected without sending a response\.$",
        ),
        id="forwarding-proxy-hangs-up",
    ),
    pytest.param(
        ProxyFault(
            "never_answer",
            "plain",
            aio.ReadTimeout,
            rf"^read timed out after {FAST}s$",
            silent="read",
        ),
        id="forwarding-proxy-silent",
    ),
]


@contextlib.asynccontextmanager
async def running_proxy(
    fault: ProxyFault,
    request: pytest.FixtureRequest,
    closed_port: int,
    certs_dir: Path,
    tls: TLSMaterial,
) -> AsyncIterator[aio.Proxy]:
    """The proxy peer ``fault.proxy`` names, as the :class:`aio.Proxy` to use."""
    auth = fault.auth
    kind = fault.proxy
    if kind.startswith("refused-"):
        scheme = "socks5" if kind == "refused-socks" else "http"
        yield aio.Proxy(f"{scheme}://127.0.0.1:{closed_port}", auth=auth)
    elif kind in ("tinyproxy", "tinyproxy_auth"):
        tiny: TinyproxyPeer = request.getfixturevalue(kind)
        yield aio.Proxy(tiny.url, auth=auth)
    elif kind in ("socks", "socks_auth"):
        socks: MicrosocksPeer = request.getfixturevalue(
            "microsocks" if kind == "socks" else "microsocks_auth"
        )
        yield aio.Proxy(f"socks5://{socks.host}:{socks.port}", auth=auth)
    elif kind == "socks-silent":
        async with tolerant_server(_socks_silent) as server:
            yield aio.Proxy(f"socks5://127.0.0.1:{server.port}", auth=auth)
    elif kind == "https-silent":
        async with tolerant_server(_silent) as server:
            context = ssl.create_default_context(cafile=certs_dir / "ca.pem")
            yield aio.Proxy(f"https://127.0.0.1:{server.port}", ssl_context=context)
    elif kind == "https-untrusted":
        untrusting = ssl.create_default_context(cafile=certs_dir / "other-ca.pem")
        context = server_context(tls.certs["good"])
        async with proxy_server(ssl=context) as proxy:
            yield aio.Proxy(proxy.url, auth=auth, ssl_context=untrusting)
    else:
        mode: Mode = kind  # type: ignore[assignment]
        async with proxy_server(mode=mode) as proxy:
            yield aio.Proxy(proxy.url, auth=auth)


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", PROXY_FAULTS)
async def test_proxy_fault(
    fault: ProxyFault,
    protocol: str,
    closed_port: int,
    certs_dir: Path,
    tls: TLSMaterial,
    request: pytest.FixtureRequest,
) -> None:
    """Every way a proxy can fail: the exact class and message, no connection
    left in the pool; when the target was at fault, the pool goes on working."""
    context = client_context(certs_dir, tls, protocol)
    timeout = {"connect": SLOW, "read": SLOW, "write": SLOW}
    if fault.silent is not None:
        timeout[fault.silent] = FAST
    async with (
        tls_origin(protocol, server_context(tls.certs["good"])) as (good_port, _),
        tls_origin(protocol, server_context(tls.certs["rogue"])) as (rogue_port, _),
        canned_server([OK]) as plain,
        running_proxy(fault, request, closed_port, certs_dir, tls) as proxy,
        aio.AsyncConnectionPool(
            proxy=proxy, ssl_context=context, http2=protocol == "http2"
        ) as pool,
    ):
        targets = {
            "tls": f"https://127.0.0.1:{good_port}/",
            "rogue": f"https://127.0.0.1:{rogue_port}/",
            "closed": f"https://127.0.0.1:{closed_port}/",
            "plain": plain.url + "/",
        }
        with pytest.raises(fault.error, match=fault.match) as caught:
            await pool.request(
                "GET", targets[fault.origin], extensions={"timeout": timeout}
            )
        assert type(caught.value) is fault.error
        if fault.status is not None:
            assert isinstance(caught.value, aio.ProxyError)
            assert caught.value.status == fault.status
        assert_pool_settled(pool, idle=0)

        if fault.recovers:
            response = await pool.request(
                "GET", targets["tls"], extensions={"timeout": timeout}
            )
            assert response.status == 200
            assert response.extensions["http_version"] == HTTP_VERSION[protocol]
            assert_pool_settled(pool, idle=1)
