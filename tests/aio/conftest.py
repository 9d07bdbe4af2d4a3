"""Library tests fail if the event loop logged an error: a callback that raised
(uvloop reports failed writes that way) or a task exception nobody retrieved."""

import pytest


@pytest.fixture(autouse=True)
def _fail_on_asyncio_errors(no_asyncio_errors: None) -> None:
    """Apply ``no_asyncio_errors`` to every test in this folder."""
