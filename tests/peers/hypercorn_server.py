"""Run hypercorn, serving ``tests.peers.asgi_app:app``, in a child process.

The parent binds and listens on the socket itself (127.0.0.1 port 0, or a Unix
socket in a fresh temporary directory) and hands the file descriptor to the child
with ``fd://N``, so the address is known before the child starts and nothing can
race for the port. The child serves until its stdin reaches EOF, which happens
both when the parent closes the pipe on purpose and when the parent dies, so no
orphan server outlives a killed test run.

Over TLS the child's SSL context records the SNI name of every handshake (None
without SNI); the app serves that list at ``GET /sni``, so a test can check what
a client sent the origin, e.g. through a proxy tunnel.

Run as ``python -m tests.peers.hypercorn_server --fd N --workdir D [--certfile F
--keyfile K] [--alpn P ...] [--keep-alive-timeout S] [--no-access-log]`` from the
repository root (``run_hypercorn`` does this); on a clean shutdown the child
removes ``D``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from hypercorn.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]

Kind = Literal["tls", "plain", "uds"]


@dataclass(frozen=True)
class HypercornPeer:
    """Where a running hypercorn child listens.

    For ``uds`` peers ``host``/``port`` are ``localhost``/80 and ``url`` is
    ``http://localhost``: send requests for that URL over a connection to
    ``uds_path``.
    """

    kind: Kind
    host: str
    port: int
    uds_path: str | None
    alpn_protocols: tuple[str, ...]
    log_path: Path

    @property
    def scheme(self) -> str:
        """``https`` for TLS peers, else ``http``."""
        return "https" if self.kind == "tls" else "http"

    @property
    def url(self) -> str:
        """Origin URL without a trailing slash, e.g. ``https://127.0.0.1:1234``."""
        if self.kind == "uds":
            return "http://localhost"
        return f"{self.scheme}://{self.host}:{self.port}"

    def read_log(self) -> str:
        """Return hypercorn's combined stdout/stderr so far (access + error log)."""
        return self.log_path.read_text(errors="replace")


def h2_tls_options(certs_dir: Path) -> dict[str, Any]:
    """``run_hypercorn("tls", ...)`` arguments: the test certificates from
    ``certs_dir``, and ALPN ``h2`` before ``http/1.1``."""
    return {
        "certfile": certs_dir / "server.pem",
        "keyfile": certs_dir / "server.key.pem",
        "cafile": certs_dir / "ca.pem",
        "alpn_protocols": ("h2", "http/1.1"),
    }


@contextlib.contextmanager
def run_hypercorn(
    kind: Kind,
    *,
    certfile: Path | None = None,
    keyfile: Path | None = None,
    cafile: Path | None = None,
    alpn_protocols: Sequence[str] = ("http/1.1",),
    startup_timeout: float = 10.0,
    keep_alive_timeout: float | None = None,
    access_log: bool = True,
) -> Iterator[HypercornPeer]:
    """Start hypercorn in a child process, wait until it answers, stop it on exit.

    ``tls`` needs ``certfile``/``keyfile`` (and ``cafile`` so the readiness probe
    can verify them); ``alpn_protocols`` is what the server offers, in order.
    ``keep_alive_timeout`` closes connections idle that long (hypercorn's
    default: 5 s); without ``access_log`` the server spares the CPU a log line
    per request costs (soak rates).
    """
    if kind == "tls" and (certfile is None or keyfile is None or cafile is None):
        raise ValueError("a tls peer needs certfile, keyfile and cafile")
    workdir = Path(tempfile.mkdtemp(prefix="wl-hc-"))  # short: AF_UNIX path limit
    log_path = workdir / "hypercorn.log"
    uds_path: str | None = None
    if kind == "uds":
        uds_path = str(workdir / "hc.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(uds_path)
        host, port = "localhost", 80
    else:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        host, port = listener.getsockname()
    listener.listen(128)
    peer = HypercornPeer(kind, host, port, uds_path, tuple(alpn_protocols), log_path)

    cmd = [sys.executable, "-m", "tests.peers.hypercorn_server"]
    cmd += ["--fd", str(listener.fileno()), "--workdir", str(workdir)]
    if kind == "tls":
        cmd += ["--certfile", str(certfile), "--keyfile", str(keyfile)]
    for protocol in alpn_protocols:
        cmd += ["--alpn", protocol]
    if keep_alive_timeout is not None:
        cmd += ["--keep-alive-timeout", str(keep_alive_timeout)]
    if not access_log:
        cmd += ["--no-access-log"]

    proc: subprocess.Popen[bytes] | None = None
    try:
        with listener, log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(listener.fileno(),),
            )
        probe_ctx = None
        if kind == "tls":
            probe_ctx = ssl.create_default_context(cafile=cafile)
        _wait_ready(proc, peer, probe_ctx, startup_timeout)
        yield peer
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Ask the child to shut down (stdin EOF), then kill it if it lingers."""
    assert proc.stdin is not None
    with contextlib.suppress(OSError):
        proc.stdin.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_ready(
    proc: subprocess.Popen[bytes],
    peer: HypercornPeer,
    ssl_context: ssl.SSLContext | None,
    timeout: float,
) -> None:
    """Poll ``GET /`` until it returns ``Hello, world!`` or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    error: BaseException | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"hypercorn exited with {proc.returncode}:\n{peer.read_log()}"
            )
        try:
            if _probe(peer, ssl_context).endswith(b"\r\n\r\nHello, world!"):
                return
        except OSError as exc:  # refused, timed out, TLS not up yet, ...
            error = exc
        time.sleep(0.05)
    raise RuntimeError(
        f"hypercorn {peer.kind} not ready after {timeout}s ({error!r}):\n"
        f"{peer.read_log()}"
    )


def _probe(peer: HypercornPeer, ssl_context: ssl.SSLContext | None) -> bytes:
    """Make one blocking ``GET /`` and return the raw response."""
    if peer.uds_path is not None:
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.settimeout(1.0)
        try:
            raw.connect(peer.uds_path)
        except OSError:
            raw.close()
            raise
    else:
        raw = socket.create_connection((peer.host, peer.port), timeout=1.0)
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(raw)
        if ssl_context is not None:
            sock = stack.enter_context(
                ssl_context.wrap_socket(raw, server_hostname=peer.host)
            )
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        response = bytearray()
        while chunk := sock.recv(65536):
            response += chunk
        return bytes(response)


def _sni_recording_config() -> Config:
    """A hypercorn ``Config`` whose TLS context records each handshake's SNI.

    Every name (None when the client sent no SNI) is appended to
    ``asgi_app.SNI_NAMES``, which the app serves at ``GET /sni``.
    """
    from hypercorn.config import Config

    from tests.peers.asgi_app import SNI_NAMES

    def record_sni(
        sslobj: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
    ) -> None:
        SNI_NAMES.append(server_name)

    class SniRecordingConfig(Config):
        """Config whose ``create_ssl_context`` installs the SNI recorder."""

        def create_ssl_context(self) -> ssl.SSLContext | None:
            context = super().create_ssl_context()
            if context is not None:
                context.sni_callback = record_sni
            return context

    return SniRecordingConfig()


async def _serve(args: argparse.Namespace) -> None:
    """Child side: serve the ASGI app on the inherited socket until stdin EOF."""
    from hypercorn.asyncio import serve

    from tests.peers.asgi_app import app

    config = _sni_recording_config()
    config.bind = [f"fd://{args.fd}"]
    config.certfile = args.certfile
    config.keyfile = args.keyfile
    config.alpn_protocols = args.alpn or ["http/1.1"]
    config.accesslog = "-" if args.access_log else None
    config.errorlog = "-"
    config.graceful_timeout = 1.0
    if args.keep_alive_timeout is not None:
        config.keep_alive_timeout = args.keep_alive_timeout
    # hypercorn closes a connection at its 1,001st request by default, failing
    # the HTTP/2 streams still in flight; test runs send more than that.
    config.keep_alive_max_requests = 100_000

    loop = asyncio.get_running_loop()
    stdin_closed = asyncio.Event()

    class _StdinWatcher(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            stdin_closed.set()

    transport, _ = await loop.connect_read_pipe(_StdinWatcher, sys.stdin)
    try:
        asgi: Any = app  # hypercorn's typed scopes vs. our plain mappings
        await serve(asgi, config, shutdown_trigger=stdin_closed.wait)
    finally:
        transport.close()
    # Clean shutdown: also covers a parent that died without cleaning up. (On a
    # startup failure we never get here, so the parent can still read the log.)
    shutil.rmtree(args.workdir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the child's arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    parser.add_argument("--alpn", action="append")
    parser.add_argument("--keep-alive-timeout", type=float)
    parser.add_argument(
        "--no-access-log", dest="access_log", action="store_false", default=True
    )
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
