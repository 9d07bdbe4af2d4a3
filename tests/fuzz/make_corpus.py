"""Rebuild the seed corpus: ``python -m tests.fuzz.make_corpus``.

Seeds are valid exchanges (written here, HTTP/2 ones produced by an h2 server)
and every bytes/str vector the sans-IO test modules parametrize with, each
encoded in its harness's input layout (harnesses.py) and saved under
``corpus/<harness>/<sha1 prefix>``. The directory is emptied first, so the
corpus is exactly what this script makes.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import hpack

from sansio import HTTP2State
from tests.fuzz.harnesses import (
    HOST,
    SERVER_PREFACE,
    HTTP2Exchange,
    HTTP11Exchange,
    frame,
)

CORPUS = Path(__file__).parent / "corpus"
MAX_SEED = 2048  # bytes; the harnesses cap inputs at 4096 anyway
MAX_FILES = 300  # per harness: the first ones (valid exchanges come first)


def parametrized_values(module_name: str) -> Iterator[bytes | str]:
    """Every bytes or str value in the @pytest.mark.parametrize lists of a module
    (nested in tuples and pytest.param too)."""

    def walk(value: Any) -> Iterator[bytes | str]:
        if isinstance(value, bytes | str):
            yield value
        elif isinstance(value, tuple | list):
            for item in value:
                yield from walk(item)
        elif hasattr(value, "values") and hasattr(value, "marks"):  # pytest.param
            yield from walk(value.values)

    module = importlib.import_module(module_name)
    for _, function in inspect.getmembers(module, inspect.isfunction):
        for mark in getattr(function, "pytestmark", []):
            if mark.name == "parametrize" and len(mark.args) > 1:
                yield from walk(list(mark.args[1]))


def as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


# -- HTTP/1.1 -------------------------------------------------------------------

GET, HEAD, POST, CHUNKED_POST, CONNECT, UPGRADE, CLOSE = range(7)
OK = b"HTTP/1.1 200 OK\r\n"

HTTP11_VALID: list[tuple[int, bytes, bool]] = [  # (request, response, eof)
    (GET, OK + b"Content-Length: 5\r\n\r\nhello", False),
    (GET, OK + b"Content-Length: 0\r\n\r\n", False),
    (GET, OK + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", False),
    (
        GET,
        OK + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
        False,
    ),
    (GET, b"HTTP/1.1 100 Continue\r\n\r\n" + OK + b"Content-Length: 1\r\n\r\nx", False),
    (GET, b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK + b"\r\n", True),
    (HEAD, OK + b"Content-Length: 100\r\n\r\n", False),
    (HEAD, OK + b"Content-Length: 3\r\n\r\nabc", False),
    (GET, b"HTTP/1.1 204 No Content\r\n\r\n", False),
    (GET, b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n", False),
    (GET, b"HTTP/1.0 200 OK\r\n\r\nread to eof", True),
    (GET, b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
    (GET, OK + b"Connection: close\r\nContent-Length: 2\r\n\r\nok", False),
    (CLOSE, OK + b"Content-Length: 2\r\n\r\nok", False),
    (POST, OK + b"Content-Length: 2\r\n\r\nok", False),
    (CHUNKED_POST, b"HTTP/1.1 100 Continue\r\n\r\n" + OK + b"\r\nbody", True),
    (CONNECT, OK + b"\r\n\x16\x03\x01\x00\x05hello", False),
    (CONNECT, b"HTTP/1.1 407 Auth\r\nContent-Length: 0\r\n\r\n", False),
    (
        UPGRADE,
        b"HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
        False,
    ),
    (
        GET,
        OK + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        False,
    ),
    (GET, OK + b"Content-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n", False),
    (HEAD, OK + b"Content-Length: 3\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", False),
    (GET, b"HTTP/1.1 200 OK\nContent-Length: 1\n\nx", False),
    (GET, OK + b"X-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n", False),
    (GET, OK + b"Content-Length: 10\r\n\r\nshort", True),
]


def http11_seeds() -> Iterator[bytes]:
    for request, response, eof in HTTP11_VALID:
        for limits in (0, 1):
            for cuts in ((), (len(response) // 2,)):
                exchange = HTTP11Exchange(request, limits, False, eof, cuts, response)
                yield exchange.encode()
    vectors = [
        *parametrized_values("tests.sansio.test_http11"),
        *parametrized_values("tests.sansio.test_http11_fastpath"),
    ]
    from tests.sansio.test_http11_fastpath import FIELDS, STATUS_LINES

    vectors += [line + b"\r\n\r\n" for line in STATUS_LINES]
    vectors += [OK + field + b"\r\n\r\nbody" for field in FIELDS]
    for index, value in enumerate(vectors):
        response = as_bytes(value)
        request = (GET, HEAD, POST, CONNECT)[index % 4]
        yield HTTP11Exchange(
            request, index % 3, False, bool(index & 1), (), response
        ).encode()


# -- HTTP/2 ---------------------------------------------------------------------


def h2_server() -> tuple[h2.connection.H2Connection, HTTP2State]:
    """An h2 server that has read a client's preface and three GETs (streams
    1, 3, 5), and the client; the server's own preface is already drained."""
    client = HTTP2State()
    client.initiate()
    for _ in range(3):
        client.send_request(b"GET", b"https", b"/", [HOST], end_stream=True)
    config = h2.config.H2Configuration(client_side=False, header_encoding=None)
    server = h2.connection.H2Connection(config=config)
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    server.data_to_send()
    return server, client


STATUS_200 = [(b":status", b"200"), (b"content-type", b"text/plain")]


def h2_scenarios() -> Iterator[bytes]:
    """Server bytes after its preface, one exchange each."""

    def respond(server: h2.connection.H2Connection, stream_id: int = 1) -> None:
        server.send_headers(stream_id, STATUS_200)
        server.send_data(stream_id, b"hello")
        server.end_stream(stream_id)

    server, _ = h2_server()
    respond(server)
    yield server.data_to_send()

    server, _ = h2_server()
    server.send_headers(
        1, [(b":status", b"200"), (b"content-length", b"0")], end_stream=True
    )
    server.send_headers(3, [(b":status", b"103"), (b"link", b"</a>")])
    server.send_headers(3, STATUS_200)
    server.send_data(3, b"x" * 40, pad_length=8)
    server.send_headers(3, [(b"grpc-status", b"0")], end_stream=True)
    yield server.data_to_send()

    server, _ = h2_server()
    server.increment_flow_control_window(1000)
    server.increment_flow_control_window(10, stream_id=1)
    server.ping(b"12345678")
    server.update_settings({4: 10000, 3: 1, 5: 20000})
    yield server.data_to_send()

    server, _ = h2_server()
    respond(server)
    server.reset_stream(3, 8)
    server.close_connection(error_code=0, last_stream_id=1, additional_data=b"bye")
    yield server.data_to_send()

    server, _ = h2_server()
    server.close_connection(error_code=2, last_stream_id=0)
    yield server.data_to_send()

    server, _ = h2_server()
    server.send_headers(1, STATUS_200)
    server.send_data(1, b"0123456789" * 30)
    yield server.data_to_send()

    # CONTINUATION: one header block split over HEADERS and two CONTINUATIONs.
    block = hpack.Encoder().encode([(b":status", b"200"), (b"x-long", b"v" * 60)])
    third = len(block) // 3
    yield (
        frame(0x1, 0x1, 1, block[:third])
        + frame(0x9, 0x0, 1, block[third : 2 * third])
        + frame(0x9, 0x4, 1, block[2 * third :])
    )
    # Hostile: DATA on a stream we did not open, a PUSH_PROMISE, a bad :status,
    # DATA longer than content-length, a huge window increment, unknown frames.
    encoder = hpack.Encoder()
    yield frame(0x0, 0x1, 7, b"data")
    yield frame(
        0x5, 0x4, 1, b"\x00\x00\x00\x02" + encoder.encode([(b":method", b"GET")])
    )
    yield frame(0x1, 0x5, 1, hpack.Encoder().encode([(b":status", b"20x")]))
    yield frame(
        0x1,
        0x4,
        1,
        hpack.Encoder().encode([(b":status", b"200"), (b"content-length", b"2")]),
    ) + frame(0x0, 0x1, 1, b"toolong")
    yield frame(0x8, 0x0, 0, b"\x7f\xff\xff\xff") + frame(
        0x8, 0x0, 1, b"\x00\x00\x00\x00"
    )
    yield frame(0xB, 0xFF, 0, b"unknown") + frame(0x2, 0x0, 1, b"\x00\x00\x00\x03\x10")
    yield frame(0x4, 0x1, 0, b"") + frame(0x4, 0x0, 0, b"\x00\x05\x00\x00\x00\x01")
    yield frame(0x6, 0x0, 0, b"12345678") * 4
    yield frame(0x3, 0x0, 1, b"\x00\x00\x00\x07")


def http2_seeds() -> Iterator[bytes]:
    for wire in h2_scenarios():
        for streams, cuts in ((3, ()), (1, (7,)), (2, (len(wire) // 2,))):
            yield HTTP2Exchange(streams, False, bool(cuts), cuts, wire).encode()
    # Frames whose header blocks the harness encodes (type bytes 0xE0-0xEF).
    status_200 = bytes([0xE0, 0x04, 1, 2, 0, 0, 1, 7, 1])  # :status 200, length 5
    data = bytes([0x00, 0x01, 1, 5]) + b"hello"
    trailers = bytes([0xE0, 0x05, 1, 1, 8, 6, 0])  # x-custom: 0, END_STREAM
    for frames in (
        status_200 + data,
        status_200 + bytes([0x00, 0x00, 1, 5]) + b"hello" + trailers,
        bytes([0xE0, 0x04, 1, 1, 0, 2, 0]) + status_200 + data,  # 103 first
        bytes([0xE0, 0x05, 1, 1, 0, 4]),  # :status 2000
        bytes([0xE0, 0x05, 1, 2, 0, 0, 3, 6, 0]),  # connection: 0
        bytes([0xE0, 0x05, 1, 2, 0, 0, 7, 5, 1]),  # Upper-Case
        status_200 + bytes([0x00, 0x01, 1, 9]) + b"too long!",
        bytes([0xE0, 0x05, 1, 2, 0, 0, 200, 9, 4, 0xC3, 0xA9, b"x"[0], b"y"[0], 0]),
    ):
        yield bytes([2, 0, 0]) + frames
        yield bytes([0, 2, 2, 0, 10, 0, 20]) + frames
    for value in parametrized_values("tests.sansio.test_http2"):
        raw = as_bytes(value)
        if raw.startswith(SERVER_PREFACE):
            raw = raw[len(SERVER_PREFACE) :]
        yield HTTP2Exchange(1, False, False, (), raw).encode()


# -- validation -----------------------------------------------------------------

URL_STRING, URL_PARTS, HEADERS, METHOD, TARGET, SNI, REQUEST = range(7)


def field(value: bytes) -> bytes:
    return bytes([len(value)]) + value[:255]


def validation_seeds() -> Iterator[bytes]:
    for method, url, sni in (
        (b"GET", b"https://example.com/", b"example.com"),
        (b"POST", b"http://127.0.0.1:8000/x?y", b"b\xc3\xbccher.example"),
        (b"GET", b"https://[::1]/", b"::1"),
        (b"G T", b"http://h/\r\n", b"bad name"),
    ):
        pairs = bytes([2]) + field(b"Host") + field(b"example.com")
        pairs += field(b"Accept") + field(b"*/*")
        yield (
            bytes([REQUEST]) + field(method) + field(url) + pairs + b"\x03" + field(sni)
        )
        yield bytes([REQUEST]) + field(method) + field(url) + b"\x00\x02" + field(b"/t")
    url_values = [as_bytes(v) for v in parametrized_values("tests.sansio.test_urls")]
    from tests.sansio.test_urls import PARSE_VECTORS

    url_values += [
        as_bytes(url) for url, *_ in PARSE_VECTORS if isinstance(url, bytes | str)
    ]
    url_values += [
        b"http://[::1/",
        b"http://a]b/",
        b"http://h\xff/",
        b"HTTP://Example.COM:80/p;x?y#z",
        b"https://user:pw@example.com:8443/",
    ]
    url_values = list(dict.fromkeys(url_values))
    for value in url_values:
        yield bytes([URL_STRING]) + value
    for value in url_values[::3]:
        yield bytes([URL_PARTS, 0, 0]) + field(value) + b"/"
        yield bytes([SNI]) + value
        yield bytes([SNI]) + b"s" + value
    header_values = [
        as_bytes(v) for v in parametrized_values("tests.sansio.test_headers")
    ]
    header_values += [b"GET", b"/a?b=c", b"x\r\nInjected: 1", b"\xe9t\xe9"]
    for value in list(dict.fromkeys(header_values))[::2]:
        yield bytes([METHOD]) + value
        yield bytes([TARGET]) + value
        yield bytes([HEADERS, 1]) + field(b"X-Test") + field(value) + b"\x00"
        yield bytes([HEADERS, 1]) + field(value) + field(b"v") + b"\x01"


# -- SOCKS5 ---------------------------------------------------------------------


def socks5_seeds() -> Iterator[bytes]:
    ipv4 = b"\x05\x00\x00\x01\x7f\x00\x00\x01\x1f\x90"
    domain = b"\x05\x00\x00\x03\x0bexample.com\x01\xbb"
    ipv6 = b"\x05\x00\x00\x04" + b"\x00" * 15 + b"\x01\x00\x50"
    replies = [
        (0, b"\x05\x00" + ipv4),
        (0, b"\x05\x00" + domain + b"tunnel bytes"),
        (0, b"\x05\x00" + ipv6),
        (1, b"\x05\x02\x01\x00" + ipv4),
        (1, b"\x05\x02\x01\x01"),
        (0, b"\x05\xff"),
        (0, b"\x04\x00"),
        (0, b"\x05\x00\x05\x05\x00\x01"),
        (0, b"\x05\x00\x05\x00\x00\x07"),
        (2, b"\x05\x00\x05\x00\x00"),
        (3, b"\x05\x02\x01"),
    ]
    for flags, reply in replies:
        yield bytes([flags, 0]) + reply
        yield bytes([flags, 2, 0, 3, 0, 7]) + reply


SEEDS = {
    "http11": http11_seeds,
    "http2": http2_seeds,
    "validation": validation_seeds,
    "socks5": socks5_seeds,
}


def write(name: str, seeds: Iterable[bytes]) -> int:
    """Replace ``corpus/<name>/`` with ``seeds`` (deduplicated); return the count."""
    directory = CORPUS / name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    written: set[str] = set()
    for seed in seeds:
        seed = seed[:MAX_SEED]
        digest = hashlib.sha1(seed).hexdigest()[:16]
        if digest not in written and len(written) < MAX_FILES:
            (directory / digest).write_bytes(seed)
            written.add(digest)
    return len(written)


def main() -> None:
    for name, seeds in SEEDS.items():
        print(f"{name}: {write(name, seeds())} seeds")


if __name__ == "__main__":
    main()
