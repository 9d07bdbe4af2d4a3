"""examples/blocking_client.py: the sans-IO core driven by plain blocking sockets.

Plain synchronous tests against hypercorn on 127.0.0.1 (TLS with ALPN
``http/1.1`` or ``h2``/``http/1.1``, and plain TCP). The example is loaded from
its path, so the file users read is what is tested; two subprocess runs prove
that neither ``asyncio`` nor ``aio`` is ever imported.
"""

from __future__ import annotations

import importlib.util
import json
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sansio import LocalProtocolError
from tests.peers.hypercorn_server import HypercornPeer

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = REPO_ROOT / "examples" / "blocking_client.py"
_spec = importlib.util.spec_from_file_location("wireline_blocking_example", EXAMPLE)
assert _spec is not None
assert _spec.loader is not None
example = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)
fetch = example.fetch
fetch_many = example.fetch_many

# Larger than HTTP/2's 65,535-byte default window (hypercorn's receive window,
# so uploads must wait for WINDOW_UPDATE) and than the core's 1 MiB stream
# window (so downloads need our WINDOW_UPDATEs).
UPLOAD = bytes(range(256)) * 800  # 200 KiB
DOWNLOAD_SIZE = 3 * 1024 * 1024 + 17
SUBPROCESS_TIMEOUT = 20.0


@pytest.fixture
def ca(certs_dir: Path) -> str:
    """The test CA file, as the example's ``cafile`` takes it."""
    return str(certs_dir / "ca.pem")


@pytest.fixture(params=["h1", "h2"])
def peer(
    request: pytest.FixtureRequest,
    hypercorn_tls: HypercornPeer,
    hypercorn_h2_tls: HypercornPeer,
) -> tuple[HypercornPeer, bool, bytes]:
    """(server, http2 flag, expected http_version) for each protocol."""
    if request.param == "h1":
        return hypercorn_tls, False, b"HTTP/1.1"
    return hypercorn_h2_tls, True, b"HTTP/2"


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes:
    values = [value for key, value in headers if key.lower() == name]
    assert len(values) == 1, headers
    return values[0]


# -- one request -----------------------------------------------------------------


def test_get_over_http11(hypercorn_tls: HypercornPeer, ca: str) -> None:
    result = fetch(f"{hypercorn_tls.url}/", cafile=ca)
    assert result.status == 200
    assert result.http_version == b"HTTP/1.1"
    assert result.body == b"Hello, world!"
    assert _header(result.headers, b"content-type") == b"text/plain"


def test_get_over_http2(hypercorn_h2_tls: HypercornPeer, ca: str) -> None:
    result = fetch(f"{hypercorn_h2_tls.url}/", http2=True, cafile=ca)
    assert result.status == 200
    assert result.http_version == b"HTTP/2"
    assert result.body == b"Hello, world!"
    assert _header(result.headers, b"content-length") == b"13"


def test_http2_server_without_http2_flag_speaks_http11(
    hypercorn_h2_tls: HypercornPeer, ca: str
) -> None:
    result = fetch(f"{hypercorn_h2_tls.url}/", cafile=ca)
    assert (result.status, result.http_version) == (200, b"HTTP/1.1")


def test_http2_flag_falls_back_when_alpn_picks_http11(
    hypercorn_tls: HypercornPeer, ca: str
) -> None:
    result = fetch(f"{hypercorn_tls.url}/", http2=True, cafile=ca)
    assert (result.status, result.http_version) == (200, b"HTTP/1.1")


def test_plain_http_is_http11(hypercorn_plain: HypercornPeer) -> None:
    result = fetch(f"{hypercorn_plain.url}/", http2=True)
    assert (result.status, result.http_version) == (200, b"HTTP/1.1")
    assert result.body == b"Hello, world!"


def test_post_body_is_echoed(peer: tuple[HypercornPeer, bool, bytes], ca: str) -> None:
    server, http2, version = peer
    result = fetch(
        f"{server.url}/echo", method="POST", body=UPLOAD, http2=http2, cafile=ca
    )
    assert (result.status, result.http_version) == (200, version)
    assert result.body == UPLOAD


def test_large_download(peer: tuple[HypercornPeer, bool, bytes], ca: str) -> None:
    server, http2, version = peer
    result = fetch(f"{server.url}/bytes?n={DOWNLOAD_SIZE}", http2=http2, cafile=ca)
    assert (result.status, result.http_version) == (200, version)
    assert result.body == b"x" * DOWNLOAD_SIZE


def test_request_headers_reach_the_server(
    peer: tuple[HypercornPeer, bool, bytes], ca: str
) -> None:
    server, http2, _ = peer
    result = fetch(
        f"{server.url}/headers?q=1",
        headers=[("X-Wireline", "blocking")],
        http2=http2,
        cafile=ca,
    )
    info = json.loads(result.body)
    assert info["method"] == "GET"
    assert info["query_string"] == "q=1"
    assert ["x-wireline", "blocking"] in info["headers"]
    assert info["http_version"] == ("2" if http2 else "1.1")


def test_error_status_is_a_result(
    peer: tuple[HypercornPeer, bool, bytes], ca: str
) -> None:
    server, http2, _ = peer
    result = fetch(f"{server.url}/status/418", http2=http2, cafile=ca)
    assert (result.status, result.body) == (418, b"")


# -- several requests, one connection ----------------------------------------------


def test_http11_keep_alive_reuses_the_socket(
    hypercorn_tls: HypercornPeer, ca: str
) -> None:
    # Every TLS handshake appends to the server's SNI list: the same length
    # before and after a request in between means no second handshake.
    first, hello, second = fetch_many(
        [
            f"{hypercorn_tls.url}/sni",
            f"{hypercorn_tls.url}/",
            f"{hypercorn_tls.url}/sni",
        ],
        cafile=ca,
    )
    assert hello.body == b"Hello, world!"
    assert {first.http_version, hello.http_version, second.http_version} == {
        b"HTTP/1.1"
    }
    assert json.loads(first.body) == json.loads(second.body)


def test_http11_reconnects_when_the_server_closes(
    hypercorn_tls: HypercornPeer, ca: str
) -> None:
    # "Connection: close" makes hypercorn close after each response: the core
    # leaves the IDLE state and the example opens a second connection.
    first, second = fetch_many(
        [f"{hypercorn_tls.url}/sni"] * 2, headers={"Connection": "close"}, cafile=ca
    )
    assert len(json.loads(second.body)) == len(json.loads(first.body)) + 1


def test_head_responses_have_no_body(
    peer: tuple[HypercornPeer, bool, bytes], ca: str
) -> None:
    server, http2, version = peer
    head, sni = fetch_many(
        [f"{server.url}/", f"{server.url}/sni"], method="HEAD", http2=http2, cafile=ca
    )
    assert (head.status, head.http_version, head.body) == (200, version, b"")
    assert _header(head.headers, b"content-length") == b"13"
    assert (sni.status, sni.body) == (200, b"")


def test_fetch_many_http2_bodies(hypercorn_h2_tls: HypercornPeer, ca: str) -> None:
    base = hypercorn_h2_tls.url
    paths = [
        "/",
        "/bytes?n=70000",
        "/status/404",
        "/nowhere",
        "/stream?chunks=4&size=3",
    ]
    results = fetch_many([base + path for path in paths], http2=True, cafile=ca)
    assert [r.http_version for r in results] == [b"HTTP/2"] * len(paths)
    assert [r.status for r in results] == [200, 200, 404, 404, 200]
    assert [r.body for r in results] == [
        b"Hello, world!",
        b"x" * 70000,
        b"",
        b"Not Found",
        b"xxx" * 4,
    ]


def test_fetch_many_http2_uses_one_connection(
    hypercorn_h2_tls: HypercornPeer, ca: str
) -> None:
    base = hypercorn_h2_tls.url
    before = len(json.loads(fetch(f"{base}/sni", http2=True, cafile=ca).body))
    results = fetch_many(
        [f"{base}/", f"{base}/bytes?n=100", f"{base}/", f"{base}/sni"],
        http2=True,
        cafile=ca,
    )
    after = len(json.loads(fetch(f"{base}/sni", http2=True, cafile=ca).body))
    # fetch_many's handshake is the one between the two lone fetches.
    assert len(json.loads(results[-1].body)) == before + 1
    assert after == before + 2


def test_fetch_many_http2_streams_run_concurrently(
    hypercorn_h2_tls: HypercornPeer, ca: str
) -> None:
    urls = [f"{hypercorn_h2_tls.url}/slow?delay=0.5"] * 5
    started = time.monotonic()
    results = fetch_many(urls, http2=True, cafile=ca)
    elapsed = time.monotonic() - started
    assert [r.body for r in results] == [b"slow"] * 5
    assert elapsed < 1.5, f"5 x 0.5 s took {elapsed:.2f} s: not multiplexed"


def test_fetch_many_http2_concurrent_uploads(
    hypercorn_h2_tls: HypercornPeer, ca: str
) -> None:
    # Three 200 KiB bodies share hypercorn's 64 KiB connection window.
    results = fetch_many(
        [f"{hypercorn_h2_tls.url}/echo"] * 3,
        method="POST",
        body=UPLOAD,
        http2=True,
        cafile=ca,
    )
    assert [r.body for r in results] == [UPLOAD] * 3


def test_fetch_many_refuses_several_origins(
    hypercorn_tls: HypercornPeer, hypercorn_h2_tls: HypercornPeer
) -> None:
    with pytest.raises(ValueError, match="single origin"):
        fetch_many([f"{hypercorn_tls.url}/", f"{hypercorn_h2_tls.url}/"])
    with pytest.raises(ValueError, match="single origin"):
        fetch_many([])


# -- TLS -------------------------------------------------------------------------


def test_sni_hostname_is_sent(peer: tuple[HypercornPeer, bool, bytes], ca: str) -> None:
    server, http2, version = peer
    result = fetch(
        f"{server.url}/sni", http2=http2, cafile=ca, sni_hostname="sni.wireline.test"
    )
    assert result.http_version == version
    assert json.loads(result.body)[-1] == "sni.wireline.test"


def test_without_the_ca_the_certificate_fails(
    hypercorn_h2_tls: HypercornPeer,
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        fetch(f"{hypercorn_h2_tls.url}/", http2=True)


def test_sni_hostname_not_in_the_certificate_fails(
    hypercorn_h2_tls: HypercornPeer, ca: str
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        fetch(f"{hypercorn_h2_tls.url}/", cafile=ca, sni_hostname="other.test")


@pytest.mark.parametrize("name", ["bad host", "evil\r\nX: y", ""])
def test_bad_sni_hostname_is_refused_before_connecting(name: str) -> None:
    # Port 9 on 127.0.0.1 has no listener: reaching it would raise OSError.
    with pytest.raises(LocalProtocolError):
        fetch("https://127.0.0.1:9/", sni_hostname=name)


def test_header_injection_is_refused_before_connecting() -> None:
    with pytest.raises(LocalProtocolError):
        fetch("https://127.0.0.1:9/", headers=[("X-A", "b\r\nX-Evil: 1")])


# -- no asyncio ------------------------------------------------------------------


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )


def _is_async_module(name: str) -> bool:
    return name.split(".")[0] in {"asyncio", "aio", "uvloop"}


def test_main_never_imports_asyncio(hypercorn_h2_tls: HypercornPeer, ca: str) -> None:
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(EXAMPLE.parent)!r})\n"
        "import blocking_client\n"
        f"status = blocking_client.main([{hypercorn_h2_tls.url + '/'!r}, "
        f"'--http2', '--cacert', {ca!r}])\n"
        "import json\n"
        "print('\\nMODULES', json.dumps(sorted(sys.modules)))\n"
        "sys.exit(status)\n"
    )
    done = _run(["-c", code])
    assert done.returncode == 0, done.stderr
    head, _, modules = done.stdout.rpartition("\nMODULES ")
    assert head.startswith("HTTP/2 200\n")
    assert head.endswith("\n\nHello, world!")
    loaded = json.loads(modules)
    assert "sansio" in loaded
    assert "ssl" in loaded
    assert [name for name in loaded if _is_async_module(name)] == []


def test_script_import_time_shows_no_asyncio(
    hypercorn_tls: HypercornPeer, ca: str
) -> None:
    done = _run(
        ["-X", "importtime", str(EXAMPLE), f"{hypercorn_tls.url}/", "--cacert", ca]
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("HTTP/1.1 200\n")
    assert done.stdout.endswith("\n\nHello, world!")
    imported = [
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    ]
    assert "sansio" in imported
    assert "h2.connection" in imported
    assert [name for name in imported if _is_async_module(name)] == []
