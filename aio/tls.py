"""TLS configuration defaults."""

from __future__ import annotations

import ssl

import certifi

__all__ = ["default_ssl_context"]


def default_ssl_context() -> ssl.SSLContext:
    """A new verifying client context trusting certifi's CA bundle (as httpcore).

    Building one costs tens of milliseconds (it parses the whole bundle), so
    connections and pools make it once and share it.
    """
    context = ssl.create_default_context()
    context.load_verify_locations(certifi.where())
    return context
