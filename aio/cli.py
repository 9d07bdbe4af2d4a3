"""``wireline``: a curl-like command line on :class:`aio.AsyncConnectionPool`.

Run it as ``python -m aio URL [options]`` or as the ``wireline`` console script
(``aio.cli:main``). It makes one request, writes the body to stdout (or ``-o``),
and exits with curl's exit codes and messages: ``wireline: (7) Failed to connect
to 127.0.0.1 port 1: Connection refused``.

Exit codes (curl's numbers):

====  ======================================================================
 0    success
 1    unsupported URL scheme (``ftp://``)
 2    bad command line, invalid header or method, uvloop not installed
 3    malformed URL
 5    proxy name not resolved, or unsupported / malformed proxy URL
 6    host name not resolved
 7    failed to connect (refused, unreachable, no such Unix socket)
22    HTTP status >= 400 with ``-f``
23    output file could not be opened or written
26    ``-d @file`` could not be read
28    ``--connect-timeout`` or ``--max-time`` expired (any timeout)
35    TLS handshake failed (other than certificate verification)
52    the server closed without sending a response
55    sending the request failed
56    receiving the response failed, or a proxy refused CONNECT (non-2xx)
60    the server certificate did not verify
77    ``--cacert`` file could not be loaded
97    SOCKS5 / proxy handshake failed
====  ======================================================================

``-v`` prints curl-style ``*``, ``>`` and ``<`` lines on stderr, built from the
``trace`` request extension; ``--trace-json`` prints every trace event as one
JSON object per line. Neither reads environment proxies (``http_proxy``): only
``--proxy`` is used.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import enum
import importlib.metadata
import ipaddress
import json
import math
import os
import re
import shutil
import socket
import ssl
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, NoReturn, Protocol, TextIO, TypeAlias

import idna

import aio

__all__ = [
    "ExitCode",
    "ProgressMeter",
    "json_safe",
    "main",
    "render_progress",
]

PROG = "wireline"


class ExitCode(enum.IntEnum):
    """curl's exit codes that wireline uses (``CURLE_*`` names)."""

    OK = 0
    UNSUPPORTED_PROTOCOL = 1
    FAILED_INIT = 2
    URL_MALFORMAT = 3
    COULDNT_RESOLVE_PROXY = 5
    COULDNT_RESOLVE_HOST = 6
    COULDNT_CONNECT = 7
    HTTP_RETURNED_ERROR = 22
    WRITE_ERROR = 23
    READ_ERROR = 26
    OPERATION_TIMEDOUT = 28
    SSL_CONNECT_ERROR = 35
    GOT_NOTHING = 52
    SEND_ERROR = 55
    RECV_ERROR = 56
    PEER_FAILED_VERIFICATION = 60
    SSL_CACERT_BADFILE = 77
    PROXY = 97


class CLIError(Exception):
    """A failure reported as ``wireline: (code) message`` with that exit code."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _UsageError(Exception):
    """argparse's complaint about the command line (exit 2)."""


def _version() -> str:
    try:
        return importlib.metadata.version("wireline")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - not installed
        return "0+unknown"


# -- the command line ----------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of exiting on bad input."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


class _AppendData(argparse.Action):
    """``-d`` / ``--data-binary``: keep every value, in order, with its kind."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        items = list(getattr(namespace, self.dest) or [])
        items.append((self.const, str(values)))
        setattr(namespace, self.dest, items)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {value!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected positive seconds, got {value!r}")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    """The ``wireline`` argument parser (stdlib argparse, curl's option names)."""
    parser = _Parser(
        prog=PROG,
        usage=f"{PROG} URL [options]",
        description="Make one HTTP/1.1 or HTTP/2 request with wireline's aio "
        "client, curl-style. Exit codes follow curl's.",
    )
    add = parser.add_argument
    add("url", metavar="URL", help="http:// or https:// URL (no scheme: http://)")
    add("-X", "--request", metavar="METHOD", help="request method (default GET)")
    add(
        "-H",
        "--header",
        metavar="'Name: value'",
        action="append",
        default=[],
        help="extra header, repeatable; 'Name:' removes a default header, "
        "'Name;' sends it empty",
    )
    add(
        "-d",
        "--data",
        metavar="DATA",
        dest="data",
        action=_AppendData,
        const="ascii",
        help="request body (implies POST); @FILE reads FILE without CR/LF, "
        "@- reads stdin; repeated values are joined with '&'",
    )
    add(
        "--data-binary",
        metavar="DATA",
        dest="data",
        action=_AppendData,
        const="binary",
        help="like -d, but @FILE is sent exactly as it is",
    )
    add("-o", "--output", metavar="FILE", help="write the body to FILE ('-': stdout)")
    add("-i", "--include", action="store_true", help="write the response head too")
    add("-v", "--verbose", action="store_true", help="curl-style trace on stderr")
    add(
        "--trace-json",
        action="store_true",
        help="every trace event as one JSON object per line on stderr",
    )
    add("-s", "--silent", action="store_true", help="no progress bar, no errors")
    add("-S", "--show-error", action="store_true", help="show errors even with -s")
    add("-f", "--fail", action="store_true", help="exit 22 on HTTP status >= 400")
    add("--http2", action="store_true", help="offer HTTP/2 by ALPN (h2, http/1.1)")
    add(
        "--http2-prior-knowledge",
        action="store_true",
        help="speak HTTP/2 only (h2c in clear text, ALPN h2 over TLS)",
    )
    add("--sni-hostname", metavar="NAME", help="TLS server name to send and verify")
    add("--cacert", metavar="FILE", help="trust only the CA certificates in FILE")
    add("-k", "--insecure", action="store_true", help="do not verify certificates")
    add(
        "-x",
        "--proxy",
        metavar="URL",
        help="http://, https://, socks5:// or socks5h:// proxy; user:pass@ for auth",
    )
    add("--unix-socket", metavar="PATH", help="connect to this Unix socket")
    add(
        "--connect-timeout",
        metavar="SECONDS",
        type=_seconds,
        help="limit for each connection step (TCP, proxy, TLS)",
    )
    add(
        "-m",
        "--max-time",
        metavar="SECONDS",
        type=_seconds,
        help="limit for the whole transfer",
    )
    add("--loop", choices=("asyncio", "uvloop"), default="asyncio", help="event loop")
    add(
        "--no-progress-meter",
        action="store_true",
        help="never show the progress bar",
    )
    # For tests: draw the progress bar even when stderr is not a terminal.
    add("--force-progress", action="store_true", help=argparse.SUPPRESS)
    add("-V", "--version", action="version", version=f"{PROG} {_version()}")
    return parser


# -- turning options into a request --------------------------------------------


@dataclass
class Options:
    """A command line, checked and ready to run."""

    method: bytes
    url: aio.URL
    headers: list[tuple[bytes, bytes]]
    data: bytes | None
    output: str | None
    include: bool
    verbose: bool
    trace_json: bool
    silent: bool
    fail: bool
    http1: bool
    http2: bool
    sni_hostname: str | None
    ssl_context: ssl.SSLContext | None
    proxy: aio.Proxy | None
    unix_socket: str | None
    connect_timeout: float | None
    max_time: float | None
    progress: bool
    alpn_offers: dict[int, list[str]] = field(default_factory=dict)


_DEFAULT_PORT = {"http": 80, "https": 443}
# Where curl sends a proxy URL without a port.
_PROXY_DEFAULT_PORT = {"http": 1080, "https": 443, "socks5": 1080, "socks5h": 1080}


def _split_userinfo(text: str) -> tuple[str, tuple[str, str] | None]:
    """``text`` without ``user:pass@``, and the percent-decoded credentials."""
    parts = urllib.parse.urlsplit(text)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        return text, None
    user, _, password = userinfo.partition(":")
    credentials = (urllib.parse.unquote(user), urllib.parse.unquote(password))
    return urllib.parse.urlunsplit(parts._replace(netloc=hostport)), credentials


def _ascii_url(text: str) -> str:
    """``text`` with an IDN host as A-labels and a non-ASCII path percent-encoded."""
    parts = urllib.parse.urlsplit(text)
    host = parts.hostname or ""
    if not host.isascii():
        host = idna.encode(host, uts46=True).decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    safe = "/%:@!$&'()*+,;=~-._?"
    return urllib.parse.urlunsplit(
        parts._replace(
            netloc=netloc,
            path=urllib.parse.quote(parts.path, safe=safe),
            query=urllib.parse.quote(parts.query, safe=safe),
            fragment="",
        )
    )


def parse_url(raw: str) -> tuple[aio.URL, tuple[str, str] | None]:
    """The request URL (``http://`` assumed when there is no scheme), and any
    ``user:pass@`` credentials it carried.

    Raises:
        CLIError: 1 for a scheme other than http/https, 3 for a malformed URL.
    """
    text = raw if "://" in raw else f"http://{raw}"
    scheme = text.partition("://")[0].lower()
    if scheme not in _DEFAULT_PORT:
        raise CLIError(
            ExitCode.UNSUPPORTED_PROTOCOL, f'Protocol "{scheme}" not supported'
        )
    try:
        text, credentials = _split_userinfo(text)
        if not text.isascii():
            text = _ascii_url(text)
        url = aio.URL(text)
    except (aio.LocalProtocolError, TypeError, ValueError, idna.IDNAError) as exc:
        raise CLIError(ExitCode.URL_MALFORMAT, f"URL rejected: {exc}") from exc
    if not url.host:
        raise CLIError(ExitCode.URL_MALFORMAT, "URL rejected: No host part in the URL")
    return url, credentials


def parse_proxy(raw: str, ssl_context: ssl.SSLContext | None = None) -> aio.Proxy:
    """An :class:`aio.Proxy` for ``--proxy`` (``http://`` assumed, curl's default
    ports, ``user:pass@`` as proxy credentials).

    Raises:
        CLIError: 5 for an unsupported scheme or a malformed proxy URL.
    """
    text = raw if "://" in raw else f"http://{raw}"
    scheme = text.partition("://")[0].lower()
    if scheme not in _PROXY_DEFAULT_PORT:
        raise CLIError(
            ExitCode.COULDNT_RESOLVE_PROXY, f"Unsupported proxy scheme for '{raw}'"
        )
    try:
        text, credentials = _split_userinfo(text)
        url = aio.URL(text)
        if not url.host:
            raise ValueError("no host")
        url = aio.URL(
            scheme=scheme,
            host=url.host,
            port=url.port or _PROXY_DEFAULT_PORT[scheme],
        )
        auth = None
        if credentials is not None:
            auth = (credentials[0].encode(), credentials[1].encode())
        ssl_for_proxy = ssl_context if scheme == "https" else None
        return aio.Proxy(url, auth=auth, ssl_context=ssl_for_proxy)
    except (
        aio.LocalProtocolError,
        aio.UnsupportedProtocol,
        TypeError,
        ValueError,
    ) as exc:
        raise CLIError(
            ExitCode.COULDNT_RESOLVE_PROXY,
            f"Unsupported proxy syntax in '{raw}': {exc}",
        ) from exc


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def build_headers(
    raw_headers: Sequence[str],
    *,
    has_data: bool,
    credentials: tuple[str, str] | None = None,
) -> list[tuple[bytes, bytes]]:
    """curl's request headers: defaults, then ``-H`` values (which replace or,
    with ``Name:``, remove a default), then the ``-d`` Content-Type.

    Raises:
        CLIError: 2 for a header with neither ``:`` nor ``;``.
    """
    defaults: list[tuple[str, str]] = [
        ("User-Agent", f"{PROG}/{_version()}"),
        ("Accept", "*/*"),
    ]
    if credentials is not None:
        token = base64.b64encode(_encode(f"{credentials[0]}:{credentials[1]}"))
        defaults.append(("Authorization", f"Basic {token.decode('ascii')}"))
    user: list[tuple[str, str]] = []
    removed: set[str] = set()
    for raw in raw_headers:
        colon, semicolon = raw.find(":"), raw.find(";")
        if colon > 0 and (semicolon < 0 or colon < semicolon):
            name, value = raw[:colon].strip(), raw[colon + 1 :].strip()
            if value:
                user.append((name, value))
            else:
                removed.add(name.lower())
        elif semicolon > 0 and raw[semicolon + 1 :].strip() == "":
            user.append((raw[:semicolon].strip(), ""))
        else:
            raise CLIError(
                ExitCode.FAILED_INIT,
                f"option -H: header {raw!r} is not 'Name: value' (or 'Name;')",
            )
    overridden = {name.lower() for name, _ in user} | removed
    headers = [pair for pair in defaults if pair[0].lower() not in overridden]
    headers += user
    if has_data and "content-type" not in overridden:
        headers.append(("Content-Type", "application/x-www-form-urlencoded"))
    return [(_encode(name), _encode(value)) for name, value in headers]


def read_data(
    items: Sequence[tuple[str, str]] | None, stdin: IO[Any] | None = None
) -> bytes | None:
    """The request body from ``-d`` / ``--data-binary`` values, or None.

    ``@FILE`` reads a file (``@-``: stdin); for ``-d`` its CR and LF bytes are
    removed, as curl does. Several values are joined with ``&``.

    Raises:
        CLIError: 26 when a file cannot be read.
    """
    if not items:
        return None
    pieces: list[bytes] = []
    for kind, value in items:
        if value.startswith("@"):
            path = value[1:]
            try:
                if path == "-":
                    source = sys.stdin if stdin is None else stdin
                    buffer = getattr(source, "buffer", None)
                    data = buffer.read() if buffer is not None else source.read()
                    if isinstance(data, str):
                        data = _encode(data)
                else:
                    data = Path(path).read_bytes()
            except OSError as exc:
                detail = exc.strerror or str(exc)
                raise CLIError(
                    ExitCode.READ_ERROR,
                    "Failed to open/read local data from file/application: "
                    f"{path}: {detail}",
                ) from exc
            if kind == "ascii":
                data = data.replace(b"\r", b"").replace(b"\n", b"")
        else:
            data = _encode(value)
        pieces.append(data)
    return b"&".join(pieces)


def make_ssl_context(
    *, cacert: str | None, insecure: bool, alpn: Sequence[str]
) -> ssl.SSLContext:
    """A client context: certifi's CAs (or only ``cacert``'s), ALPN ``alpn``,
    no verification with ``insecure``.

    Raises:
        CLIError: 77 when ``cacert`` cannot be loaded.
    """
    if cacert is not None:
        try:
            context = ssl.create_default_context(cafile=cacert)
        except (OSError, ssl.SSLError) as exc:
            raise CLIError(
                ExitCode.SSL_CACERT_BADFILE,
                f"error setting certificate file: {cacert} ({exc})",
            ) from exc
    else:
        context = aio.default_ssl_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(list(alpn))
    return context


def resolve_options(
    args: argparse.Namespace,
    *,
    stdin: IO[Any] | None = None,
    stderr: TextIO | None = None,
) -> Options:
    """Check ``args`` and build everything the request needs.

    Raises:
        CLIError: With curl's code for the first problem found.
    """
    url, credentials = parse_url(args.url)
    data = read_data(args.data, stdin)
    if args.request is not None:
        method = _encode(args.request)
    else:
        method = b"POST" if data is not None else b"GET"
    headers = build_headers(
        args.header, has_data=data is not None, credentials=credentials
    )
    http1 = not args.http2_prior_knowledge
    http2 = args.http2 or args.http2_prior_knowledge
    alpn_offers: dict[int, list[str]] = {}
    ssl_context = None
    if url.scheme == b"https":
        alpn = ["h2", "http/1.1"] if http2 else ["http/1.1"]
        if not http1:
            alpn = ["h2"]  # prior knowledge: h2 or nothing
        ssl_context = make_ssl_context(
            cacert=args.cacert, insecure=args.insecure, alpn=alpn
        )
        alpn_offers[id(ssl_context)] = alpn
    proxy = None
    if args.proxy is not None:
        proxy_context = None
        if args.proxy.lower().startswith("https://"):
            proxy_context = make_ssl_context(
                cacert=args.cacert, insecure=args.insecure, alpn=["http/1.1"]
            )
            alpn_offers[id(proxy_context)] = ["http/1.1"]
        proxy = parse_proxy(args.proxy, proxy_context)
    extensions: dict[str, Any] = {}
    if args.sni_hostname is not None:
        extensions["sni_hostname"] = args.sni_hostname
    try:
        aio.Request(method, url, headers=headers, extensions=extensions)
    except (aio.LocalProtocolError, TypeError) as exc:
        raise CLIError(ExitCode.FAILED_INIT, str(exc)) from exc
    err = sys.stderr if stderr is None else stderr
    output_is_file = args.output is not None and args.output != "-"
    progress = (
        output_is_file
        and not args.silent
        and not args.no_progress_meter
        and (args.force_progress or _isatty(err))
    )
    return Options(
        method=method,
        url=url,
        headers=headers,
        data=data,
        output=args.output,
        include=args.include,
        verbose=args.verbose,
        trace_json=args.trace_json,
        silent=args.silent,
        fail=args.fail,
        http1=http1,
        http2=http2,
        sni_hostname=args.sni_hostname,
        ssl_context=ssl_context,
        proxy=proxy,
        unix_socket=args.unix_socket,
        connect_timeout=args.connect_timeout,
        max_time=args.max_time,
        progress=progress,
        alpn_offers=alpn_offers,
    )


def _isatty(stream: IO[Any]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# -- trace events: JSON and curl-style verbose lines -----------------------------


JSONValue: TypeAlias = (
    bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None
)


def _text(value: bytes) -> str:
    return value.decode("utf-8", "backslashreplace")


def _request_summary(request: aio.Request) -> dict[str, JSONValue]:
    return {
        "method": _text(request.method),
        "url": _text(bytes(request.url)),
        "headers": [[_text(name), _text(value)] for name, value in request.headers],
    }


def json_safe(value: object) -> JSONValue:
    """``value`` as something ``json.dumps`` takes: bytes decoded (invalid UTF-8
    backslash-escaped), tuples as lists, requests summarised (method, URL,
    headers), exceptions as ``{"type", "message"}``, anything else (streams,
    SSL contexts, h2 events) as its ``repr()``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _text(bytes(value))
    if isinstance(value, aio.Request):
        return _request_summary(value)
    if isinstance(value, BaseException):
        return {"type": type(value).__name__, "message": str(value)}
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return repr(value)


_NAME_ABBREVIATIONS = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "emailAddress": "emailAddress",
}


def _x509_name(name: Any) -> str:
    parts = []
    for rdn in name or ():
        for key, value in rdn:
            parts.append(f"{_NAME_ABBREVIATIONS.get(key, key)}={value}")
    return "; ".join(parts)


def _host_port(host: str, port: object) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Tracer:
    """The ``trace`` callback: records what a failure needs to be explained,
    and prints ``-v`` lines and ``--trace-json`` objects on stderr.

    Args:
        options: The resolved command line.
        stderr: Where lines go.
        start: ``time.monotonic()`` at the start; ``t`` counts from it.
    """

    def __init__(self, options: Options, stderr: TextIO, start: float) -> None:
        self._options = options
        self._stderr = stderr
        self._start = start
        # The last connect attempt: (host, port) for TCP, a path for Unix.
        self.target: tuple[str, int] | str | None = None
        self.failed_step: str | None = None
        self.in_connect = False
        self._announced_http11 = False

    def __call__(self, name: str, info: dict[str, Any]) -> None:
        """Handle one event, e.g. ``connection.connect_tcp.started``."""
        prefix, _, rest = name.partition(".")
        step, _, suffix = rest.rpartition(".")
        if step in ("connect_tcp", "connect_unix_socket") and suffix == "started":
            self.target = (
                info["path"] if "path" in info else (str(info["host"]), info["port"])
            )
        if suffix == "failed":
            self.failed_step = f"{prefix}.{step}"
        if step == "send_request_headers" and suffix == "started":
            request = info.get("request")
            self.in_connect = (
                isinstance(request, aio.Request) and request.method == b"CONNECT"
            )
        if self._options.trace_json:
            self._json(name, info)
        if self._options.verbose:
            for line in self._verbose(prefix, step, suffix, info):
                self._write(line)
        if step == "receive_response_headers" and suffix != "started":
            self.in_connect = False

    def _write(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stderr.write(line + "\n")
            self._stderr.flush()

    def _json(self, name: str, info: dict[str, Any]) -> None:
        # The event's own timestamp (TraceInfo), not the time we got to it.
        fired = getattr(info, "timestamp", None) or time.monotonic()
        event = {
            "t": round(fired - self._start, 6),
            "event": name,
            "info": json_safe(info),
        }
        self._write(json.dumps(event))

    def _verbose(
        self, prefix: str, step: str, suffix: str, info: dict[str, Any]
    ) -> Iterator[str]:
        if step == "connect_tcp":
            # .complete and .failed carry no host: it is the one just tried.
            host, port = self.target if isinstance(self.target, tuple) else ("", 0)
            if suffix == "started":
                yield f"*   Trying {_host_port(host, port)}..."
            elif suffix == "complete":
                yield self._connected(host, port, info["return_value"])
            else:
                yield f"* connect to {host} port {port} failed: {_reason(info)}"
        elif step == "connect_unix_socket":
            path = info.get("path", self.target)
            if suffix == "started":
                yield f"*   Trying {path}..."
            elif suffix == "complete":
                url = self._options.url
                yield (
                    f"* Connected to {url.host.decode('ascii')} ({path}) "
                    f"port {url.origin.port}"
                )
            else:
                yield f"* connect to {path} failed: {_reason(info)}"
        elif step == "start_tls":
            yield from self._tls(suffix, info)
        elif step == "setup_socks5_connection":
            yield from self._socks(suffix, info)
        elif step == "send_connection_init" and suffix == "started":
            yield "* using HTTP/2"
        elif step == "send_request_headers" and suffix == "started":
            yield from self._request_head(prefix, info)
        elif step == "send_request_body" and suffix == "complete":
            size = len(self._options.data or b"")
            if size and not self.in_connect:
                yield f"* upload completely sent off: {size} bytes"
        elif step == "receive_response_headers" and suffix == "complete":
            yield from self._response_head(info["return_value"])
        elif step == "retry" and suffix == "started":
            yield "* Retrying connection"
        elif suffix == "failed" and step not in ("response_closed",):
            exc = info.get("exception")
            if not isinstance(exc, asyncio.CancelledError):
                yield f"* {prefix}.{step} failed: {_reason(info)}"

    def _connected(self, host: str, port: object, stream: Any) -> str:
        address = stream.get_extra_info("server_addr") if stream is not None else None
        if isinstance(address, tuple) and len(address) >= 2:
            return f"* Connected to {host} ({address[0]}) port {address[1]}"
        return f"* Connected to {host} port {port}"

    def _tls(self, suffix: str, info: dict[str, Any]) -> Iterator[str]:
        if suffix == "started":
            context = info.get("ssl_context")
            offers = self._options.alpn_offers.get(id(context))
            if offers:
                yield f"* ALPN: {PROG} offers {','.join(offers)}"
            server_hostname = info.get("server_hostname")
            if server_hostname and not _is_ip(str(server_hostname)):
                yield f"* TLS server name (SNI): {server_hostname}"
            return
        if suffix == "failed":
            yield f"* TLS handshake failed: {_reason(info)}"
            return
        stream = info.get("return_value")
        ssl_object = None if stream is None else stream.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        cipher = ssl_object.cipher()
        cipher_name = cipher[0] if cipher else "?"
        yield f"* TLS handshake: {ssl_object.version()} / {cipher_name}"
        alpn = ssl_object.selected_alpn_protocol()
        if alpn:
            yield f"* ALPN: server accepted {alpn}"
        else:
            yield "* ALPN: server did not agree on a protocol. Uses default."
        cert = ssl_object.getpeercert()
        if not cert:
            yield "* Server certificate: not verified (--insecure)"
            return
        yield "* Server certificate:"
        yield f"*  subject: {_x509_name(cert.get('subject'))}"
        if "notBefore" in cert:
            yield f"*  start date: {cert['notBefore']}"
        if "notAfter" in cert:
            yield f"*  expire date: {cert['notAfter']}"
        names = cert.get("subjectAltName") or ()
        if names:
            shown = ", ".join(f"{kind}:{value}" for kind, value in names)
            yield f"*  subjectAltName: {shown}"
        yield f"*  issuer: {_x509_name(cert.get('issuer'))}"
        yield "*  SSL certificate verify ok."

    def _socks(self, suffix: str, info: dict[str, Any]) -> Iterator[str]:
        if suffix == "started":
            proxy = self._options.proxy
            remote = proxy is not None and proxy.url.scheme == b"socks5h"
            where = "remotely" if remote else "locally"
            target = _host_port(str(info.get("host")), info.get("port"))
            yield f"* SOCKS5 connect to {target} ({where} resolved)"
        elif suffix == "complete":
            yield "* SOCKS5 request granted."
        else:
            yield f"* SOCKS5 handshake failed: {_reason(info)}"

    def _request_head(self, prefix: str, info: dict[str, Any]) -> Iterator[str]:
        request = info.get("request")
        if not isinstance(request, aio.Request):
            return
        target = _text(request.url.target)
        if request.method == b"CONNECT":
            yield f"* Establish HTTP proxy tunnel to {target}"
        if prefix == "http2":
            version = "HTTP/2"
            url = _text(bytes(request.url))
            yield f"* [HTTP/2] [{info.get('stream_id')}] OPENED stream for {url}"
        else:
            version = "HTTP/1.1"
            if request.method != b"CONNECT" and not self._announced_http11:
                self._announced_http11 = True
                yield "* using HTTP/1.x"
        yield f"> {_text(request.method)} {target} {version}"
        for name, value in request.headers:
            yield f"> {_text(name)}: {_text(value)}"
        yield ">"

    def _response_head(self, head: Any) -> Iterator[str]:
        if not isinstance(head, tuple):
            return
        if len(head) == 4:
            http_version, status, reason, headers = head
            line = f"< {_text(http_version)} {status}"
            if reason:
                line += f" {_text(reason)}"
        else:
            status, headers = head
            line = f"< HTTP/2 {status}"
        yield line
        for name, value in headers:
            yield f"< {_text(name)}: {_text(value)}"
        yield "<"
        if self.in_connect and isinstance(status, int) and 200 <= status <= 299:
            yield f"* CONNECT tunnel established, response {status}"


def _reason(info: dict[str, Any]) -> str:
    """The root cause of a failed step, briefly: ``Connection refused``,
    ``[SSL: ...] certificate verify failed: ...``, or the exception's text."""
    exc = info.get("exception")
    if not isinstance(exc, BaseException):
        return str(exc)
    causes = list(_causes(exc))
    reason = _os_reason(causes)
    if reason is None:
        tls_error = next((c for c in causes if isinstance(c, ssl.SSLError)), None)
        reason = _ssl_text(tls_error) if tls_error is not None else str(exc)
    return reason or type(exc).__name__


def _ssl_text(exc: ssl.SSLError) -> str:
    """``exc`` without the ``(_ssl.c:1006)`` suffix."""
    return re.sub(r" \(_ssl\.c:\d+\)$", "", str(exc))


# -- the progress bar ----------------------------------------------------------


def _human(amount: float) -> str:
    """``amount`` bytes as ``512 B``, ``1.5 KiB``, ``10.0 MiB``..."""
    if amount < 1024:
        return f"{amount:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        amount /= 1024
        if amount < 1024 or unit == "TiB":
            break
    return f"{amount:.1f} {unit}"


def _clock(seconds: float) -> str:
    """``seconds`` as ``M:SS`` (``H:MM:SS`` from an hour on)."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def render_progress(
    received: int, total: int | None, elapsed: float, width: int = 80
) -> str:
    """One progress line, at most ``width - 1`` characters, no newline.

    With a known ``total``: percentage, a bar (when there is room), bytes
    received of total, the average rate, elapsed time and ETA, e.g.
    `` 50.0% [####----]  512.0 KiB / 1.0 MiB     256.0 KiB/s   0:02 ETA  0:02``.
    Without one: bytes received, rate and elapsed time.
    """
    rate = received / elapsed if elapsed > 0 else 0.0
    # Fixed-width fields, so the bar keeps its length from one draw to the next.
    speed = f"{_human(rate) + '/s':>12}"
    clock = f"{_clock(elapsed):>5}"
    if total is None or total < 0:
        line = f"{_human(received):>10}  {speed}  {clock}"
        return line[: max(width - 1, 0)]
    fraction = 1.0 if total == 0 else min(received / total, 1.0)
    percent = f"{fraction * 100:5.1f}%"
    eta = _clock(max(total - received, 0) / rate) if rate > 0 else "-:--"
    tail = f"{_human(received):>10} / {_human(total):<10} {speed}  {clock} ETA {eta:>5}"
    bar_width = width - 1 - len(percent) - len(tail) - 4
    if bar_width >= 10:
        done = int(fraction * bar_width)
        bar = "#" * done + "-" * (bar_width - done)
        line = f"{percent} [{bar}] {tail}"
    else:
        line = f"{percent} {tail}"
    return line[: max(width - 1, 0)]


class ProgressMeter:
    """Draws :func:`render_progress` on one terminal line, at most every
    ``interval`` seconds, and a final line with a newline on :meth:`finish`.

    Args:
        stream: Where to draw (stderr).
        total: Expected bytes (Content-Length), or None.
        start: ``clock()`` at the start of the transfer.
        clock: Seconds, monotonic.
        interval: Shortest time between two redraws.
        width: Line width; default: the terminal's, else 80.
    """

    def __init__(
        self,
        stream: TextIO,
        total: int | None,
        *,
        start: float,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 0.1,
        width: int | None = None,
    ) -> None:
        self._stream = stream
        self._total = total
        self._start = start
        self._clock = clock
        self._interval = interval
        self._width = width if width is not None else _terminal_width(stream)
        self._last_draw: float | None = None
        self._drawn_length = 0
        self.draws = 0
        self.finished = False

    def update(self, received: int) -> None:
        """Redraw if ``interval`` has passed since the last draw."""
        now = self._clock()
        if self._last_draw is not None and now - self._last_draw < self._interval:
            return
        self._draw(received, now)

    def finish(self, received: int) -> None:
        """Draw the final state and end the line (once)."""
        if self.finished:
            return
        self.finished = True
        self._draw(received, self._clock())
        self._emit("\n")

    def abandon(self) -> None:
        """End the line after a failure, leaving the last state visible."""
        if not self.finished and self._last_draw is not None:
            self.finished = True
            self._emit("\n")

    def _draw(self, received: int, now: float) -> None:
        self._last_draw = now
        self.draws += 1
        line = render_progress(received, self._total, now - self._start, self._width)
        padding = " " * max(self._drawn_length - len(line), 0)
        self._drawn_length = len(line)
        self._emit(f"\r{line}{padding}")

    def _emit(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.write(text)
            self._stream.flush()


def _terminal_width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return shutil.get_terminal_size((80, 24)).columns


# -- output ---------------------------------------------------------------------


class _Writer(Protocol):
    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


class Sink:
    """Where the response goes: stdout, or a file opened when the head arrived.

    Failures to open or write are :class:`CLIError` 23, as in curl.
    """

    def __init__(self, path: str | None, stdout: TextIO) -> None:
        self._path = None if path in (None, "-") else path
        self._stdout = stdout
        self._file: BinaryIO | None = None
        self._target: _Writer | None = None

    def open(self) -> None:
        """Create the output file, or prepare stdout."""
        if self._target is not None:
            return
        if self._path is None:
            with self._errors():
                self._stdout.flush()
            buffer = getattr(self._stdout, "buffer", None)
            self._target = buffer if buffer is not None else _TextTarget(self._stdout)
            return
        try:
            self._file = open(self._path, "wb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise CLIError(
                ExitCode.WRITE_ERROR,
                f"Failed to open the file {self._path}: {exc.strerror or exc}",
            ) from exc
        self._target = self._file

    def write(self, data: bytes) -> None:
        """Write ``data`` now (stdout is flushed, so streams show as they come)."""
        self.open()
        assert self._target is not None
        with self._errors():
            self._target.write(data)
            if self._file is None:
                self._target.flush()

    def close(self) -> None:
        """Close the output file (stdout stays open)."""
        file, self._file = self._file, None
        if file is not None:
            with self._errors():
                file.close()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            if isinstance(exc, BrokenPipeError) and self._file is None:
                _silence_stdout(self._stdout)
            where = self._path or "stdout"
            raise CLIError(
                ExitCode.WRITE_ERROR,
                f"Failure writing output to destination ({where}: "
                f"{exc.strerror or exc})",
            ) from exc


class _TextTarget:
    """A binary writer over a text stream without ``.buffer``."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, data: bytes) -> int:
        return self._stream.write(data.decode("utf-8", "replace"))

    def flush(self) -> None:
        self._stream.flush()


def _silence_stdout(stdout: TextIO) -> None:
    # Python's recipe for a closed pipe: point the descriptor at /dev/null so
    # the interpreter's final flush does not report the same error again.
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stdout.fileno())
        finally:
            os.close(devnull)


def _response_head(response: aio.Response) -> bytes:
    version = response.extensions.get("http_version", b"HTTP/1.1")
    line = b"%s %d" % (version, response.status)
    reason = response.extensions.get("reason_phrase", b"")
    if reason:
        line += b" " + reason
    lines = [line] + [name + b": " + value for name, value in response.headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _content_length(response: aio.Response, method: bytes) -> int | None:
    if method == b"HEAD" or response.status in (204, 304):
        return 0
    for name, value in response.headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


# -- running the transfer ----------------------------------------------------------


class Transfer:
    """One request on a fresh pool, its body written to the sink.

    Args:
        options: The resolved command line.
        stdout: Where the body goes without ``-o``.
        stderr: Where ``-v``, ``--trace-json`` and the progress bar go.
    """

    def __init__(self, options: Options, stdout: TextIO, stderr: TextIO) -> None:
        self.options = options
        self.stderr = stderr
        self.start = time.monotonic()
        self.tracer = Tracer(options, stderr, self.start)
        self.sink = Sink(options.output, stdout)
        self.received = 0
        self.total: int | None = None
        self.meter: ProgressMeter | None = None

    async def run(self) -> int:
        """Make the request; return 0, or raise :class:`CLIError`."""
        options = self.options
        try:
            async with aio.AsyncConnectionPool(
                ssl_context=options.ssl_context,
                proxy=options.proxy,
                http1=options.http1,
                http2=options.http2,
                uds=options.unix_socket,
                max_connections=1,
            ) as pool:
                deadline = asyncio.timeout(options.max_time)
                try:
                    async with deadline:
                        await self._exchange(pool)
                except TimeoutError:
                    if deadline.expired():
                        raise self._timed_out() from None
                    raise
            self.sink.close()
        except CLIError:
            self._abandon()
            raise
        except Exception as exc:
            self._abandon()
            error = self.classify(exc)
            if error is None:
                raise
            raise error from exc
        return ExitCode.OK

    def _abandon(self) -> None:
        if self.meter is not None:
            self.meter.abandon()
        with contextlib.suppress(CLIError):
            self.sink.close()

    async def _exchange(self, pool: aio.AsyncConnectionPool) -> None:
        options = self.options
        extensions: dict[str, Any] = {"trace": self.tracer}
        if options.connect_timeout is not None:
            extensions["timeout"] = {"connect": options.connect_timeout}
        if options.sni_hostname is not None:
            extensions["sni_hostname"] = options.sni_hostname
        async with pool.stream(
            options.method,
            options.url,
            headers=options.headers,
            content=options.data,
            extensions=extensions,
        ) as response:
            if options.fail and response.status >= 400:
                raise CLIError(
                    ExitCode.HTTP_RETURNED_ERROR,
                    f"The requested URL returned error: {response.status}",
                )
            self.total = _content_length(response, options.method)
            self.sink.open()
            if options.include:
                self.sink.write(_response_head(response))
            if options.progress:
                self.meter = ProgressMeter(self.stderr, self.total, start=self.start)
                self.meter.update(0)
            async for chunk in response.aiter_stream():
                self.received += len(chunk)
                self.sink.write(chunk)
                if self.meter is not None:
                    self.meter.update(self.received)
            if self.meter is not None:
                self.meter.finish(self.received)

    def _elapsed_ms(self) -> int:
        return round((time.monotonic() - self.start) * 1000)

    def _timed_out(self) -> CLIError:
        if self.total is not None:
            amount = f"{self.received} out of {self.total}"
        else:
            amount = f"{self.received}"
        return CLIError(
            ExitCode.OPERATION_TIMEDOUT,
            f"Operation timed out after {self._elapsed_ms()} milliseconds with "
            f"{amount} bytes received",
        )

    def classify(self, exc: BaseException) -> CLIError | None:
        """curl's code and message for an exception from the request, or None
        for an exception that is not the transfer's (a bug: let it show)."""
        if isinstance(exc, aio.ConnectTimeout):
            return CLIError(
                ExitCode.OPERATION_TIMEDOUT,
                f"Connection timed out after {self._elapsed_ms()} milliseconds",
            )
        if isinstance(exc, aio.TimeoutException):
            return self._timed_out()
        if isinstance(exc, aio.ProxyError):
            if exc.status is not None:
                return CLIError(
                    ExitCode.RECV_ERROR, f"CONNECT tunnel failed, response {exc.status}"
                )
            return CLIError(ExitCode.PROXY, f"Proxy handshake failed: {exc}")
        if isinstance(exc, aio.ConnectError):
            return self._connect_error(exc)
        if isinstance(exc, aio.WriteError):
            return CLIError(ExitCode.SEND_ERROR, f"Send failure: {exc}")
        if isinstance(exc, aio.RemoteProtocolError):
            if str(exc) == "Server disconnected without sending a response.":
                return CLIError(ExitCode.GOT_NOTHING, "Empty reply from server")
            return CLIError(ExitCode.RECV_ERROR, f"Recv failure: {exc}")
        if isinstance(exc, aio.ReadError | aio.NetworkError):
            return CLIError(ExitCode.RECV_ERROR, f"Recv failure: {exc}")
        if isinstance(exc, aio.UnsupportedProtocol):
            return CLIError(ExitCode.UNSUPPORTED_PROTOCOL, str(exc))
        if isinstance(exc, aio.LocalProtocolError):
            return CLIError(ExitCode.FAILED_INIT, str(exc))
        return None

    def _connect_error(self, exc: aio.ConnectError) -> CLIError:
        causes = list(_causes(exc))
        step = self.tracer.failed_step or ""
        verification = next(
            (c for c in causes if isinstance(c, ssl.SSLCertVerificationError)), None
        )
        if verification is not None:
            detail = verification.verify_message or str(verification)
            return CLIError(
                ExitCode.PEER_FAILED_VERIFICATION, f"SSL certificate problem: {detail}"
            )
        tls_error = next((c for c in causes if isinstance(c, ssl.SSLError)), None)
        if step.endswith(".start_tls") or tls_error is not None:
            detail = _ssl_text(tls_error) if tls_error is not None else str(exc)
            return CLIError(ExitCode.SSL_CONNECT_ERROR, f"TLS connect error: {detail}")
        proxy = self.options.proxy
        to_proxy = proxy is not None and step.endswith(".connect_tcp")
        if any(isinstance(c, socket.gaierror) for c in causes):
            if to_proxy and proxy is not None:
                name = proxy.url.host.decode("ascii")
                return CLIError(
                    ExitCode.COULDNT_RESOLVE_PROXY, f"Could not resolve proxy: {name}"
                )
            # A SOCKS5 handshake resolves the origin's name (socks5://);
            # otherwise the name is the one connect_tcp tried.
            name = self.options.url.host.decode("ascii")
            target = self.tracer.target
            if isinstance(target, tuple) and step.endswith(".connect_tcp"):
                name = target[0]
            return CLIError(
                ExitCode.COULDNT_RESOLVE_HOST, f"Could not resolve host: {name}"
            )
        if step.endswith(".setup_socks5_connection") or step.startswith("http11."):
            # The SOCKS5 handshake or the CONNECT exchange broke off.
            return CLIError(ExitCode.PROXY, f"Proxy handshake failed: {exc}")
        reason = _os_reason(causes) or str(exc)
        target = self.tracer.target
        if isinstance(target, str):
            return CLIError(
                ExitCode.COULDNT_CONNECT, f"Failed to connect to {target}: {reason}"
            )
        if target is None:
            origin = self.options.url.origin
            target = (origin.host.decode("ascii"), origin.port)
        return CLIError(
            ExitCode.COULDNT_CONNECT,
            f"Failed to connect to {target[0]} port {target[1]}: {reason}",
        )


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _os_reason(causes: Sequence[BaseException]) -> str | None:
    for cause in causes:
        # ssl.SSLError is an OSError whose errno is OpenSSL's error kind.
        if (
            isinstance(cause, OSError)
            and cause.errno
            and not isinstance(cause, ssl.SSLError)
        ):
            return os.strerror(cause.errno)
    return None


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if name != "uvloop":
        return None
    try:
        import uvloop
    except ImportError as exc:
        raise CLIError(
            ExitCode.FAILED_INIT,
            "--loop uvloop: uvloop is not installed (pip install 'wireline[uvloop]')",
        ) from exc
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``wireline`` with ``argv`` (default: ``sys.argv[1:]``); return the
    exit code."""
    stdout, stderr = sys.stdout, sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as exc:
        stderr.write(
            f"{PROG}: {exc}\n{PROG}: try '{PROG} --help' for more information\n"
        )
        return int(ExitCode.FAILED_INIT)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    quiet = args.silent and not args.show_error
    try:
        factory = _loop_factory(args.loop)
        options = resolve_options(args, stderr=stderr)
        with asyncio.Runner(loop_factory=factory) as runner:
            return int(runner.run(Transfer(options, stdout, stderr).run()))
    except CLIError as exc:
        if not quiet:
            stderr.write(f"{PROG}: ({int(exc.code)}) {exc.message}\n")
        return int(exc.code)
    except KeyboardInterrupt:
        return 130
