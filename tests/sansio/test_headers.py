"""Tests for sansio.headers: request header, method and target validation."""

from __future__ import annotations

import re

import pytest

from sansio import (
    LocalProtocolError,
    has_header,
    normalize_headers,
    validate_method,
    validate_target,
)

# -- normalize_headers ---------------------------------------------------------


def test_normalize_none_is_empty() -> None:
    """No headers at all normalise to an empty list."""
    assert normalize_headers(None) == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "example.com", "X-Trace-ID": "abc", "accept": "*/*"},
        {b"Host": b"example.com", b"X-Trace-ID": b"abc", b"accept": b"*/*"},
        [("Host", "example.com"), ("X-Trace-ID", "abc"), ("accept", "*/*")],
        [(b"Host", b"example.com"), (b"X-Trace-ID", b"abc"), (b"accept", b"*/*")],
        ((b"Host", b"example.com"), ("X-Trace-ID", "abc"), (b"accept", "*/*")),
    ],
)
def test_normalize_headers_forms(headers: object) -> None:
    """Dicts and pair sequences, str or bytes, become bytes pairs in order and case."""
    assert normalize_headers(headers) == [  # type: ignore[arg-type]
        (b"Host", b"example.com"),
        (b"X-Trace-ID", b"abc"),
        (b"accept", b"*/*"),
    ]


def test_normalize_headers_keeps_duplicates_in_order() -> None:
    """Repeated names stay separate fields, in the order given."""
    pairs = [(b"Cookie", b"a=1"), (b"X-A", b"x"), (b"cookie", b"b=2")]
    assert normalize_headers(pairs) == pairs


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"x",
        b"a b",
        b"a\tb",
        b"a  \t  b",
        b"text/html; charset=utf-8",
        b"\x80\xff obs-text",
        b'"quoted", (comment), <uri>',
        b"~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./",
    ],
)
def test_normalize_headers_accepts_values(value: bytes) -> None:
    """VCHAR, obs-text and inner SP/HTAB are valid field values, as is empty."""
    assert normalize_headers([(b"X-Value", value)]) == [(b"X-Value", value)]


@pytest.mark.parametrize(
    "name",
    [
        b"Bad Name",
        b"Bad:Name",
        b"Name:",
        b"Bad\rName",
        b"Bad\nName",
        b"Bad\x00Name",
        b"",
        b" Leading",
        b"Trailing ",
        b"Bad\tName",
        b"(comment)",
        b"Bad/Name",
        b"Bad\x7fName",
        b"B\xe4d",
    ],
)
def test_normalize_headers_rejects_names(name: bytes) -> None:
    """A field name that is not an RFC 9110 token raises LocalProtocolError."""
    with pytest.raises(LocalProtocolError, match=re.escape("RFC 9110 §5.1")) as info:
        normalize_headers([(name, b"value")])
    assert repr(name) in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        b"a\rb",
        b"a\nb",
        b"a\r\nX-Injected: 1",
        b"a\x00b",
        b"a\x01b",
        b"a\x1fb",
        b"a\x7fb",
        b"a\x0bb",
        b" leading",
        b"trailing ",
        b"\tleading-tab",
        b"trailing-tab\t",
        b" ",
        b"\t",
        b"value\n",
    ],
)
def test_normalize_headers_rejects_values(value: bytes) -> None:
    """CR, LF, NUL, other CTLs and edge whitespace in a value are rejected."""
    with pytest.raises(LocalProtocolError, match=re.escape("RFC 9110 §5.5")) as info:
        normalize_headers([(b"X-Value", value)])
    assert "b'X-Value'" in str(info.value)


def test_normalize_headers_rejects_bad_dict_entry() -> None:
    """Validation applies to dict input as well as pair sequences."""
    with pytest.raises(LocalProtocolError, match=re.escape("RFC 9110 §5.5")):
        normalize_headers({"X-Ok": "fine", "X-Bad": "a\r\nb"})


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([("Nämé", "v")], "header name strings may not include unicode characters."),
        (
            [("X-A", "välue")],
            "header value strings may not include unicode characters.",
        ),
        ([(b"X-A", 1)], "header value must be bytes or str, but got int."),
        ([(None, b"v")], "header name must be bytes or str, but got NoneType."),
    ],
)
def test_normalize_headers_type_errors(headers: object, message: str) -> None:
    """Non-ASCII str and wrong types raise TypeError naming name or value."""
    with pytest.raises(TypeError) as info:
        normalize_headers(headers)  # type: ignore[arg-type]
    assert str(info.value) == message


# -- validate_method -----------------------------------------------------------


@pytest.mark.parametrize(
    "method",
    [b"GET", b"POST", b"HEAD", b"CONNECT", b"M-SEARCH", b"PROPFIND", b"get", b"X!#$"],
)
def test_validate_method_accepts_tokens(method: bytes) -> None:
    """Any RFC 9110 token is a method, returned unchanged."""
    assert validate_method(method) is method


@pytest.mark.parametrize(
    "method",
    [
        b"",
        b"GE T",
        b"GET ",
        b"GET\r\n",
        b"GET\n",
        b"GET\x00",
        b"GET\t",
        b"GE(T",
        b"GET/",
        b"GET:",
        b"G\xc3\x89T",
    ],
)
def test_validate_method_rejects(method: bytes) -> None:
    """Empty methods and methods with non-tchar bytes raise LocalProtocolError."""
    with pytest.raises(LocalProtocolError, match=re.escape("RFC 9110 §9.1")) as info:
        validate_method(method)
    assert repr(method) in str(info.value)


# -- validate_target -----------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        b"/",
        b"*",
        b"/a/b?c=d&e=f",
        b"/%20encoded%0D%0A",
        b"http://example.com/x",
        b"example.com:443",
        b"/~user/!$&'()*+,;=:@",
    ],
)
def test_validate_target_accepts(target: bytes) -> None:
    """Origin, asterisk, absolute and authority forms are accepted unchanged."""
    assert validate_target(target) is target


@pytest.mark.parametrize(
    "target",
    [
        b"",
        b"/a b",
        b"/a\r\nHost: evil",
        b"/a\n",
        b"/a\r",
        b"/\x00",
        b"/\t",
        b"/\x01",
        b"/\x7f",
        b" /",
    ],
)
def test_validate_target_rejects(target: bytes) -> None:
    """Empty targets and whitespace or control bytes raise LocalProtocolError."""
    with pytest.raises(LocalProtocolError, match=re.escape("RFC 9112 §3.2")) as info:
        validate_target(target)
    assert repr(target) in str(info.value)


@pytest.mark.parametrize("target", [b"/caf\xc3\xa9", b"/\x80", b"/\xff"])
def test_validate_target_rejects_non_ascii(target: bytes) -> None:
    """Non-ASCII bytes are refused: a request-target is URI syntax (RFC 9112 §3.2)."""
    with pytest.raises(LocalProtocolError, match=re.escape("RFC 9112 §3.2")):
        validate_target(target)


# -- has_header ----------------------------------------------------------------

HEADERS = [(b"Host", b"example.com"), (b"Content-Type", b"text/plain")]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (b"Content-Type", True),
        (b"content-type", True),
        (b"CONTENT-TYPE", True),
        (b"host", True),
        (b"Content-Length", False),
        (b"Content", False),
        (b"text/plain", False),
    ],
)
def test_has_header_is_case_insensitive(name: bytes, expected: bool) -> None:
    """has_header matches field names ignoring ASCII case, never values."""
    assert has_header(HEADERS, name) is expected


def test_has_header_empty() -> None:
    """An empty header list has no header."""
    assert has_header([], b"host") is False
