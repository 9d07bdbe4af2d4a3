"""Shared pytest plumbing: both event loops, TLS material and the test peers."""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
import uvloop

from tests.peers.hypercorn_server import HypercornPeer, h2_tls_options, run_hypercorn
from tests.peers.microsocks import MicrosocksPeer, run_microsocks
from tests.peers.nghttpd import NghttpdPeer, run_nghttpd
from tests.peers.nginx import NginxPeer, run_nginx
from tests.peers.tinyproxy import TinyproxyPeer, run_tinyproxy

CERTS_DIR = Path(__file__).resolve().parents[1] / "certs"
PROXY_CREDENTIALS = ("wire", "line")  # user/password of the *_auth proxy peers
CERT_FILES = (
    "ca.pem",
    "server.pem",
    "server.key.pem",
    "expired.pem",
    "expired.key.pem",
    "other-ca.pem",
)


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run every ``@pytest.mark.asyncio`` test on asyncio and on uvloop."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture
def no_asyncio_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail the test if the event loop logged an error (e.g. a lost task exception).

    Opt in with ``pytestmark = pytest.mark.usefixtures("no_asyncio_errors")``.
    """
    yield
    errors = [
        record.getMessage()
        for record in caplog.get_records("call")
        if record.name == "asyncio" and record.levelno >= logging.ERROR
    ]
    assert not errors, f"asyncio logged errors: {errors}"


@pytest.fixture(scope="session")
def certs_dir() -> Path:
    """The folder with the test TLS material, generated if any file is missing."""
    if not all((CERTS_DIR / name).exists() for name in CERT_FILES):
        subprocess.run([sys.executable, str(CERTS_DIR / "make_certs.py")], check=True)
    return CERTS_DIR


@pytest.fixture
def ssl_context(certs_dir: Path) -> ssl.SSLContext:
    """A client context that trusts only the test CA."""
    return ssl.create_default_context(cafile=certs_dir / "ca.pem")


@pytest.fixture
def server_ssl_context(certs_dir: Path) -> ssl.SSLContext:
    """A server context with the leaf for localhost/127.0.0.1/::1/sni.wireline.test."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs_dir / "server.pem", certs_dir / "server.key.pem")
    return context


@pytest.fixture
def uds_path() -> Iterator[str]:
    """A fresh Unix socket path short enough for AF_UNIX (tmp_path may not be)."""
    directory = tempfile.mkdtemp(prefix="wl-uds-")
    try:
        yield str(Path(directory) / "s.sock")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def hypercorn_tls(certs_dir: Path) -> Iterator[HypercornPeer]:
    """Hypercorn over TLS on 127.0.0.1, offering ALPN ``http/1.1`` only."""
    with run_hypercorn(
        "tls",
        certfile=certs_dir / "server.pem",
        keyfile=certs_dir / "server.key.pem",
        cafile=certs_dir / "ca.pem",
        alpn_protocols=("http/1.1",),
    ) as peer:
        yield peer


@pytest.fixture(scope="session")
def hypercorn_plain() -> Iterator[HypercornPeer]:
    """Hypercorn over plain TCP on 127.0.0.1."""
    with run_hypercorn("plain") as peer:
        yield peer


@pytest.fixture(scope="session")
def hypercorn_uds() -> Iterator[HypercornPeer]:
    """Hypercorn over a Unix socket (``.uds_path``; request ``.url``)."""
    with run_hypercorn("uds") as peer:
        yield peer


@pytest.fixture(scope="session")
def hypercorn_h2_tls(certs_dir: Path) -> Iterator[HypercornPeer]:
    """Hypercorn over TLS on 127.0.0.1, offering ALPN ``h2`` then ``http/1.1``."""
    with run_hypercorn(
        "tls",
        **h2_tls_options(certs_dir),
    ) as peer:
        yield peer


@pytest.fixture(scope="session")
def hypercorn_h2c() -> Iterator[HypercornPeer]:
    """Hypercorn over plain TCP: h2 with prior knowledge (and HTTP/1.1) on one port."""
    with run_hypercorn("plain") as peer:
        yield peer


@pytest.fixture(scope="session")
def nginx_h2(certs_dir: Path) -> Iterator[NginxPeer]:
    """nginx, TLS + h2 on 127.0.0.1 (``/`` says hello, docroot files, no GOAWAY)."""
    with run_nginx(certs_dir=certs_dir) as peer:
        yield peer


@pytest.fixture(scope="session")
def nginx_h2_goaway(certs_dir: Path) -> Iterator[NginxPeer]:
    """nginx with ``keepalive_requests 5``: GOAWAY after 5 requests per connection."""
    with run_nginx(certs_dir=certs_dir, keepalive_requests=5) as peer:
        yield peer


@pytest.fixture(scope="session")
def nghttpd_small_streams(certs_dir: Path) -> Iterator[NghttpdPeer]:
    """nghttpd advertising SETTINGS_MAX_CONCURRENT_STREAMS=2 (``-m 2``)."""
    with run_nghttpd(certs_dir=certs_dir, max_concurrent_streams=2) as peer:
        yield peer


@pytest.fixture(scope="session")
def nghttpd_tiny_window(certs_dir: Path) -> Iterator[NghttpdPeer]:
    """nghttpd with 1023-byte stream and connection windows (``-w 10 -W 10``)."""
    with run_nghttpd(
        certs_dir=certs_dir, window_bits=10, connection_window_bits=10
    ) as peer:
        yield peer


@pytest.fixture(scope="session")
def nghttpd_trailer(certs_dir: Path) -> Iterator[NghttpdPeer]:
    """nghttpd adding trailer ``x-trailer: yes`` to responses with a body."""
    with run_nghttpd(certs_dir=certs_dir, trailers=["x-trailer: yes"]) as peer:
        yield peer


@pytest.fixture(scope="session")
def tinyproxy() -> Iterator[TinyproxyPeer]:
    """tinyproxy on 127.0.0.1: HTTP forward proxy and CONNECT to any port, no auth."""
    with run_tinyproxy() as peer:
        yield peer


@pytest.fixture(scope="session")
def tinyproxy_auth() -> Iterator[TinyproxyPeer]:
    """tinyproxy requiring ``Proxy-Authorization`` Basic ``wire``/``line``."""
    with run_tinyproxy(basic_auth=PROXY_CREDENTIALS) as peer:
        yield peer


@pytest.fixture(scope="session")
def microsocks() -> Iterator[MicrosocksPeer]:
    """microsocks (SOCKS5) on 127.0.0.1 without authentication."""
    with run_microsocks() as peer:
        yield peer


@pytest.fixture(scope="session")
def microsocks_auth() -> Iterator[MicrosocksPeer]:
    """microsocks requiring username/password ``wire``/``line`` (RFC 1929)."""
    with run_microsocks(auth=PROXY_CREDENTIALS) as peer:
        yield peer
