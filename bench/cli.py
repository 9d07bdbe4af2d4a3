"""``python -m bench``: start nginx, run every measurement in alternation, report.

The plan is a list of jobs, each run in a fresh worker process. Runs
alternate: for each scenario, run 1 of every (loop, client) pair, then run 2 of
each, and so on, so that slow drift (thermal, other load) spreads over every
client instead of landing on one. Progress goes to stdout as each job ends; at
the end the tables are printed and the JSON results written.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.clients import CLIENTS, client_label, unsupported
from bench.report import PROTOCOL_LABELS, Record, render, summarize, write_results
from bench.scenarios import SCENARIOS
from bench.server import SERVER_CPU, BenchServer, run_nginx
from bench.worker import CLIENT_CPU, Job

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LOOPS = ("asyncio", "uvloop")
EXTRAS = ("RSS", "POOL")
IDLE_CONNECTIONS = 1_000
SMALL_POOL = 10
#: Runs of one process differ by up to ~10%, the very margin the pool-size
#: measurement checks: it gets at least 5 runs.
POOL_MIN_RUNS = 5
POOL_REQUESTS = 5_000
#: httpcore's and httpcore2's pools do work per connection for every request and
#: every release: 1,000 idle connections take httpcore ~2 minutes to open and
#: httpcore2 ~20 ms per request. They get one run, on the first loop, and
#: POOL_REQUESTS // 10 requests per mode.
SLOW_POOLS = frozenset({"httpcore", "httpcore2"})
#: (client, protocol) rows of the RSS table.
RSS_ROWS = (
    ("wireline", "h1"),
    ("httpcore", "h1"),
    ("httpcore2", "h1"),
    ("aiohttp", "h1"),
    ("wireline", "h1-tls"),
    ("aiohttp", "h1-tls"),
    ("wireline", "h2"),
    ("httpcore", "h2"),
    ("httpcore2", "h2"),
)
RSS_UNSUPPORTED = {
    ("httpcore", "h2"): "n/a: queues on one connection",
    ("httpcore2", "h2"): "n/a: queues on one connection",
}
#: httpcore is left out: opening its 1,000 connections alone takes ~2 minutes.
POOL_CLIENTS = ("wireline", "httpcore2", "aiohttp")
SCENARIO_TIMEOUT = 180.0
EXTRA_TIMEOUT = 300.0


@dataclass(frozen=True)
class Planned:
    """A job and how to file its record."""

    job: Job
    key: str
    run: int
    skipped: str | None = None

    def record(self) -> Record:
        """The record, without its outcome yet."""
        return {
            "kind": self.job.kind,
            "key": self.key,
            "loop": self.job.loop,
            "client": self.job.client,
            "run": self.run,
        }


def _csv(choices: Sequence[str]) -> Any:
    def parse(text: str) -> list[str]:
        values = [value.strip() for value in text.split(",") if value.strip()]
        for value in values:
            if value not in choices:
                raise argparse.ArgumentTypeError(
                    f"{value!r} is not one of {', '.join(choices)}"
                )
        return values

    return parse


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line (see bench/README.md)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--runs", type=int, default=3, help="runs per cell (median reported); 3"
    )
    parser.add_argument(
        "--loops", type=_csv(LOOPS), default=list(LOOPS), help="asyncio,uvloop"
    )
    parser.add_argument(
        "--scenarios",
        type=_csv((*SCENARIOS, *EXTRAS)),
        default=[*SCENARIOS, *EXTRAS],
        help="S1,S2,S3,S4 and the extra measurements RSS,POOL (all by default)",
    )
    parser.add_argument(
        "--clients",
        type=_csv(CLIENTS),
        default=list(CLIENTS),
        help=f"{','.join(CLIENTS)} (raw: the raw floor; naive: h11/h2 alone)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 run, fewer requests, 100 idle connections: for development",
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="where the JSON goes"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.quick:
        args.runs = 1
    return args


def plan(args: argparse.Namespace, server: BenchServer, cafile: str) -> list[Planned]:
    """Every job, in the order they run: scenarios, then RSS, then pool size."""
    base = Job(
        kind="scenario",
        client="",
        loop="",
        host=server.host,
        port=server.plain_port,
        tls=False,
        cafile=cafile,
        timeout=SCENARIO_TIMEOUT,
        quick=args.quick,
    )
    idle = 100 if args.quick else IDLE_CONNECTIONS
    extra = replace(base, timeout=EXTRA_TIMEOUT, connections=idle)
    jobs = _plan_scenarios(args, server, base)
    if "RSS" in args.scenarios:
        jobs += _plan_rss(args, server, replace(extra, kind="rss"))
    if "POOL" in args.scenarios:
        jobs += _plan_pool(args, replace(extra, kind="pool"), idle)
    return jobs


def _plan_scenarios(
    args: argparse.Namespace, server: BenchServer, base: Job
) -> list[Planned]:
    jobs = []
    # The slow pools last in a round, so that the clients compared with
    # wireline run back to back rather than seconds apart; every other round
    # runs in reverse (A B … B A), so no client keeps a place in the order
    # and a drift of the machine's speed weighs on each alike.
    clients = sorted(args.clients, key=lambda client: client in SLOW_POOLS)
    for key in (s for s in SCENARIOS if s in args.scenarios):
        scenario = SCENARIOS[key]
        port = server.h2_port if scenario.http2 else server.plain_port
        for run in range(1, args.runs + 1):
            round_ = []
            for loop in args.loops:
                for client in clients:
                    job = replace(
                        base,
                        client=client,
                        loop=loop,
                        port=port,
                        tls=scenario.http2,
                        scenario=key,
                    )
                    reason = unsupported(client, scenario.http2)
                    if reason is None or run == 1:  # say it once
                        round_.append(Planned(job, key, run, reason))
            jobs += round_ if run % 2 else round_[::-1]
    return jobs


def _plan_rss(
    args: argparse.Namespace, server: BenchServer, base: Job
) -> list[Planned]:
    jobs = []
    for run, loop, client, protocol in _extra_cells(args, RSS_ROWS):
        job = replace(
            base,
            client=client,
            loop=loop,
            port=server.plain_port if protocol == "h1" else server.h2_single_port,
            tls=protocol != "h1",
            http2=protocol == "h2",
        )
        reason = RSS_UNSUPPORTED.get((client, protocol))
        jobs.append(Planned(job, protocol, run, reason))
    return jobs


def _plan_pool(args: argparse.Namespace, base: Job, idle: int) -> list[Planned]:
    # One job per client and run measures both sizes, a pool each, in turns.
    jobs = []
    rows = [(c, f"{SMALL_POOL},{idle}") for c in POOL_CLIENTS]  # key: the sizes
    runs = args.runs if args.quick else max(args.runs, POOL_MIN_RUNS)
    for run, loop, client, key in _extra_cells(args, rows, runs):
        requests = POOL_REQUESTS // (10 if client in SLOW_POOLS else 1)
        if args.quick:
            requests //= 4
        job = replace(
            base,
            client=client,
            loop=loop,
            connections=SMALL_POOL,
            max_connections=idle,
            requests=requests,
        )
        jobs.append(Planned(job, key, run))
    return jobs


def _extra_cells(
    args: argparse.Namespace, rows: Sequence[tuple[str, str]], runs: int | None = None
) -> Iterator[tuple[int, str, str, str]]:
    """(run, loop, client, key) for the extra measurements, runs alternating."""
    for run in range(1, (runs or args.runs) + 1):
        for loop in args.loops:
            for client, key in rows:
                if client not in args.clients:
                    continue
                if client in SLOW_POOLS and (run > 1 or loop != args.loops[0]):
                    continue
                yield run, loop, client, key


def run_job(planned: Planned) -> Record:
    """Run one worker process; return its record (result or error)."""
    record = planned.record()
    if planned.skipped is not None:
        record["skipped"] = planned.skipped
        return record
    command = [sys.executable, "-m", "bench.worker", planned.job.to_json()]
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=planned.job.timeout + 30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        record["error"] = f"worker killed after {planned.job.timeout + 30:.0f} s"
        return record
    lines = done.stdout.strip().splitlines()
    try:
        outcome = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        outcome = {}
    if "error" in outcome or done.returncode != 0 or not outcome:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        record["error"] = outcome.get("error") or f"exit {done.returncode}: {tail[0]}"
    else:
        record["result"] = outcome
    return record


def describe(planned: Planned, record: Record) -> str:
    """One progress line's outcome, e.g. ``4,812 req/s, 182 µs/req``."""
    if "skipped" in record:
        return str(record["skipped"])
    if "error" in record:
        return f"FAILED: {record['error']}"
    result = record["result"]
    kind = planned.job.kind
    if kind == "scenario":
        if SCENARIOS[planned.key].download:
            rate = result["bytes"] / result["wall"] / 1e6
            per_download = result["cpu"] / result["requests"] * 1e3
            return f"{rate:,.0f} MB/s, {per_download:.1f} ms/dl"
        rate = result["requests"] / result["wall"]
        return (
            f"{rate:,.0f} req/s, {result['cpu'] / result['requests'] * 1e6:.1f} µs/req"
        )
    if kind == "rss":
        return (
            f"{result['kib_per_connection']:.1f} KiB per connection "
            f"({result['connections']} connections)"
        )
    return "; ".join(
        f"{int(size):,} idle: {sizes['sequential_cpu'] * 1e6:.1f} µs/req "
        f"sequential, {sizes['concurrent_cpu'] * 1e6:.1f} with 10 tasks"
        for size, sizes in result.items()
    )


def _label(planned: Planned) -> str:
    job = planned.job
    if job.kind == "scenario":
        what = f"{planned.key} {client_label(job.client, SCENARIOS[planned.key].http2)}"
    elif job.kind == "rss":
        what = f"RSS {job.client} {PROTOCOL_LABELS[planned.key]}"
    else:
        what = f"pool {job.client} {job.connections:,} and {job.max_connections:,} idle"
    return f"{what} [{job.loop}] run {planned.run}"


def _versions() -> dict[str, str]:
    names = (
        *("wireline", "httpcore", "httpcore2", "aiohttp", "aiosonic", "uvloop"),
        *("h11", "h2", "anyio"),
    )
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return f"{platform.machine()} x{os.cpu_count()}"


def _git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "sansio", "aio"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; print progress, then the tables. Exit 1 if any failed."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    cafile = ROOT / "certs" / "ca.pem"
    if not cafile.exists():
        print("certs/ca.pem is missing: run `make certs`", file=sys.stderr)
        return 2
    if len(os.sched_getaffinity(0)) < 2:
        print("warning: fewer than 2 CPUs: client and nginx share one", flush=True)
    started = time.monotonic()
    commit = _git_commit()  # before: the tree may change while the benchmark runs
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    records: list[Record] = []
    with run_nginx(ROOT / "certs") as server:
        jobs = plan(args, server, str(cafile))
        print(
            f"nginx {server.version} on {server.host} (ports {server.plain_port}, "
            f"{server.h2_port}, {server.h2_single_port}); {len(jobs)} jobs",
            flush=True,
        )
        width = len(str(len(jobs)))
        for index, planned in enumerate(jobs, 1):
            began = time.monotonic()
            record = run_job(planned)
            record["seconds"] = round(time.monotonic() - began, 2)
            records.append(record)
            print(
                f"[{index:>{width}}/{len(jobs)}] {_label(planned)}: "
                f"{describe(planned, record)} ({record['seconds']:.1f} s)",
                flush=True,
            )
        nginx_errors = [
            line for line in server.error_log().splitlines() if "[notice]" not in line
        ]
        nginx_version = server.version
    elapsed = time.monotonic() - started
    meta = {
        "timestamp": stamp,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "nginx": nginx_version,
        "client_cpu": CLIENT_CPU,
        "server_cpu": SERVER_CPU,
        "runs": args.runs,
        "loops": args.loops,
        "scenarios": args.scenarios,
        "clients": args.clients,
        "quick": args.quick,
        "wireline_commit": commit,
        "versions": _versions(),
        "seconds": round(elapsed, 1),
        "nginx_errors": nginx_errors,
    }
    print("\n" + render(summarize(records), meta))
    if nginx_errors:
        print("\nnginx error log:\n" + "\n".join(nginx_errors[-20:]))
    path = write_results(args.results, stamp, meta, records)
    failed = sum("error" in record for record in records)
    print(
        f"\n{len(records)} jobs in {elapsed / 60:.1f} min"
        f"{f', {failed} FAILED' if failed else ''}; results: "
        f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
        "(and latest.json)"
    )
    return 1 if failed else 0
