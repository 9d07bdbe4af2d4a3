"""The extension spec's examples (shared/seeds/001_...txt), run as written with
``aio`` in place of the httpx client, against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

import pytest

import aio
from tests.peers.hypercorn_server import HypercornPeer
from tests.peers.scripted import read_head, scripted_server, tolerant_server

pytestmark = pytest.mark.asyncio


async def test_trace_example_logs_every_step(
    hypercorn_tls: HypercornPeer, ssl_context: ssl.SSLContext
) -> None:
    """`extensions={"trace": log}` sees {name}.started/.complete with the info
    keys the spec prints, ending with response_closed."""
    lines: list[str] = []

    def log(event_name: str, info: dict[str, Any]) -> None:
        lines.append(f"{event_name} {sorted(info)}")

    origin = aio.URL(hypercorn_tls.url).origin
    async with aio.AsyncHTTPConnection(origin, ssl_context=ssl_context) as client:
        await client.request("GET", hypercorn_tls.url + "/", extensions={"trace": log})
    assert lines == [
        "connection.connect_tcp.started "
        "['host', 'local_address', 'port', 'socket_options', 'timeout']",
        "connection.connect_tcp.complete ['return_value']",
        "connection.start_tls.started ['server_hostname', 'ssl_context', 'timeout']",
        "connection.start_tls.complete ['return_value']",
        "http11.send_request_headers.started ['request']",
        "http11.send_request_headers.complete ['return_value']",
        "http11.send_request_body.started ['request']",
        "http11.send_request_body.complete ['return_value']",
        "http11.receive_response_headers.started ['request']",
        "http11.receive_response_headers.complete ['return_value']",
        "http11.receive_response_body.started ['request']",
        "http11.receive_response_body.complete ['return_value']",
        "http11.response_closed.started []",
        "http11.response_closed.complete ['return_value']",
    ]


async def test_timeout_example_connect_and_pool_keys_accepted(
    hypercorn_tls: HypercornPeer, ssl_context: ssl.SSLContext
) -> None:
    """`{"timeout": {"connect": 5.0, "pool": 10.0}}` is accepted and kept on the
    request; response.request.extensions["timeout"] is the dict given."""
    timeout = {"connect": 5.0, "pool": 10.0}
    origin = aio.URL(hypercorn_tls.url).origin
    request = aio.Request(
        "GET",
        hypercorn_tls.url + "/",
        headers={"Host": f"127.0.0.1:{hypercorn_tls.port}"},
        extensions={"timeout": timeout},
    )
    async with aio.AsyncHTTPConnection(origin, ssl_context=ssl_context) as client:
        response = await client.handle_async_request(request)
        await response.aread()
        await response.aclose()
    assert request.extensions["timeout"] == {"connect": 5.0, "pool": 10.0}
    assert response.status == 200


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [("read", 0.3, aio.ReadTimeout), ("connect", 0.3, aio.ConnectTimeout)],
)
async def test_timeouts_raise_within_a_quarter_second(
    key: str, value: float, expected: type[Exception]
) -> None:
    """Each timeout key raises its exception within 0.25 s of its value."""

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await asyncio.sleep(5)

    async with tolerant_server(stall) as server:
        # A plain server on an https origin: the TLS handshake stalls (connect);
        # on an http origin the response never comes (read).
        scheme = b"https" if key == "connect" else b"http"
        origin = aio.Origin(scheme, b"127.0.0.1", server.port)
        url = f"{scheme.decode()}://127.0.0.1:{server.port}/"
        async with aio.AsyncHTTPConnection(origin) as client:
            start = time.monotonic()
            with pytest.raises(expected):
                await client.request("GET", url, extensions={"timeout": {key: value}})
            elapsed = time.monotonic() - start
    assert value - 0.002 <= elapsed < value + 0.25


async def test_sni_hostname_example(
    server_ssl_context: ssl.SSLContext, ssl_context: ssl.SSLContext
) -> None:
    """Connect to an IP address, send the name in Host, verify TLS against the
    name: the spec's `headers={"Host": ...}, extensions={"sni_hostname": ...}`."""

    async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async with scripted_server(ok, ssl=server_ssl_context) as server:
        origin = aio.Origin(b"https", b"127.0.0.1", server.port)
        async with aio.AsyncHTTPConnection(origin, ssl_context=ssl_context) as client:
            response = await client.request(
                "GET",
                f"https://127.0.0.1:{server.port}/path",
                headers={"Host": "sni.wireline.test"},
                extensions={"sni_hostname": "sni.wireline.test"},
            )
            ssl_object = response.extensions["network_stream"].get_extra_info(
                "ssl_object"
            )
            assert ssl_object.server_hostname == "sni.wireline.test"
        assert response.status == 200
        assert server.sni_names == ["sni.wireline.test"]
        assert server.received[0].startswith(
            b"GET /path HTTP/1.1\r\nHost: sni.wireline.test\r\n"
        )


async def test_response_extensions_example(
    hypercorn_tls: HypercornPeer, ssl_context: ssl.SSLContext
) -> None:
    """http_version and reason_phrase are bytes; HTTP/1.1 has no stream_id; the
    network stream gives client_addr, server_addr and ssl_object while open."""
    origin = aio.URL(hypercorn_tls.url).origin
    async with aio.AsyncHTTPConnection(origin, ssl_context=ssl_context) as client:
        async with client.stream("GET", hypercorn_tls.url + "/") as response:
            assert response.extensions["http_version"] == b"HTTP/1.1"
            assert isinstance(response.extensions["reason_phrase"], bytes)
            assert "stream_id" not in response.extensions
            network_stream = response.extensions["network_stream"]
            client_addr = network_stream.get_extra_info("client_addr")
            server_addr = network_stream.get_extra_info("server_addr")
            assert client_addr[0] == "127.0.0.1"
            assert server_addr == ("127.0.0.1", hypercorn_tls.port)
            ssl_object = network_stream.get_extra_info("ssl_object")
            assert ssl_object.version() in ("TLSv1.2", "TLSv1.3")
            await response.aread()


async def test_reason_phrase_is_the_servers_own() -> None:
    """A custom reason phrase comes back byte for byte (hypercorn sends none)."""
    async with scripted_server(_custom_reason) as server:
        async with aio.AsyncHTTPConnection(aio.URL(server.url).origin) as client:
            response = await client.request("GET", server.url + "/")
    assert response.extensions["reason_phrase"] == b"Very Fine Indeed"


async def _custom_reason(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 Very Fine Indeed\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()


async def test_start_tls_keeps_bytes_the_server_sends_in_its_handshake_flight(
    server_ssl_context: ssl.SSLContext, ssl_context: ssl.SSLContext
) -> None:
    """A TLS server that speaks first (as HTTP/2 servers send SETTINGS at once):
    bytes arriving with the handshake are read after start_tls, none lost."""

    async def speak_first(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"BANNER")
        await writer.drain()
        await reader.read(1)

    async with scripted_server(speak_first, ssl=server_ssl_context) as server:
        stream = await aio.AsyncIOBackend().connect_tcp("127.0.0.1", server.port)
        tls = await stream.start_tls(ssl_context, server_hostname="localhost")
        try:
            received = b""
            async with asyncio.timeout(2.0):
                while len(received) < 6:
                    received += await tls.read(100)
            assert received == b"BANNER"
        finally:
            await tls.aclose()
