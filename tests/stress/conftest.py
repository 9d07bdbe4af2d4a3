"""Peers and settings for the chaos and soak runs (``make stress``).

``STRESS_SEED=N`` replays a run; without it each test draws a seed and prints it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.hypercorn_server import HypercornPeer, h2_tls_options, run_hypercorn
from tests.peers.nghttpd import NghttpdPeer, run_nghttpd
from tests.stress.answers import CHAOS_FILES_DIR, chaos_file_body

CHAOS_FILES = 12_000  # ids 0..11,999: the runs' requests plus their warm-ups
# The soak's servers close a connection left idle this long (seconds).
IDLE_TIMEOUT = 0.5


# glibc's mallopt() parameter for the size from which malloc maps memory itself.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 * 1024


@pytest.fixture(scope="session", autouse=True)
def _rss_tracks_live_memory() -> None:
    """Make glibc map every allocation of 64 KiB or more on its own.

    By default glibc raises that threshold each time such a block is freed, so
    later ~150 KB response bodies come from the main heap, whose fragments keep
    RSS growing for a while (16 MiB over 50,000 nghttpd requests while traced
    Python memory stayed flat). With a fixed threshold a freed body goes back to
    the system and RSS follows live memory, which is what the leak check wants.
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc: leave it
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


@pytest.fixture
def stress_seed() -> int:
    """``STRESS_SEED`` from the environment, else a fresh one; printed either way."""
    seed = int(os.environ.get("STRESS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\nSTRESS_SEED={seed}")
    return seed


@pytest.fixture
def client_ssl_context(certs_dir: Path) -> ssl.SSLContext:
    """Trusts the test CA; offers ALPN ``h2`` then ``http/1.1``."""
    context = ssl.create_default_context(cafile=certs_dir / "ca.pem")
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


@pytest.fixture(scope="session")
def chaos_nghttpd(certs_dir: Path) -> Iterator[NghttpdPeer]:
    """nghttpd (TLS, h2) whose docroot holds one named file per chaos request id."""
    with run_nghttpd(certs_dir=certs_dir) as peer:
        directory = peer.docroot / CHAOS_FILES_DIR
        directory.mkdir()
        for rid in range(CHAOS_FILES):
            (directory / f"{rid}.txt").write_bytes(chaos_file_body(rid))
        yield peer


@pytest.fixture(scope="session")
def idle_hypercorn_plain() -> Iterator[HypercornPeer]:
    """Hypercorn over plain TCP (HTTP/1.1) closing connections idle for 0.5 s."""
    with run_hypercorn(
        "plain", keep_alive_timeout=IDLE_TIMEOUT, access_log=False
    ) as peer:
        yield peer


@pytest.fixture(scope="session")
def idle_hypercorn_h2(certs_dir: Path) -> Iterator[HypercornPeer]:
    """Hypercorn over TLS (ALPN ``h2`` first), closing connections idle for 0.5 s."""
    with run_hypercorn(
        "tls",
        **h2_tls_options(certs_dir),
        keep_alive_timeout=IDLE_TIMEOUT,
        access_log=False,
    ) as peer:
        yield peer
