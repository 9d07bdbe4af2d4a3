"""The ``wireline`` command line (``aio.cli``, ``python -m aio``).

Most tests call ``aio.cli.main([...])`` in-process and read stdout/stderr with
capsys; the exit-code, ``-v`` and ``--max-time`` end-to-end cases also run
``python -m aio`` in a subprocess. Servers are the hypercorn, tinyproxy and
microsocks peers on 127.0.0.1 (and a Unix socket), plus one-shot socket servers
in a thread for broken replies. Every subprocess has a timeout and every
request a connect or total deadline where it could hang.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import aio
from aio import cli
from tests.aio.test_backends import unanswered_port
from tests.conftest import PROXY_CREDENTIALS
from tests.peers.hypercorn_server import HypercornPeer
from tests.peers.microsocks import MicrosocksPeer
from tests.peers.tinyproxy import TinyproxyPeer

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPS = ("asyncio", "uvloop")
SNI = "sni.wireline.test"  # covered by the server certificate
SUBPROCESS_TIMEOUT = 20.0


# -- helpers ---------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``cli.main(argv)`` in-process: exit code, stdout, stderr."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_module(
    *argv: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m aio argv`` in a subprocess, bounded in time."""
    return subprocess.run(
        [sys.executable, "-m", "aio", *argv],
        cwd=REPO_ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def refused(port: int) -> str:
    """curl's message for a refused connection to 127.0.0.1:port."""
    return (
        f"wireline: (7) Failed to connect to 127.0.0.1 port {port}: "
        "Connection refused\n"
    )


@contextlib.contextmanager
def one_shot_server(reply: bytes) -> Iterator[int]:
    """A thread that accepts one connection on 127.0.0.1, reads the request
    head, sends ``reply`` (possibly nothing) and closes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if reply:
                    conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        thread.join(10)
        listener.close()


def cacert(certs_dir: Path) -> str:
    """The test CA file."""
    return str(certs_dir / "ca.pem")


# -- -v and the basic GET, end to end --------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_verbose_h2_tls_end_to_end(
    hypercorn_h2_tls: HypercornPeer, certs_dir: Path, loop: str
) -> None:
    """-v against TLS + h2 shows connect, TLS version, ALPN, request and
    response heads (``python -m aio`` in a subprocess)."""
    port = hypercorn_h2_tls.port
    result = run_module(
        f"https://127.0.0.1:{port}/",
        "--http2",
        "--cacert",
        cacert(certs_dir),
        "-v",
        "--loop",
        loop,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello, world!"
    lines = result.stderr.splitlines()
    for expected in (
        f"*   Trying 127.0.0.1:{port}...",
        f"* Connected to 127.0.0.1 (127.0.0.1) port {port}",
        "* ALPN: wireline offers h2,http/1.1",
        "* ALPN: server accepted h2",
        "* Server certificate:",
        "*  SSL certificate verify ok.",
        "* using HTTP/2",
        "> GET / HTTP/2",
        f"> Host: 127.0.0.1:{port}",
        "> Accept: */*",
        ">",
        "< HTTP/2 200",
        "< content-type: text/plain",
        "< content-length: 13",
        "<",
    ):
        assert expected in lines, (expected, result.stderr)
    assert any(line.startswith("* TLS handshake: TLSv1.3 / ") for line in lines)
    assert any(line.startswith("> User-Agent: wireline/") for line in lines)
    assert any("subjectAltName:" in line and SNI in line for line in lines)
    # The heads come in order: connect, TLS, request, response.
    order = [
        lines.index(f"* Connected to 127.0.0.1 (127.0.0.1) port {port}"),
        lines.index("* ALPN: server accepted h2"),
        lines.index("> GET / HTTP/2"),
        lines.index("< HTTP/2 200"),
    ]
    assert order == sorted(order)


def test_verbose_http11_tls(
    capsys: pytest.CaptureFixture[str], hypercorn_tls: HypercornPeer, certs_dir: Path
) -> None:
    """Without --http2 only http/1.1 is offered; the heads are HTTP/1.1."""
    url = f"{hypercorn_tls.url}/"
    code, out, err = run(capsys, url, "--cacert", cacert(certs_dir), "-v")
    assert code == 0, err
    assert out == "Hello, world!"
    lines = err.splitlines()
    assert "* ALPN: wireline offers http/1.1" in lines
    assert "* ALPN: server accepted http/1.1" in lines
    assert "* using HTTP/1.x" in lines
    assert "> GET / HTTP/1.1" in lines
    assert any(line.startswith("< HTTP/1.1 200") for line in lines)


@pytest.mark.parametrize("loop", LOOPS)
def test_get_plain(
    capsys: pytest.CaptureFixture[str], hypercorn_plain: HypercornPeer, loop: str
) -> None:
    """A plain GET prints the body and nothing else, on both loops."""
    code, out, err = run(capsys, f"{hypercorn_plain.url}/", "--loop", loop)
    assert (code, out, err) == (0, "Hello, world!", "")


def test_url_without_scheme_is_http(
    capsys: pytest.CaptureFixture[str], hypercorn_plain: HypercornPeer
) -> None:
    """Like curl, a URL without a scheme is http://."""
    code, out, _ = run(capsys, f"127.0.0.1:{hypercorn_plain.port}/")
    assert (code, out) == (0, "Hello, world!")


# -- request options -------------------------------------------------------------------


def test_method_and_headers(
    capsys: pytest.CaptureFixture[str], hypercorn_plain: HypercornPeer
) -> None:
    """-X sets the method; -H adds, replaces (User-Agent), removes (``Accept:``)
    and sends empty (``X-Empty;``) headers."""
    code, out, err = run(
        capsys,
        f"{hypercorn_plain.url}/headers",
        "-X",
        "PUT",
        "-H",
        "X-Test: one two",
        "-H",
        "User-Agent: custom/1",
        "-H",
        "Accept:",
        "-H",
        "X-Empty;",
    )
    assert code == 0, err
    seen = json.loads(out)
    headers = dict(seen["headers"])
    assert seen["method"] == "PUT"
    assert headers["x-test"] == "one two"
    assert headers["user-agent"] == "custom/1"
    assert headers["x-empty"] == ""
    assert "accept" not in headers


def test_data_implies_post_and_joins_values(
    capsys: pytest.CaptureFixture[str], hypercorn_plain: HypercornPeer
) -> None:
    """-d sends POST with a form Content-Type; several -d join with '&'."""
    code, out, _ = run(capsys, f"{hypercorn_plain.url}/echo", "-d", "a=1", "-d", "b=2")
    assert (code, out) == (0, "a=1&b=2")
    code, out, _ = run(capsys, f"{hypercorn_plain.url}/headers", "-d", "x")
    seen = json.loads(out)
    assert seen["method"] == "POST"
    headers = dict(seen["headers"])
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert headers["content-length"] == "1"


def test_data_with_explicit_method_and_content_type(
    capsys: pytest.CaptureFixture[str], hypercorn_plain: HypercornPeer
) -> None:
    """-X wins over -d's POST; -H Content-Type replaces the form default."""
    code, out, _ = run(
        capsys,
        f"{hypercorn_plain.url}/headers",
        "-X",
        "PATCH",
        "-d",
        "{}",
        "-H",
        "Content-Type: application/json",
    )
    seen = json.loads(out)
    assert (code, seen["method"]) == (0, "PATCH")
    types = [value for name, value in seen["headers"] if name == "content-type"]
    assert types == ["application/json"]


def test_data_from_file(
    capsys: pytest.CaptureFixture[str], hypercorn_plain: HypercornPeer, tmp_path: Path
) -> None:
    """-d @file strips CR and LF as curl does; --data-binary @file keeps them."""
    path = tmp_path / "body.txt"
    path.write_bytes(b"a=1\nb=2\r\n")
    code, out, _ = run(capsys, f"{hypercorn_plain.url}/echo", "-d", f"@{path}")
    assert (code, out) == (0, "a=1b=2")
    output = tmp_path / "out.bin"
    code, _, _ = run(
        capsys,
        f"{hypercorn_plain.url}/echo",
        "--data-binary",
        f"@{path}",
        "-o",
        str(output),
    )
    assert code == 0
    assert output.read_bytes() == b"a=1\nb=2\r\n"


def test_data_from_stdin(
    capsys: pytest.CaptureFixture[str],
    hypercorn_plain: HypercornPeer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """-d @- reads the body from stdin."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"from stdin")))
    code, out, _ = run(capsys, f"{hypercorn_plain.url}/echo", "-d", "@-")
    assert (code, out) == (0, "from stdin")


def test_data_from_stdin_subprocess(hypercorn_plain: HypercornPeer) -> None:
    """The same through ``python -m aio`` with a real pipe."""
    result = run_module(
        f"{hypercorn_plain.url}/echo", "--data-binary", "@-", stdin="line\n"
    )
    assert (result.returncode, result.stdout) == (0, "line\n")


def test_data_file_missing_is_26(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An unreadable -d @file exits 26 before any connection."""
    missing = tmp_path / "missing"
    code, out, err = run(capsys, "http://127.0.0.1:1/", "-d", f"@{missing}")
    assert (code, out) == (26, "")
    assert err == (
        "wireline: (26) Failed to open/read local data from file/application: "
        f"{missing}: No such file or directory\n"
    )


# -- output ----------------------------------------------------------------------------


def test_output_file_and_stdout(
    capsys: pytest.CaptureFixture[str], hypercorn_plain: HypercornPeer, tmp_path: Path
) -> None:
    """-o FILE writes the body there (binary, exactly); -o - is stdout."""
    output = tmp_path / "body.bin"
    url = f"{hypercorn_plain.url}/bytes?n=100000"
    code, out, err = run(capsys, url, "-o", str(output))
    assert (code, out, err) == (0, "", "")  # no TTY: no progress bar
    assert output.read_bytes() == b"x" * 100000
    code, out, _ = run(capsys, f"{hypercorn_plain.url}/", "-o", "-")
    assert (code, out) == (0, "Hello, world!")


def test_output_unwritable_is_23(
    capsys: pytest.CaptureFixture[str], hypercorn_plain: HypercornPeer, tmp_path: Path
) -> None:
    """An output file that cannot be created exits 23."""
    target = tmp_path / "no-such-dir" / "out"
    code, _, err = run(capsys, f"{hypercorn_plain.url}/", "-o", str(target))
    assert code == 23
    assert err.startswith(f"wireline: (23) Failed to open the file {target}: ")


def test_include_http11_and_h2(
    capsys: pytest.CaptureFixture[str],
    hypercorn_plain: HypercornPeer,
    hypercorn_h2_tls: HypercornPeer,
    certs_dir: Path,
) -> None:
    """-i writes the response head before the body."""
    code, out, _ = run(capsys, f"{hypercorn_plain.url}/", "-i")
    assert code == 0
    head, _, body = out.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200")
    assert "\r\ncontent-length: 13" in head
    assert body == "Hello, world!"
    code, out, _ = run(
        capsys,
        f"{hypercorn_h2_tls.url}/",
        "-i",
        "--http2",
        "--cacert",
        cacert(certs_dir),
    )
    assert code == 0
    assert out.startswith("HTTP/2 200\r\n")
    assert out.endswith("\r\n\r\nHello, world!")


@pytest.mark.parametrize("loop", LOOPS)
def test_fail_on_http_error_is_22(
    capsys: pytest.CaptureFixture[str], hypercorn_plain: HypercornPeer, loop: str
) -> None:
    """-f: HTTP >= 400 exits 22 without writing the body; without -f it is 0."""
    url = f"{hypercorn_plain.url}/status/404"
    code, out, err = run(capsys, url, "-f", "--loop", loop)
    assert (code, out) == (22, "")
    assert err == "wireline: (22) The requested URL returned error: 404\n"
    code, out, err = run(capsys, f"{hypercorn_plain.url}/missing", "--loop", loop)
    assert (code, out, err) == (0, "Not Found", "")


def test_silent_hides_errors_unless_show_error(
    capsys: pytest.CaptureFixture[str], hypercorn_plain: HypercornPeer
) -> None:
    """-s mutes the error message (not the exit code); -sS shows it."""
    url = f"{hypercorn_plain.url}/status/500"
    assert run(capsys, url, "-f", "-s") == (22, "", "")
    code, _, err = run(capsys, url, "-f", "-s", "-S")
    assert (code, err) == (22, "wireline: (22) The requested URL returned error: 500\n")


# -- --trace-json ----------------------------------------------------------------------


def test_trace_json(
    capsys: pytest.CaptureFixture[str], hypercorn_h2_tls: HypercornPeer, certs_dir: Path
) -> None:
    """One JSON object per event on stderr, ``t`` never decreasing, values made
    JSON-safe (streams as reprs, requests summarised, heads as lists)."""
    code, out, err = run(
        capsys,
        f"{hypercorn_h2_tls.url}/echo",
        "--http2",
        "--cacert",
        cacert(certs_dir),
        "-d",
        "hi",
        "--trace-json",
    )
    assert (code, out) == (0, "hi")
    events = [json.loads(line) for line in err.splitlines()]
    assert all(set(event) == {"t", "event", "info"} for event in events)
    times = [event["t"] for event in events]
    assert times == sorted(times)
    assert times[0] >= 0
    names = [event["event"] for event in events]
    for name in (
        "connection.connect_tcp.started",
        "connection.connect_tcp.complete",
        "connection.start_tls.complete",
        "http2.send_connection_init.started",
        "http2.send_request_headers.started",
        "http2.receive_response_headers.complete",
        "http2.response_closed.complete",
    ):
        assert name in names
    by_name = {event["event"]: event["info"] for event in events}
    assert by_name["connection.connect_tcp.started"]["host"] == "127.0.0.1"
    stream = by_name["connection.start_tls.complete"]["return_value"]
    assert isinstance(stream, str)
    assert "TLS" in stream
    request = by_name["http2.send_request_headers.started"]["request"]
    assert request["method"] == "POST"
    assert request["url"] == f"{hypercorn_h2_tls.url}/echo"
    assert ["Content-Length", "2"] in request["headers"]
    status, headers = by_name["http2.receive_response_headers.complete"]["return_value"]
    assert status == 200
    assert ["content-length", "2"] in headers


def test_trace_json_with_verbose_and_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A failed connect is traced as ``{"type", "message"}``; -v adds its line."""
    port = closed_port()
    code, _, err = run(
        capsys, f"http://127.0.0.1:{port}/", "--trace-json", "-v", "--max-time", "10"
    )
    assert code == 7
    lines = err.splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    failed = [e for e in events if e["event"] == "connection.connect_tcp.failed"]
    assert failed[0]["info"]["exception"]["type"] == "ConnectError"
    assert f"*   Trying 127.0.0.1:{port}..." in lines
    assert any(
        line.startswith(f"* connect to 127.0.0.1 port {port} failed") for line in lines
    )


def test_json_safe() -> None:
    """json_safe turns every kind of trace value into JSON."""
    request = aio.Request("GET", "https://example.test/a", headers=[(b"X-A", b"1")])
    value = {
        "request": request,
        "bytes": b"ok\xff",
        "tuple": (b"HTTP/1.1", 200, b"OK", [(b"a", b"b")]),
        "exception": aio.ReadError("boom"),
        "context": ssl.create_default_context(),
        "none": None,
        "float": float("inf"),
        "flag": True,
    }
    safe = cli.json_safe(value)
    assert json.loads(json.dumps(safe)) == safe
    assert isinstance(safe, dict)
    assert safe["request"] == {
        "method": "GET",
        "url": "https://example.test/a",
        "headers": [["X-A", "1"]],
    }
    assert safe["bytes"] == "ok\\xff"
    assert safe["tuple"] == ["HTTP/1.1", 200, "OK", [["a", "b"]]]
    assert safe["exception"] == {"type": "ReadError", "message": "boom"}
    assert str(safe["context"]).startswith("<ssl.SSLContext")
    assert (safe["none"], safe["float"], safe["flag"]) == (None, "inf", True)


# -- HTTP/2, SNI, certificates ---------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_http2_prior_knowledge(
    capsys: pytest.CaptureFixture[str], hypercorn_h2c: HypercornPeer, loop: str
) -> None:
    """--http2-prior-knowledge speaks h2c to hypercorn in clear text."""
    code, out, err = run(
        capsys,
        f"{hypercorn_h2c.url}/headers",
        "--http2-prior-knowledge",
        "-v",
        "--loop",
        loop,
    )
    assert code == 0, err
    assert json.loads(out)["http_version"] == "2"
    assert "> GET /headers HTTP/2" in err.splitlines()


def test_http2_over_tls(
    capsys: pytest.CaptureFixture[str], hypercorn_h2_tls: HypercornPeer, certs_dir: Path
) -> None:
    """--http2 negotiates h2 by ALPN; without it the same server speaks 1.1."""
    url = f"{hypercorn_h2_tls.url}/headers"
    code, out, _ = run(capsys, url, "--http2", "--cacert", cacert(certs_dir))
    assert (code, json.loads(out)["http_version"]) == (0, "2")
    code, out, _ = run(capsys, url, "--cacert", cacert(certs_dir))
    assert (code, json.loads(out)["http_version"]) == (0, "1.1")


@pytest.mark.parametrize("loop", LOOPS)
def test_sni_hostname(
    capsys: pytest.CaptureFixture[str],
    hypercorn_h2_tls: HypercornPeer,
    certs_dir: Path,
    loop: str,
) -> None:
    """--sni-hostname is sent as SNI (the server's /sni saw it last) and shown."""
    code, out, err = run(
        capsys,
        f"{hypercorn_h2_tls.url}/sni",
        "--http2",
        "--cacert",
        cacert(certs_dir),
        "--sni-hostname",
        SNI,
        "-v",
        "--loop",
        loop,
    )
    assert code == 0, err
    assert json.loads(out)[-1] == SNI
    assert f"* TLS server name (SNI): {SNI}" in err.splitlines()


def test_sni_hostname_mismatch_is_60(
    capsys: pytest.CaptureFixture[str], hypercorn_h2_tls: HypercornPeer, certs_dir: Path
) -> None:
    """A name the certificate does not cover fails verification (60)."""
    code, _, err = run(
        capsys,
        f"{hypercorn_h2_tls.url}/",
        "--cacert",
        cacert(certs_dir),
        "--sni-hostname",
        "other.test",
        "-v",
    )
    assert code == 60
    lines = err.splitlines()
    assert "* TLS server name (SNI): other.test" in lines
    assert "* TLS handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED]" in lines[-2]
    assert lines[-1].startswith(
        "wireline: (60) SSL certificate problem: Hostname mismatch"
    )


@pytest.mark.parametrize("loop", LOOPS)
def test_untrusted_certificate_is_60(
    hypercorn_h2_tls: HypercornPeer, loop: str
) -> None:
    """Without --cacert the test CA is not trusted (certifi only): exit 60."""
    result = run_module(f"{hypercorn_h2_tls.url}/", "--loop", loop)
    assert result.returncode == 60
    assert result.stdout == ""
    assert result.stderr == (
        "wireline: (60) SSL certificate problem: unable to get local issuer "
        "certificate\n"
    )


def test_insecure(
    capsys: pytest.CaptureFixture[str], hypercorn_h2_tls: HypercornPeer
) -> None:
    """-k skips verification: the untrusted server is fetched."""
    code, out, err = run(capsys, f"{hypercorn_h2_tls.url}/", "-k", "-v")
    assert (code, out) == (0, "Hello, world!")
    assert "* Server certificate: not verified (--insecure)" in err.splitlines()


def test_tls_to_plain_server_is_35(
    capsys: pytest.CaptureFixture[str], hypercorn_plain: HypercornPeer, certs_dir: Path
) -> None:
    """A TLS handshake with a clear-text server fails with 35."""
    url = f"https://127.0.0.1:{hypercorn_plain.port}/"
    code, _, err = run(capsys, url, "--cacert", cacert(certs_dir))
    assert code == 35
    assert err.startswith("wireline: (35) TLS connect error: ")


def test_bad_cacert_is_77(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A --cacert file that cannot be loaded exits 77 before connecting."""
    code, _, err = run(capsys, "https://127.0.0.1:1/", "--cacert", str(tmp_path / "x"))
    assert code == 77
    assert err.startswith(f"wireline: (77) error setting certificate file: {tmp_path}")


# -- proxies and Unix sockets ----------------------------------------------------------


def test_http_proxy_forward_and_tunnel(
    capsys: pytest.CaptureFixture[str],
    tinyproxy: TinyproxyPeer,
    hypercorn_plain: HypercornPeer,
    hypercorn_h2_tls: HypercornPeer,
    certs_dir: Path,
) -> None:
    """--proxy with tinyproxy: http:// forwarded in absolute form, https://
    through CONNECT (then h2 by ALPN inside the tunnel)."""
    code, out, err = run(
        capsys, f"{hypercorn_plain.url}/headers", "--proxy", tinyproxy.url, "-v"
    )
    assert code == 0, err
    assert json.loads(out)["method"] == "GET"
    assert f"> GET {hypercorn_plain.url}/headers HTTP/1.1" in err.splitlines()
    code, out, err = run(
        capsys,
        f"{hypercorn_h2_tls.url}/headers",
        "--proxy",
        tinyproxy.url,
        "--http2",
        "--cacert",
        cacert(certs_dir),
        "-v",
    )
    assert code == 0, err
    assert json.loads(out)["http_version"] == "2"
    lines = err.splitlines()
    authority = f"127.0.0.1:{hypercorn_h2_tls.port}"
    assert f"* Connected to 127.0.0.1 (127.0.0.1) port {tinyproxy.port}" in lines
    assert f"* Establish HTTP proxy tunnel to {authority}" in lines
    assert f"> CONNECT {authority} HTTP/1.1" in lines
    assert "* CONNECT tunnel established, response 200" in lines
    assert "* ALPN: server accepted h2" in lines


def test_http_proxy_credentials_in_url(
    capsys: pytest.CaptureFixture[str],
    tinyproxy_auth: TinyproxyPeer,
    hypercorn_h2_tls: HypercornPeer,
    certs_dir: Path,
) -> None:
    """user:pass@ in --proxy becomes Proxy-Authorization; without it the
    CONNECT gets 407, which curl reports as 56."""
    user, password = PROXY_CREDENTIALS
    url = f"{hypercorn_h2_tls.url}/"
    proxy = f"http://{user}:{password}@127.0.0.1:{tinyproxy_auth.port}"
    code, out, err = run(capsys, url, "--proxy", proxy, "--cacert", cacert(certs_dir))
    assert (code, out) == (0, "Hello, world!"), err
    code, out, err = run(
        capsys, url, "--proxy", tinyproxy_auth.url, "--cacert", cacert(certs_dir)
    )
    assert (code, out) == (56, "")
    assert err == "wireline: (56) CONNECT tunnel failed, response 407\n"


@pytest.mark.parametrize("loop", LOOPS)
def test_socks5h_proxy(
    capsys: pytest.CaptureFixture[str],
    microsocks: MicrosocksPeer,
    hypercorn_h2_tls: HypercornPeer,
    certs_dir: Path,
    loop: str,
) -> None:
    """socks5h:// through microsocks, TLS + h2 to the origin inside."""
    code, out, err = run(
        capsys,
        f"{hypercorn_h2_tls.url}/headers",
        "--proxy",
        f"socks5h://127.0.0.1:{microsocks.port}",
        "--http2",
        "--cacert",
        cacert(certs_dir),
        "-v",
        "--loop",
        loop,
    )
    assert code == 0, err
    assert json.loads(out)["http_version"] == "2"
    lines = err.splitlines()
    target = f"127.0.0.1:{hypercorn_h2_tls.port}"
    assert f"* SOCKS5 connect to {target} (remotely resolved)" in lines
    assert "* SOCKS5 request granted." in lines


def test_socks5_proxy_credentials_in_url(
    capsys: pytest.CaptureFixture[str],
    microsocks_auth: MicrosocksPeer,
    hypercorn_plain: HypercornPeer,
) -> None:
    """user:pass@ in a socks5:// URL is RFC 1929 authentication."""
    user, password = PROXY_CREDENTIALS
    proxy = f"socks5://{user}:{password}@127.0.0.1:{microsocks_auth.port}"
    code, out, err = run(capsys, f"{hypercorn_plain.url}/", "--proxy", proxy)
    assert (code, out) == (0, "Hello, world!"), err


def test_socks5_refused_target_is_97(
    capsys: pytest.CaptureFixture[str], microsocks: MicrosocksPeer
) -> None:
    """The SOCKS proxy cannot reach the origin: a proxy handshake error (97)."""
    url = f"http://127.0.0.1:{closed_port()}/"
    code, _, err = run(capsys, url, "--proxy", f"socks5h://127.0.0.1:{microsocks.port}")
    assert code == 97
    assert err.startswith("wireline: (97) Proxy handshake failed: ")


def test_proxy_refused_is_7(capsys: pytest.CaptureFixture[str]) -> None:
    """A proxy that refuses the connection: 7, naming the proxy."""
    port = closed_port()
    code, _, err = run(capsys, "http://example.test/", "--proxy", f"127.0.0.1:{port}")
    assert code == 7
    assert err == refused(port)


def test_unsupported_proxy_scheme_is_5(capsys: pytest.CaptureFixture[str]) -> None:
    """socks4:// is not supported: 5, as curl."""
    code, _, err = run(
        capsys, "http://example.test/", "--proxy", "socks4://127.0.0.1:1"
    )
    assert code == 5
    assert err == "wireline: (5) Unsupported proxy scheme for 'socks4://127.0.0.1:1'\n"


@pytest.mark.parametrize("loop", LOOPS)
def test_unix_socket(
    capsys: pytest.CaptureFixture[str], hypercorn_uds: HypercornPeer, loop: str
) -> None:
    """--unix-socket sends the request to hypercorn's Unix socket."""
    assert hypercorn_uds.uds_path is not None
    code, out, err = run(
        capsys,
        "http://localhost/headers",
        "--unix-socket",
        hypercorn_uds.uds_path,
        "-v",
        "--loop",
        loop,
    )
    assert code == 0, err
    assert dict(json.loads(out)["headers"])["host"] == "localhost"
    assert f"* Connected to localhost ({hypercorn_uds.uds_path}) port 80" in err


def test_unix_socket_missing_is_7(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A Unix socket path that does not exist: 7."""
    path = tmp_path / "none.sock"
    code, _, err = run(capsys, "http://localhost/", "--unix-socket", str(path))
    assert code == 7
    assert err == (
        f"wireline: (7) Failed to connect to {path}: No such file or directory\n"
    )


# -- timeouts --------------------------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_connect_timeout_is_28(capsys: pytest.CaptureFixture[str], loop: str) -> None:
    """--connect-timeout on a port that never accepts: 28 right after it."""
    with unanswered_port() as port:
        start = time.monotonic()
        code, _, err = run(
            capsys,
            f"http://127.0.0.1:{port}/",
            "--connect-timeout",
            "0.3",
            "--loop",
            loop,
        )
        elapsed = time.monotonic() - start
    assert code == 28
    assert err.startswith("wireline: (28) Connection timed out after ")
    assert 0.25 <= elapsed < 3.0


@pytest.mark.parametrize("http2", [False, True])
def test_max_time_is_28(
    capsys: pytest.CaptureFixture[str],
    hypercorn_h2_tls: HypercornPeer,
    certs_dir: Path,
    http2: bool,
) -> None:
    """--max-time bounds the whole transfer (/slow answers after 10 s)."""
    extra = ["--http2"] if http2 else []
    start = time.monotonic()
    code, out, err = run(
        capsys,
        f"{hypercorn_h2_tls.url}/slow?delay=10",
        "--cacert",
        cacert(certs_dir),
        "--max-time",
        "0.5",
        *extra,
    )
    elapsed = time.monotonic() - start
    assert (code, out) == (28, "")
    assert err.startswith("wireline: (28) Operation timed out after ")
    assert err.endswith(" milliseconds with 0 bytes received\n")
    assert 0.45 <= elapsed < 4.0


def test_max_time_during_body(
    capsys: pytest.CaptureFixture[str], hypercorn_plain: HypercornPeer, tmp_path: Path
) -> None:
    """--max-time also covers the body: a slow stream is cut, the part kept."""
    output = tmp_path / "part"
    url = f"{hypercorn_plain.url}/stream?chunks=50&size=10&delay=0.1"
    code, _, err = run(capsys, url, "--max-time", "1", "-o", str(output))
    assert code == 28
    received = len(output.read_bytes())
    assert 0 < received < 500
    assert f"with {received} bytes received" in err


def test_max_time_subprocess(hypercorn_plain: HypercornPeer) -> None:
    """The exit code 28 through ``python -m aio``."""
    result = run_module(f"{hypercorn_plain.url}/slow?delay=10", "-m", "0.5")
    assert result.returncode == 28
    assert result.stderr.startswith("wireline: (28) Operation timed out after ")


# -- exit codes for broken peers and bad input -----------------------------------------


def test_connection_refused_subprocess() -> None:
    """curl's message and code for a refused connection."""
    port = closed_port()
    result = run_module(f"http://127.0.0.1:{port}/")
    assert result.returncode == 7
    assert result.stdout == ""
    assert result.stderr == refused(port)


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """``*.invalid`` names fail to resolve at once, without asking any DNS
    server (asyncio's resolver calls ``socket.getaddrinfo``)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.usefixtures("fake_dns")
def test_unresolved_host_is_6(capsys: pytest.CaptureFixture[str]) -> None:
    """A name that does not resolve: 6."""
    code, _, err = run(capsys, "http://no-such-host.invalid/")
    assert (code, err) == (
        6,
        "wireline: (6) Could not resolve host: no-such-host.invalid\n",
    )


@pytest.mark.usefixtures("fake_dns")
def test_unresolved_proxy_is_5(capsys: pytest.CaptureFixture[str]) -> None:
    """A proxy name that does not resolve: 5."""
    code, _, err = run(
        capsys, "http://127.0.0.1/", "--proxy", "http://no-such-proxy.invalid:3128"
    )
    assert code == 5
    assert err == "wireline: (5) Could not resolve proxy: no-such-proxy.invalid\n"


@pytest.mark.usefixtures("fake_dns")
def test_socks5_local_resolution_failure_is_6(
    capsys: pytest.CaptureFixture[str], microsocks: MicrosocksPeer
) -> None:
    """socks5:// resolves the origin here: its failure is the origin's (6)."""
    code, _, err = run(
        capsys, "http://no-such-host.invalid/", "--proxy", microsocks.url
    )
    assert (code, err) == (
        6,
        "wireline: (6) Could not resolve host: no-such-host.invalid\n",
    )


def test_empty_reply_is_52(capsys: pytest.CaptureFixture[str]) -> None:
    """A server that closes without answering: 52."""
    with one_shot_server(b"") as port:
        code, _, err = run(capsys, f"http://127.0.0.1:{port}/", "--max-time", "10")
    assert (code, err) == (52, "wireline: (52) Empty reply from server\n")


def test_garbage_reply_is_56(capsys: pytest.CaptureFixture[str]) -> None:
    """A reply that is not HTTP: a receive failure (56)."""
    with one_shot_server(b"NOT HTTP AT ALL\r\n\r\n") as port:
        code, _, err = run(capsys, f"http://127.0.0.1:{port}/", "--max-time", "10")
    assert code == 56
    assert err.startswith("wireline: (56) Recv failure: ")


def test_truncated_body_is_56(capsys: pytest.CaptureFixture[str]) -> None:
    """A body shorter than its Content-Length: 56, the part written."""
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    with one_shot_server(reply) as port:
        code, out, err = run(capsys, f"http://127.0.0.1:{port}/", "--max-time", "10")
    assert (code, out) == (56, "abc")
    assert err.startswith("wireline: (56) Recv failure: ")


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (aio.WriteError("broken pipe"), 55, "Send failure: broken pipe"),
        (aio.ReadError("reset"), 56, "Recv failure: reset"),
        (aio.ReadTimeout("slow"), 28, "Operation timed out after "),
        (aio.PoolTimeout("busy"), 28, "Operation timed out after "),
        (aio.ConnectTimeout("slow"), 28, "Connection timed out after "),
        (aio.ProxyError("403 Forbidden", status=403), 56, "CONNECT tunnel failed"),
        (aio.ProxyError("refused"), 97, "Proxy handshake failed: refused"),
        (aio.UnsupportedProtocol("nope"), 1, "nope"),
        (aio.LocalProtocolError("bad"), 2, "bad"),
    ],
)
def test_exception_classification(exc: Exception, code: int, message: str) -> None:
    """Failures that are hard to provoke against a real peer map to curl's codes."""
    args = cli.build_parser().parse_args(["http://127.0.0.1/"])
    options = cli.resolve_options(args)
    transfer = cli.Transfer(options, io.StringIO(), io.StringIO())
    error = transfer.classify(exc)
    assert error is not None
    assert (int(error.code), error.message[: len(message)]) == (code, message)
    assert transfer.classify(RuntimeError("a bug")) is None


@pytest.mark.parametrize(
    ("url", "code", "message"),
    [
        ("ftp://127.0.0.1/", 1, 'Protocol "ftp" not supported'),
        ("http://exa mple.test/", 3, "URL rejected: invalid URL host"),
        ("http://127.0.0.1:99999/", 3, "URL rejected: invalid URL port"),
        ("http:///path", 3, "URL rejected: No host part in the URL"),
    ],
)
def test_bad_urls(
    capsys: pytest.CaptureFixture[str], url: str, code: int, message: str
) -> None:
    """Unsupported schemes exit 1, malformed URLs 3, before any connection."""
    result = run(capsys, url)
    assert result[0] == code
    assert result[2].startswith(f"wireline: ({code}) {message}")


@pytest.mark.parametrize(
    "argv",
    [
        ["http://127.0.0.1/", "--no-such-option"],
        ["http://127.0.0.1/", "--connect-timeout", "soon"],
        ["http://127.0.0.1/", "--max-time", "-1"],
        ["http://127.0.0.1/", "--loop", "trio"],
        [],
    ],
)
def test_usage_errors_are_2(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """Bad command lines exit 2 with a curl-style hint."""
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.startswith("wireline: ")
    assert err.endswith("wireline: try 'wireline --help' for more information\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-H", "no colon"], "option -H: header 'no colon' is not 'Name: value'"),
        (["-H", "Bad Name: x"], "invalid header name"),
        (["-X", "GET /x"], "invalid request method"),
        (["--sni-hostname", "a b"], "sni_hostname 'a b' is not a valid host name"),
    ],
)
def test_invalid_request_parts_are_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Headers, methods and SNI names that cannot be sent: 2, nothing sent."""
    code, _, err = run(capsys, "http://127.0.0.1:1/", *argv)
    assert code == 2
    assert err.startswith(f"wireline: (2) {message}"), err


def test_help_and_version_subprocess() -> None:
    """--help and --version exit 0."""
    result = run_module("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: wireline URL [options]")
    assert "--http2-prior-knowledge" in result.stdout
    assert "--force-progress" not in result.stdout
    result = run_module("--version")
    assert (result.returncode, result.stdout.split()[0]) == (0, "wireline")


# -- the progress bar ------------------------------------------------------------------


def test_render_progress_with_total() -> None:
    """Percentage, bar, amounts, rate, elapsed and ETA, within the width."""
    line = cli.render_progress(512 * 1024, 1024 * 1024, 2.0, width=80)
    assert line.startswith(" 50.0% [")
    assert "] " in line
    assert "512.0 KiB / 1.0 MiB" in line
    assert "256.0 KiB/s" in line
    assert "0:02 ETA  0:02" in line
    assert len(line) <= 79
    bar = line[line.index("[") + 1 : line.index("]")]
    assert bar.count("#") == len(bar) // 2
    done = cli.render_progress(1024 * 1024, 1024 * 1024, 4.0, width=80)
    assert done.startswith("100.0% [")
    assert "-" not in done[done.index("[") : done.index("]")]
    # The bar keeps its length from one draw to the next.
    assert done.index("]") == line.index("]")


def test_render_progress_edge_cases() -> None:
    """Unknown total, zero time, empty body, huge sizes, narrow terminals."""
    unknown = cli.render_progress(2048, None, 1.0)
    assert "%" not in unknown
    assert "2.0 KiB" in unknown
    assert "2.0 KiB/s" in unknown
    start = cli.render_progress(0, 100, 0.0)
    assert start.startswith("  0.0% [")
    assert "0 B/s" in start
    assert "ETA  -:--" in start
    assert cli.render_progress(0, 0, 0.5).startswith("100.0%")
    big = cli.render_progress(5 * 2**30, 10 * 2**30, 3700.0)
    assert "5.0 GiB / 10.0 GiB" in big
    assert "1:01:40" in big
    assert len(cli.render_progress(10, 100, 1.0, width=30)) <= 29
    assert "[" not in cli.render_progress(10, 100, 1.0, width=50)


def test_progress_meter_redraws_at_most_ten_times_a_second() -> None:
    """update() draws only when 0.1 s passed; finish() always draws, then a newline."""
    now = [0.0]
    stream = io.StringIO()
    meter = cli.ProgressMeter(stream, 1000, start=0.0, clock=lambda: now[0], width=80)
    for step in range(100):  # 100 updates over 0.5 s
        now[0] = step * 0.005
        meter.update(step * 10)
    assert meter.draws == 5
    now[0] = 0.6
    meter.finish(1000)
    assert meter.draws == 6
    text = stream.getvalue()
    assert text.count("\r") == 6
    assert text.endswith("\n")
    assert "100.0%" in text.rsplit("\r", 1)[-1]


def test_progress_bar_forced(
    capsys: pytest.CaptureFixture[str], hypercorn_plain: HypercornPeer, tmp_path: Path
) -> None:
    """With -o FILE the bar is drawn on stderr when forced (not a TTY here);
    never with -s or --no-progress-meter, nor without -o."""
    output = tmp_path / "out"
    url = f"{hypercorn_plain.url}/bytes?n=200000"
    code, out, err = run(capsys, url, "-o", str(output), "--force-progress")
    assert (code, out) == (0, "")
    assert output.stat().st_size == 200000
    assert err.startswith("\r")
    assert err.endswith("\n")
    final = err.rstrip("\n").rsplit("\r", 1)[-1]
    assert final.startswith("100.0% [")
    assert "195.3 KiB / 195.3 KiB" in final
    for quiet in (["-s"], ["--no-progress-meter"]):
        assert run(capsys, url, "-o", str(output), "--force-progress", *quiet) == (
            0,
            "",
            "",
        )
    code, out, err = run(capsys, url, "--force-progress")
    assert (code, len(out), err) == (0, 200000, "")


# -- building blocks -------------------------------------------------------------------


def test_build_headers() -> None:
    """Defaults, replacement, removal, empty values and the form Content-Type."""
    headers = cli.build_headers(
        ["accept: text/html", "User-Agent:", "X-Empty;", "X-A: 1", "X-A: 2"],
        has_data=True,
    )
    assert headers == [
        (b"accept", b"text/html"),
        (b"X-Empty", b""),
        (b"X-A", b"1"),
        (b"X-A", b"2"),
        (b"Content-Type", b"application/x-www-form-urlencoded"),
    ]
    auth = cli.build_headers([], has_data=False, credentials=("user", "p:w"))
    assert (b"Authorization", b"Basic dXNlcjpwOnc=") in auth


def test_parse_url() -> None:
    """Scheme default, credentials, IDN hosts."""
    url, credentials = cli.parse_url("user:s%40cret@example.test:8080/a?b=1")
    assert bytes(url) == b"http://example.test:8080/a?b=1"
    assert credentials == ("user", "s@cret")
    url, credentials = cli.parse_url("https://bücher.example/ä")
    assert bytes(url) == b"https://xn--bcher-kva.example/%C3%A4"
    assert credentials is None


def test_parse_proxy() -> None:
    """curl's default proxy ports, schemes and percent-decoded credentials."""
    proxy = cli.parse_proxy("127.0.0.1")
    assert bytes(proxy.url) == b"http://127.0.0.1:1080"
    assert proxy.auth is None
    proxy = cli.parse_proxy("socks5h://us%3Ar:pw@127.0.0.1")
    assert (bytes(proxy.url), proxy.auth) == (
        b"socks5h://127.0.0.1:1080",
        (b"us:r", b"pw"),
    )
    context = ssl.create_default_context()
    proxy = cli.parse_proxy("https://u:p@proxy.test", context)
    assert bytes(proxy.url) == b"https://proxy.test:443"
    assert proxy.ssl_context is context
    assert proxy.headers[0][0] == b"Proxy-Authorization"
    with pytest.raises(cli.CLIError) as info:
        cli.parse_proxy("socks4://127.0.0.1")
    assert info.value.code == 5
