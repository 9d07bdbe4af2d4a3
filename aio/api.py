"""Top-level ``request()`` and ``stream()``: one request on a one-off pool."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sansio.headers import HeaderInput

from .models import URL, Content, Extensions, Response
from .pool import AsyncConnectionPool

__all__ = ["request", "stream"]


async def request(
    method: bytes | str,
    url: URL | bytes | str,
    *,
    headers: HeaderInput | None = None,
    content: Content = None,
    extensions: Extensions | None = None,
) -> Response:
    """Send one request on a fresh pool and return the response, body read.

    For more than one request, keep an :class:`AsyncConnectionPool` instead.
    """
    async with AsyncConnectionPool() as pool:
        return await pool.request(
            method, url, headers=headers, content=content, extensions=extensions
        )


@contextlib.asynccontextmanager
async def stream(
    method: bytes | str,
    url: URL | bytes | str,
    *,
    headers: HeaderInput | None = None,
    content: Content = None,
    extensions: Extensions | None = None,
) -> AsyncIterator[Response]:
    """Send one request on a fresh pool and yield the response, body unread.

    The response and the pool are closed when the block exits.
    """
    async with (
        AsyncConnectionPool() as pool,
        pool.stream(
            method, url, headers=headers, content=content, extensions=extensions
        ) as response,
    ):
        yield response
