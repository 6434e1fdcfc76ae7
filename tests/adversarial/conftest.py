"""Fixtures of the adversarial suite: the directory a server runs in (with files for the
static handler) and a throwaway self-signed certificate made with the ``openssl`` tool."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import close_opened

#: The size of big.bin, the static file a slow reader asks for: far more than the socket
#: buffers and the write high-water mark together, so a server that buffered it would show.
BIG_FILE = 32 * 1024 * 1024


@pytest.fixture(autouse=True)
def _close_client_sockets() -> Iterator[None]:
    """Close every client socket the test opened (harness.connect), even when it failed."""
    yield
    close_opened()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The server's working directory (``reactor serve`` serves it when no APP is given)."""
    (tmp_path / "hello.txt").write_bytes(b"hello\n")
    with open(tmp_path / "big.bin", "wb") as f:
        f.truncate(BIG_FILE)  # sparse: nothing to write, reads as zeros
    return tmp_path


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("cert")
    certfile, keyfile = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes"),
            *("-keyout", str(keyfile), "-out", str(certfile), "-days", "2"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return certfile, keyfile
