"""Medians of the recorded runs, the printed tables and the JSON results file.

A record is one worker run: ``{"kind", "key", "loop", "client", "run"}`` plus
``"result"`` (the worker's JSON), ``"error"`` or ``"skipped"`` (why it was not
run). ``summarize`` turns the records into medians; ``render`` prints them.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.clients import CLIENTS, PEERS, client_label
from bench.scenarios import SCENARIOS

__all__ = [
    "PROTOCOL_LABELS",
    "Record",
    "render",
    "summarize",
    "write_results",
]

Record = dict[str, Any]

PROTOCOL_LABELS = {
    "h1": "HTTP/1.1",
    "h1-tls": "HTTP/1.1 + TLS",
    "h2": "HTTP/2 + TLS",
}


def _metrics(scenario: str, result: Mapping[str, float]) -> tuple[float, float]:
    """(throughput, CPU per request): req/s and µs, or MB/s and ms per download."""
    if SCENARIOS[scenario].download:
        return result["bytes"] / result["wall"] / 1e6, result["cpu"] / result[
            "requests"
        ] * 1e3
    return result["requests"] / result["wall"], result["cpu"] / result["requests"] * 1e6


def _group(
    records: Iterable[Record], kind: str
) -> dict[tuple[str, str, str], list[Record]]:
    groups: dict[tuple[str, str, str], list[Record]] = {}
    for record in records:
        if record["kind"] == kind:
            key = (record["key"], record["loop"], record["client"])
            groups.setdefault(key, []).append(record)
    return groups


def _cell(records: list[Record], values: dict[str, list[float]]) -> dict[str, Any]:
    """Medians of ``values``, run and error counts, or why nothing ran."""
    errors = [r["error"] for r in records if "error" in r]
    skipped = next((r["skipped"] for r in records if "skipped" in r), None)
    cell: dict[str, Any] = {
        "runs": sum("result" in r for r in records),
        "errors": errors,
    }
    if skipped is not None:
        cell["skipped"] = skipped
    for name, samples in values.items():
        if samples:
            cell[name] = statistics.median(samples)
    return cell


def _paired(records: Iterable[Record]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per scenario and loop, wireline's ratios within each round, then their
    median: ``{"peer": [throughput ratio, CPU ratio], "peer_rounds": n,
    "raw": [...], "raw_rounds": n}``.

    A round runs wireline and the peers back to back (seconds apart), so a
    slow phase of the machine that outlasts the round weighs on both sides of
    its ratio, which the ratio of two medians does not ensure (the medians
    may come from different rounds). Each round is compared with its own best
    peer, by throughput and by CPU separately (the best of four noisy runs:
    a bias against wireline, if any). Only complete rounds count: a round in
    which wireline, or a peer that succeeded in some other round, failed is
    left out, so a failure never leaves wireline facing a weaker peer.
    """
    rounds: dict[tuple[str, str], dict[int, dict[str, tuple[float, float]]]] = {}
    for record in records:
        if record["kind"] == "scenario" and "result" in record:
            metrics = _metrics(record["key"], record["result"])
            by_run = rounds.setdefault((record["key"], record["loop"]), {})
            by_run.setdefault(record["run"], {})[record["client"]] = metrics
    paired: dict[str, dict[str, dict[str, Any]]] = {}
    for (key, loop), by_run in rounds.items():
        seen = {name for clients in by_run.values() for name in clients}
        cell: dict[str, Any] = {}
        for name, members in (
            ("peer", [p for p in PEERS if p in seen]),
            ("raw", ["raw"] if "raw" in seen else []),
        ):
            if not members:
                continue
            pairs = []
            for clients in by_run.values():
                mine = clients.get("wireline")
                if mine is None or any(member not in clients for member in members):
                    continue
                top = max(clients[member][0] for member in members)
                low = min(clients[member][1] for member in members)
                if top > 0 and low > 0:
                    pairs.append((mine[0] / top, mine[1] / low))
            if pairs:
                cell[name] = [
                    statistics.median(value for value, _ in pairs),
                    statistics.median(cpu for _, cpu in pairs),
                ]
                cell[f"{name}_rounds"] = len(pairs)
        if cell:
            paired.setdefault(key, {})[loop] = cell
    return paired


def summarize(records: Sequence[Record]) -> dict[str, Any]:
    """Medians per scenario/loop/client, wireline's ratios paired by round
    (``_paired``), per protocol for RSS, per pool size."""
    summary: dict[str, Any] = {"scenarios": {}, "paired": {}, "rss": {}, "pool": {}}
    for (key, loop, client), group in _group(records, "scenario").items():
        throughput, cpu = [], []
        for record in group:
            if "result" in record:
                value, per_request = _metrics(key, record["result"])
                throughput.append(value)
                cpu.append(per_request)
        cell = _cell(group, {"throughput": throughput, "cpu": cpu})
        summary["scenarios"].setdefault(key, {}).setdefault(loop, {})[client] = cell
    summary["paired"] = _paired(records)
    for (key, loop, client), group in _group(records, "rss").items():
        ok = [r["result"] for r in group if "result" in r]
        cell = _cell(
            group,
            {
                "kib_per_connection": [r["kib_per_connection"] for r in ok],
                "connections": [r["connections"] for r in ok],
            },
        )
        summary["rss"].setdefault(key, {}).setdefault(loop, {})[client] = cell
    for (key, loop, client), group in _group(records, "pool").items():
        # Each run measured every size (the key lists them) in one process: a
        # size's cell has the medians over runs, and a ratio is the median of
        # the runs' own ratios.
        ok = [r["result"] for r in group if "result" in r]
        names = sorted(key.split(","), key=int)
        sizes: dict[str, Any] = {}
        summary["pool"].setdefault(loop, {})[client] = sizes
        for size in names:
            sizes[size] = _cell(
                group,
                {
                    "sequential_us": [r[size]["sequential_cpu"] * 1e6 for r in ok],
                    "concurrent_us": [r[size]["concurrent_cpu"] * 1e6 for r in ok],
                },
            )
        for mode in ("sequential", "concurrent") if len(names) > 1 else ():
            small, large = names[0], names[-1]
            ratios = [
                r[large][f"{mode}_cpu"] / r[small][f"{mode}_cpu"]
                for r in ok
                if small in r and large in r
            ]
            if ratios:
                sizes[f"ratio_{mode}"] = statistics.median(ratios)
    return summary


def _number(value: float) -> str:
    """Three significant digits or so, with thousands separators."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _status(cell: Mapping[str, Any] | None) -> str | None:
    """Why a cell has no number (``no HTTP/2``, ``failed: ...``), or None."""
    if cell is None:
        return "-"
    if "skipped" in cell:
        return str(cell["skipped"])
    if cell["runs"] == 0:
        errors = cell["errors"]
        return f"failed: {errors[0]}" if errors else "-"
    return None


class _Table:
    """Left-aligned label columns, right-aligned others, widths from the content."""

    def __init__(self, labels: int = 1) -> None:
        self.labels = labels
        self.rows: list[list[str] | str] = []

    def add(self, *cells: str) -> None:
        self.rows.append(list(cells))

    def line(self, text: str) -> None:
        self.rows.append(text)

    def render(self) -> list[str]:
        widths: list[int] = []
        for row in self.rows:
            if isinstance(row, list):
                for index, cell in enumerate(row):
                    if index == len(widths):
                        widths.append(0)
                    widths[index] = max(widths[index], len(cell))
        lines = []
        for row in self.rows:
            if isinstance(row, str):
                lines.append(row)
                continue
            cells = [
                cell.ljust(widths[i]) if i < self.labels else cell.rjust(widths[i])
                for i, cell in enumerate(row)
            ]
            lines.append("  ".join(cells).rstrip())
        return lines


def _best(cells: Mapping[str, Any], field: str, *, highest: bool) -> tuple[str, float]:
    candidates = [
        (name, cells[name][field])
        for name in PEERS
        if name in cells and field in cells[name]
    ]
    if not candidates:
        return "", 0.0
    pick = max if highest else min
    return pick(candidates, key=lambda item: item[1])


def _scenario_table(summary: Mapping[str, Any], loops: Sequence[str]) -> list[str]:
    table = _Table()
    notes: list[str] = []
    for key, scenario in SCENARIOS.items():
        by_loop = summary["scenarios"].get(key)
        if not by_loop:
            continue
        units = ("MB/s", "CPU ms/dl") if scenario.download else ("req/s", "CPU µs/req")
        table.line("")
        table.line(scenario.title)
        header = ["  client"]
        for loop in loops:
            header += [f"{loop} {units[0]}", units[1]]
        table.add(*header)
        clients = [c for c in CLIENTS if any(c in by_loop.get(lp, {}) for lp in loops)]
        for client in clients:
            row = ["  " + client_label(client, scenario.http2)]
            for loop in loops:
                cell = by_loop.get(loop, {}).get(client)
                status = _status(cell)
                if status is not None:
                    row += [status, ""]
                    continue
                assert cell is not None
                row += [_number(cell["throughput"]), _number(cell["cpu"])]
                if cell["errors"]:
                    notes.append(
                        f"{key} {loop} {client}: {len(cell['errors'])} failed run(s): "
                        f"{cell['errors'][0]}"
                    )
            table.add(*row)
        best_names = []
        for label, reference in (
            ("wireline / best peer", None),
            ("wireline / raw floor", "raw"),
        ):
            row = [f"  {label}"]
            for loop in loops:
                cells = by_loop.get(loop, {})
                mine = cells.get("wireline", {})
                if reference is None:
                    fast, top = _best(cells, "throughput", highest=True)
                    lean, low = _best(cells, "cpu", highest=False)
                    if fast:
                        names = fast if fast == lean else f"{fast} / {lean}"
                        best_names.append(f"{loop}: {names}")
                else:
                    ref = cells.get(reference, {})
                    top, low = ref.get("throughput", 0.0), ref.get("cpu", 0.0)
                if "throughput" in mine and top and low:
                    row += [
                        f"x{mine['throughput'] / top:.2f}",
                        f"x{mine['cpu'] / low:.2f}",
                    ]
                else:
                    row += ["-", "-"]
            table.add(*row)
        if best_names:
            table.line(f"  (best peer by {units[0]} / by CPU: {'; '.join(best_names)})")
        paired = summary.get("paired", {}).get(key, {})
        for label, name in (
            ("  paired by round: / best peer", "peer"),
            ("  paired by round: / raw floor", "raw"),
        ):
            if not any(name in paired.get(loop, {}) for loop in loops):
                continue
            row = [label]
            for loop in loops:
                ratio = paired.get(loop, {}).get(name)
                row += [f"x{ratio[0]:.2f}", f"x{ratio[1]:.2f}"] if ratio else ["-", "-"]
            table.add(*row)
        if paired:
            table.line(
                "  (paired: the median over rounds of each round's own ratio, "
                "against that round's best peer)"
            )
    lines = table.render()
    if notes:
        lines += ["", "Failed runs (excluded from the medians):", *notes]
    return lines


def _runs_note(cell: Mapping[str, Any], runs: int) -> str:
    """`` (1 run)`` when a cell has fewer runs than the others."""
    count = cell["runs"]
    return f" ({count} run{'s' if count > 1 else ''})" if count < runs else ""


def _rss_table(
    summary: Mapping[str, Any], loops: Sequence[str], runs: int
) -> list[str]:
    rss = summary["rss"]
    if not rss:
        return []
    counts = [
        cell["connections"]
        for by_loop in rss.values()
        for cells in by_loop.values()
        for cell in cells.values()
        if "connections" in cell
    ]
    table = _Table(labels=2)
    table.line("")
    table.line(
        f"RSS per idle pooled connection ({max(counts, default=0):,.0f} idle "
        "keep-alive connections to one origin), KiB each"
    )
    table.add("  client", "protocol", *loops)
    notes: list[str] = []
    for protocol, label in PROTOCOL_LABELS.items():
        by_loop = rss.get(protocol, {})
        for client in CLIENTS:
            if not any(client in by_loop.get(loop, {}) for loop in loops):
                continue
            row = [f"  {client}", label]
            for loop in loops:
                cell = by_loop.get(loop, {}).get(client)
                status = _status(cell)
                if status is not None:
                    row.append(status)
                    if status.startswith("failed"):
                        notes.append(f"  {client} {label} {loop}: {status}")
                        row[-1] = "failed"
                    continue
                assert cell is not None
                note = _runs_note(cell, runs)
                row.append(_number(cell["kib_per_connection"]) + note)
            table.add(*row)
    return table.render() + notes


def _pool_table(summary: Mapping[str, Any], loops: Sequence[str]) -> list[str]:
    pool = summary["pool"]
    if not pool:
        return []
    counts = sorted(
        {
            int(size)
            for clients in pool.values()
            for sizes in clients.values()
            for size in sizes
            if size.isdigit()
        }
    )
    small, large = str(counts[0]), str(counts[-1])
    runs = max(
        (
            cell["runs"]
            for clients in pool.values()
            for sizes in clients.values()
            for cell in sizes.values()
            if isinstance(cell, dict)
        ),
        default=0,
    )
    table = _Table(labels=2)
    table.line("")
    table.line(
        f"CPU µs per request with {int(small):,} vs {int(large):,} idle connections in"
        f" a pool of {int(large):,} (HTTP/1.1; sequential, and from 10 tasks; median"
        f" of {runs} runs); ratio = large / small"
    )
    header = ["  client", "mode"]
    for loop in loops:
        header += [f"{loop} {int(small):,} idle", f"{int(large):,} idle", "ratio"]
    table.add(*header)
    notes: list[str] = []
    for client in CLIENTS:
        if not any(client in pool.get(loop, {}) for loop in loops):
            continue
        for mode in ("sequential", "concurrent"):
            row = [f"  {client}", mode if mode == "sequential" else "10 tasks"]
            for loop in loops:
                sizes = pool.get(loop, {}).get(client, {})
                for size in (small, large):
                    cell = sizes.get(size)
                    status = _status(cell)
                    if status is not None:
                        row.append("failed" if status.startswith("failed") else status)
                        if status.startswith("failed") and mode == "sequential":
                            notes.append(f"  {client} {loop} {size} idle: {status}")
                    else:
                        assert cell is not None
                        row.append(_number(cell[f"{mode}_us"]) + _runs_note(cell, runs))
                ratio = sizes.get(f"ratio_{mode}")
                row.append("-" if ratio is None else f"x{ratio:.2f}")
            table.add(*row)
    return table.render() + notes + _flatness(pool)


#: The pool-size target: wireline's cost per request stays within 10%.
FLAT = 0.10


def _flatness(pool: Mapping[str, Any]) -> list[str]:
    """Whether wireline's large / small ratios are all within ``FLAT``."""
    ratios = [
        (loop, mode, sizes[f"ratio_{mode}"])
        for loop, clients in pool.items()
        for mode in ("sequential", "concurrent")
        if f"ratio_{mode}" in (sizes := clients.get("wireline", {}))
    ]
    if not ratios:
        return []
    labels = {"sequential": "sequential", "concurrent": "10 tasks"}
    outside = [
        f"{loop} {labels[mode]} x{ratio:.2f}"
        for loop, mode, ratio in ratios
        if abs(ratio - 1) > FLAT
    ]
    if not outside:
        return [f"  wireline: every ratio within {FLAT:.0%} (target met)"]
    return [f"  wireline: outside {FLAT:.0%}: {', '.join(outside)} (target missed)"]


def render(summary: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    """The tables printed at the end of ``make bench``."""
    loops = list(meta["loops"])
    versions = ", ".join(f"{name} {v}" for name, v in meta["versions"].items())
    lines = [
        "wireline benchmarks: medians of "
        f"{meta['runs']} alternating run(s) per cell, each in a fresh process",
        f"wireline {meta['wireline_commit']}, Python {meta['python']}, "
        f"nginx {meta['nginx']}, {meta['cpu']}",
        f"client pinned to CPU {meta['client_cpu']}, nginx worker to CPU "
        f"{meta['server_cpu']}",
        versions,
    ]
    if meta.get("quick"):
        lines.append("--quick: fewer requests and 1 run; numbers are rough")
    lines += _scenario_table(summary, loops)
    lines += _rss_table(summary, loops, meta["runs"])
    lines += _pool_table(summary, loops)
    if summary["rss"] or summary["pool"]:
        lines += [
            "",
            "httpcore and httpcore2: one run, on the first loop, in the two tables"
            " above (their pools work",
            "per connection on every request and release: opening 1,000 connections"
            " takes httpcore ~2 min,",
            "so it is not in the pool-size table). n/a: with a server limit of one"
            " stream per connection,",
            "they queue requests on their one HTTP/2 connection instead of opening"
            " more.",
        ]
    return "\n".join(lines)


def write_results(
    directory: Path, stamp: str, meta: Mapping[str, Any], records: Sequence[Record]
) -> Path:
    """Write ``<stamp>.json`` and ``latest.json`` (meta, every run, the medians)."""
    directory.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "medians": summarize(records), "runs": list(records)}
    text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
    path = directory / f"{stamp}.json"
    path.write_text(text)
    (directory / "latest.json").write_text(text)
    return path
