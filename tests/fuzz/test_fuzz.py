"""The fuzz harnesses in ``make test``: the seed corpus and every saved crash
replay through their oracles in-process, each harness runs briefly under
atheris, and each oracle is shown to fail when the core misbehaves.

Regression inputs replay with ``TOLERATE_KNOWN_BUGS`` off: the ones that still
expose a sansio bug are strict xfails naming it (README.md, known bugs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import h2.exceptions
import pytest

import sansio.http11
from sansio import Event, HTTP2State, HTTP11State
from sansio.proxy import SOCKS5Handshake
from tests.fuzz import harnesses
from tests.fuzz.harnesses import HARNESSES, HTTP11Exchange, OracleFailure
from tests.fuzz.run import run_harness

HERE = Path(__file__).parent
SMOKE_RUNS = 1500

# Regression inputs that still expose a sansio bug: name -> reason.
KNOWN_BUGS = {
    "http11/chunk-ext-over-limit-refused-only-when-split": (
        "BUG: a chunk line (size and extensions) longer than max_header_bytes is "
        "accepted in one read and refused in two ('Receive buffer too long', "
        "h11's max_incomplete_event_size; HTTP11State._parse)"
    ),
    "http11/chunk-line-over-limit-message-depends-on-split": (
        "BUG: an invalid chunk line longer than max_header_bytes is 'illegal "
        "chunk header' in one read, 'Receive buffer too long' byte by byte "
        "(the same h11 limit; HTTP11State._parse)"
    ),
}


def files(directory: str) -> list[Path]:
    return sorted(path for path in (HERE / directory).rglob("*") if path.is_file())


@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_corpus_replays_cleanly(name: str) -> None:
    """Every seed passes its harness's oracle (as the fuzzer runs it)."""
    seeds = files(f"corpus/{name}")
    assert len(seeds) >= 10, "the corpus is missing: python -m tests.fuzz.make_corpus"
    failures = []
    for seed in seeds:
        try:
            HARNESSES[name](seed.read_bytes())
        except Exception as exc:  # collected, reported below
            failures.append(f"{seed.name}: {exc!r}"[:500])
    assert not failures, "\n".join(failures)


def regression_params() -> list[Any]:
    params: list[Any] = []
    for path in files("regressions"):
        key = f"{path.parent.name}/{path.name}"
        marks = []
        if key in KNOWN_BUGS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[key]))
        params.append(pytest.param(path, id=key, marks=marks))
    return params


@pytest.mark.parametrize("path", regression_params())
def test_regression_replays_strictly(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every input a fuzzer crashed on passes its oracle, with no bug tolerated."""
    monkeypatch.setattr(harnesses, "TOLERATE_KNOWN_BUGS", False)
    HARNESSES[path.parent.name](path.read_bytes())


def test_known_bugs_have_regression_inputs() -> None:
    """Every known bug listed here has its input under regressions/."""
    saved = {f"{path.parent.name}/{path.name}" for path in files("regressions")}
    assert set(KNOWN_BUGS) <= saved


@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_harness_smoke_under_atheris(name: str, tmp_path: Path) -> None:
    """Each harness runs SMOKE_RUNS executions under libFuzzer without a crash."""
    # A fixed seed: the same mutations every time, so the smoke is repeatable.
    result = run_harness(
        name, [f"-runs={SMOKE_RUNS}", "-seed=1"], tmp_path, timeout=300
    )
    assert result.returncode == 0, result.log[-3000:]
    assert result.crashes == []
    assert result.executions >= SMOKE_RUNS // 2, result.log[-3000:]


# -- the oracles can fail -------------------------------------------------------

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
HTTP11_INPUT = HTTP11Exchange(0, 0, False, True, (20,), OK).encode()
HTTP2_INPUT = b"\x00\x00\x00"  # one stream, the server preface only


def test_http11_oracle_reports_an_undocumented_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self: HTTP11State, data: bytes) -> list[object]:
        raise KeyError("bug")

    harnesses.check_http11(HTTP11_INPUT)
    monkeypatch.setattr(HTTP11State, "receive_data", broken)
    with pytest.raises(KeyError):
        harnesses.check_http11(HTTP11_INPUT)


def test_http11_oracle_reports_fast_path_disagreeing_with_h11(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = sansio.http11._parse_head

    def wrong_reason(raw: bytes, max_count: int) -> sansio.http11._FastHead | None:
        head = original(raw, max_count)
        if head is not None:
            version, status, _, *rest = head
            return (version, status, b"Wrong", *rest)  # type: ignore[return-value]
        return head

    monkeypatch.setattr(sansio.http11, "_parse_head", wrong_reason)
    with pytest.raises(OracleFailure, match="fast path and h11 differ"):
        harnesses.check_http11(HTTP11_INPUT)


def test_http11_oracle_reports_split_dependence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = harnesses.run_http11

    def splits_matter(
        exchange: HTTP11Exchange, pieces: list[bytes], *, fast: bool
    ) -> harnesses.HTTP11Outcome:
        outcome = original(exchange, pieces, fast=fast)
        if len(pieces) > 1:
            outcome.events = outcome.events[:-1]
        return outcome

    monkeypatch.setattr(harnesses, "run_http11", splits_matter)
    with pytest.raises(OracleFailure, match="whole and fuzzed differ"):
        harnesses.check_http11(HTTP11_INPUT)


def test_http11_oracle_reports_input_accepted_after_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad = HTTP11Exchange(0, 0, False, False, (), b"HTTP/1.1 abc OK\r\n\r\n").encode()
    harnesses.check_http11(bad)
    monkeypatch.setattr(HTTP11State, "_refuse_input", lambda self: [])
    with pytest.raises(
        OracleFailure, match="receive_data after a protocol error did not raise"
    ):
        harnesses.check_http11(bad)


def test_http2_oracle_reports_a_raw_h2_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self: HTTP2State, frame: bytes) -> list[object]:
        raise h2.exceptions.FrameTooLargeError("raw")

    harnesses.check_http2(HTTP2_INPUT)
    monkeypatch.setattr(HTTP2State, "_receive_frame", broken)
    with pytest.raises(h2.exceptions.FrameTooLargeError):
        harnesses.check_http2(HTTP2_INPUT)


def test_http2_oracle_reports_split_dependence(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = HTTP2State.receive_data

    def counting(self: HTTP2State, data: bytes) -> list[Event]:
        calls.append(len(data))
        events = original(self, data)
        return events[:-1] if len(data) == 1 else events

    monkeypatch.setattr(HTTP2State, "receive_data", counting)
    with pytest.raises(OracleFailure, match="whole and bytewise differ"):
        harnesses.check_http2(HTTP2_INPUT)


@pytest.mark.parametrize(
    ("target", "data"),
    [
        ("validate_method", b"\x03G\r\nT"),
        ("validate_target", b"\x04/\r\nInjected: 1"),
    ],
)
def test_validation_oracle_reports_unsafe_accepted_values(
    target: str, data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    harnesses.check_validation(data)
    accept_all: Callable[[bytes], bytes] = lambda value: value  # noqa: E731
    monkeypatch.setattr(harnesses, target, accept_all)
    with pytest.raises(OracleFailure, match="CR/LF/NUL accepted"):
        harnesses.check_validation(data)


def test_socks5_oracle_reports_an_undocumented_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = b"\x00\x00\x05\x00\x05\x00\x00\x01\x7f\x00\x00\x01\x1f\x90"
    harnesses.check_socks5(data)
    monkeypatch.setattr(SOCKS5Handshake, "_connect_reply", lambda self: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        harnesses.check_socks5(data)
