"""Proxy handshakes with no I/O: HTTP CONNECT and forward requests, and SOCKS5.

HTTP proxies need only a few pure functions: the CONNECT authority
(RFC 9110 §9.3.6), the absolute-form target a forward proxy expects
(RFC 9112 §3.2.2), and a ``Proxy-Authorization: Basic`` value (RFC 7617);
the CONNECT exchange itself is an ordinary HTTP/1.1 request and response
(:class:`~sansio.http11.HTTP11State` hands the stream over after a 2xx).

:class:`SOCKS5Handshake` drives ``socksio``'s SOCKS5 encoder and decoder
(RFC 1928, and RFC 1929 for username/password). socksio parses a reply only
when given exactly its bytes, so this class frames the replies: data may
arrive split at any byte or run into the tunnelled protocol's first bytes,
which are kept as :attr:`SOCKS5Handshake.trailing_data`.

Everything a caller supplies is checked before a byte of the handshake
exists, so CR, LF or NUL in an authority or in credentials never reach the
wire.
"""

from __future__ import annotations

import base64
import enum
import ipaddress
import re

from socksio import socks5

from .errors import LocalProtocolError, ProxyError
from .urls import _HOST, URL, Origin, host_header_value

__all__ = [
    "SOCKS5Handshake",
    "SOCKS5State",
    "absolute_form",
    "basic_proxy_authorization",
    "connect_authority",
    "validate_socks5_credentials",
]

# RFC 7617 §2: user-id and password exclude CTLs; the user-id excludes ':'.
_CTL = re.compile(rb"[\x00-\x1f\x7f]")


def connect_authority(origin: Origin) -> bytes:
    """The CONNECT request target and Host for ``origin``: ``host:port``.

    IPv6 literals are bracketed (RFC 9110 §9.3.6 uses authority-form, RFC 3986
    §3.2.2); httpcore sends them bare.

    Raises:
        LocalProtocolError: The host is empty or has characters that cannot
            be sent, or the port is out of range.
    """
    host = origin.host
    if not host or _HOST.fullmatch(host) is None:
        raise LocalProtocolError(
            f"invalid CONNECT authority host {host!r}: only RFC 3986 host "
            "characters are allowed (no CR, LF, NUL, space or delimiters)"
        )
    if not 0 < origin.port <= 65535:
        raise LocalProtocolError(
            f"invalid CONNECT authority port {origin.port}: not in 1-65535"
        )
    if b":" in host:
        host = b"[" + host + b"]"
    return b"%b:%d" % (host, origin.port)


def absolute_form(url: URL) -> bytes:
    """The request target a forward proxy needs: ``scheme://authority/path?q``.

    The authority is the Host header's value (default port omitted, IPv6
    bracketed); the path and query are ``url.target``.
    """
    return b"%b://%b%b" % (url.scheme, host_header_value(url), url.target)


def basic_proxy_authorization(username: bytes, password: bytes) -> bytes:
    """The ``Proxy-Authorization`` value for ``username``/``password``.

    Raises:
        LocalProtocolError: A control character in either part, or ``:`` in
            the username (RFC 7617 §2 forbids both).
    """
    if _CTL.search(username) or _CTL.search(password):
        raise LocalProtocolError(
            "proxy credentials must not contain control characters such as CR, "
            "LF or NUL (RFC 7617 §2)"
        )
    if b":" in username:
        raise LocalProtocolError(
            "a proxy username must not contain ':' (RFC 7617 §2: the user-id "
            "ends at the first colon)"
        )
    return b"Basic " + base64.b64encode(username + b":" + password)


def validate_socks5_credentials(username: bytes, password: bytes) -> None:
    """Check a SOCKS5 username and password (RFC 1929 §2).

    Raises:
        LocalProtocolError: Either is empty or longer than 255 bytes, or
            contains a control character.
    """
    for name, value in (("username", username), ("password", password)):
        if not 0 < len(value) <= 255:
            raise LocalProtocolError(
                f"a SOCKS5 {name} must be 1-255 bytes long (RFC 1929 §2), "
                f"got {len(value)}"
            )
        if _CTL.search(value):
            raise LocalProtocolError(
                f"a SOCKS5 {name} must not contain control characters such as "
                "CR, LF or NUL"
            )


class SOCKS5State(enum.Enum):
    """Where a :class:`SOCKS5Handshake` is."""

    AWAIT_METHOD = "await method"  # greeting sent, method selection due
    AWAIT_AUTH = "await auth"  # username/password sent, its status due
    AWAIT_REPLY = "await reply"  # CONNECT sent, the reply due
    TUNNEL_READY = "tunnel ready"  # the connection now carries the origin's bytes
    FAILED = "failed"  # an error was raised; the connection must be closed


# httpcore's names for the methods and reply codes, in its error messages.
_METHOD_NAMES = {
    0x00: "NO AUTHENTICATION REQUIRED",
    0x01: "GSSAPI",
    0x02: "USERNAME/PASSWORD",
    0xFF: "NO ACCEPTABLE METHODS",
}
_REPLY_NAMES = {
    0x00: "Succeeded",
    0x01: "General SOCKS server failure",
    0x02: "Connection not allowed by ruleset",
    0x03: "Network unreachable",
    0x04: "Host unreachable",
    0x05: "Connection refused",
    0x06: "TTL expired",
    0x07: "Command not supported",
    0x08: "Address type not supported",
}
# RFC 1928 §5: bytes of BND.ADDR after the ATYP byte (domain: a length octet).
_ADDRESS_LENGTHS = {0x01: 4, 0x04: 16}


class SOCKS5Handshake:
    """A client's SOCKS5 CONNECT handshake (RFC 1928), fed bytes in any split.

    Args:
        host: The destination: an IPv4/IPv6 literal is sent as an address,
            anything else as a domain name the proxy resolves (``socks5h``).
        port: The destination port.
        auth: ``(username, password)`` to offer RFC 1929 authentication;
            None offers no authentication.

    The greeting is ready in :meth:`data_to_send` at once. Feed the proxy's
    bytes to :meth:`receive_data` until :attr:`state` is ``TUNNEL_READY``,
    sending :meth:`data_to_send` after each call.

    Raises:
        LocalProtocolError: An invalid host, port or credentials.
    """

    def __init__(
        self, host: bytes, port: int, auth: tuple[bytes, bytes] | None = None
    ) -> None:
        if not 0 < port <= 65535:
            raise LocalProtocolError(f"invalid SOCKS5 destination port {port}")
        if auth is not None:
            validate_socks5_credentials(*auth)
        self._request = _command_request(host, port)
        self._auth = auth
        self._socks = socks5.SOCKS5Connection()
        method = (
            socks5.SOCKS5AuthMethod.NO_AUTH_REQUIRED
            if auth is None
            else socks5.SOCKS5AuthMethod.USERNAME_PASSWORD
        )
        self._method = method
        self._socks.send(socks5.SOCKS5AuthMethodsRequest([method]))
        self._buffer = bytearray()
        self.state = SOCKS5State.AWAIT_METHOD
        self.trailing_data = b""
        self.bound_address: tuple[str, int] | None = None

    def data_to_send(self) -> bytes:
        """The bytes to send to the proxy now (may be empty)."""
        return self._socks.data_to_send()

    def receive_data(self, data: bytes) -> None:
        """Take bytes from the proxy; advance as far as they allow.

        Raises:
            ProxyError: The proxy chose another method, refused the
                credentials or the connection, or broke RFC 1928/1929.
            RuntimeError: Called after the handshake finished or failed.
        """
        if self.state in (SOCKS5State.TUNNEL_READY, SOCKS5State.FAILED):
            raise RuntimeError(f"the SOCKS5 handshake is over ({self.state.value})")
        self._buffer += data
        try:
            while self.state not in (SOCKS5State.TUNNEL_READY, SOCKS5State.FAILED):
                if not self._step():
                    return
        except BaseException:
            self.state = SOCKS5State.FAILED
            raise

    def receive_eof(self) -> None:
        """The proxy closed the connection.

        Raises:
            ProxyError: Always, unless the tunnel was already ready.
        """
        if self.state is SOCKS5State.TUNNEL_READY:
            return
        stage = self.state.value
        self.state = SOCKS5State.FAILED
        raise ProxyError(
            f"the SOCKS5 proxy closed the connection during the handshake ({stage})"
        )

    # -- one reply at a time -------------------------------------------------

    def _take(self, size: int) -> bytes | None:
        if len(self._buffer) < size:
            return None
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        return chunk

    def _step(self) -> bool:
        """Parse one complete reply if buffered; False when more bytes are due."""
        if self.state is SOCKS5State.AWAIT_METHOD:
            return self._method_reply()
        if self.state is SOCKS5State.AWAIT_AUTH:
            return self._auth_reply()
        return self._connect_reply()

    def _method_reply(self) -> bool:
        reply = self._take(2)
        if reply is None:
            return False
        if reply[0] != 0x05:
            raise ProxyError(
                f"the proxy answered the SOCKS5 greeting with version {reply[0]:#04x}"
                " (RFC 1928 §3 requires 0x05); is it a SOCKS5 proxy?"
            )
        if reply[1:2] != self._method.value:
            requested = _METHOD_NAMES[self._method.value[0]]
            responded = _METHOD_NAMES.get(reply[1], "UNKNOWN")
            raise ProxyError(
                f"Requested {requested} from proxy server, but got {responded}."
            )
        self._socks.receive_data(reply)
        if self._auth is not None:
            username, password = self._auth
            self._socks.send(socks5.SOCKS5UsernamePasswordRequest(username, password))
            self.state = SOCKS5State.AWAIT_AUTH
        else:
            self._socks.send(self._request)
            self.state = SOCKS5State.AWAIT_REPLY
        return True

    def _auth_reply(self) -> bool:
        reply = self._take(2)
        if reply is None:
            return False
        if not self._socks.receive_data(reply).success:  # type: ignore[union-attr]
            raise ProxyError("Invalid username/password")
        self._socks.send(self._request)
        self.state = SOCKS5State.AWAIT_REPLY
        return True

    def _connect_reply(self) -> bool:
        buffer = self._buffer
        if len(buffer) < 2:
            return False
        if buffer[0] != 0x05:
            raise ProxyError(
                f"the SOCKS5 reply has version {buffer[0]:#04x} (RFC 1928 §6 "
                "requires 0x05)"
            )
        code = buffer[1]
        if code != 0x00:
            # The address may be absent or zeroed on failure; only the code counts.
            reason = _REPLY_NAMES.get(code, f"UNKNOWN ({code:#04x})")
            raise ProxyError(f"Proxy Server could not connect: {reason}.")
        if len(buffer) < 4:
            return False
        atype = buffer[3]
        if atype == 0x03:
            if len(buffer) < 5:
                return False
            address_length = 1 + buffer[4]
        elif atype in _ADDRESS_LENGTHS:
            address_length = _ADDRESS_LENGTHS[atype]
        else:
            raise ProxyError(
                f"the SOCKS5 reply uses address type {atype:#04x}; RFC 1928 §5 "
                "defines only 0x01 (IPv4), 0x03 (domain name) and 0x04 (IPv6)"
            )
        reply = self._take(4 + address_length + 2)
        if reply is None:
            return False
        # Decoded here, not by socksio: it decodes a domain name with its
        # length octet as UTF-8, so names of 128 bytes or more fail there.
        raw_address = reply[4:-2]
        if atype == 0x03:
            address = raw_address[1:].decode("ascii", errors="replace")
        else:
            address = str(ipaddress.ip_address(raw_address))
        self.bound_address = (address, int.from_bytes(reply[-2:], "big"))
        self.trailing_data = bytes(self._buffer)
        self._buffer.clear()
        self.state = SOCKS5State.TUNNEL_READY
        return True


def _command_request(host: bytes, port: int) -> socks5.SOCKS5CommandRequest:
    """The CONNECT request for ``host``: an address if it is one, else a name."""
    connect = socks5.SOCKS5Command.CONNECT
    try:
        address = ipaddress.ip_address(host.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        if not 0 < len(host) <= 255 or _HOST.fullmatch(host) is None or b":" in host:
            raise LocalProtocolError(
                f"invalid SOCKS5 destination host {host!r}: a domain name of "
                "1-255 bytes of RFC 3986 host characters (RFC 1928 §5)"
            ) from None
        atype = socks5.SOCKS5AType.DOMAIN_NAME
        return socks5.SOCKS5CommandRequest(connect, atype, host, port)
    atype = (
        socks5.SOCKS5AType.IPV4_ADDRESS
        if address.version == 4
        else socks5.SOCKS5AType.IPV6_ADDRESS
    )
    return socks5.SOCKS5CommandRequest(connect, atype, address.packed, port)
