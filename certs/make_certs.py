"""Make the test and demo TLS material in this folder with trustme.

Run by ``make certs`` (``make test`` and ``make demo`` call it when a file is
missing). Everything here is throwaway: a private CA that only our tests and the
demo trust, and leaf certificates it signs. Nothing is committed; delete the
``*.pem`` files and run ``make certs`` to start over.

Files:
    ca.pem              the test CA certificate (what clients load to verify)
    server.pem          leaf certificate chain for the names below
    server.key.pem      its private key
    other-ca.pem        a second CA that signed nothing here (wrong-CA tests)
    expired.pem         an expired leaf for the same names, signed by ca.pem
    expired.key.pem     its private key

The leaf is valid for ``localhost``, ``127.0.0.1``, ``::1`` and
``sni.wireline.test``; the last one resolves nowhere and exists only so tests can
prove that the ``sni_hostname`` extension, not the connect address, is what the
TLS handshake sends and checks.
"""

from __future__ import annotations

import datetime
import pathlib

import trustme

HERE = pathlib.Path(__file__).resolve().parent
NAMES = ("localhost", "127.0.0.1", "::1", "sni.wireline.test")


def main() -> None:
    ca = trustme.CA(organization_name="wireline test CA")
    ca.cert_pem.write_to_path(str(HERE / "ca.pem"))

    leaf = ca.issue_cert(*NAMES, organization_name="wireline test server")
    leaf.private_key_pem.write_to_path(str(HERE / "server.key.pem"))
    with open(HERE / "server.pem", "wb") as chain:
        for blob in leaf.cert_chain_pems:
            chain.write(blob.bytes())

    now = datetime.datetime.now(datetime.UTC)
    expired = ca.issue_cert(
        *NAMES,
        not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1),
    )
    expired.private_key_pem.write_to_path(str(HERE / "expired.key.pem"))
    with open(HERE / "expired.pem", "wb") as chain:
        for blob in expired.cert_chain_pems:
            chain.write(blob.bytes())

    trustme.CA(organization_name="wireline other CA").cert_pem.write_to_path(
        str(HERE / "other-ca.pem")
    )


if __name__ == "__main__":
    main()
