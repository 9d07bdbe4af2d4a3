"""Protocol errors raised by the sans-IO core.

Two directions, never mixed: a :class:`LocalProtocolError` means *we* were asked
to do something the protocol forbids and is raised only from commands (and from
model validation, which runs before a command could put a byte on the wire, and
from a receive the driver made before ``initiate()``: its misuse, not the
peer's); a
:class:`RemoteProtocolError` means the *peer* broke the protocol and is raised
only from ``receive_data`` / ``receive_eof``. Messages name the rule that failed.

These are the very classes ``aio`` exports under httpcore's names, so a driver
never has to translate them.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "ProxyError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Base class of both protocol error directions."""


class LocalProtocolError(ProtocolError):
    """The caller asked for something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow."""


class ProxyError(Exception):
    """The proxy refused the tunnel, or broke its handshake protocol.

    ``status`` and ``headers`` are set when an HTTP proxy answered a CONNECT
    with a non-2xx response (a 407 carries ``Proxy-Authenticate`` there);
    both are None for SOCKS failures.
    """

    status: int | None = None
    headers: list[tuple[bytes, bytes]] | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers
