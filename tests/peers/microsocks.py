"""Run ``microsocks`` (1.0.3) as a SOCKS5 proxy on loopback.

``run_microsocks`` starts ``microsocks -i 127.0.0.1 -p 0 [-u USER -P PASS]``.
Port 0 makes the kernel pick a free port while microsocks binds, so nothing can
race for it; the port is read back through ``/proc`` (the listening socket of
that process), and readiness is a successful TCP connect. As root it runs as
``nobody`` (through ``setpriv``, which also makes it die with the test run).
Its connection log (``client[N] ADDR: connected to HOST:PORT``) goes to a file.

How microsocks 1.0.3 answers, as the self-tests pin down:

* a successful CONNECT reply always carries BND.ADDR ``0.0.0.0:0``
  (``05 00 00 01 00 00 00 00 00 00``);
* with ``-u/-P``, a greeting that offers only "no authentication" gets
  ``05 FF`` and the connection is closed; offering both picks ``05 02``;
* a wrong user or password gets the RFC 1929 reply ``01 02`` (failure), then the
  connection is closed; right ones get ``01 00``;
* a refused target gets REP ``05`` (connection refused) and a close.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.peers.nghttpd import listening_port
from tests.peers.nginx import find_binary, stop_process
from tests.peers.tinyproxy import unprivileged_command


@dataclass(frozen=True)
class MicrosocksPeer:
    """A running microsocks: where it listens, its credentials, its log."""

    host: str
    port: int
    auth: tuple[str, str] | None
    log_path: Path

    @property
    def url(self) -> str:
        """Proxy URL, e.g. ``socks5://127.0.0.1:1234``."""
        return f"socks5://{self.host}:{self.port}"

    def read_log(self) -> str:
        """microsocks' output so far (one line per connected client)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@contextlib.contextmanager
def run_microsocks(
    *, auth: tuple[str, str] | None = None, startup_timeout: float = 10.0
) -> Iterator[MicrosocksPeer]:
    """Start microsocks on 127.0.0.1, wait until it accepts, stop it on exit.

    ``auth=(user, password)`` requires RFC 1929 username/password authentication.
    """
    binary = find_binary("microsocks", "microsocks")
    host = "127.0.0.1"
    workdir = Path(tempfile.mkdtemp(prefix="wl-socks-"))
    log_path = workdir / "microsocks.log"
    args = [binary, "-i", host, "-p", "0"]
    if auth is not None:
        args += ["-u", auth[0], "-P", auth[1]]
    cmd, _ = unprivileged_command(args)
    proc: subprocess.Popen[bytes] | None = None
    try:
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        peer = MicrosocksPeer(
            host, _wait_port(proc, log_path, startup_timeout), auth, log_path
        )
        yield peer
    finally:
        if proc is not None:
            stop_process(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_port(proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> int:
    """Wait until ``proc`` listens and accepts on 127.0.0.1; return the port."""
    deadline = time.monotonic() + timeout
    error: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"microsocks exited with {proc.returncode}:\n"
                + log_path.read_text(errors="replace")
            )
        port = listening_port(proc.pid)
        if port is not None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                    return port
            except OSError as exc:
                error = exc
        time.sleep(0.05)
    raise RuntimeError(f"microsocks not accepting after {timeout}s ({error!r})")
