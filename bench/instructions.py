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
"""

from __future__ import annotations

import argparse
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
_EVENTS = {
    r"I\s+refs": "instructions",
    r"I1\s+misses": "I1 misses",
    r"D\s+refs": "data reads and writes",
    r"D1\s+misses": "D1 misses",
}


def _counts(tree: Path, requests: int) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as scratch:
        result = subprocess.run(
            [
                "valgrind",
                "--tool=cachegrind",
                "--cache-sim=yes",
                f"--cachegrind-out-file={os.path.join(scratch, 'out')}",
                sys.executable,
                "-c",
                _CHILD,
                str(tree),
                str(requests),
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
    """Per-request counts for the checkout at ``tree``."""
    few, many = _counts(tree, requests), _counts(tree, 3 * requests)
    return {name: (many[name] - few[name]) / (2 * requests) for name in few}


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
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed: apt-get install valgrind")
    here = Path(__file__).resolve().parent.parent
    for tree in args.tree or [here]:
        counts = measure(tree.resolve(), args.requests)
        print(
            f"{tree!s:30} "
            + "  ".join(f"{name} {value:,.0f}" for name, value in counts.items())
        )


if __name__ == "__main__":
    main()
