"""Validation of what a caller puts into a request line and header block.

Everything here runs when a request is built, before any socket opens, so a
header injection attempt costs zero bytes on the wire. The rules are RFC 9110's
grammar; h11 and h2 check again at serialisation time, but their errors arrive
after a connection was made.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from .errors import LocalProtocolError
from .urls import enforce_bytes

__all__ = [
    "HeaderInput",
    "Headers",
    "has_header",
    "normalize_headers",
    "validate_field",
    "validate_method",
    "validate_target",
]

Headers = list[tuple[bytes, bytes]]
HeaderInput = (
    Mapping[bytes, bytes]
    | Mapping[str, str]
    | Sequence[tuple[bytes, bytes]]
    | Sequence[tuple[str, str]]
)

# RFC 9110 §5.6.2: token = 1*tchar; methods (§9.1) and field names (§5.1) are tokens.
# The tchar set itself too, for code that checks with bytes.translate.
TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TOKEN = re.compile(b"[" + re.escape(TCHAR) + b"]+")
# RFC 9112 §3.2: the request-target is URI syntax (RFC 3986: ASCII only) with no
# whitespace or control characters.
_TARGET = re.compile(rb"[\x21-\x7e]+")
# RFC 9110 §5.5: field-value = *field-content of VCHAR, obs-text, SP and HTAB,
# with no leading or trailing whitespace; "Field values containing CR, LF, or NUL
# characters are invalid and dangerous".
_VALUE = re.compile(
    rb"(?:[\x21-\x7e\x80-\xff](?:[ \t\x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?"
)


# RFC 9110 §9.3 and RFC 5789 methods: tokens, known without the regex.
_METHODS = frozenset(
    {
        b"GET",
        b"HEAD",
        b"POST",
        b"PUT",
        b"DELETE",
        b"CONNECT",
        b"OPTIONS",
        b"TRACE",
        b"PATCH",
    }
)


def validate_method(method: bytes) -> bytes:
    """Return ``method`` if it is an RFC 9110 token.

    Raises:
        LocalProtocolError: Empty, or contains anything but tchar.
    """
    known = type(method) is bytes and method in _METHODS
    if not known and _TOKEN.fullmatch(method) is None:
        raise LocalProtocolError(
            f"invalid request method {method!r}: a method is a token "
            "(RFC 9110 §9.1), so CR, LF, NUL, space and separators are not allowed"
        )
    return method


def validate_target(target: bytes) -> bytes:
    """Return ``target`` if it can go on a request line.

    Raises:
        LocalProtocolError: Empty, or contains whitespace or control characters.
    """
    if _TARGET.fullmatch(target) is None:
        raise LocalProtocolError(
            f"invalid request target {target!r}: only visible ASCII is allowed, "
            "no CR, LF, NUL, space or other control characters (RFC 9112 §3.2)"
        )
    return target


def validate_field(name: bytes, value: bytes) -> None:
    """Check one header field: a token name and a safe value (RFC 9110 §5).

    Raises:
        LocalProtocolError: The name is not a token or the value is unsafe.
    """
    if _TOKEN.fullmatch(name) is None:
        raise LocalProtocolError(
            f"invalid header name {name!r}: a field name is a token "
            "(RFC 9110 §5.1), so CR, LF, NUL, space, ':' and separators are "
            "not allowed"
        )
    if _VALUE.fullmatch(value) is None:
        raise LocalProtocolError(
            f"invalid value for header {name!r}: CR, LF, NUL and other control "
            "characters, and leading or trailing whitespace, are not allowed "
            "(RFC 9110 §5.5)"
        )


def normalize_headers(headers: HeaderInput | None) -> Headers:
    """Turn a mapping or a sequence of pairs into validated ``(bytes, bytes)`` pairs.

    Order and case are kept: HTTP/1.1 sends names as given.

    Raises:
        TypeError: A name or value is neither bytes nor ASCII str.
        LocalProtocolError: A name is not a token or a value is unsafe.
    """
    if headers is None:
        return []
    items: Iterable[tuple[bytes | str, bytes | str]]
    items = headers.items() if isinstance(headers, Mapping) else headers
    result: Headers = []
    for name, value in items:
        pair = (
            enforce_bytes(name, name="header name"),
            enforce_bytes(value, name="header value"),
        )
        validate_field(*pair)
        result.append(pair)
    return result


def has_header(headers: Headers, name: bytes) -> bool:
    """Whether ``headers`` has a field called ``name`` (ASCII case-insensitive)."""
    name = name.lower()
    return any(key.lower() == name for key, _ in headers)
