"""Every ```python block in docs/*.md runs, on asyncio and uvloop, so the docs
cannot rot.

The blocks talk to the local test servers through placeholders that read like
real addresses: ``localhost:8443`` and the others in :data:`PLACEHOLDERS` are
replaced by ``127.0.0.1:PORT`` of the running peer before a block is compiled.
Each block starts from a fresh namespace holding only ``ssl_context`` (trusts
``certs/ca.pem``, ALPN ``h2`` then ``http/1.1``). A block with top-level
``await`` is compiled with ``PyCF_ALLOW_TOP_LEVEL_AWAIT`` and awaited on the
test's loop; a block without runs in a worker thread (it may block, or run its
own ``asyncio.Runner``). Line numbers in tracebacks are the Markdown file's.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS_DIR = REPO_ROOT / "docs"

#: Seconds one block may take (pytest-timeout stops a stuck sync block).
BLOCK_TIMEOUT = 20.0

#: ``localhost:PORT`` in a block -> the fixture of the peer it stands for.
PLACEHOLDERS = {
    "localhost:8443": "hypercorn_tls",  # HTTPS, ALPN http/1.1 only
    "localhost:8444": "hypercorn_h2_tls",  # HTTPS, ALPN h2 then http/1.1
    "localhost:8080": "hypercorn_plain",  # clear text: HTTP/1.1 and h2c
    "localhost:3128": "tinyproxy",  # HTTP proxy
    "localhost:3129": "tinyproxy_auth",  # HTTP proxy wanting wire/line
    "localhost:1080": "microsocks",  # SOCKS5 proxy
}

_FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
_LOCALHOST_PORT = re.compile(r"localhost:\d+")
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)\s]*)?\)")


@dataclass(frozen=True)
class Block:
    """One fenced ```python block of a page."""

    page: str
    index: int
    line: int  # of the block's first code line in the page
    source: str

    @property
    def id(self) -> str:
        return f"{self.page}#{self.index}"


def pages() -> list[Path]:
    """The documentation pages, sorted."""
    return sorted(DOCS_DIR.glob("*.md"))


def python_blocks() -> list[Block]:
    """Every ```python block of every page, numbered from 1 within a page."""
    blocks = []
    for path in pages():
        text = path.read_text(encoding="utf-8")
        index = 0
        for match in _FENCE.finditer(text):
            if match.group(1) != "python":
                continue
            index += 1
            line = text.count("\n", 0, match.start(2)) + 1
            blocks.append(Block(path.name, index, line, match.group(2)))
    return blocks


BLOCKS = python_blocks()


def test_docs_have_python_blocks() -> None:
    """The parametrisation below is not empty by accident."""
    assert pages(), f"no pages in {DOCS_DIR}"
    assert len(BLOCKS) >= len(pages())


@pytest.mark.parametrize("path", pages(), ids=lambda path: path.name)
def test_fences_are_closed_and_labelled(path: Path) -> None:
    """Every fence has a language; no ```python hides inside another fence."""
    text = path.read_text(encoding="utf-8")
    fences = [line for line in text.splitlines() if line.startswith("```")]
    assert len(fences) % 2 == 0, "unbalanced ``` fences"
    for opening in fences[::2]:
        assert opening != "```", "a fence without a language (python, sh, text...)"


@pytest.mark.parametrize("path", pages(), ids=lambda path: path.name)
def test_relative_links_resolve(path: Path) -> None:
    """Links to other pages and repository files point at files that exist."""
    text = path.read_text(encoding="utf-8")
    for target in _LINK.findall(text):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (path.parent / target).exists(), f"{path.name}: broken link {target}"


def test_index_links_every_page() -> None:
    """docs/README.md, the index, links to every other page."""
    index = (DOCS_DIR / "README.md").read_text(encoding="utf-8")
    linked = set(_LINK.findall(index))
    missing = [
        p.name for p in pages() if p.name != "README.md" and p.name not in linked
    ]
    assert not missing, f"pages missing from docs/README.md: {missing}"


@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: block.id)
def test_block_is_checkable(block: Block) -> None:
    """Each block asserts or prints something, and names only known servers."""
    assert "assert " in block.source or "print(" in block.source, block.id
    unknown = set(_LOCALHOST_PORT.findall(block.source)) - set(PLACEHOLDERS)
    assert not unknown, f"{block.id}: no test server stands for {sorted(unknown)}"


@pytest.fixture
def docs_ssl_context(certs_dir: Path) -> ssl.SSLContext:
    """The ``ssl_context`` the pages use: the test CA, ALPN h2 then http/1.1."""
    context = ssl.create_default_context(cafile=certs_dir / "ca.pem")
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


def _substitute(source: str, request: pytest.FixtureRequest) -> str:
    """``source`` with each placeholder replaced by its running peer's address."""
    for placeholder, fixture in PLACEHOLDERS.items():
        if placeholder in source:
            peer = request.getfixturevalue(fixture)
            source = source.replace(placeholder, f"127.0.0.1:{peer.port}")
    return source


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_asyncio_errors")
@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: block.id)
async def test_block_runs(
    block: Block,
    request: pytest.FixtureRequest,
    docs_ssl_context: ssl.SSLContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The block runs to the end without an exception, within BLOCK_TIMEOUT."""
    monkeypatch.chdir(REPO_ROOT)  # pages name files such as certs/ca.pem
    source = _substitute(block.source, request)
    # Padding keeps traceback line numbers equal to the page's.
    code = compile(
        "\n" * (block.line - 1) + source,
        str(DOCS_DIR / block.page),
        "exec",
        flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
    )
    namespace: dict[str, Any] = {
        "__name__": f"docs_{block.page[:-3].replace('-', '_')}_{block.index}",
        "ssl_context": docs_ssl_context,
    }
    if code.co_flags & inspect.CO_COROUTINE:
        async with asyncio.timeout(BLOCK_TIMEOUT):
            await eval(code, namespace)
    else:
        await asyncio.wait_for(asyncio.to_thread(exec, code, namespace), BLOCK_TIMEOUT)
