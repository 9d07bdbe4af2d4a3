"""The benchmarked clients by name, and which scenario each can run.

Names are what ``--clients`` takes. ``raw`` and ``naive`` pick their HTTP/1.1
or HTTP/2 variant from the endpoint: ``raw`` is the raw floor, ``naive`` is h11
alone (HTTP/1.1) or h2 alone (HTTP/2).
"""

from __future__ import annotations

from bench.base import BenchClient, Endpoint

__all__ = [
    "CLIENTS",
    "PEERS",
    "client_label",
    "make_client",
    "unsupported",
]

#: Every client, in table order.
CLIENTS = ("wireline", "httpcore", "httpcore2", "aiohttp", "aiosonic", "raw", "naive")
#: The other HTTP clients: "best peer" is the best of these.
PEERS = ("httpcore", "httpcore2", "aiohttp", "aiosonic")


def client_label(name: str, http2: bool) -> str:
    """The row label: ``raw floor``, ``h11 alone`` / ``h2 alone``, or the name."""
    if name == "raw":
        return "raw floor"
    if name == "naive":
        return "h2 alone" if http2 else "h11 alone"
    return name


def unsupported(name: str, http2: bool) -> str | None:
    """Why ``name`` cannot run over this protocol, or None."""
    if name == "aiohttp" and http2:
        return "no HTTP/2"
    return None


def make_client(name: str, endpoint: Endpoint, *, holding: bool = False) -> BenchClient:
    """Build the client called ``name`` for ``endpoint`` (imports its library).

    ``holding``: the client will be asked to ``get_holding`` (idle-pool jobs).
    """
    if name == "wireline":
        from bench.peers import HttpcoreAPIClient

        return HttpcoreAPIClient(endpoint, "aio")
    if name in ("httpcore", "httpcore2"):
        from bench.peers import HttpcoreAPIClient

        return HttpcoreAPIClient(endpoint, name)
    if name == "aiohttp":
        from bench.peers import AiohttpClient

        return AiohttpClient(endpoint, holding=holding)
    if name == "aiosonic":
        from bench.peers import AiosonicClient

        return AiosonicClient(endpoint)
    if name == "raw":
        from bench.raw import RawHTTP2Client, RawHTTP11Client

        return (RawHTTP2Client if endpoint.http2 else RawHTTP11Client)(endpoint)
    if name == "naive":
        from bench.naive import H2Client, H11Client

        return (H2Client if endpoint.http2 else H11Client)(endpoint)
    raise ValueError(f"unknown client {name!r} (one of {', '.join(CLIENTS)})")
