"""Tests for sansio.proxy: the SOCKS5 handshake (bytes in, state and bytes out)
and the pure HTTP proxy helpers.

Every byte the client must write and every reply the proxy sends is spelled out
literally from RFC 1928 (SOCKS5) and RFC 1929 (username/password), never built
with socksio, so the tests check the wire format and not socksio against
itself. Replies are fed whole, one byte at a time, in a few seeded random
splits (tests/sansio/splitting.py) and in hypothesis-chosen cuts of the whole
proxy stream; every way must end in the same state, bound address and
tunnelled bytes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sansio.errors import LocalProtocolError, ProxyError
from sansio.proxy import (
    SOCKS5Handshake,
    SOCKS5State,
    absolute_form,
    basic_proxy_authorization,
    connect_authority,
    validate_socks5_credentials,
)
from sansio.urls import URL, Origin
from tests.sansio.splitting import SPLITTERS, Splitter

AWAIT_METHOD = SOCKS5State.AWAIT_METHOD
AWAIT_AUTH = SOCKS5State.AWAIT_AUTH
AWAIT_REPLY = SOCKS5State.AWAIT_REPLY
TUNNEL_READY = SOCKS5State.TUNNEL_READY
FAILED = SOCKS5State.FAILED

Credentials = tuple[bytes, bytes]
CREDENTIALS: Credentials = (b"wire", b"line")

# -- RFC 1928 / RFC 1929 messages, written out ---------------------------------

# RFC 1928 §3: VER=5, NMETHODS=1, METHODS.
GREETING_NO_AUTH = b"\x05\x01\x00"
GREETING_USER_PASS = b"\x05\x01\x02"
# RFC 1928 §3: VER=5, METHOD.
METHOD_NO_AUTH = b"\x05\x00"
METHOD_USER_PASS = b"\x05\x02"
# RFC 1929 §2: VER=1, ULEN, UNAME, PLEN, PASSWD.
AUTH_REQUEST = b"\x01\x04wire\x04line"
# RFC 1929 §2: VER=1, STATUS (0 is success).
AUTH_OK = b"\x01\x00"
AUTH_FAILED = b"\x01\x01"

# RFC 1928 §4: VER=5, CMD=CONNECT, RSV, ATYP, DST.ADDR, DST.PORT.
CONNECT_IPV4 = b"\x05\x01\x00\x01\xc0\x00\x02\x01\x01\xbb"  # 192.0.2.1:443
CONNECT_IPV6 = (  # [2001:db8::1]:443
    b"\x05\x01\x00\x04"
    b"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
    b"\x01\xbb"
)
CONNECT_DOMAIN = b"\x05\x01\x00\x03\x0bexample.com\x01\xbb"  # example.com:443

# RFC 1928 §6: VER=5, REP, RSV, ATYP, BND.ADDR, BND.PORT.
REPLY_IPV4 = b"\x05\x00\x00\x01\xc0\x00\x02\x07\x1f\x90"  # 192.0.2.7:8080
REPLY_IPV4_ZEROS = b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"  # 0.0.0.0:0
REPLY_IPV6 = (  # [2001:db8::7]:1080
    b"\x05\x00\x00\x04"
    b"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x07"
    b"\x04\x38"
)
REPLY_DOMAIN = b"\x05\x00\x00\x03\x0bexample.net\x00\x50"  # example.net:80
REPLY_EMPTY_DOMAIN = b"\x05\x00\x00\x03\x00\x00\x00"  # "":0

# Success replies and the bound address each gives.
REPLIES: dict[str, tuple[bytes, tuple[str, int]]] = {
    "ipv4": (REPLY_IPV4, ("192.0.2.7", 8080)),
    "ipv4-zeros": (REPLY_IPV4_ZEROS, ("0.0.0.0", 0)),
    "ipv6": (REPLY_IPV6, ("2001:db8::7", 1080)),
    "domain": (REPLY_DOMAIN, ("example.net", 80)),
    "empty-domain": (REPLY_EMPTY_DOMAIN, ("", 0)),
}

# Bytes of the tunnelled protocol (a TLS record header, then an HTTP response).
TUNNELLED = b"\x16\x03\x03\x00\x02HTTP/1.1 200 OK\r\n"


def greeting(auth: Credentials | None) -> bytes:
    return GREETING_NO_AUTH if auth is None else GREETING_USER_PASS


def before_connect_reply(auth: Credentials | None) -> list[bytes]:
    """The proxy's replies up to (not including) the CONNECT reply."""
    return [METHOD_NO_AUTH] if auth is None else [METHOD_USER_PASS, AUTH_OK]


def handshake_at(
    stage: SOCKS5State, auth: Credentials | None = None
) -> SOCKS5Handshake:
    """A handshake to example.com:443 that waits in ``stage``, its output sent."""
    handshake = SOCKS5Handshake(b"example.com", 443, auth)
    handshake.data_to_send()
    replies = before_connect_reply(auth)
    steps = {AWAIT_METHOD: 0, AWAIT_AUTH: 1, AWAIT_REPLY: len(replies)}[stage]
    for reply in replies[:steps]:
        handshake.receive_data(reply)
    handshake.data_to_send()
    assert handshake.state is stage
    return handshake


def feed(handshake: SOCKS5Handshake, pieces: Iterable[bytes]) -> None:
    for piece in pieces:
        handshake.receive_data(piece)


def checked_pieces(splitter: Splitter, data: bytes) -> list[bytes]:
    pieces = splitter(data)
    assert b"".join(pieces) == data
    assert all(pieces)
    return pieces


@dataclass(frozen=True)
class Outcome:
    state: SOCKS5State
    bound_address: tuple[str, int] | None
    trailing_data: bytes
    sent: tuple[bytes, ...]  # data_to_send() at the start and after each reply


def run_handshake(
    auth: Credentials | None, reply: bytes, splitter: Splitter, tail: bytes = b""
) -> Outcome:
    """Feed each proxy reply in its stage, cut by ``splitter``.

    ``tail`` (tunnelled bytes) rides in the same read as the reply's last byte.
    Until a reply is complete the state must not move and nothing is sent.
    """
    handshake = SOCKS5Handshake(b"example.com", 443, auth)
    sent = [handshake.data_to_send()]
    replies = [*before_connect_reply(auth), reply]
    for index, message in enumerate(replies):
        pieces = checked_pieces(splitter, message)
        if index == len(replies) - 1:
            pieces[-1] += tail
        waiting = handshake.state
        for piece in pieces[:-1]:
            handshake.receive_data(piece)
            assert handshake.state is waiting
            assert handshake.data_to_send() == b""
            assert handshake.bound_address is None
        handshake.receive_data(pieces[-1])
        assert handshake.state is not waiting
        sent.append(handshake.data_to_send())
    return Outcome(
        handshake.state, handshake.bound_address, handshake.trailing_data, tuple(sent)
    )


def expected_sent(auth: Credentials | None) -> tuple[bytes, ...]:
    if auth is None:
        return (GREETING_NO_AUTH, CONNECT_DOMAIN, b"")
    return (GREETING_USER_PASS, AUTH_REQUEST, CONNECT_DOMAIN, b"")


AUTHS = pytest.mark.parametrize("auth", [None, CREDENTIALS], ids=["no-auth", "auth"])


# -- what the client writes ----------------------------------------------------


def test_greeting_without_credentials_offers_no_authentication() -> None:
    """RFC 1928 §3: one method offered, X'00' NO AUTHENTICATION REQUIRED."""
    handshake = SOCKS5Handshake(b"example.com", 443)
    assert handshake.state is AWAIT_METHOD
    assert handshake.data_to_send() == b"\x05\x01\x00"
    assert handshake.data_to_send() == b""


def test_greeting_with_credentials_offers_username_password() -> None:
    """RFC 1928 §3: one method offered, X'02' USERNAME/PASSWORD."""
    handshake = SOCKS5Handshake(b"example.com", 443, CREDENTIALS)
    assert handshake.state is AWAIT_METHOD
    assert handshake.data_to_send() == b"\x05\x01\x02"
    assert handshake.data_to_send() == b""


def test_username_password_subnegotiation_bytes() -> None:
    """RFC 1929 §2: VER=1, ULEN, UNAME, PLEN, PASSWD, sent after the method reply."""
    handshake = handshake_at(AWAIT_METHOD, CREDENTIALS)
    handshake.receive_data(b"\x05\x02")
    assert handshake.state is AWAIT_AUTH
    assert handshake.data_to_send() == b"\x01\x04wire\x04line"


def test_username_password_at_the_255_byte_limit() -> None:
    """ULEN and PLEN are one octet: 255-byte credentials fit exactly."""
    username, password = b"u" * 255, b"p" * 255
    handshake = SOCKS5Handshake(b"example.com", 443, (username, password))
    handshake.data_to_send()
    handshake.receive_data(b"\x05\x02")
    assert handshake.data_to_send() == b"\x01\xff" + username + b"\xff" + password


@pytest.mark.parametrize(
    ("host", "port", "request_bytes"),
    [
        pytest.param(b"192.0.2.1", 443, CONNECT_IPV4, id="ipv4"),
        pytest.param(
            b"127.0.0.1", 80, b"\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50", id="loopback"
        ),
        pytest.param(b"2001:db8::1", 443, CONNECT_IPV6, id="ipv6"),
        pytest.param(
            b"2001:0db8:0000:0000:0000:0000:0000:0001",
            443,
            CONNECT_IPV6,
            id="ipv6-long",
        ),
        pytest.param(
            b"::ffff:192.0.2.1",
            8080,
            b"\x05\x01\x00\x04"
            b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\xc0\x00\x02\x01"
            b"\x1f\x90",
            id="ipv4-mapped-ipv6",
        ),
        pytest.param(b"example.com", 443, CONNECT_DOMAIN, id="domain"),
        pytest.param(
            b"localhost", 1, b"\x05\x01\x00\x03\x09localhost\x00\x01", id="port-1"
        ),
        pytest.param(
            b"a.b", 65535, b"\x05\x01\x00\x03\x03a.b\xff\xff", id="port-65535"
        ),
        # Not an address (three parts), so the proxy resolves it as a name.
        pytest.param(b"1.2.3", 443, b"\x05\x01\x00\x03\x051.2.3\x01\xbb", id="1.2.3"),
    ],
)
def test_connect_request_bytes(host: bytes, port: int, request_bytes: bytes) -> None:
    """RFC 1928 §4/§5: literals go as ATYP 1/4 addresses, anything else as
    ATYP 3 with a length octet (socks5h: the proxy resolves the name)."""
    handshake = SOCKS5Handshake(host, port)
    handshake.data_to_send()
    handshake.receive_data(METHOD_NO_AUTH)
    assert handshake.state is AWAIT_REPLY
    assert handshake.data_to_send() == request_bytes


def test_domain_name_at_the_255_byte_limit() -> None:
    """The domain length is one octet: a 255-byte name is sent with X'FF'."""
    name = b"a" * 63 + b"." + b"b" * 63 + b"." + b"c" * 63 + b"." + b"d" * 63
    assert len(name) == 255
    handshake = SOCKS5Handshake(name, 443)
    handshake.data_to_send()
    handshake.receive_data(METHOD_NO_AUTH)
    assert handshake.data_to_send() == b"\x05\x01\x00\x03\xff" + name + b"\x01\xbb"


@AUTHS
def test_state_transitions_and_bytes_step_by_step(auth: Credentials | None) -> None:
    """Each reply moves the state one stage on and releases the next request."""
    handshake = SOCKS5Handshake(b"example.com", 443, auth)
    assert handshake.data_to_send() == greeting(auth)
    assert handshake.state is AWAIT_METHOD
    if auth is None:
        handshake.receive_data(b"\x05\x00")
    else:
        handshake.receive_data(b"\x05\x02")
        assert handshake.state is AWAIT_AUTH
        assert handshake.data_to_send() == AUTH_REQUEST
        handshake.receive_data(b"\x01\x00")
    assert handshake.state is AWAIT_REPLY
    assert handshake.data_to_send() == CONNECT_DOMAIN
    assert handshake.bound_address is None
    handshake.receive_data(REPLY_IPV4)
    assert handshake.state is TUNNEL_READY
    assert handshake.bound_address == ("192.0.2.7", 8080)
    assert handshake.trailing_data == b""
    assert handshake.data_to_send() == b""


@pytest.mark.parametrize(
    "stage", [AWAIT_METHOD, AWAIT_AUTH, AWAIT_REPLY], ids=lambda s: s.name
)
def test_nothing_to_send_while_waiting(stage: SOCKS5State) -> None:
    """Waiting for the proxy, with no or part of a reply, there is nothing to send."""
    handshake = handshake_at(stage, CREDENTIALS)
    assert handshake.data_to_send() == b""
    handshake.receive_data(b"")
    assert handshake.state is stage
    assert handshake.data_to_send() == b""
    handshake.receive_data(b"\x05" if stage is not AWAIT_AUTH else b"\x01")
    assert handshake.state is stage
    assert handshake.data_to_send() == b""


# -- replies, however they are split -------------------------------------------


@pytest.mark.parametrize("splitter", SPLITTERS.values(), ids=SPLITTERS.keys())
@pytest.mark.parametrize(("reply", "bound"), REPLIES.values(), ids=REPLIES.keys())
@AUTHS
def test_replies_every_way(
    auth: Credentials | None,
    reply: bytes,
    bound: tuple[str, int],
    splitter: Splitter,
) -> None:
    """Whole, byte by byte or in random pieces: one state, address and output."""
    outcome = run_handshake(auth, reply, splitter)
    assert outcome == Outcome(TUNNEL_READY, bound, b"", expected_sent(auth))


@pytest.mark.parametrize("splitter", SPLITTERS.values(), ids=SPLITTERS.keys())
@pytest.mark.parametrize(("reply", "bound"), REPLIES.values(), ids=REPLIES.keys())
@AUTHS
def test_tunnelled_bytes_in_the_reply_read_are_trailing_data(
    auth: Credentials | None,
    reply: bytes,
    bound: tuple[str, int],
    splitter: Splitter,
) -> None:
    """Bytes after the CONNECT reply in the same read belong to the tunnel."""
    outcome = run_handshake(auth, reply, splitter, tail=TUNNELLED)
    assert outcome == Outcome(TUNNEL_READY, bound, TUNNELLED, expected_sent(auth))


@AUTHS
def test_all_replies_in_one_read(auth: Credentials | None) -> None:
    """Replies that arrive together are parsed in turn; the requests queue up."""
    handshake = SOCKS5Handshake(b"example.com", 443, auth)
    handshake.receive_data(b"".join(before_connect_reply(auth)) + REPLY_DOMAIN + b"x")
    assert handshake.state is TUNNEL_READY
    assert handshake.bound_address == ("example.net", 80)
    assert handshake.trailing_data == b"x"
    assert handshake.data_to_send() == b"".join(expected_sent(auth))


@settings(max_examples=300, deadline=None)
@given(
    auth=st.sampled_from([None, CREDENTIALS]),
    reply_and_bound=st.sampled_from(list(REPLIES.values())),
    tail=st.binary(max_size=12),
    data=st.data(),
)
def test_any_cut_of_the_proxy_stream(
    auth: Credentials | None,
    reply_and_bound: tuple[bytes, tuple[str, int]],
    tail: bytes,
    data: st.DataObject,
) -> None:
    """Cut the proxy's whole stream anywhere and feed it until the tunnel is
    ready: the tunnelled bytes are the trailing data plus the unread pieces."""
    reply, bound = reply_and_bound
    stream = b"".join(before_connect_reply(auth)) + reply + tail
    cuts = sorted(data.draw(st.sets(st.integers(1, len(stream) - 1))))
    bounds = [0, *cuts, len(stream)]
    pieces = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    handshake = SOCKS5Handshake(b"example.com", 443, auth)
    sent = handshake.data_to_send()
    while handshake.state is not TUNNEL_READY:
        handshake.receive_data(pieces.pop(0))
        sent += handshake.data_to_send()
    assert handshake.bound_address == bound
    assert handshake.trailing_data + b"".join(pieces) == tail
    assert sent == b"".join(expected_sent(auth))


def test_receive_data_after_the_tunnel_is_ready_is_refused() -> None:
    """The handshake is over: later bytes are the caller's, not the handshake's."""
    handshake = handshake_at(AWAIT_REPLY)
    handshake.receive_data(REPLY_IPV4)
    with pytest.raises(RuntimeError, match=r"handshake is over \(tunnel ready\)"):
        handshake.receive_data(b"GET")
    assert handshake.state is TUNNEL_READY
    assert handshake.trailing_data == b""


def test_receive_eof_after_the_tunnel_is_ready_does_nothing() -> None:
    handshake = handshake_at(AWAIT_REPLY)
    handshake.receive_data(REPLY_DOMAIN + b"tail")
    handshake.receive_eof()
    assert handshake.state is TUNNEL_READY
    assert handshake.bound_address == ("example.net", 80)
    assert handshake.trailing_data == b"tail"


def test_domain_bound_address_of_128_bytes() -> None:
    """RFC 1928 §5: a domain BND.ADDR may be up to 255 octets long."""
    name = b"a" * 63 + b"." + b"b" * 64
    assert len(name) == 128
    handshake = handshake_at(AWAIT_REPLY)
    handshake.receive_data(b"\x05\x00\x00\x03\x80" + name + b"\x01\xbb")
    assert handshake.state is TUNNEL_READY
    assert handshake.bound_address == (name.decode(), 443)


def test_domain_bound_address_of_127_bytes() -> None:
    """Both sides of the 128-byte mark socksio trips on (it decodes the length
    octet as UTF-8), so the name is decoded by us."""
    name = b"a" * 63 + b"." + b"b" * 63
    assert len(name) == 127
    handshake = handshake_at(AWAIT_REPLY)
    handshake.receive_data(b"\x05\x00\x00\x03\x7f" + name + b"\x01\xbb")
    assert handshake.state is TUNNEL_READY
    assert handshake.bound_address == (name.decode(), 443)


# -- errors from the proxy -----------------------------------------------------


def fail_every_way(
    auth: Credentials | None, before: Iterable[bytes], bad: bytes
) -> list[str]:
    """Feed ``bad`` every way after the replies ``before``; each way must raise
    ProxyError, end FAILED, send nothing more and refuse further data."""
    messages = []
    for name, splitter in SPLITTERS.items():
        handshake = SOCKS5Handshake(b"example.com", 443, auth)
        feed(handshake, before)
        handshake.data_to_send()
        with pytest.raises(ProxyError) as info:
            feed(handshake, checked_pieces(splitter, bad))
        assert handshake.state is FAILED, name
        assert handshake.bound_address is None, name
        assert handshake.data_to_send() == b"", name
        assert info.value.status is None, name
        assert info.value.headers is None, name
        with pytest.raises(RuntimeError, match=r"handshake is over \(failed\)"):
            handshake.receive_data(b"\x05\x00")
        messages.append(str(info.value))
    return messages


NO_AUTH_REQUESTED = "Requested NO AUTHENTICATION REQUIRED from proxy server, but got "
USER_PASS_REQUESTED = "Requested USERNAME/PASSWORD from proxy server, but got "


@pytest.mark.parametrize(
    ("auth", "method_reply", "message"),
    [
        pytest.param(
            None, b"\x05\x02", NO_AUTH_REQUESTED + "USERNAME/PASSWORD.", id="none-got-2"
        ),
        pytest.param(
            None,
            b"\x05\xff",
            NO_AUTH_REQUESTED + "NO ACCEPTABLE METHODS.",
            id="none-got-ff",
        ),
        pytest.param(None, b"\x05\x01", NO_AUTH_REQUESTED + "GSSAPI.", id="none-got-1"),
        pytest.param(
            None, b"\x05\x03", NO_AUTH_REQUESTED + "UNKNOWN.", id="none-got-3"
        ),
        pytest.param(
            CREDENTIALS,
            b"\x05\xff",
            USER_PASS_REQUESTED + "NO ACCEPTABLE METHODS.",
            id="userpass-got-ff",
        ),
        pytest.param(
            CREDENTIALS,
            b"\x05\x00",
            USER_PASS_REQUESTED + "NO AUTHENTICATION REQUIRED.",
            id="userpass-got-0",
        ),
    ],
)
def test_method_mismatch(
    auth: Credentials | None, method_reply: bytes, message: str
) -> None:
    """A method we did not offer fails with httpcore's message; no credentials
    and no CONNECT request go out."""
    assert fail_every_way(auth, [], method_reply) == [message] * len(SPLITTERS)


@pytest.mark.parametrize(
    ("method_reply", "version"),
    [
        pytest.param(b"\x04\x00", "0x04", id="socks4"),
        pytest.param(b"\x00\x00", "0x00", id="zero"),
        pytest.param(b"HTTP/1.1 400 Bad Request\r\n\r\n", "0x48", id="http-proxy"),
    ],
)
def test_method_reply_with_wrong_version(method_reply: bytes, version: str) -> None:
    message = (
        f"the proxy answered the SOCKS5 greeting with version {version} "
        "(RFC 1928 §3 requires 0x05); is it a SOCKS5 proxy?"
    )
    assert fail_every_way(None, [], method_reply) == [message] * len(SPLITTERS)


@pytest.mark.parametrize(
    "auth_reply",
    [
        pytest.param(AUTH_FAILED, id="status-1"),
        pytest.param(b"\x01\xff", id="status-ff"),
        pytest.param(b"\x05\x00", id="version-5"),
    ],
)
def test_auth_failure(auth_reply: bytes) -> None:
    """RFC 1929 §2: any status but X'00' (or a reply that is not VER=1) means
    the credentials were refused; the CONNECT request is never sent."""
    messages = fail_every_way(CREDENTIALS, [METHOD_USER_PASS], auth_reply)
    assert messages == ["Invalid username/password"] * len(SPLITTERS)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (0x01, "General SOCKS server failure"),
        (0x02, "Connection not allowed by ruleset"),
        (0x03, "Network unreachable"),
        (0x04, "Host unreachable"),
        (0x05, "Connection refused"),
        (0x06, "TTL expired"),
        (0x07, "Command not supported"),
        (0x08, "Address type not supported"),
        (0x09, "UNKNOWN (0x09)"),
        (0xFF, "UNKNOWN (0xff)"),
    ],
)
@AUTHS
def test_connect_failure_reply(
    auth: Credentials | None, code: int, reason: str
) -> None:
    """RFC 1928 §6 REP codes, named as httpcore names them."""
    reply = b"\x05" + bytes([code]) + b"\x00\x01\x00\x00\x00\x00\x00\x00"
    messages = fail_every_way(auth, before_connect_reply(auth), reply)
    assert messages == [f"Proxy Server could not connect: {reason}."] * len(SPLITTERS)


def test_connect_failure_reply_without_an_address() -> None:
    """Only VER and REP are needed to fail: some proxies close right after."""
    handshake = handshake_at(AWAIT_REPLY)
    with pytest.raises(ProxyError, match=r"^Proxy Server could not connect: Host "):
        handshake.receive_data(b"\x05\x04")
    assert handshake.state is FAILED


@pytest.mark.parametrize(
    ("reply", "version"),
    [
        pytest.param(b"\x04\x00\x00\x01\xc0\x00\x02\x07\x1f\x90", "0x04", id="success"),
        pytest.param(b"\x00\x5a\x00\x00\x00\x00\x00\x00", "0x00", id="socks4-granted"),
        pytest.param(b"\x06\x05\x00\x01\x00\x00\x00\x00\x00\x00", "0x06", id="failure"),
    ],
)
def test_connect_reply_with_wrong_version(reply: bytes, version: str) -> None:
    message = f"the SOCKS5 reply has version {version} (RFC 1928 §6 requires 0x05)"
    messages = fail_every_way(None, [METHOD_NO_AUTH], reply)
    assert messages == [message] * len(SPLITTERS)


@pytest.mark.parametrize("atype", [0x00, 0x02, 0x05, 0xFF], ids=hex)
def test_success_reply_with_unsupported_address_type(atype: int) -> None:
    reply = b"\x05\x00\x00" + bytes([atype]) + b"\x00\x00\x00\x00\x00\x00"
    message = (
        f"the SOCKS5 reply uses address type {atype:#04x}; RFC 1928 §5 defines "
        "only 0x01 (IPv4), 0x03 (domain name) and 0x04 (IPv6)"
    )
    assert fail_every_way(None, [METHOD_NO_AUTH], reply) == [message] * len(SPLITTERS)


def test_success_reply_with_a_domain_that_is_not_ascii() -> None:
    """BND.ADDR is informational: undecodable bytes are replaced, not fatal."""
    handshake = handshake_at(AWAIT_REPLY)
    handshake.receive_data(b"\x05\x00\x00\x03\x02\xff\xfe\x00\x50")
    assert handshake.state is TUNNEL_READY
    assert handshake.bound_address == ("\ufffd\ufffd", 80)


@pytest.mark.parametrize(
    ("stage", "partial", "name"),
    [
        pytest.param(AWAIT_METHOD, b"", "await method", id="method"),
        pytest.param(AWAIT_METHOD, b"\x05", "await method", id="method-partial"),
        pytest.param(AWAIT_AUTH, b"", "await auth", id="auth"),
        pytest.param(AWAIT_AUTH, b"\x01", "await auth", id="auth-partial"),
        pytest.param(AWAIT_REPLY, b"", "await reply", id="reply"),
        pytest.param(AWAIT_REPLY, REPLY_IPV6[:-1], "await reply", id="reply-partial"),
    ],
)
def test_eof_while_waiting(stage: SOCKS5State, partial: bytes, name: str) -> None:
    """A close before the tunnel is ready is a ProxyError naming the stage."""
    handshake = handshake_at(stage, CREDENTIALS)
    handshake.receive_data(partial)
    with pytest.raises(ProxyError) as info:
        handshake.receive_eof()
    assert str(info.value) == (
        f"the SOCKS5 proxy closed the connection during the handshake ({name})"
    )
    assert handshake.state is FAILED
    assert handshake.bound_address is None
    with pytest.raises(RuntimeError, match=r"handshake is over \(failed\)"):
        handshake.receive_data(b"\x05\x00")
    # The connection must be closed; another EOF still does not make it usable.
    with pytest.raises(ProxyError):
        handshake.receive_eof()
    assert handshake.state is FAILED


# -- local validation: nothing is built from bad input -------------------------


@pytest.mark.parametrize(
    "auth",
    [
        pytest.param((b"us\rer", b"line"), id="cr-user"),
        pytest.param((b"us\ner", b"line"), id="lf-user"),
        pytest.param((b"us\x00er", b"line"), id="nul-user"),
        pytest.param((b"wire", b"li\rne"), id="cr-password"),
        pytest.param((b"wire", b"li\nne"), id="lf-password"),
        pytest.param((b"wire", b"li\x00ne"), id="nul-password"),
        pytest.param((b"wire", b"li\x7fne"), id="del-password"),
        pytest.param((b"", b"line"), id="empty-user"),
        pytest.param((b"wire", b""), id="empty-password"),
        pytest.param((b"u" * 256, b"line"), id="long-user"),
        pytest.param((b"wire", b"p" * 256), id="long-password"),
    ],
)
def test_invalid_credentials_are_refused_at_construction(auth: Credentials) -> None:
    with pytest.raises(LocalProtocolError, match=r"SOCKS5 (username|password)"):
        SOCKS5Handshake(b"example.com", 443, auth)


@pytest.mark.parametrize("port", [0, 65536, -1, 100_000])
def test_invalid_port_is_refused_at_construction(port: int) -> None:
    with pytest.raises(
        LocalProtocolError, match=f"invalid SOCKS5 destination port {port}"
    ):
        SOCKS5Handshake(b"example.com", port)


@pytest.mark.parametrize(
    "host",
    [
        pytest.param(b"a" * 256, id="256-bytes"),
        pytest.param(b"example.com\r\nX: y", id="crlf"),
        pytest.param(b"example.com\r", id="cr"),
        pytest.param(b"example.com\n", id="lf"),
        pytest.param(b"example.com\x00", id="nul"),
        pytest.param(b"exa mple.com", id="space"),
        pytest.param(b"example.com:80", id="colon"),
        pytest.param(b"[2001:db8::1]", id="bracketed-ipv6"),
        pytest.param(b"", id="empty"),
        pytest.param(b"example.com/path", id="slash"),
        pytest.param(b"ex\xc3\xa4mple.com", id="non-ascii"),
    ],
)
def test_invalid_destination_host_is_refused_at_construction(host: bytes) -> None:
    with pytest.raises(LocalProtocolError, match="invalid SOCKS5 destination host"):
        SOCKS5Handshake(host, 443)


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param((b"w", b"l"), id="1-byte"),
        pytest.param((b"u" * 255, b"p" * 255), id="255-bytes"),
        pytest.param((b"us er", b"p:a ss"), id="space-and-colon"),
        pytest.param((b"\xc3\xa4", b"\xff"), id="high-bytes"),
    ],
)
def test_validate_socks5_credentials_accepts(credentials: Credentials) -> None:
    """Octets other than CTLs are allowed (RFC 1929 §2 places no limit on them)."""
    validate_socks5_credentials(*credentials)  # raising fails the test


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        (
            b"",
            b"line",
            "a SOCKS5 username must be 1-255 bytes long (RFC 1929 §2), got 0",
        ),
        (
            b"wire",
            b"",
            "a SOCKS5 password must be 1-255 bytes long (RFC 1929 §2), got 0",
        ),
        (
            b"u" * 256,
            b"line",
            "a SOCKS5 username must be 1-255 bytes long (RFC 1929 §2), got 256",
        ),
        (
            b"wire",
            b"p" * 256,
            "a SOCKS5 password must be 1-255 bytes long (RFC 1929 §2), got 256",
        ),
        (
            b"wi\r\nre",
            b"line",
            "a SOCKS5 username must not contain control characters such as CR, LF "
            "or NUL",
        ),
        (
            b"wire",
            b"line\x00",
            "a SOCKS5 password must not contain control characters such as CR, LF "
            "or NUL",
        ),
        (
            b"wire",
            b"\tline",
            "a SOCKS5 password must not contain control characters such as CR, LF "
            "or NUL",
        ),
    ],
)
def test_validate_socks5_credentials_refuses(
    username: bytes, password: bytes, message: str
) -> None:
    with pytest.raises(LocalProtocolError) as info:
        validate_socks5_credentials(username, password)
    assert str(info.value) == message


# -- HTTP proxy helpers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "authority"),
    [
        pytest.param(Origin(b"https", b"192.0.2.1", 443), b"192.0.2.1:443", id="ipv4"),
        pytest.param(
            Origin(b"https", b"example.com", 8443), b"example.com:8443", id="name"
        ),
        pytest.param(Origin(b"http", b"example.com", 80), b"example.com:80", id="80"),
        pytest.param(
            Origin(b"https", b"2001:db8::1", 443), b"[2001:db8::1]:443", id="ipv6"
        ),
        pytest.param(Origin(b"https", b"::1", 1), b"[::1]:1", id="ipv6-loopback"),
        pytest.param(Origin(b"https", b"a.b", 65535), b"a.b:65535", id="port-65535"),
    ],
)
def test_connect_authority(origin: Origin, authority: bytes) -> None:
    """RFC 9110 §9.3.6: host:port, always with the port, IPv6 in brackets."""
    assert connect_authority(origin) == authority


@pytest.mark.parametrize(
    "host",
    [
        pytest.param(b"example.com\r\nX-Injected: 1", id="crlf"),
        pytest.param(b"example.com\r", id="cr"),
        pytest.param(b"example.com\n", id="lf"),
        pytest.param(b"example.com\x00", id="nul"),
        pytest.param(b"exa mple.com", id="space"),
        pytest.param(b"example.com/x", id="slash"),
        pytest.param(b"[::1]", id="bracketed"),
        pytest.param(b"", id="empty"),
    ],
)
def test_connect_authority_refuses_bad_hosts(host: bytes) -> None:
    with pytest.raises(LocalProtocolError, match="invalid CONNECT authority host"):
        connect_authority(Origin(b"https", host, 443))


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_connect_authority_refuses_bad_ports(port: int) -> None:
    with pytest.raises(
        LocalProtocolError, match=f"invalid CONNECT authority port {port}: not in"
    ):
        connect_authority(Origin(b"https", b"example.com", port))


@pytest.mark.parametrize(
    ("url", "target"),
    [
        pytest.param(
            URL(scheme=b"http", host=b"example.com", port=80, target=b"/"),
            b"http://example.com/",
            id="default-port-omitted",
        ),
        pytest.param(
            URL(scheme=b"http", host=b"example.com", target=b"/"),
            b"http://example.com/",
            id="no-port",
        ),
        pytest.param(
            URL(scheme=b"https", host=b"example.com", port=443, target=b"/a"),
            b"https://example.com/a",
            id="https-default-port-omitted",
        ),
        pytest.param(
            URL(scheme=b"http", host=b"example.com", port=8080, target=b"/a/b"),
            b"http://example.com:8080/a/b",
            id="non-default-port",
        ),
        pytest.param(
            URL(scheme=b"http", host=b"example.com", port=443, target=b"/"),
            b"http://example.com:443/",
            id="other-schemes-default-port",
        ),
        pytest.param(
            URL(scheme=b"http", host=b"2001:db8::1", port=8080, target=b"/x"),
            b"http://[2001:db8::1]:8080/x",
            id="ipv6",
        ),
        pytest.param(
            URL(scheme=b"http", host=b"::1", port=80, target=b"/"),
            b"http://[::1]/",
            id="ipv6-default-port",
        ),
        pytest.param(
            URL(scheme=b"http", host=b"example.com", target=b"/search?q=a+b&n=1"),
            b"http://example.com/search?q=a+b&n=1",
            id="query",
        ),
        pytest.param(
            URL("http://example.com:80/p?q=1#fragment"),
            b"http://example.com/p?q=1",
            id="parsed",
        ),
    ],
)
def test_absolute_form(url: URL, target: bytes) -> None:
    """RFC 9112 §3.2.2: scheme, authority as in Host, then path and query."""
    assert absolute_form(url) == target


@pytest.mark.parametrize(
    ("username", "password", "value"),
    [
        # RFC 7617 §2's example.
        pytest.param(
            b"Aladdin", b"open sesame", b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", id="rfc"
        ),
        pytest.param(b"user", b"pa:ss", b"Basic dXNlcjpwYTpzcw==", id="colon-password"),
        pytest.param(b"", b"", b"Basic Og==", id="empty"),
    ],
)
def test_basic_proxy_authorization(
    username: bytes, password: bytes, value: bytes
) -> None:
    assert basic_proxy_authorization(username, password) == value


@pytest.mark.parametrize(
    ("username", "password"),
    [
        pytest.param(b"Alad\rdin", b"open sesame", id="cr-user"),
        pytest.param(b"Alad\ndin", b"open sesame", id="lf-user"),
        pytest.param(b"Alad\x00din", b"open sesame", id="nul-user"),
        pytest.param(b"Alad\x7fdin", b"open sesame", id="del-user"),
        pytest.param(b"Aladdin", b"open\r\nsesame", id="crlf-password"),
        pytest.param(b"Aladdin", b"open\tsesame", id="tab-password"),
        pytest.param(b"Aladdin", b"open sesame\x1f", id="us-password"),
    ],
)
def test_basic_proxy_authorization_refuses_control_characters(
    username: bytes, password: bytes
) -> None:
    with pytest.raises(LocalProtocolError, match="control characters"):
        basic_proxy_authorization(username, password)


def test_basic_proxy_authorization_refuses_a_colon_in_the_username() -> None:
    with pytest.raises(LocalProtocolError, match="username must not contain ':'"):
        basic_proxy_authorization(b"Ala:ddin", b"open sesame")


def test_unsupported_address_type_fails_at_the_fourth_byte() -> None:
    """The address type decides the reply's length, so a bad one must fail as
    soon as it arrives rather than wait for bytes a broken proxy never sends."""
    handshake = handshake_at(AWAIT_REPLY)
    with pytest.raises(ProxyError, match=r"address type 0x05"):
        handshake.receive_data(b"\x05\x00\x00\x05")
    assert handshake.state is SOCKS5State.FAILED


def test_failure_code_fails_at_the_second_byte() -> None:
    """A refusal is known from REP alone (some proxies close right after it)."""
    handshake = handshake_at(AWAIT_REPLY)
    with pytest.raises(ProxyError, match=r"Connection refused"):
        handshake.receive_data(b"\x05\x05")
