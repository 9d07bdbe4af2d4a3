"""wireline demo: an embedded HTTPS server, and aio fetching from it with tracing on.

Run with ``make demo``. Nothing leaves 127.0.0.1: hypercorn serves a tiny ASGI
app on a free loopback port with the test certificates from ``certs/``, and the
client trusts only the test CA. Every trace event and response extension is
printed, then the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

import aio
import aio.cli

CERTS = pathlib.Path(__file__).resolve().parent.parent / "certs"
SNI_NAME = "sni.wireline.test"  # in the test certificate, not in the URL
SNI_SEEN: list[str | None] = []


class RecordingConfig(Config):
    """Hypercorn config whose TLS context records the SNI name of each handshake."""

    def create_ssl_context(self) -> ssl.SSLContext | None:
        context = super().create_ssl_context()
        if context is not None:
            context.sni_callback = lambda _obj, name, _ctx: SNI_SEEN.append(name)
        return context


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer every request with a JSON summary of what the server received."""
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    payload = {
        "method": scope["method"],
        "path": scope["path"],
        "body": body.decode(),
        "sni_names_seen_by_server": SNI_SEEN,
    }
    data = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": data})


@contextlib.asynccontextmanager
async def embedded_server() -> AsyncIterator[int]:
    """Serve ``app`` over TLS on a free 127.0.0.1 port; yield the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = RecordingConfig()
    # hypercorn adopts (and later closes) the descriptor, so we let go of it.
    config.bind = [f"fd://{sock.detach()}"]
    config.certfile = str(CERTS / "server.pem")
    config.keyfile = str(CERTS / "server.key.pem")
    config.alpn_protocols = ["h2", "http/1.1"]
    config.accesslog = None
    config.errorlog = None
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    try:
        yield port
    finally:
        stop.set()
        await task


def trace(event: str, info: dict[str, Any]) -> None:
    """The ``trace`` extension: print each event with its info."""
    shown = {key: value for key, value in info.items() if key != "ssl_context"}
    print(f"  trace  {event:<45} {shown}")


async def main() -> None:
    ssl_context = ssl.create_default_context(cafile=str(CERTS / "ca.pem"))
    # aio never modifies a caller's context, so the ALPN offer is ours to set.
    ssl_context.set_alpn_protocols(["http/1.1"])
    async with embedded_server() as port:
        origin = aio.Origin(b"https", b"127.0.0.1", port)
        url = f"https://127.0.0.1:{port}/hello?demo=1"
        print(f"embedded hypercorn on https://127.0.0.1:{port} (TLS, test CA)\n")
        async with aio.AsyncHTTPConnection(origin, ssl_context=ssl_context) as conn:
            print("POST with trace, timeout and sni_hostname extensions:")
            response = await conn.request(
                "POST",
                url,
                content=b"hello from aio",
                extensions={
                    "trace": trace,
                    "timeout": {"connect": 5.0, "read": 5.0, "write": 5.0},
                    "sni_hostname": SNI_NAME,
                },
            )
            stream = response.extensions["network_stream"]
            ssl_object = stream.get_extra_info("ssl_object")
            print(f"\n{response} body={response.content.decode()}")
            print(f"  http_version   {response.extensions['http_version']!r}")
            print(f"  reason_phrase  {response.extensions['reason_phrase']!r}")
            print(f"  network_stream {stream!r}")
            print(f"    client_addr  {stream.get_extra_info('client_addr')}")
            print(f"    server_addr  {stream.get_extra_info('server_addr')}")
            print(f"    TLS version  {ssl_object.version()}")
            print(f"    cipher       {ssl_object.cipher()[0]}")
            print(f"    ALPN         {ssl_object.selected_alpn_protocol()}")
            print(f"\nconnection after the response: {conn!r}")

            print("\nGET on the same keep-alive connection, with a target override:")
            async with conn.stream(
                "GET", url, extensions={"trace": trace, "target": b"/other"}
            ) as response:
                body = b"".join([chunk async for chunk in response.aiter_stream()])
            print(f"\n{response} body={body.decode()}")
            print(f"connection: {conn!r}")

        print("\nHTTP/2 (ALPN h2): three concurrent requests on one connection:")
        h2_context = ssl.create_default_context(cafile=str(CERTS / "ca.pem"))
        h2_context.set_alpn_protocols(["h2", "http/1.1"])
        async with aio.AsyncHTTPConnection(
            origin, ssl_context=h2_context, http2=True
        ) as conn:
            responses = await asyncio.gather(
                *[
                    conn.request(
                        "GET",
                        f"https://127.0.0.1:{port}/h2/{n}",
                        extensions={"trace": trace} if n == 0 else {},
                    )
                    for n in range(3)
                ]
            )
            for response in responses:
                print(
                    f"  {response} http_version={response.extensions['http_version']!r}"
                    f" stream_id={response.extensions['stream_id']}"
                    f" body={response.content.decode()}"
                )
            print(f"connection: {conn!r}")

        print(
            "\nThe command line, `python -m aio URL --http2 --cacert certs/ca.pem -v`:"
        )
        # The CLI runs its own event loop, so it gets a thread of its own.
        argv = [f"https://127.0.0.1:{port}/cli", "--http2", "-v"]
        argv += ["--cacert", str(CERTS / "ca.pem"), "--sni-hostname", SNI_NAME]
        exit_code = await asyncio.to_thread(aio.cli.main, argv)
        print(f"\n(exit code {exit_code})")
    print("\nserver stopped")


if __name__ == "__main__":
    asyncio.run(main())
