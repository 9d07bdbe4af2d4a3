"""The ``make fuzz`` driver: ``python -m tests.fuzz.run --runs N [--seconds S]
[--only NAME]``.

Runs each harness in its own libFuzzer process (tests/fuzz/fuzz.py), seeded from
a temporary copy of ``corpus/<name>/`` (so the repository's corpus is never
rewritten) with the HTTP dictionary, then prints one row per harness:
executions, seconds, executions per second, crashes. Exits non-zero, naming the
saved input, when any harness crashed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.fuzz.harnesses import HARNESSES, MAX_INPUT

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
DICTIONARY = HERE / "http.dict"
_STAT = re.compile(r"^stat::(\w+):\s*(\d+)", re.MULTILINE)
_WRITTEN = re.compile(r"Test unit written to (\S+)")


@dataclass
class Result:
    """One harness run, from libFuzzer's final stats."""

    name: str
    executions: int
    seconds: float
    crashes: list[str]
    returncode: int
    log: str

    @property
    def rate(self) -> float:
        return self.executions / self.seconds if self.seconds else 0.0


def fuzz_command(
    name: str, corpus: Path, crashes: Path, limits: list[str]
) -> list[str]:
    """The libFuzzer command line for one harness."""
    return [
        sys.executable,
        "-m",
        "tests.fuzz.fuzz",
        name,
        str(corpus),
        *limits,
        f"-dict={DICTIONARY}",
        f"-artifact_prefix={crashes}/",
        f"-max_len={MAX_INPUT}",
        "-timeout=20",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
    ]


def run_harness(
    name: str, limits: list[str], crash_root: Path, timeout: float | None
) -> Result:
    """Fuzz ``name`` with ``limits`` (libFuzzer flags) on a scratch corpus copy."""
    crashes = crash_root / name
    crashes.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as scratch:
        corpus = Path(scratch) / "corpus"
        shutil.copytree(HERE / "corpus" / name, corpus)
        started = time.monotonic()
        process = subprocess.run(
            fuzz_command(name, corpus, crashes, limits),
            cwd=ROOT,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
        seconds = time.monotonic() - started
    log = process.stdout + process.stderr
    stats = {key: int(value) for key, value in _STAT.findall(log)}
    found = sorted(set(_WRITTEN.findall(log)) | {str(p) for p in crashes.iterdir()})
    return Result(
        name,
        stats.get("number_of_executed_units", 0),
        seconds,
        found,
        process.returncode,
        log,
    )


def crash_report(log: str) -> str:
    """The Python traceback atheris printed (or the log's tail when none)."""
    lines = log.splitlines()
    for index, line in enumerate(lines):
        if "Uncaught Python exception" in line:
            return "\n".join(lines[index : index + 60])
    return "\n".join(lines[-40:])


def table(results: list[Result]) -> str:
    """The summary table."""
    rows = [
        f"{'harness':<12}{'executions':>12}{'seconds':>10}{'exec/s':>10}{'crashes':>9}"
    ]
    for result in results:
        crashes = len(result.crashes) or int(result.returncode != 0)
        rows.append(
            f"{result.name:<12}{result.executions:>12}{result.seconds:>10.1f}"
            f"{result.rate:>10.0f}{crashes:>9}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, help="executions per harness (-runs=N)")
    parser.add_argument(
        "--seconds", type=int, help="time per harness (-max_total_time=S)"
    )
    parser.add_argument("--only", choices=sorted(HARNESSES), action="append")
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="harnesses fuzzed at once, one process each (default: one per CPU)",
    )
    parser.add_argument(
        "--crash-dir",
        type=Path,
        help="where crashing inputs go (default: a new temp dir)",
    )
    args = parser.parse_args(argv)
    if args.runs is None and args.seconds is None:
        parser.error("give --runs and/or --seconds")
    limits = []
    if args.runs is not None:
        limits.append(f"-runs={args.runs}")
    if args.seconds is not None:
        limits.append(f"-max_total_time={args.seconds}")
    # libFuzzer's -timeout bounds each input; with --seconds, also a hard stop
    # well past the requested time, so a wedged process cannot hang make.
    timeout = None if args.seconds is None else args.seconds * 2 + 120
    crash_root = args.crash_dir or Path(
        tempfile.mkdtemp(prefix="wireline-fuzz-crashes-")
    )
    names = args.only or list(HARNESSES)

    def fuzz(name: str) -> Result:
        print(f"fuzzing {name} ({' '.join(limits)})...", flush=True)
        result = run_harness(name, limits, crash_root, timeout)
        print(f"{name}: {result.executions} executions done", flush=True)
        return result

    # Slowest first, so the last harness to start is a quick one.
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(fuzz, names))
    print(table(results))
    failed = [result for result in results if result.crashes or result.returncode]
    for result in failed:
        print(f"\n{result.name}: libFuzzer exited {result.returncode}", file=sys.stderr)
        print(crash_report(result.log), file=sys.stderr)
        for path in result.crashes:
            print(f"{result.name}: crashing input {path}", file=sys.stderr)
    if not failed:
        shutil.rmtree(
            crash_root, ignore_errors=True
        ) if args.crash_dir is None else None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
