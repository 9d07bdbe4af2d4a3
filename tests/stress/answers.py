"""The only answer each stress request may get: every one names its request.

A chaos or soak request carries its id ``rid``: ``/headers?rid=N`` echoes it in
JSON, and nghttpd serves ``/chaos/N.txt``, a file whose content is its own path.
A response handed to the wrong request therefore fails these checks.
"""

from __future__ import annotations

import json

__all__ = ["CHAOS_FILES_DIR", "chaos_file_body", "chaos_file_path", "echoed_rid"]

CHAOS_FILES_DIR = "chaos"  # under nghttpd's docroot


def chaos_file_path(rid: int) -> str:
    """The URL path of request ``rid``'s own file."""
    return f"/{CHAOS_FILES_DIR}/{rid}.txt"


def chaos_file_body(rid: int) -> bytes:
    """What ``chaos_file_path(rid)`` holds: its own path, repeated.

    One file in 32 is ~150 KB (its body arrives over several reads, so a
    cancellation can land in the middle), one in 8 ~40 KB (several DATA frames),
    the others 16 B to ~800 B.
    """
    line = f"{chaos_file_path(rid)}\n".encode()
    if rid % 32 == 0:
        return line * 9000
    if rid % 8 == 0:
        return line * 2500
    return line * (1 + rid % 50)


def echoed_rid(body: bytes) -> int | None:
    """The ``rid`` a ``/headers?rid=N`` answer echoes (None if it is not one)."""
    try:
        info = json.loads(body)
    except ValueError:
        return None
    if not isinstance(info, dict) or info.get("path") != "/headers":
        return None
    query = info.get("query_string", "")
    if not query.startswith("rid=") or not query[4:].isdigit():
        return None
    return int(query[4:])
