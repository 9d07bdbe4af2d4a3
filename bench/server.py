"""Run nginx 1.22 on loopback as the benchmark server, unprivileged and pinned to CPU 0.

One nginx master with one worker (``worker_processes 1``, ``worker_cpu_affinity``
pins it to CPU 0 while the clients run on CPU 1) serves three listeners, all on
127.0.0.1:

- ``plain``: HTTP/1.1 over TCP (scenarios S1, S2, S4 and the idle-pool
  measurements);
- ``h2``: TLS with ALPN ``h2`` (scenario S3), ``http2_max_concurrent_streams 128``;
- ``h2_single``: TLS with ALPN ``h2`` and one stream per connection, so that a
  pool has to open one HTTP/2 connection per concurrent request (RSS per idle
  HTTP/2 connection).

Every listener serves the same docroot: ``/small.txt`` (``SMALL_BODY``, 13
bytes) and ``/large.bin`` (``LARGE_SIZE`` bytes, written into the temporary
directory at start). Static files, not ``return 200``, so that every client gets
the same response head (Content-Type, Last-Modified, ETag, ...).

Ports are race-free: this process binds and listens on 127.0.0.1:0 and hands
the sockets to nginx through the ``NGINX="fd;fd;"`` inherited-socket mechanism.
``daemon off``, pid file, logs and temp paths all live in the temporary
directory, so nothing needs root or touches /var/log/nginx.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LARGE_PATH",
    "LARGE_SIZE",
    "SMALL_BODY",
    "SMALL_PATH",
    "BenchServer",
    "NginxUnavailable",
    "run_nginx",
]

HOST = "127.0.0.1"
SMALL_PATH = "/small.txt"
SMALL_BODY = b"hello world!\n"  # 13 bytes
LARGE_PATH = "/large.bin"
LARGE_SIZE = 50_000_000  # "50 MB": throughput is reported in MB/s (10**6 bytes)
#: Far above any scenario's needs: 1,000 idle connections plus a few in use.
LISTEN_BACKLOG = 4096
SERVER_CPU = 0

NGINX_CONF = """\
{user}daemon off;
master_process on;
worker_processes 1;
worker_cpu_affinity {affinity};
worker_rlimit_nofile 16384;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{
    worker_connections 8192;
}}
http {{
    access_log off;
    client_body_temp_path {workdir}/tmp/body;
    proxy_temp_path {workdir}/tmp/proxy;
    fastcgi_temp_path {workdir}/tmp/fastcgi;
    uwsgi_temp_path {workdir}/tmp/uwsgi;
    scgi_temp_path {workdir}/tmp/scgi;
    default_type application/octet-stream;
    types {{ text/plain txt; }}
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    open_file_cache max=16 inactive=3600s;
    open_file_cache_valid 3600s;
    # No scenario may be disturbed by a server-side close (or an HTTP/2 GOAWAY,
    # which keepalive_requests also governs since nginx 1.19.7).
    keepalive_requests 100000000;
    keepalive_timeout 3600s;
    root {docroot};
    ssl_certificate {certs}/server.pem;
    ssl_certificate_key {certs}/server.key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    server {{
        listen {host}:{plain} backlog={backlog};
    }}
    server {{
        listen {host}:{h2} ssl http2 backlog={backlog};
        http2_max_concurrent_streams 128;
    }}
    server {{
        listen {host}:{h2_single} ssl http2 backlog={backlog};
        http2_max_concurrent_streams 1;
    }}
}}
"""


class NginxUnavailable(RuntimeError):
    """nginx is missing, lacks a module, or did not come up."""


@dataclass(frozen=True)
class BenchServer:
    """Where the running nginx listens and what it serves."""

    host: str
    plain_port: int
    h2_port: int
    h2_single_port: int
    workdir: Path
    version: str

    @property
    def plain_origin(self) -> str:
        """``http://127.0.0.1:PORT`` (HTTP/1.1)."""
        return f"http://{self.host}:{self.plain_port}"

    @property
    def h2_origin(self) -> str:
        """``https://127.0.0.1:PORT`` (ALPN h2, 128 streams per connection)."""
        return f"https://{self.host}:{self.h2_port}"

    @property
    def h2_single_origin(self) -> str:
        """``https://127.0.0.1:PORT`` (ALPN h2, one stream per connection)."""
        return f"https://{self.host}:{self.h2_single_port}"

    def error_log(self) -> str:
        """nginx's error log so far."""
        try:
            return (self.workdir / "error.log").read_text(errors="replace")
        except OSError:
            return ""


def find_nginx() -> str:
    """Return the nginx binary's path, or fail with the install hint."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    binary = shutil.which("nginx", path=search)
    if binary is None:
        raise NginxUnavailable("nginx not found: `make install-peers` installs it")
    info = subprocess.run(
        [binary, "-V"], capture_output=True, text=True, check=False, timeout=10
    ).stderr
    for module in ("--with-http_v2_module", "--with-http_ssl_module"):
        if module not in info:
            raise NginxUnavailable(f"{binary} lacks {module}")
    return binary


def _nginx_version(info: str) -> str:
    first = info.splitlines()[0] if info else ""
    return first.rpartition("nginx/")[2].strip() or "unknown"


def _write_docroot(directory: Path) -> None:
    directory.mkdir()
    (directory / SMALL_PATH.lstrip("/")).write_bytes(SMALL_BODY)
    pattern = bytes(range(256)) * 4096  # 1 MiB
    with (directory / LARGE_PATH.lstrip("/")).open("wb") as large:
        remaining = LARGE_SIZE
        while remaining:
            chunk = pattern[: min(remaining, len(pattern))]
            large.write(chunk)
            remaining -= len(chunk)


def _listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(LISTEN_BACKLOG)
    return sock


def _affinity_mask() -> str:
    """nginx's CPU mask for SERVER_CPU, e.g. ``01`` for CPU 0."""
    return "1".ljust(SERVER_CPU + 1, "0")[::-1]


def _wait_ready(
    proc: subprocess.Popen[bytes], server: BenchServer, cafile: Path, timeout: float
) -> None:
    """Poll until a plain GET answers 200 and both TLS ports negotiate h2."""
    context = ssl.create_default_context(cafile=str(cafile))
    context.set_alpn_protocols(["h2"])
    request = f"GET {SMALL_PATH} HTTP/1.1\r\nHost: {server.host}\r\n\r\n".encode()
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise NginxUnavailable(
                f"nginx exited with {proc.returncode}:\n{server.error_log()}"
            )
        try:
            with socket.create_connection((server.host, server.plain_port), 1.0) as s:
                s.sendall(request)
                last = s.recv(64)
            if not last.startswith(b"HTTP/1.1 200"):
                raise OSError(f"unexpected answer {last!r}")
            for port in (server.h2_port, server.h2_single_port):
                with (
                    socket.create_connection((server.host, port), 1.0) as raw,
                    context.wrap_socket(raw, server_hostname=server.host) as tls,
                ):
                    last = tls.selected_alpn_protocol()
                    if last != "h2":
                        raise OSError(f"ALPN {last!r} on port {port}")
            return
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise NginxUnavailable(
        f"nginx not ready after {timeout}s (last: {last!r}):\n{server.error_log()}"
    )


@contextlib.contextmanager
def run_nginx(
    certs_dir: Path, *, startup_timeout: float = 15.0
) -> Iterator[BenchServer]:
    """Start nginx on three loopback ports; stop it and remove its files on exit.

    Args:
        certs_dir: holds ``server.pem``, ``server.key.pem`` and ``ca.pem``.
        startup_timeout: seconds to wait for nginx to answer.

    Raises:
        NginxUnavailable: nginx is missing, broken, or did not answer in time.
    """
    binary = find_nginx()
    info = subprocess.run(
        [binary, "-V"], capture_output=True, text=True, check=False, timeout=10
    ).stderr
    workdir = Path(tempfile.mkdtemp(prefix="wl-bench-nginx-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        (workdir / "tmp").mkdir()
        _write_docroot(workdir / "docroot")
        listeners = [_listener() for _ in range(3)]
        with contextlib.ExitStack() as closing:
            for listener in listeners:
                closing.enter_context(listener)
            plain, h2, h2_single = (sock.getsockname()[1] for sock in listeners)
            user = ""
            if os.geteuid() == 0:  # else workers run as nobody: the docroot is 0700
                user = f"user {pwd.getpwuid(0).pw_name} {grp.getgrgid(0).gr_name};\n"
            conf = workdir / "nginx.conf"
            conf.write_text(
                NGINX_CONF.format(
                    user=user,
                    affinity=_affinity_mask(),
                    workdir=workdir,
                    docroot=workdir / "docroot",
                    certs=certs_dir.resolve(),
                    host=HOST,
                    plain=plain,
                    h2=h2,
                    h2_single=h2_single,
                    backlog=LISTEN_BACKLOG,
                )
            )
            server = BenchServer(
                host=HOST,
                plain_port=plain,
                h2_port=h2,
                h2_single_port=h2_single,
                workdir=workdir,
                version=_nginx_version(info),
            )
            fds = [sock.fileno() for sock in listeners]
            env = {**os.environ, "NGINX": "".join(f"{fd};" for fd in fds)}
            cmd = [binary, "-p", f"{workdir}/", "-c", str(conf)]
            cmd += ["-e", str(workdir / "error.log")]
            setpriv = shutil.which("setpriv", path="/usr/bin:/bin:/usr/sbin")
            if setpriv:  # nginx dies with us, even on SIGKILL
                cmd = [setpriv, "--pdeathsig", "TERM", "--", *cmd]
            with (workdir / "stdout.log").open("wb") as log:
                proc = subprocess.Popen(
                    cmd,
                    cwd=workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=fds,
                )
        _wait_ready(proc, server, certs_dir / "ca.pem", startup_timeout)
        yield server
    finally:
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
