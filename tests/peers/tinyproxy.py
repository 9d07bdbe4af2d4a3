"""Run Debian's ``tinyproxy`` (1.11) as an HTTP forward proxy on loopback.

``run_tinyproxy`` writes a config into a fresh temporary directory (listen on
127.0.0.1 only, allow only 127.0.0.1, no ``Via``/``X-Tinyproxy`` headers, log file
at ``Info`` and pid file inside the directory, optionally ``BasicAuth``) and
starts ``tinyproxy -d -c DIR/tinyproxy.conf`` in the foreground.

There are no ``ConnectPort`` lines: tinyproxy 1.11 then allows CONNECT to every
port (its manual: "If no ConnectPort line is found, then all ports are
allowed"), which the self-tests check against an ephemeral port.

tinyproxy refuses ``Port 0``, so the port is picked by binding 127.0.0.1:0 and
closing the socket; should another process grab it before tinyproxy binds,
tinyproxy exits and the next attempt picks a new port. Readiness means the
tinyproxy process itself owns a socket listening on that port (read from
``/proc``), which already accepts connections.

When run as root, tinyproxy is started as ``nobody`` through ``setpriv`` (which
also sets the parent-death signal *after* the user switch, so a killed test run
takes tinyproxy with it; tinyproxy's own ``User`` directive would switch later
and so clear that signal). Without ``setpriv`` the config's ``User``/``Group``
lines do the switch instead. The directory is handed to that user for the log and
pid files.

Things worth knowing about tinyproxy 1.11.1 as a peer (the self-tests pin
them): its own replies are ``HTTP/1.0`` (``200 Connection established`` carries a
``Proxy-agent`` header); a forwarded response keeps the origin's status line and
framing but loses its ``Connection`` header, and tinyproxy then closes the client
connection *without* having sent ``Connection: close`` (one request per client
connection); a request without credentials gets ``407`` with
``Proxy-Authenticate: Basic realm="Tinyproxy"``, ``Connection: close`` and an
HTML body without ``Content-Length``; *wrong* credentials get ``401
Unauthorized`` with ``WWW-Authenticate`` instead of a 407.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.peers.nghttpd import listening_port
from tests.peers.nginx import SBIN_DIRS, find_binary, stop_process
from tests.peers.proxy_server import basic_credentials

#: What a BasicAuth user name or password may contain here: tinyproxy's config
#: syntax takes them as bare words, so no spaces, quotes or colons.
_CREDENTIAL = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=-]+")

TINYPROXY_CONF = """\
{user_lines}Port {port}
Listen {host}
Timeout 60
MaxClients 100
Allow {host}
DisableViaHeader Yes
XTinyproxy No
LogFile "{workdir}/tinyproxy.log"
LogLevel Info
PidFile "{workdir}/tinyproxy.pid"
{auth_lines}"""


@dataclass(frozen=True)
class TinyproxyPeer:
    """A running tinyproxy: where it listens, its credentials, its logs."""

    host: str
    port: int
    workdir: Path
    log_path: Path
    basic_auth: tuple[str, str] | None

    @property
    def url(self) -> str:
        """Proxy URL, e.g. ``http://127.0.0.1:1234``."""
        return f"http://{self.host}:{self.port}"

    @property
    def proxy_authorization(self) -> str | None:
        """The ``Proxy-Authorization`` value for ``basic_auth`` (None without)."""
        return basic_credentials(self.basic_auth) if self.basic_auth else None

    def read_log(self) -> str:
        """tinyproxy's log file so far (``Info``: connections, requests, errors)."""
        return _read(self.log_path)


def unprivileged_command(cmd: Sequence[str]) -> tuple[list[str], bool]:
    """Prefix ``cmd`` to drop root and die with the parent, where possible.

    Returns the command and whether it already drops root. As root with
    ``setpriv`` available: ``setpriv --reuid nobody ... --pdeathsig TERM -- cmd``.
    Not root: ``setpriv --pdeathsig TERM -- cmd`` (or ``cmd`` without setpriv).
    """
    setpriv = shutil.which("setpriv", path=os.pathsep.join(SBIN_DIRS))
    if setpriv is None:
        return list(cmd), False
    if os.geteuid() != 0:
        return [setpriv, "--pdeathsig", "TERM", "--", *cmd], False
    uid, gid = unprivileged_ids()
    drop = [f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
    return [setpriv, *drop, "--pdeathsig", "TERM", "--", *cmd], True


def unprivileged_ids() -> tuple[int, int]:
    """The uid and gid of ``nobody`` (and its primary group)."""
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that was free a moment ago (bind to 0, then close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def run_tinyproxy(
    *,
    basic_auth: tuple[str, str] | None = None,
    startup_timeout: float = 10.0,
    attempts: int = 5,
) -> Iterator[TinyproxyPeer]:
    """Start tinyproxy on 127.0.0.1, wait until it accepts, stop it on exit.

    ``basic_auth=(user, password)`` adds ``BasicAuth user password``: then every
    request needs ``Proxy-Authorization``. ``attempts`` bounds the retries with a
    fresh port when tinyproxy exits during startup (e.g. its port was taken).
    """
    if basic_auth is not None and not all(map(_CREDENTIAL.fullmatch, basic_auth)):
        raise ValueError(f"unsupported characters in tinyproxy BasicAuth {basic_auth}")
    binary = find_binary("tinyproxy", "tinyproxy")
    host = "127.0.0.1"
    workdir = Path(tempfile.mkdtemp(prefix="wl-tinyproxy-"))
    conf = workdir / "tinyproxy.conf"
    log_path = workdir / "tinyproxy.log"
    stdout_path = workdir / "stdout.log"
    cmd, drops_root = unprivileged_command([binary, "-d", "-c", str(conf)])
    auth_lines = "BasicAuth {} {}\n".format(*basic_auth) if basic_auth else ""
    user_lines = ""
    proc: subprocess.Popen[bytes] | None = None
    try:
        if os.geteuid() == 0:  # the unprivileged user writes the log and pid file
            uid, gid = unprivileged_ids()
            os.chown(workdir, uid, gid)
            if not drops_root:
                user_lines = f"User {uid}\nGroup {gid}\n"
        for attempt in range(1, attempts + 1):
            port = free_port(host)
            conf.write_text(
                TINYPROXY_CONF.format(
                    user_lines=user_lines,
                    host=host,
                    port=port,
                    workdir=workdir,
                    auth_lines=auth_lines,
                )
            )
            with stdout_path.open("ab") as log:
                proc = subprocess.Popen(
                    cmd,
                    cwd=workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if _wait_listening(proc, port, startup_timeout):
                break
            stop_process(proc)
            if attempt == attempts:
                raise RuntimeError(
                    f"tinyproxy did not start ({attempts} attempts, last port "
                    f"{port}, exit {proc.returncode}):\n{_read(stdout_path)}"
                    f"{_read(log_path)}"
                )
        yield TinyproxyPeer(host, port, workdir, log_path, basic_auth)
    finally:
        if proc is not None:
            stop_process(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float) -> bool:
    """Wait until ``proc`` itself listens on ``port``; False if it exits first.

    A socket in LISTEN state accepts connections (the kernel completes the
    handshake), so no probe connection is made: it would only add a "closed
    socket before read" error to tinyproxy's log. Raises ``RuntimeError`` if the
    process still runs but does not listen by ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if listening_port(proc.pid) == port:
            return True
        time.sleep(0.05)
    raise RuntimeError(f"pid {proc.pid} not listening on port {port} after {timeout}s")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
