"""The atheris entry point: ``python -m tests.fuzz.fuzz NAME [libFuzzer flags]``
runs ``check_NAME`` from harnesses.py under libFuzzer, with coverage from sansio
and the libraries it is built on (h11, h2, hpack, hyperframe, socksio, idna).

A Python exception escaping the check is a crash: libFuzzer saves the input
(see ``-artifact_prefix``) and exits non-zero. With ``WIRELINE_FUZZ_STRICT=1``
the known bugs (README.md) are crashes too, e.g. to minimise one. ``run.py``
drives this for ``make fuzz``; ``test_fuzz.py`` runs a short smoke of each.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from pathlib import Path

import atheris  # type: ignore[import-untyped]

INSTRUMENTED = ["sansio", "aio", "h11", "h2", "hpack", "hyperframe", "socksio", "idna"]
ROOT = Path(__file__).resolve().parents[2]


def relauncher(name: str) -> str:
    """An executable script that runs this harness again: libFuzzer's
    ``-minimize_crash`` re-executes ``argv[0]`` with its own flags."""
    script = Path(tempfile.mkdtemp(prefix="wireline-fuzz-")) / f"fuzz-{name}"
    command = [sys.executable, "-m", "tests.fuzz.fuzz", name]
    script.write_text(
        f'#!/bin/sh\ncd {shlex.quote(str(ROOT))} && exec {shlex.join(command)} "$@"\n'
    )
    script.chmod(0o755)
    return str(script)


def main(argv: list[str]) -> None:
    """Run the harness named by ``argv[1]``; the other arguments go to libFuzzer."""
    if len(argv) < 2 or argv[1].startswith("-"):
        sys.exit("usage: python -m tests.fuzz.fuzz NAME [corpus or inputs] [flags]")
    name = argv[1]
    with atheris.instrument_imports(include=INSTRUMENTED):
        from tests.fuzz import harnesses
    harnesses.TOLERATE_KNOWN_BUGS = os.environ.get("WIRELINE_FUZZ_STRICT") != "1"
    if name not in harnesses.HARNESSES:
        sys.exit(f"unknown harness {name!r}; one of {', '.join(harnesses.HARNESSES)}")
    check = harnesses.HARNESSES[name]

    def test_one_input(data: bytes) -> None:
        check(data)

    flags = argv[2:]
    program = argv[0]
    if any(flag.startswith("-minimize_crash=") for flag in flags):
        program = relauncher(name)
    atheris.Setup([program, *flags], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
