"""Run Debian's nginx (``nginx-light``) as an HTTP/2-over-TLS peer on loopback.

``run_nginx`` writes a config into a fresh temporary directory and starts
``nginx -p DIR -c DIR/nginx.conf -e DIR/error.log`` in the foreground
(``daemon off``, pid file, logs and temp paths all inside DIR), so nothing needs
root and nothing touches /var/log/nginx or /run. The port is race-free: the
parent binds and listens on 127.0.0.1:0 itself and hands the socket to nginx
through nginx's own inherited-socket mechanism (the ``NGINX="fd;"`` environment
variable used for binary upgrades), with a matching ``listen`` directive.

The server answers ``/`` and ``/hello`` with ``hello`` (``return 200``) and
serves ``DOCROOT_FILES`` (``/small.txt``, ``/large.bin`` ~1 MiB,
``/index.html``) statically. ``keepalive_requests N`` makes it send GOAWAY after
N requests on a connection.

This module also holds the helpers the nghttpd peer shares (binary lookup,
docroot, TLS readiness probe, process start/stop).
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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import IO

CERTS_DIR = Path(__file__).resolve().parents[2] / "certs"
SBIN_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
INSTALL_HINT = "`make install-peers` installs it (apt-get install {package})"

#: Files every binary peer serves from its docroot, by URL path.
DOCROOT_FILES: Mapping[str, bytes] = MappingProxyType(
    {
        "/index.html": b"hello",
        "/small.txt": b"small file from the docroot\n",
        "/large.bin": bytes(range(256)) * 4096,  # 1 MiB, position-dependent bytes
    }
)


class PeerBinaryMissing(RuntimeError):
    """A peer's binary is not installed (or lacks a needed feature)."""


def find_binary(name: str, package: str) -> str:
    """Return the path of ``name`` (PATH, then the sbin dirs) or fail clearly."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])
    path = shutil.which(name, path=search)
    if path is None:
        raise PeerBinaryMissing(
            f"{name} not found: " + INSTALL_HINT.format(package=package)
        )
    return path


def write_docroot(directory: Path) -> Path:
    """Create ``directory`` holding ``DOCROOT_FILES``; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    for url_path, content in DOCROOT_FILES.items():
        (directory / url_path.lstrip("/")).write_bytes(content)
    return directory


def pdeathsig_prefix() -> list[str]:
    """``setpriv --pdeathsig TERM --`` when available, so a peer dies with us."""
    setpriv = shutil.which("setpriv", path=os.pathsep.join(SBIN_DIRS))
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def start_process(
    cmd: Sequence[str],
    log: IO[bytes],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` with stdout/stderr into ``log`` and no stdin."""
    return subprocess.Popen(
        [*pdeathsig_prefix(), *cmd],
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        pass_fds=tuple(pass_fds),
    )


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM, wait, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_tls_ready(
    proc: subprocess.Popen[bytes],
    host: str,
    port: int,
    cafile: Path,
    *,
    name: str,
    log_path: Path,
    timeout: float = 10.0,
) -> None:
    """Poll until a TLS handshake to ``host:port`` negotiates ALPN ``h2``."""
    context = ssl.create_default_context(cafile=cafile)
    context.set_alpn_protocols(["h2"])
    deadline = time.monotonic() + timeout
    error: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{name} exited with {proc.returncode}:\n{_read(log_path)}"
            )
        try:
            with (
                socket.create_connection((host, port), timeout=1.0) as raw,
                context.wrap_socket(raw, server_hostname=host) as tls,
            ):
                error = tls.selected_alpn_protocol()
                if error == "h2":
                    return
        except OSError as exc:  # refused, reset, handshake timed out, ...
            error = exc
        time.sleep(0.05)
    raise RuntimeError(
        f"{name} not ready on {host}:{port} after {timeout}s (last: {error!r}):\n"
        f"{_read(log_path)}"
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


@dataclass(frozen=True)
class NginxPeer:
    """A running nginx: where it listens, what it serves, its logs."""

    host: str
    port: int
    workdir: Path
    docroot: Path
    keepalive_requests: int
    max_concurrent_streams: int
    error_log: Path
    access_log: Path
    files: Mapping[str, bytes] = field(
        default_factory=lambda: DOCROOT_FILES, repr=False
    )

    @property
    def url(self) -> str:
        """Origin URL, e.g. ``https://127.0.0.1:1234``."""
        return f"https://{self.host}:{self.port}"

    def read_log(self) -> str:
        """The error log (startup messages, errors) so far."""
        return _read(self.error_log)

    def read_access_log(self) -> str:
        """The access log so far (one line per request, ``HTTP/2.0``)."""
        return _read(self.access_log)


NGINX_CONF = """\
{user}daemon off;
master_process on;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {workdir}/access.log;
    client_body_temp_path {workdir}/tmp/body;
    proxy_temp_path {workdir}/tmp/proxy;
    fastcgi_temp_path {workdir}/tmp/fastcgi;
    uwsgi_temp_path {workdir}/tmp/uwsgi;
    scgi_temp_path {workdir}/tmp/scgi;
    default_type application/octet-stream;
    types {{ text/plain txt; text/html html; }}
    keepalive_requests {keepalive_requests};
    keepalive_timeout 60s;
    http2_max_concurrent_streams {max_concurrent_streams};
    server {{
        listen {host}:{port} ssl http2;
        server_name localhost;
        ssl_certificate {certs}/server.pem;
        ssl_certificate_key {certs}/server.key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location = / {{ default_type text/plain; return 200 "hello"; }}
        location = /hello {{ default_type text/plain; return 200 "hello"; }}
        location / {{ root {docroot}; }}
    }}
}}
"""


def check_nginx(binary: str) -> None:
    """Fail unless ``nginx -V`` shows the HTTP/2 and SSL modules."""
    info = subprocess.run(
        [binary, "-V"], capture_output=True, text=True, check=False
    ).stderr
    for module in ("--with-http_v2_module", "--with-http_ssl_module"):
        if module not in info:
            raise PeerBinaryMissing(
                f"{binary} lacks {module}: "
                + INSTALL_HINT.format(package="nginx-light")
            )


@contextlib.contextmanager
def run_nginx(
    *,
    certs_dir: Path = CERTS_DIR,
    keepalive_requests: int = 10_000,
    max_concurrent_streams: int = 128,
    startup_timeout: float = 10.0,
) -> Iterator[NginxPeer]:
    """Start nginx (TLS + h2 on 127.0.0.1), wait until it handshakes, stop on exit."""
    binary = find_binary("nginx", "nginx-light")
    check_nginx(binary)
    workdir = Path(tempfile.mkdtemp(prefix="wl-nginx-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        (workdir / "tmp").mkdir()
        docroot = write_docroot(workdir / "docroot")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            host, port = listener.getsockname()
            user = ""
            if os.geteuid() == 0:  # else workers run as nobody: docroot unreadable
                user = f"user {pwd.getpwuid(0).pw_name} {grp.getgrgid(0).gr_name};\n"
            conf = workdir / "nginx.conf"
            conf.write_text(
                NGINX_CONF.format(
                    user=user,
                    workdir=workdir,
                    docroot=docroot,
                    certs=certs_dir.resolve(),
                    host=host,
                    port=port,
                    keepalive_requests=keepalive_requests,
                    max_concurrent_streams=max_concurrent_streams,
                )
            )
            peer = NginxPeer(
                host=host,
                port=port,
                workdir=workdir,
                docroot=docroot,
                keepalive_requests=keepalive_requests,
                max_concurrent_streams=max_concurrent_streams,
                error_log=workdir / "error.log",
                access_log=workdir / "access.log",
            )
            cmd = [binary, "-p", f"{workdir}/", "-c", str(conf)]
            cmd += ["-e", str(peer.error_log)]
            env = {**os.environ, "NGINX": f"{listener.fileno()};"}
            with (workdir / "stdout.log").open("wb") as log:
                proc = start_process(
                    cmd, log, cwd=workdir, env=env, pass_fds=[listener.fileno()]
                )
        wait_tls_ready(
            proc,
            host,
            port,
            certs_dir / "ca.pem",
            name="nginx",
            log_path=peer.error_log,
            timeout=startup_timeout,
        )
        yield peer
    finally:
        if proc is not None:
            stop_process(proc)
        shutil.rmtree(workdir, ignore_errors=True)
