"""How the sans-IO suites split a byte string before feeding it (whole, one byte
at a time, seeded random pieces) and compare what comes out: every parser test
runs each way and expects the same events (STYLE.md)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence

from sansio.events import DataReceived, Event

Splitter = Callable[[bytes], list[bytes]]


def whole(data: bytes) -> list[bytes]:
    """The bytes in one piece."""
    return [data]


def bytewise(data: bytes) -> list[bytes]:
    """One byte per piece."""
    return [data[i : i + 1] for i in range(len(data))]


def random_splits(seed: int) -> Splitter:
    """Up to eight cuts at seeded random places (never an empty piece)."""

    def split(data: bytes) -> list[bytes]:
        if len(data) < 2:
            return [data]
        rng = random.Random(seed)
        count = rng.randint(1, min(8, len(data) - 1))
        cuts = sorted(rng.sample(range(1, len(data)), count))
        bounds = [0, *cuts, len(data)]
        return [data[a:b] for a, b in itertools.pairwise(bounds)]

    return split


SPLITTERS: dict[str, Splitter] = {
    "whole": whole,
    "bytewise": bytewise,
    "random-1": random_splits(1),
    "random-2": random_splits(2),
    "random-3": random_splits(3),
}


def merge_data(events: Sequence[Event]) -> list[Event]:
    """Join consecutive DataReceived of one stream, so chunking does not matter."""
    merged: list[Event] = []
    for event in events:
        last = merged[-1] if merged else None
        if (
            isinstance(event, DataReceived)
            and isinstance(last, DataReceived)
            and last.stream_id == event.stream_id
        ):
            merged[-1] = DataReceived(
                stream_id=event.stream_id, data=last.data + event.data
            )
        else:
            merged.append(event)
    return merged
