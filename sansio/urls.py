"""URL and Origin models, and the checks on names that end up on the wire.

These mirror httpcore's ``URL`` and ``Origin`` (same fields, equality, ``bytes()``
and ``str()`` forms) with two differences: ``Origin`` is hashable, so a pool can
key dictionaries by it, and every host is validated before a socket could open.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

import idna

from ._memo import remember
from .errors import LocalProtocolError

__all__ = [
    "DEFAULT_PORTS",
    "URL",
    "Origin",
    "enforce_bytes",
    "host_header_value",
    "validate_sni_hostname",
]

# RFC 9110 §4.2 (http/https), RFC 6455 §3 (ws/wss), RFC 1928 §3 (SOCKS on 1080).
DEFAULT_PORTS: dict[bytes, int] = {
    b"http": 80,
    b"https": 443,
    b"ws": 80,
    b"wss": 443,
    b"socks5": 1080,
    b"socks5h": 1080,
}

# A host is a reg-name, an IPv4 address or an IPv6 literal (brackets removed);
# RFC 3986 §3.2.2 allows unreserved, pct-encoded and sub-delims, plus ':' for IPv6.
# Anything else (CTLs, space, '/', '@', '#', '\\'...) would let a caller smuggle
# a second header or request through the Host line or the SNI extension.
_HOST = re.compile(rb"[A-Za-z0-9\-._~%!$&'()*+,;=:]+")
_STRIPPED_BY_URLLIB = re.compile(rb"[\t\r\n]")


def enforce_bytes(value: bytes | str, *, name: str) -> bytes:
    """Return ``value`` as ASCII bytes, with httpcore's messages for bad input.

    Raises:
        TypeError: ``value`` is neither bytes nor str, or is non-ASCII str.
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return value.encode("ascii")
        except UnicodeEncodeError:
            raise TypeError(
                f"{name} strings may not include unicode characters."
            ) from None
    seen = type(value).__name__
    raise TypeError(f"{name} must be bytes or str, but got {seen}.")


def _validate_host(host: bytes) -> bytes:
    if host and (
        _HOST.fullmatch(host) is None or (b":" in host and not _is_ipv6(host))
    ):
        raise LocalProtocolError(
            f"invalid URL host {host!r}: only RFC 3986 reg-name characters, IPv4 "
            "and IPv6 literals are allowed (no CR, LF, NUL, space or delimiters; "
            "a ':' only in an IPv6 address)"
        )
    return host


def _is_ipv6(host: bytes) -> bool:
    """Whether ``host`` is an IPv6 address (a zone id may be %25-encoded)."""
    address = _ip_address(host.replace(b"%25", b"%").decode("ascii"))
    return isinstance(address, ipaddress.IPv6Address)


def _ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``text`` as an IP address, or None when it is not one."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Origin:
    """Scheme, host and port: what a connection is bound to (RFC 6454 §4)."""

    scheme: bytes
    host: bytes
    port: int

    def __str__(self) -> str:
        scheme = self.scheme.decode("ascii")
        host = self.host.decode("ascii")
        return f"{scheme}://{host}:{self.port}"


_Parts = tuple[bytes, bytes, int | None, bytes]

# The shape nearly every request URL has: a lowercase scheme, a host of
# unreserved characters or a bracketed IPv6 literal, a port, then a path and
# query of visible ASCII. Parsed by one regex; anything else (userinfo,
# percent-encoded or uppercase schemes, spaces...) goes through urllib, and a
# differential test checks that both give the same parts.
_SIMPLE_URL = re.compile(
    rb"(https?|wss?)://([A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?"
    rb"([/][\x21-\x22\x24-\x3e\x40-\x7e]*)?(?:\?([\x21-\x22\x24-\x7e]*))?"
    rb"(?:#[\x21-\x7e]*)?"
)


def _parse_simple(raw: bytes) -> _Parts | None:
    """Parts of a URL of the common shape, or None to use :func:`_parse`."""
    match = _SIMPLE_URL.fullmatch(raw)
    if match is None:
        return None
    scheme, host, port_digits, path, query = match.groups()
    port = None
    if port_digits is not None:
        port = int(port_digits)
        if port > 65535:
            return None  # urllib's error message
    if host[0] == 0x5B:  # "[": urllib strips the brackets of an IPv6 literal
        host = host[1:-1]
        if not _is_ipv6(host):
            return None  # urllib's error message
    target = (path or b"/") + (b"?" + query if query else b"")
    return scheme, host.lower(), port, target


def _parse(raw: bytes) -> _Parts:
    """Parts of any URL, by urllib (``urlsplit``: ``;params`` stay in the path)."""
    # urllib silently deletes TAB, CR and LF (WHATWG URL rules); a URL that
    # contains them is refused rather than quietly rewritten.
    if _STRIPPED_BY_URLLIB.search(raw):
        raise LocalProtocolError(f"invalid URL {raw!r}: TAB, CR and LF are not allowed")
    try:
        parsed = urllib.parse.urlsplit(raw)
        hostname = parsed.hostname
    except ValueError as exc:  # brackets, non-ASCII bytes (UnicodeDecodeError)
        raise LocalProtocolError(f"invalid URL {raw!r}: {exc}") from exc
    host_port = parsed.netloc.rpartition(b"@")[2]
    if host_port.startswith(b"["):
        # urllib drops what follows "]" and takes IPvFuture ("[v1.x]") as a
        # name: brackets hold an IPv6 address, and only ":port" may follow.
        inside, _, after = host_port[1:].partition(b"]")
        if not _is_ipv6(inside) or not (after == b"" or after.startswith(b":")):
            raise LocalProtocolError(
                f"invalid URL {raw!r}: brackets hold an IPv6 address, then only "
                "':port' may follow"
            )
    try:
        port = parsed.port
    except ValueError as exc:
        raise LocalProtocolError(f"invalid URL port: {exc}") from exc
    target = (parsed.path or b"/") + (b"?" + parsed.query if parsed.query else b"")
    return parsed.scheme, hostname or b"", port, target


def _check_port(port: int | None) -> None:
    if port is not None and not 0 <= port <= 65535:
        raise LocalProtocolError(f"invalid URL port {port}: not in 0-65535")


# URL strings already parsed and accepted, with their parts: bounded, emptied
# when full (a client's URLs are few; a crawler's are many and each is new).
_ACCEPTED: dict[bytes | str, tuple[bytes, bytes, int | None, bytes]] = {}
_ACCEPTED_MAX = 256


class URL:
    """A request URL, either parsed from a string or built from its parts.

    Args:
        url: The whole URL as bytes or ASCII str; parts given by keyword win.
        scheme: ``b"http"``, ``b"https"``, ``b"ws"`` or ``b"wss"`` for requests.
        host: The host, without brackets for IPv6.
        port: The port, or None for the scheme's default.
        target: Path plus ``?query``; the fragment is never sent.

    Raises:
        TypeError: A non-ASCII str or a value of the wrong type.
        LocalProtocolError: The host contains characters that cannot be sent.
    """

    __slots__ = ("host", "port", "scheme", "target")

    def __init__(
        self,
        url: bytes | str = "",
        *,
        scheme: bytes | str = b"",
        host: bytes | str = b"",
        port: int | None = None,
        target: bytes | str = b"",
    ) -> None:
        if url and not (scheme or host or port is not None or target):
            # The common call, URL(string): a request loop parses the same few
            # URLs over and over, so accepted ones are remembered.
            parsed = _ACCEPTED.get(url)
            if parsed is None:
                raw = enforce_bytes(url, name="url")
                parsed = _parse_simple(raw) or _parse(raw)
                _validate_host(parsed[1])
                _check_port(parsed[2])
                if b"@" not in raw:  # never a URL that may hold credentials
                    remember(_ACCEPTED, url, parsed, _ACCEPTED_MAX)
            self.scheme, self.host, self.port, self.target = parsed
            return
        if url:
            raw = enforce_bytes(url, name="url")
            parts = _parse_simple(raw) or _parse(raw)
            self.scheme = enforce_bytes(scheme, name="scheme") or parts[0]
            self.host = enforce_bytes(host, name="host") or parts[1]
            self.port = port or parts[2]
            self.target = enforce_bytes(target, name="target") or parts[3]
        else:
            self.scheme = enforce_bytes(scheme, name="scheme")
            self.host = enforce_bytes(host, name="host")
            self.port = port
            self.target = enforce_bytes(target, name="target")
        _validate_host(self.host)
        _check_port(self.port)

    @property
    def origin_port(self) -> int:
        """The port, or the scheme's default when the URL names none.

        Raises:
            KeyError: No port, and a scheme without a default.
        """
        return self.port if self.port is not None else DEFAULT_PORTS[self.scheme]

    @property
    def origin(self) -> Origin:
        """The origin, with the scheme's default port filled in."""
        return Origin(scheme=self.scheme, host=self.host, port=self.origin_port)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, URL)
            and other.scheme == self.scheme
            and other.host == self.host
            and other.port == self.port
            and other.target == self.target
        )

    def __hash__(self) -> int:
        return hash((self.scheme, self.host, self.port, self.target))

    def __bytes__(self) -> bytes:
        host = b"[" + self.host + b"]" if b":" in self.host else self.host
        if self.port is None:
            return b"%b://%b%b" % (self.scheme, host, self.target)
        return b"%b://%b:%d%b" % (self.scheme, host, self.port, self.target)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(scheme={self.scheme!r}, "
            f"host={self.host!r}, port={self.port!r}, target={self.target!r})"
        )


def host_header_value(url: URL) -> bytes:
    """The ``Host`` header for ``url`` (RFC 9110 §7.2): host, plus a non-default port.

    IPv6 literals are bracketed as RFC 3986 §3.2.2 requires (httpcore sends them
    bare, which servers cannot parse back).
    """
    key = (url.scheme, url.host, url.port)
    value = _HOST_VALUES.get(key)
    if value is None:
        host = b"[" + url.host + b"]" if b":" in url.host else url.host
        if url.port is None or url.port == DEFAULT_PORTS.get(url.scheme):
            value = host
        else:
            value = b"%b:%d" % (host, url.port)
        remember(_HOST_VALUES, key, value, _ACCEPTED_MAX)
    return value


# Host values already made, by (scheme, host, port): bounded like _ACCEPTED.
_HOST_VALUES: dict[tuple[bytes, bytes, int | None], bytes] = {}


def _validate_dns_name(value: str) -> None:
    # RFC 1035 §2.3.4: labels of 1-63 octets, 253 in all (one trailing dot
    # allowed); what ssl's IDNA encoding would otherwise reject mid-handshake.
    labels = value.removesuffix(".").split(".")
    if (
        not value
        or len(value) > 253
        or any(not 0 < len(label) <= 63 for label in labels)
        or _HOST.fullmatch(value.encode("ascii")) is None
        or ":" in value
    ):
        raise LocalProtocolError(
            f"sni_hostname {value!r} is not a valid host name (RFC 6066 §3: a DNS "
            "name of 1-63 character labels; CR, LF, NUL, space and delimiters are "
            "not allowed)"
        )


def validate_sni_hostname(value: object) -> str:
    """Check the ``sni_hostname`` request extension and return it as ``ssl`` wants.

    An internationalised name becomes its A-label form (RFC 5890 §2.3.2.1); an
    IP address is allowed (``ssl`` then checks it against the certificate's IP
    entries and sends no SNI, per RFC 6066 §3). One trailing dot (a fully
    qualified name) is accepted and removed: the SNI carries no trailing dot
    (RFC 6066 §3), and certificates name hosts without one.

    Raises:
        LocalProtocolError: Not a str/bytes, empty, or not a valid host name.
    """
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise LocalProtocolError(
                f"sni_hostname {value!r} must be ASCII bytes or a str"
            ) from None
    if not isinstance(value, str):
        raise LocalProtocolError(
            f"sni_hostname must be a str, got {type(value).__name__}"
        )
    if not value.isascii():
        try:
            value = idna.encode(value, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise LocalProtocolError(
                f"sni_hostname {value!r} is not a valid IDN host name: {exc}"
            ) from exc
    if _ip_address(value) is not None:
        return value
    _validate_dns_name(value)
    name = value.removesuffix(".")
    if _ip_address(name) is not None:  # "1.2.3.4." would be sent as an IP: no SNI
        raise LocalProtocolError(
            f"sni_hostname {value!r} is an IP address with a dot after it"
        )
    return name
