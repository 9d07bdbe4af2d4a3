"""Run nghttp2's reference server ``nghttpd`` (``nghttp2-server``) on loopback.

``run_nghttpd`` starts ``nghttpd -a 127.0.0.1 -d DOCROOT 0 KEY CERT`` in a fresh
temporary directory. Port 0 makes the kernel pick a free port while nghttpd
binds, so nothing can race for it; the port is then read back from
``/proc/PID/fd`` + ``/proc/PID/net/tcp`` (the listening socket's inode). The
docroot holds ``DOCROOT_FILES`` (``/small.txt``, ``/large.bin`` ~1 MiB,
``/index.html``). nghttpd only speaks TLS with ALPN ``h2`` here.

Options map to nghttpd flags: ``max_concurrent_streams`` ``-m``, ``window_bits``
``-w`` (stream windows 2**N-1), ``connection_window_bits`` ``-W``,
``early_response``, ``trailers`` (``--trailer``, repeatable; only sent on
responses with a body), ``echo_upload``, ``verbose`` (``-v``: log every frame).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.peers.nginx import (
    CERTS_DIR,
    DOCROOT_FILES,
    find_binary,
    start_process,
    stop_process,
    wait_tls_ready,
    write_docroot,
)


@dataclass(frozen=True)
class NghttpdPeer:
    """A running nghttpd: where it listens, what it serves, how it was started."""

    host: str
    port: int
    workdir: Path
    docroot: Path
    args: tuple[str, ...]  # the nghttpd options used (without port/key/cert)
    log_path: Path
    files: Mapping[str, bytes] = field(
        default_factory=lambda: DOCROOT_FILES, repr=False
    )

    @property
    def url(self) -> str:
        """Origin URL, e.g. ``https://127.0.0.1:1234``."""
        return f"https://{self.host}:{self.port}"

    def read_log(self) -> str:
        """nghttpd's stdout/stderr so far (frames too when ``verbose``)."""
        return self.log_path.read_text(errors="replace")


def listening_port(pid: int) -> int | None:
    """The TCP port ``pid`` listens on (IPv4 or IPv6), or None if none yet."""
    inodes: set[str] = set()
    with contextlib.suppress(FileNotFoundError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[len("socket:[") : -1])
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(FileNotFoundError):
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
            for line in lines:
                fields = line.split()
                # local_address is HEXIP:HEXPORT; state 0A is LISTEN.
                if fields[3] == "0A" and fields[9] in inodes:
                    return int(fields[1].rsplit(":", 1)[1], 16)
    return None


def _wait_port(proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> int:
    """Poll /proc until nghttpd listens; return the port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"nghttpd exited with {proc.returncode}:\n"
                f"{log_path.read_text(errors='replace')}"
            )
        port = listening_port(proc.pid)
        if port is not None:
            return port
        time.sleep(0.02)
    raise RuntimeError(f"nghttpd did not listen within {timeout}s")


@contextlib.contextmanager
def run_nghttpd(
    *,
    certs_dir: Path = CERTS_DIR,
    max_concurrent_streams: int | None = None,
    window_bits: int | None = None,
    connection_window_bits: int | None = None,
    early_response: bool = False,
    trailers: Sequence[str] = (),
    echo_upload: bool = False,
    verbose: bool = False,
    startup_timeout: float = 10.0,
) -> Iterator[NghttpdPeer]:
    """Start nghttpd (TLS, ALPN h2) on 127.0.0.1; wait for a handshake; stop on exit."""
    binary = find_binary("nghttpd", "nghttp2-server")
    args: list[str] = []
    if max_concurrent_streams is not None:
        args += ["-m", str(max_concurrent_streams)]
    if window_bits is not None:
        args += ["-w", str(window_bits)]
    if connection_window_bits is not None:
        args += ["-W", str(connection_window_bits)]
    if early_response:
        args.append("--early-response")
    for trailer in trailers:
        args.append(f"--trailer={trailer}")
    if echo_upload:
        args.append("--echo-upload")
    if verbose:
        args.append("-v")

    workdir = Path(tempfile.mkdtemp(prefix="wl-nghttpd-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        docroot = write_docroot(workdir / "docroot")
        log_path = workdir / "nghttpd.log"
        cmd = [binary, "-a", "127.0.0.1", "-d", str(docroot), *args]
        cmd += ["0", str(certs_dir / "server.key.pem"), str(certs_dir / "server.pem")]
        env = {**os.environ, "TMPDIR": str(workdir)}  # its upload temp files
        with log_path.open("wb") as log:
            proc = start_process(cmd, log, cwd=workdir, env=env)
        port = _wait_port(proc, log_path, startup_timeout)
        wait_tls_ready(
            proc,
            "127.0.0.1",
            port,
            certs_dir / "ca.pem",
            name="nghttpd",
            log_path=log_path,
            timeout=startup_timeout,
        )
        yield NghttpdPeer(
            host="127.0.0.1",
            port=port,
            workdir=workdir,
            docroot=docroot,
            args=tuple(args),
            log_path=log_path,
        )
    finally:
        if proc is not None:
            stop_process(proc)
        shutil.rmtree(workdir, ignore_errors=True)
