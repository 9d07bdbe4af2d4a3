"""The ``trace`` request extension and the DEBUG logs that mirror it.

Each traced step reports ``{prefix}.{step}.started`` with its keyword arguments,
then ``.complete`` with ``{"return_value": ...}`` or ``.failed`` with
``{"exception": ...}`` (cancellation included); each info dict is a
:class:`TraceInfo` carrying the event's ``time.monotonic()`` timestamp. The
prefix is the last part of the logger name, so the ``aio.http11`` logger yields
``http11.*`` events exactly as httpcore names them. Callbacks may be plain
functions or coroutine functions (httpcore accepts only the latter on its async
path).
"""

from __future__ import annotations

import inspect
import logging
import time
from types import TracebackType
from typing import Any

__all__ = ["UNTRACED", "Trace", "TraceInfo", "tracing"]


class TraceInfo(dict[str, Any]):
    """The ``info`` a trace callback receives: a plain dict with httpcore's
    keys, plus ``.timestamp``, the ``time.monotonic()`` reading taken when the
    event fired (so callbacks need not time events themselves)."""

    __slots__ = ("timestamp",)

    def __init__(self, info: dict[str, Any], timestamp: float) -> None:
        super().__init__(info)
        self.timestamp = timestamp


def tracing(request: Any, logger: logging.Logger) -> bool:
    """Whether anyone listens to ``request``'s steps on ``logger``: a ``trace``
    extension, or DEBUG logging."""
    return "trace" in request.extensions or logger.isEnabledFor(logging.DEBUG)


class Trace:
    """Async context manager around one step of a request.

    Args:
        name: The step, e.g. ``"connect_tcp"``.
        logger: The module logger; its last name part is the event prefix.
        request: The request whose ``trace`` extension receives the events.
        kwargs: The ``.started`` info.

    Set ``return_value`` inside the block to report it on ``.complete``.

    When nobody listens (no ``trace`` extension, DEBUG off for ``logger``),
    construction returns one shared do-nothing instance: every request passes
    through several steps, and they should cost it nothing then.
    """

    __slots__ = (
        "_callback",
        "_debug",
        "_logger",
        "_name",
        "kwargs",
        "return_value",
    )

    def __new__(
        cls,
        name: str,
        logger: logging.Logger,
        request: Any = None,
        kwargs: dict[str, Any] | None = None,
    ) -> Trace:
        if not (
            logger.isEnabledFor(logging.DEBUG)
            if request is None
            else tracing(request, logger)
        ):
            return UNTRACED
        return super().__new__(cls)

    def __init__(
        self,
        name: str,
        logger: logging.Logger,
        request: Any = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        self._callback = None if request is None else request.extensions.get("trace")
        self._logger = logger
        self._debug = logger.isEnabledFor(logging.DEBUG)
        self._name = name
        self.kwargs = kwargs if kwargs is not None else {}
        self.return_value: Any = None

    async def _emit(self, suffix: str, info: dict[str, Any]) -> None:
        if self._callback is not None:
            prefix = self._logger.name.rsplit(".", 1)[-1]
            result = self._callback(
                f"{prefix}.{self._name}.{suffix}", TraceInfo(info, time.monotonic())
            )
            if inspect.isawaitable(result):
                await result
        if self._debug:
            # httpcore logs the step without its prefix: the logger's name
            # (aio.connection, aio.http11) already says which layer it is.
            step = f"{self._name}.{suffix}"
            if not info or info.get("return_value", 0) is None:
                self._logger.debug(step)
            else:
                args = " ".join(f"{key}={value!r}" for key, value in info.items())
                self._logger.debug("%s %s", step, args)

    async def __aenter__(self) -> Trace:
        if self._callback is not None or self._debug:
            await self._emit("started", self.kwargs)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._callback is not None or self._debug:
            if exc is None:
                await self._emit("complete", {"return_value": self.return_value})
            else:
                await self._emit("failed", {"exception": exc})


class _Untraced(Trace):
    """The step nobody listens to: entering, leaving and results do nothing."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setattr__(self, name: str, value: Any) -> None:
        pass  # a return_value nobody will read is not kept

    async def __aenter__(self) -> Trace:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


#: The shared do-nothing step, for callers that already know nobody listens.
UNTRACED: Trace = object.__new__(_Untraced)
