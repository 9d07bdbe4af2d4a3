"""Self-tests for the test peers, using only the stdlib and h11 as the client."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from pathlib import Path

import h11
import pytest
import uvloop

from tests.peers.hypercorn_server import HypercornPeer, h2_tls_options, run_hypercorn
from tests.peers.scripted import (
    canned_server,
    recording_server,
    scripted_server,
)

pytestmark = pytest.mark.usefixtures("no_asyncio_errors")

OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def h11_request(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    target: str,
    *,
    method: str = "GET",
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
) -> tuple[h11.Response, bytes]:
    """Send one request over an open stream and read the whole response."""
    conn = h11.Connection(h11.CLIENT)
    all_headers = [("host", "localhost"), *(headers or [])]
    if body:
        all_headers.append(("content-length", str(len(body))))
    writer.write(
        conn.send(h11.Request(method=method, target=target, headers=all_headers))
    )
    writer.write(conn.send(h11.Data(data=body)) if body else b"")
    writer.write(conn.send(h11.EndOfMessage()))
    await writer.drain()
    response: h11.Response | None = None
    data = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            data += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert response is not None
            return response, bytes(data)


async def open_peer(
    peer: HypercornPeer, ssl_context: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a stream to a hypercorn peer over whichever transport it uses."""
    if peer.uds_path is not None:
        return await asyncio.open_unix_connection(peer.uds_path)
    return await asyncio.open_connection(peer.host, peer.port, ssl=ssl_context)


async def close(writer: asyncio.StreamWriter) -> None:
    """Close a client writer and wait for it."""
    writer.close()
    await writer.wait_closed()


@pytest.mark.asyncio
async def test_runs_on_both_loops(request: pytest.FixtureRequest) -> None:
    """Each async test is parametrized over asyncio and uvloop."""
    on_uvloop = isinstance(asyncio.get_running_loop(), uvloop.Loop)
    assert on_uvloop == request.node.name.endswith("[uvloop]")
    assert request.node.name.endswith(("[uvloop]", "[asyncio]"))


@pytest.mark.asyncio
async def test_hypercorn_tls_root(
    hypercorn_tls: HypercornPeer, ssl_context: ssl.SSLContext
) -> None:
    """The TLS peer verifies against the test CA and picks ALPN http/1.1."""
    ssl_context.set_alpn_protocols(["h2", "http/1.1"])
    reader, writer = await open_peer(hypercorn_tls, ssl_context)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        assert ssl_object.selected_alpn_protocol() == "http/1.1"
        response, body = await h11_request(reader, writer, "/")
    finally:
        await close(writer)
    assert hypercorn_tls.url == f"https://127.0.0.1:{hypercorn_tls.port}"
    assert (response.status_code, body) == (200, b"Hello, world!")


@pytest.mark.asyncio
async def test_hypercorn_plain_routes(hypercorn_plain: HypercornPeer) -> None:
    """Echo, status, bytes, slow and chunked stream routes behave as documented."""
    reader, writer = await open_peer(hypercorn_plain)
    try:
        echo = await h11_request(reader, writer, "/echo", method="POST", body=b"abc")
        status = await h11_request(reader, writer, "/status/418")
        nbytes = await h11_request(reader, writer, "/bytes?n=7")
        slow = await h11_request(reader, writer, "/slow?delay=0.05")
        stream = await h11_request(reader, writer, "/stream?chunks=3&size=4")
        missing = await h11_request(reader, writer, "/nope")
    finally:
        await close(writer)
    assert (echo[0].status_code, echo[1]) == (200, b"abc")
    assert (status[0].status_code, status[1]) == (418, b"")
    assert (b"content-length", b"7") in nbytes[0].headers
    assert nbytes[1] == b"xxxxxxx"
    assert slow[1] == b"slow"
    assert (b"transfer-encoding", b"chunked") in stream[0].headers
    assert stream[1] == b"x" * 12
    assert missing[0].status_code == 404


@pytest.mark.asyncio
async def test_hypercorn_uds_headers(hypercorn_uds: HypercornPeer) -> None:
    """The Unix-socket peer's /headers reports method, path, query and headers."""
    reader, writer = await open_peer(hypercorn_uds)
    try:
        response, body = await h11_request(
            reader, writer, "/headers?a=1&b=2", method="PUT", headers=[("x-t", "v")]
        )
    finally:
        await close(writer)
    info = json.loads(body)
    assert response.status_code == 200
    assert info["method"] == "PUT"
    assert (info["path"], info["query_string"]) == ("/headers", "a=1&b=2")
    assert ["x-t", "v"] in info["headers"]
    assert info["http_version"] == "1.1"


def negotiated_alpn(peer: HypercornPeer, client: ssl.SSLContext) -> str | None:
    """Do a blocking TLS handshake with ``peer`` and return the chosen ALPN."""
    with (
        socket.create_connection((peer.host, peer.port), timeout=5) as raw,
        client.wrap_socket(raw, server_hostname=peer.host) as tls,
    ):
        return tls.selected_alpn_protocol()


def test_hypercorn_alpn_is_configurable(certs_dir: Path) -> None:
    """A TLS peer started with h2 first negotiates h2 with a client offering it."""
    client = ssl.create_default_context(cafile=certs_dir / "ca.pem")
    client.set_alpn_protocols(["h2", "http/1.1"])
    with run_hypercorn(
        "tls",
        **h2_tls_options(certs_dir),
    ) as peer:
        assert negotiated_alpn(peer, client) == "h2"


@pytest.mark.asyncio
async def test_scripted_tls_records_sni(
    server_ssl_context: ssl.SSLContext, ssl_context: ssl.SSLContext
) -> None:
    """A TLS scripted server records the SNI name and the plaintext request."""
    async with canned_server([OK_RESPONSE], ssl=server_ssl_context) as server:
        reader, writer = await asyncio.open_connection(
            server.host,
            server.port,
            ssl=ssl_context,
            server_hostname="sni.wireline.test",
        )
        try:
            response, body = await h11_request(reader, writer, "/sni")
        finally:
            await close(writer)
    assert server.sni_names == ["sni.wireline.test"]
    assert server.received[0].startswith(b"GET /sni HTTP/1.1\r\n")
    assert (response.status_code, body) == (200, b"ok")
    assert server_ssl_context.sni_callback is None


@pytest.mark.asyncio
async def test_canned_keep_alive_shares_queue() -> None:
    """With close_after=False one connection gets successive canned responses."""
    second = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    async with canned_server([OK_RESPONSE, second], close_after=False) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            first_response, _ = await h11_request(reader, writer, "/1")
            writer.write(b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
            await writer.drain()
            assert await reader.readuntil(b"\r\n\r\n") == second
            assert await reader.read() == b""  # queue empty: server closes
        finally:
            await close(writer)
    assert first_response.status_code == 200
    assert server.connections == 1
    assert server.received[0].endswith(b"\r\n\r\nabc")


@pytest.mark.asyncio
async def test_recording_server_over_uds_with_open_client(uds_path: str) -> None:
    """Exiting with a client still connected aborts it and leaks nothing."""
    async with recording_server(uds_path=uds_path) as server:
        reader, writer = await asyncio.open_unix_connection(uds_path)
        writer.write(b"raw bytes")
        await writer.drain()
        await server.wait_for(lambda: server.received == [b"raw bytes"])
    assert await reader.read() == b""
    await close(writer)
    assert server.url == "http://localhost"


@pytest.mark.asyncio
async def test_scripted_ipv6_and_handler_errors() -> None:
    """Handler exceptions re-raise on exit; ::1 is a valid bind host."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readexactly(1)
        raise ZeroDivisionError("scripted failure")

    async def poke() -> None:
        async with scripted_server(handler, host="::1") as server:
            assert server.url == f"http://[::1]:{server.port}"
            _, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"!")
            await writer.drain()
            await server.wait_for(lambda: bool(server.errors))
            await close(writer)

    with pytest.raises(ZeroDivisionError, match="scripted failure"):
        await poke()


@pytest.mark.asyncio
async def test_scripted_refuses_non_loopback() -> None:
    """Binding anything but loopback is refused."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="only bind"):
        async with scripted_server(handler, host="0.0.0.0"):
            pass


@pytest.mark.asyncio
async def test_scripted_tls_handshake_failure_is_clean(
    server_ssl_context: ssl.SSLContext, certs_dir: Path
) -> None:
    """A client rejecting the server cert leaves no handler run and nothing open."""
    wrong_ca = ssl.create_default_context(cafile=certs_dir / "other-ca.pem")
    async with canned_server([OK_RESPONSE], ssl=server_ssl_context) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection(server.host, server.port, ssl=wrong_ca)
    assert server.sni_names == [None]  # no SNI is sent for an IP address
    assert server.connections == 0
