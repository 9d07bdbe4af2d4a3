"""Instructions per request, counted by valgrind: ``python -m bench.instructions``.

Runs bench.inproc's exchange (``pool.request()`` against a stream that answers
at once with nginx's S1 response) under ``valgrind --tool=cachegrind`` twice,
with two request counts, and prints the difference per request: instructions
executed (Ir), and first-level instruction and data cache misses as cachegrind
simulates them. The same code gives the same counts to within a few tenths of
a percent on any run, however loaded or noisy the machine: a change to the
request path can be weighed before ``make bench``, whose timings move by a
fifth or more between runs on a shared VM. Slow (about 20 s per tree); needs
valgrind (Debian: ``apt-get install valgrind``).

``--tree DIR`` measures another checkout (``git worktree add`` or ``git archive``
of an older commit) with this interpreter, so two commits are compared with the
same Python and the same libraries.

``--clients wireline,aiohttp,aiosonic,raw`` counts a real S1 instead: each
client, built as ``make bench`` builds it, sends sequential GETs for
``/small.txt`` over one keep-alive connection to nginx on loopback, on the
event loop ``--loop`` names. What is counted is everything the client process
executes in user space per request: the library, the event loop, the
interpreter (the kernel's share and nginx's are not). Those are the counts to
compare clients by when timings on the VM swing too far to tell them apart.
About a minute per client.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# What each process runs: bench.inproc's measurement, one round of ``count``
# requests after its warm-up. The difference of two counts cancels the
# interpreter's start-up, the imports and the warm-up.
_CHILD = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from bench.inproc import _measure

asyncio.run(_measure(int(sys.argv[2]), 1, 1))
"""

# cachegrind's summary lines, in the order printed.
# What each process of ``--clients`` runs: ``count`` S1 requests (after the
# same warm-up each time, which the difference cancels) with one client.
_REAL_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from bench.instructions import run_real

run_real(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]))
"""
# Requests sent before the counted ones in a ``--clients`` process.
_REAL_WARMUP = 300

_EVENTS = {
    r"I\s+refs": "instructions",
    r"I1\s+misses": "I1 misses",
    r"D\s+refs": "data reads and writes",
    r"D1\s+misses": "D1 misses",
}


def _counts(tree: Path, child: str, *args: object) -> dict[str, int]:
    """cachegrind's totals for ``python -c child tree *args``."""
    with tempfile.TemporaryDirectory() as scratch:
        result = subprocess.run(
            [
                "valgrind",
                "--tool=cachegrind",
                "--cache-sim=yes",
                f"--cachegrind-out-file={os.path.join(scratch, 'out')}",
                sys.executable,
                "-c",
                child,
                str(tree),
                *map(str, args),
            ],
            capture_output=True,
            text=True,
            cwd=tree,
            check=False,
        )
    if result.returncode:
        raise SystemExit(f"valgrind failed in {tree}:\n{result.stderr[-2000:]}")
    counts = {}
    for label, name in _EVENTS.items():
        match = re.search(rf"{label}:\s+([\d,]+)", result.stderr)
        if match is None:
            raise SystemExit(f"no {label!r} in valgrind's summary:\n{result.stderr}")
        counts[name] = int(match.group(1).replace(",", ""))
    return counts


def measure(tree: Path, requests: int) -> dict[str, float]:
    """Per-request counts for the checkout at ``tree`` (bench.inproc's exchange)."""
    few = _counts(tree, _CHILD, requests)
    many = _counts(tree, _CHILD, 3 * requests)
    return _per_request(few, many, 2 * requests)


def measure_real(
    tree: Path, client: str, port: int, cafile: str, loop: str, requests: int
) -> dict[str, float]:
    """Per-request counts of a real S1 by ``client`` against nginx at ``port``."""
    few = _counts(tree, _REAL_CHILD, client, port, cafile, loop, requests)
    many = _counts(tree, _REAL_CHILD, client, port, cafile, loop, 3 * requests)
    return _per_request(few, many, 2 * requests)


def _per_request(
    few: dict[str, int], many: dict[str, int], extra: int
) -> dict[str, float]:
    return {name: (many[name] - few[name]) / extra for name in few}


def run_real(client: str, port: int, cafile: str, loop: str, requests: int) -> None:
    """In the measured process: the warm-up, then ``requests`` S1 GETs."""
    from bench.base import Endpoint
    from bench.clients import make_client
    from bench.scenarios import SCENARIOS, get_many
    from bench.server import HOST
    from bench.worker import loop_factory

    async def exchange() -> None:
        endpoint = Endpoint(
            host=HOST,
            port=port,
            tls=False,
            http2=False,
            max_connections=SCENARIOS["S1"].max_connections,
            cafile=cafile,
        )
        made = make_client(client, endpoint)
        try:
            await made.start()
            await get_many(made, _REAL_WARMUP + requests, 1)
        finally:
            await made.aclose()

    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        runner.run(exchange())


def main(argv: list[str] | None = None) -> None:
    """Print instructions and simulated cache misses per request."""
    parser = argparse.ArgumentParser(prog="python -m bench.instructions")
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        help="a checkout to measure (repeatable; default: this one)",
    )
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument(
        "--clients",
        help="count a real S1 against nginx instead, for these clients "
        "(wireline,aiohttp,aiosonic,raw,...)",
    )
    parser.add_argument(
        "--loop", choices=["uvloop", "asyncio"], default="uvloop", help="with --clients"
    )
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed: apt-get install valgrind")
    here = Path(__file__).resolve().parent.parent
    trees = [tree.resolve() for tree in args.tree or [here]]
    if args.clients is None:
        for tree in trees:
            _print(str(tree), measure(tree, args.requests))
        return
    from bench.clients import CLIENTS
    from bench.server import run_nginx

    clients = args.clients.split(",")
    unknown = sorted(set(clients) - set(CLIENTS))
    if unknown:
        raise SystemExit(f"unknown clients {unknown}: choose among {CLIENTS}")
    cafile = str(here / "certs" / "ca.pem")
    with run_nginx(here / "certs") as server:
        for tree in trees:
            for client in clients:
                counts = measure_real(
                    tree, client, server.plain_port, cafile, args.loop, args.requests
                )
                label = client if len(trees) == 1 else f"{tree} {client}"
                _print(f"{label} [{args.loop}]", counts)


def _print(label: str, counts: dict[str, float]) -> None:
    print(
        f"{label:30} "
        + "  ".join(f"{name} {value:,.0f}" for name, value in counts.items()),
        flush=True,
    )


if __name__ == "__main__":
    main()
