"""The bounded memories the fast paths keep (parsed lines, URLs, HPACK blocks)."""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def remember(memory: dict[K, V], key: K, value: V, limit: int) -> None:
    """Keep ``value`` under ``key``; a memory holding ``limit`` entries starts
    over first (what it forgets is only recomputed)."""
    if len(memory) >= limit:
        memory.clear()
    memory[key] = value
