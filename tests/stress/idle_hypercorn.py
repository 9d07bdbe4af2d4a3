"""Hypercorn that closes every connection left idle for ``keep_alive_timeout`` seconds.

The soak runs against it: HTTP/1.1 connections are closed 0.5 s after their last
response, HTTP/2 connections 0.5 s after their last stream ended, so a client pool
keeps meeting connections the server has just dropped. It serves the same ASGI app
as ``tests.peers.hypercorn_server`` and is started the same way (the parent binds
the socket and hands it over as ``fd://N``; the child serves until its stdin closes),
but without an access log, which would cost the server most of its CPU at soak rates.

Run as ``python -m tests.stress.idle_hypercorn --fd N --keep-alive-timeout S
[--certfile F --keyfile K] [--alpn P ...]`` from the repository root
(``run_idle_hypercorn`` does this).
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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.peers.hypercorn_server import (
    REPO_ROOT,
    HypercornPeer,
    Kind,
    _stop,
    _wait_ready,
)

__all__ = ["run_idle_hypercorn"]


@contextlib.contextmanager
def run_idle_hypercorn(
    *,
    keep_alive_timeout: float,
    certs_dir: Path | None = None,
    alpn_protocols: Sequence[str] = ("http/1.1",),
    startup_timeout: float = 10.0,
) -> Iterator[HypercornPeer]:
    """Start the child on 127.0.0.1 (TLS with ``certs_dir``); stop it on exit."""
    workdir = Path(tempfile.mkdtemp(prefix="wl-idle-hc-"))
    log_path = workdir / "hypercorn.log"
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    host, port = listener.getsockname()
    kind: Kind = "plain" if certs_dir is None else "tls"
    peer = HypercornPeer(kind, host, port, None, tuple(alpn_protocols), log_path)
    cmd = [sys.executable, "-m", "tests.stress.idle_hypercorn"]
    cmd += ["--fd", str(listener.fileno())]
    cmd += ["--keep-alive-timeout", str(keep_alive_timeout)]
    probe_context = None
    if certs_dir is not None:
        cmd += ["--certfile", str(certs_dir / "server.pem")]
        cmd += ["--keyfile", str(certs_dir / "server.key.pem")]
        probe_context = ssl.create_default_context(cafile=certs_dir / "ca.pem")
    for protocol in alpn_protocols:
        cmd += ["--alpn", protocol]
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
        _wait_ready(proc, peer, probe_context, startup_timeout)
        yield peer
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


async def _serve(args: argparse.Namespace) -> None:
    """Child side: serve the ASGI app on the inherited socket until stdin EOF."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    from tests.peers.asgi_app import app

    config = Config()
    config.bind = [f"fd://{args.fd}"]
    config.certfile = args.certfile
    config.keyfile = args.keyfile
    config.alpn_protocols = args.alpn or ["http/1.1"]
    config.accesslog = None
    config.errorlog = "-"
    config.graceful_timeout = 1.0
    config.keep_alive_timeout = args.keep_alive_timeout
    # The default closes a connection at its 1,001st request; the soak wants
    # only idle closes.
    config.keep_alive_max_requests = 10_000_000
    config.backlog = 1024

    loop = asyncio.get_running_loop()
    stdin_closed = asyncio.Event()

    class _StdinWatcher(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            stdin_closed.set()

    transport, _ = await loop.connect_read_pipe(_StdinWatcher, sys.stdin)
    try:
        asgi: Any = app  # hypercorn's typed scopes vs. the app's plain mappings
        await serve(asgi, config, shutdown_trigger=stdin_closed.wait)
    finally:
        transport.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the child's arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--keep-alive-timeout", type=float, required=True)
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    parser.add_argument("--alpn", action="append")
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
