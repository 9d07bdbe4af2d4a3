"""``python -m aio URL [options]``: the ``wireline`` command line (:mod:`aio.cli`)."""

from __future__ import annotations

from aio.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
