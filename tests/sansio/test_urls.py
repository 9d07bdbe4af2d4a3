"""Tests for sansio.urls: URL and Origin models, Host header, SNI host names."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sansio import (
    DEFAULT_PORTS,
    URL,
    LocalProtocolError,
    Origin,
    enforce_bytes,
    host_header_value,
    urls,
    validate_sni_hostname,
)
from sansio.urls import _parse, _parse_simple

# -- parsing -------------------------------------------------------------------

PARSE_VECTORS = [
    # (url, scheme, host, port, target)
    ("http://example.com/", b"http", b"example.com", None, b"/"),
    ("http://example.com", b"http", b"example.com", None, b"/"),
    ("https://example.com:8443/a/b", b"https", b"example.com", 8443, b"/a/b"),
    ("http://example.com/p?q=1&r=2", b"http", b"example.com", None, b"/p?q=1&r=2"),
    ("http://example.com/p?q=1#frag", b"http", b"example.com", None, b"/p?q=1"),
    ("http://example.com/p#frag", b"http", b"example.com", None, b"/p"),
    ("http://example.com?q", b"http", b"example.com", None, b"/?q"),
    ("http://[::1]:8080/x", b"http", b"::1", 8080, b"/x"),
    ("https://[2001:db8::1]/", b"https", b"2001:db8::1", None, b"/"),
    ("http://127.0.0.1:8000/", b"http", b"127.0.0.1", 8000, b"/"),
    ("ws://example.com/chat", b"ws", b"example.com", None, b"/chat"),
    ("socks5://proxy.example:1081", b"socks5", b"proxy.example", 1081, b"/"),
    (b"http://example.com:81/bytes", b"http", b"example.com", 81, b"/bytes"),
]


@pytest.mark.parametrize(("url", "scheme", "host", "port", "target"), PARSE_VECTORS)
def test_url_parse(
    url: str | bytes, scheme: bytes, host: bytes, port: int | None, target: bytes
) -> None:
    """A URL splits into scheme, host, port and target (query kept, no fragment)."""
    parsed = URL(url)
    assert (parsed.scheme, parsed.host, parsed.port, parsed.target) == (
        scheme,
        host,
        port,
        target,
    )


def test_url_from_parts() -> None:
    """A URL built from keyword parts keeps them as bytes, str converted."""
    url = URL(scheme="https", host="example.com", port=8443, target="/a?b=c")
    assert url.scheme == b"https"
    assert url.host == b"example.com"
    assert url.port == 8443
    assert url.target == b"/a?b=c"


def test_url_from_parts_equals_parsed() -> None:
    """Building from parts and parsing the same URL give equal objects."""
    built = URL(scheme=b"http", host=b"example.com", port=None, target=b"/x?y")
    assert built == URL("http://example.com/x?y")


def test_url_keyword_parts_override_string() -> None:
    """Parts given by keyword win over the parsed URL string."""
    url = URL("http://example.com/a", host=b"other.example", port=9000, target=b"/b")
    assert (url.scheme, url.host, url.port, url.target) == (
        b"http",
        b"other.example",
        9000,
        b"/b",
    )


# -- origin --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://example.com/", Origin(b"http", b"example.com", 80)),
        ("https://example.com/", Origin(b"https", b"example.com", 443)),
        ("ws://example.com/", Origin(b"ws", b"example.com", 80)),
        ("wss://example.com/", Origin(b"wss", b"example.com", 443)),
        ("socks5://proxy.example", Origin(b"socks5", b"proxy.example", 1080)),
        ("socks5h://proxy.example", Origin(b"socks5h", b"proxy.example", 1080)),
        ("http://example.com:8080/", Origin(b"http", b"example.com", 8080)),
        ("https://[::1]/", Origin(b"https", b"::1", 443)),
    ],
)
def test_url_origin_fills_default_port(url: str, origin: Origin) -> None:
    """URL.origin uses the explicit port, else the scheme's default."""
    assert URL(url).origin == origin


def test_default_ports_table() -> None:
    """The default ports are those of RFC 9110, RFC 6455 and RFC 1928."""
    assert DEFAULT_PORTS == {
        b"http": 80,
        b"https": 443,
        b"ws": 80,
        b"wss": 443,
        b"socks5": 1080,
        b"socks5h": 1080,
    }


def test_origin_str() -> None:
    """str(Origin) is scheme://host:port with the port always present."""
    assert str(Origin(b"https", b"example.com", 443)) == "https://example.com:443"
    assert str(Origin(b"http", b"localhost", 8000)) == "http://localhost:8000"


def test_origin_is_hashable_and_compares_by_value() -> None:
    """Equal origins hash equal, so a pool can key a dict by them."""
    a = URL("https://example.com/a").origin
    b = URL("https://example.com:443/b").origin
    c = URL("http://example.com/").origin
    assert a == b
    assert hash(a) == hash(b)
    assert a != c
    assert {a: 1, b: 2, c: 3} == {Origin(b"https", b"example.com", 443): 2, c: 3}


def test_origin_is_frozen() -> None:
    """An Origin cannot be changed after construction."""
    origin = Origin(b"http", b"example.com", 80)
    with pytest.raises(AttributeError):
        origin.port = 81  # type: ignore[misc]


# -- equality, hash, bytes, repr -----------------------------------------------


def test_url_equality_and_hash() -> None:
    """URLs compare and hash by scheme, host, port and target."""
    a = URL("http://example.com:8080/x")
    b = URL(b"http://example.com:8080/x")
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


@pytest.mark.parametrize(
    "other",
    [
        URL("https://example.com:8080/x"),
        URL("http://example.org:8080/x"),
        URL("http://example.com:8081/x"),
        URL("http://example.com/x"),
        URL("http://example.com:8080/y"),
    ],
)
def test_url_inequality(other: URL) -> None:
    """A URL differing in any one part is not equal."""
    assert URL("http://example.com:8080/x") != other


def test_url_not_equal_to_other_types() -> None:
    """A URL never equals its string or bytes form."""
    url = URL("http://example.com/")
    assert url != "http://example.com/"
    assert url != b"http://example.com/"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com/", b"http://example.com/"),
        ("http://example.com:8080/a?b", b"http://example.com:8080/a?b"),
        ("http://example.com:80/", b"http://example.com:80/"),
        ("http://[::1]:8080/", b"http://[::1]:8080/"),
        ("https://[2001:db8::1]/x", b"https://[2001:db8::1]/x"),
    ],
)
def test_url_bytes(url: str, expected: bytes) -> None:
    """bytes(URL) rebuilds the URL, with brackets around an IPv6 host."""
    assert bytes(URL(url)) == expected


def test_url_repr() -> None:
    """repr(URL) shows every part as bytes."""
    assert repr(URL("https://example.com:8443/a?b")) == (
        "URL(scheme=b'https', host=b'example.com', port=8443, target=b'/a?b')"
    )
    assert repr(URL("http://example.com")) == (
        "URL(scheme=b'http', host=b'example.com', port=None, target=b'/')"
    )


# -- type errors ---------------------------------------------------------------


def test_url_unicode_string_rejected() -> None:
    """A non-ASCII URL string raises httpcore's TypeError message."""
    with pytest.raises(TypeError) as info:
        URL("http://exämple.com/")
    assert str(info.value) == "url strings may not include unicode characters."


def test_url_wrong_type_rejected() -> None:
    """A URL that is neither bytes nor str raises httpcore's TypeError message."""
    with pytest.raises(TypeError) as info:
        URL(123)  # type: ignore[arg-type]
    assert str(info.value) == "url must be bytes or str, but got int."


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scheme": "hẗtp"}, "scheme strings may not include unicode characters."),
        ({"host": "exämple.com"}, "host strings may not include unicode characters."),
        ({"target": "/ä"}, "target strings may not include unicode characters."),
        ({"host": 1.5}, "host must be bytes or str, but got float."),
    ],
)
def test_url_part_type_errors(kwargs: dict[str, object], message: str) -> None:
    """Each keyword part is checked with a message naming that part."""
    with pytest.raises(TypeError) as info:
        URL(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("value", "expected"), [(b"abc", b"abc"), ("abc", b"abc"), ("", b"")]
)
def test_enforce_bytes_accepts_ascii(value: bytes | str, expected: bytes) -> None:
    """enforce_bytes passes bytes through and encodes ASCII str."""
    assert enforce_bytes(value, name="thing") == expected


def test_enforce_bytes_rejects_none() -> None:
    """enforce_bytes names the type it got."""
    with pytest.raises(TypeError) as info:
        enforce_bytes(None, name="thing")  # type: ignore[arg-type]
    assert str(info.value) == "thing must be bytes or str, but got NoneType."


# -- host validation -----------------------------------------------------------

BAD_HOSTS = [
    b"exa\rmple.com",
    b"exa\nmple.com",
    b"example.com\r\nX-Injected: 1",
    b"exa\x00mple.com",
    b"exa mple.com",
    b"exa\tmple.com",
    b"example.com/path",
    b"user@example.com",
    b"example.com#frag",
    b"[::1]",
]


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_url_bad_host_keyword_rejected(host: bytes) -> None:
    """A host with CR, LF, NUL, space or a delimiter raises LocalProtocolError."""
    with pytest.raises(LocalProtocolError, match="RFC 3986"):
        URL(scheme=b"http", host=host, target=b"/")


@pytest.mark.parametrize(
    "url",
    ["http://exa mple.com/", "http://exa\x00mple.com/", "http://a\x01b/"],
)
def test_url_bad_host_in_string_rejected(url: str) -> None:
    """A parsed host with space, NUL or another CTL raises LocalProtocolError."""
    with pytest.raises(LocalProtocolError, match="invalid URL host"):
        URL(url)


@pytest.mark.parametrize(
    "host", [b"example.com", b"127.0.0.1", b"::1", b"fe80::1%25eth0", b"a-b_c.~"]
)
def test_url_good_hosts_accepted(host: bytes) -> None:
    """Reg-names, IPv4 and bracketless IPv6 literals are accepted as hosts."""
    assert URL(scheme=b"http", host=host, target=b"/").host == host


# -- Host header ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com/", b"example.com"),
        ("http://example.com:80/", b"example.com"),
        ("https://example.com:443/", b"example.com"),
        ("http://example.com:8080/", b"example.com:8080"),
        ("https://example.com:80/", b"example.com:80"),
        ("http://example.com:443/", b"example.com:443"),
        ("ws://example.com:80/", b"example.com"),
        ("wss://example.com:8443/", b"example.com:8443"),
        ("http://[::1]/", b"[::1]"),
        ("http://[::1]:80/", b"[::1]"),
        ("http://[::1]:8080/", b"[::1]:8080"),
        ("http://127.0.0.1:8000/", b"127.0.0.1:8000"),
    ],
)
def test_host_header_value(url: str, expected: bytes) -> None:
    """The Host header omits the default port and brackets IPv6 literals."""
    assert host_header_value(URL(url)) == expected


# -- SNI host names ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("example.com", "example.com"),
        (b"example.com", "example.com"),
        ("Example.COM", "Example.COM"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("127.0.0.1", "127.0.0.1"),
        (b"10.0.0.1", "10.0.0.1"),
        ("::1", "::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("localhost", "localhost"),
    ],
)
def test_validate_sni_hostname_accepts(value: str | bytes, expected: str) -> None:
    """Names, ASCII bytes and IP addresses pass; an IDN becomes its A-label."""
    assert validate_sni_hostname(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "exa\rmple.com",
        "exa\nmple.com",
        "exa\x00mple.com",
        "exa mple.com",
        "",
        b"",
        "example.com/x",
        "user@example.com",
        "[::1]",
        "a:b",
        b"b\xfccher.example",
        "bü cher.example",
    ],
)
def test_validate_sni_hostname_rejects_bad_names(value: str | bytes) -> None:
    """CR, LF, NUL, space, delimiters, empty and non-ASCII bytes are rejected."""
    with pytest.raises(LocalProtocolError, match="sni_hostname"):
        validate_sni_hostname(value)


@pytest.mark.parametrize(
    ("value", "type_name"), [(123, "int"), (None, "NoneType"), (["a"], "list")]
)
def test_validate_sni_hostname_rejects_non_str(value: object, type_name: str) -> None:
    """A value that is not str or bytes raises LocalProtocolError naming its type."""
    with pytest.raises(LocalProtocolError) as info:
        validate_sni_hostname(value)
    assert str(info.value) == f"sni_hostname must be a str, got {type_name}"


@pytest.mark.parametrize(
    "name", [".leading.dot", "a..b", "a" * 64 + ".test", "x" * 254, "trailing.."]
)
def test_sni_hostname_label_rules(name: str) -> None:
    """Empty labels, labels over 63 and names over 253 characters are refused."""
    with pytest.raises(LocalProtocolError, match="1-63 character labels"):
        validate_sni_hostname(name)


def test_sni_hostname_allows_one_trailing_dot() -> None:
    """A fully qualified name with its root dot is a valid host name; the dot
    is dropped, since the SNI carries none (RFC 6066 §3)."""
    assert validate_sni_hostname("example.com.") == "example.com"
    assert validate_sni_hostname(b"xn--bcher-kva.example.") == "xn--bcher-kva.example"


# -- the regex fast path against urllib -----------------------------------------

_URL_CHARS = st.sampled_from(
    [chr(c) for c in range(0x20, 0x7F)] + ["\t", "\x00", "\x80", "\xff"]
)
_URL_PIECES = st.lists(
    st.one_of(
        st.sampled_from(
            ["http://", "https://", "ws://", "wss://", "HTTP://", "ftp://", "//"]
        ),
        st.sampled_from(["[", "]", "::1", ":", "@", "#", "?", "/", ";", "%41", "."]),
        st.sampled_from(["example.com", "EXAMPLE.org", "127.0.0.1", "[::1]"]),
        st.integers(min_value=0, max_value=99999).map(lambda port: f":{port}"),
        st.text(_URL_CHARS, max_size=6),
    ),
    max_size=8,
)


@given(_URL_PIECES)
@settings(max_examples=3000, deadline=None)
def test_fast_url_parse_agrees_with_urllib(pieces: list[str]) -> None:
    """Whatever the regex path accepts, it parses exactly as the urllib path."""
    raw = "".join(pieces).encode("latin-1")
    fast = _parse_simple(raw)
    if fast is None:
        return
    assert fast == _parse(raw)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/",
        "https://example.com:8443/a/b?c=d&e=%20f",
        "http://127.0.0.1:8080",
        "wss://[::1]:443/chat#top",
        "https://Sub.Example.COM/p;params?q",
    ],
)
def test_common_urls_take_the_fast_path(url: str) -> None:
    """Typical request URLs never reach urllib (and agree with it)."""
    fast = _parse_simple(url.encode())
    assert fast is not None
    assert fast == _parse(url.encode())


def test_path_params_are_kept() -> None:
    """``;params`` belong to the path (RFC 3986 §3.3); httpcore's urlparse drops
    them, urlsplit keeps them, on both parsing paths."""
    assert URL(b"http://h/a;jsessionid=1/b").target == b"/a;jsessionid=1/b"
    assert URL(b"HTTP://h/a;x?y").target == b"/a;x?y"  # urllib path (uppercase)


@pytest.mark.parametrize(
    "url",
    ["http://h:65536/", "http://h:99999/", "HTTP://h:65536/"],
    ids=["fast-path", "fast-path-5-digits", "urllib-path"],
)
def test_url_port_over_65535_rejected(url: str) -> None:
    """A port beyond 65535 raises LocalProtocolError on both parsing paths: the
    regex path hands it to urllib, whose ValueError is named."""
    assert _parse_simple(url.encode()) is None
    with pytest.raises(LocalProtocolError, match="invalid URL port"):
        URL(url)


@pytest.mark.parametrize("char", ["\t", "\r", "\n"])
@pytest.mark.parametrize(
    "where", ["http://ho{}st/", "http://host/a{}b", "http://h/?q{}"]
)
def test_url_tab_cr_lf_refused_not_stripped(where: str, char: str) -> None:
    """urllib would silently delete TAB, CR and LF (WHATWG rules); a URL holding
    them is refused instead, so no byte of it can reach the wire rewritten."""
    with pytest.raises(LocalProtocolError, match="TAB, CR and LF are not allowed"):
        URL(where.format(char))


@pytest.mark.parametrize("port", [-1, 65536, 2**31])
def test_url_keyword_port_out_of_range_rejected(port: int) -> None:
    """A port given as a keyword is checked like a parsed one."""
    with pytest.raises(LocalProtocolError, match=f"invalid URL port {port}"):
        URL(scheme=b"http", host=b"h", port=port, target=b"/")


@pytest.mark.parametrize(
    "raw",
    [b"http://[::1/", b"http://a]b/", b"http://h\xff/", b"http://[2:1]/"],
    ids=["unclosed-bracket", "stray-bracket", "non-ascii", "bracketed-not-ipv6"],
)
def test_urls_urllib_refuses_raise_local_protocol_error(raw: bytes) -> None:
    """urllib's own ValueError / UnicodeDecodeError never escape: a URL it
    cannot parse is a LocalProtocolError naming the URL."""
    with pytest.raises(LocalProtocolError, match="invalid URL b'http://"):
        URL(raw)


def test_fast_parser_hands_bracketed_non_ipv6_hosts_to_urllib() -> None:
    """The regex path takes only real IPv6 literals in brackets (urllib refuses
    others), so both paths agree."""
    assert _parse_simple(b"http://[2:1]/") is None
    assert _parse_simple(b"http://[::1]:8080/x") == (b"http", b"::1", 8080, b"/x")
    assert URL(b"http://[fe80::1%25eth0]/").host == b"fe80::1%25eth0"


@pytest.mark.parametrize("host", [b"example.com:8443", b"a:b", b"1.2.3.4:80"])
def test_url_host_part_with_colon_must_be_ipv6(host: bytes) -> None:
    """A host given as a part may hold ':' only as an IPv6 address: a port
    smuggled into it would make a Host header that does not parse back."""
    with pytest.raises(LocalProtocolError, match="only in an IPv6 address"):
        URL(scheme=b"http", host=host, target=b"/")
    assert URL(scheme=b"http", host=b"::1", target=b"/").host == b"::1"


@pytest.mark.parametrize(
    "raw",
    [b"HTTP://[v1.fe]/", b"HTTP://[::1]x/", b"HTTP://[::1]]/", b"http://[::1]x/"],
    ids=["ipvfuture", "junk-after-bracket", "double-bracket", "fast-path-shape"],
)
def test_brackets_hold_only_an_ipv6_address_then_a_port(raw: bytes) -> None:
    """urllib takes IPvFuture literals as names and drops what follows "]";
    neither gets through (uppercase schemes take the urllib path)."""
    with pytest.raises(LocalProtocolError, match="brackets hold an IPv6 address"):
        URL(raw)
    assert URL(b"HTTP://user@[::1]:8080/").origin == Origin(b"http", b"::1", 8080)


def test_sni_hostname_of_an_ip_with_a_trailing_dot_refused() -> None:
    """Without its dot "1.2.3.4." would be an IP address, for which no SNI is
    sent and the certificate's IP entries are checked: refused."""
    with pytest.raises(LocalProtocolError, match="IP address with a dot after it"):
        validate_sni_hostname("1.2.3.4.")


def test_parsed_urls_are_remembered_boundedly_and_stay_independent() -> None:
    """URL(string) reuses an earlier parse of the same string; changing one URL
    object changes no other, and the memory of parses stays bounded."""
    first = URL("https://example.com:8443/a?b")
    first.host = b"changed.example"
    again = URL("https://example.com:8443/a?b")
    assert (again.scheme, again.host, again.port, again.target) == (
        b"https",
        b"example.com",
        8443,
        b"/a?b",
    )
    for number in range(urls._ACCEPTED_MAX + 10):
        URL(f"http://host{number}.example/")
    assert 0 < len(urls._ACCEPTED) <= urls._ACCEPTED_MAX
    with pytest.raises(LocalProtocolError):
        URL("http://bad host/")
    assert "http://bad host/" not in urls._ACCEPTED


def test_host_values_are_remembered_boundedly_and_follow_the_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Remembered Host values are keyed by scheme, host and port: a changed
    URL gets its own, and the memory starts over when full."""
    monkeypatch.setattr(urls, "_HOST_VALUES", {})
    url = URL("http://example.com:8080/")
    assert host_header_value(url) == b"example.com:8080"
    url.port = 80
    assert host_header_value(url) == b"example.com"
    url.scheme = b"https"
    assert host_header_value(url) == b"example.com:80"
    for number in range(urls._ACCEPTED_MAX + 10):
        value = host_header_value(URL(f"http://h{number}.example/"))
        assert value == b"h%d.example" % number
        assert 0 < len(urls._HOST_VALUES) <= urls._ACCEPTED_MAX
    assert len(urls._HOST_VALUES) < urls._ACCEPTED_MAX  # it started over


def test_urls_with_credentials_are_not_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A URL with userinfo is parsed every time, never kept."""
    monkeypatch.setattr(urls, "_ACCEPTED", {})
    for _ in range(2):
        url = URL("http://user:SECRET@example.com/")
        assert (url.host, url.target) == (b"example.com", b"/")
    URL("http://example.com/")
    assert list(urls._ACCEPTED) == ["http://example.com/"]
