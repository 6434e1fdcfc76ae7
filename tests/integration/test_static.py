"""StaticFiles in-process: ``serve_in_thread(StaticFiles(root))`` on 127.0.0.1:0, checked with
raw sockets (paths exactly as sent), http.client and urllib3. The CLI's end-to-end checks of the
same handler are in test_cli.py."""

from __future__ import annotations

import hashlib
import html
import http.client
import logging
import os
import re
import socket
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
import urllib3

from reactor.config import ServerConfig
from reactor.static import Forbidden, StaticFiles
from reactor.testing import RunningServer, serve_in_thread

SECRET = b"TOP SECRET CONTENTS"
BIG_SIZE = 3 * 1024 * 1024 + 123


@pytest.fixture
def root(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    site = tmp_path / "site"
    site.mkdir()
    (site / "hello.txt").write_bytes(b"hello, world\n")
    (site / "<b>&x.txt").write_bytes(b"tricky")
    (site / "caf\u00e9 & co.txt").write_bytes(b"accent")
    (site / "empty.bin").write_bytes(b"")
    (site / "style.css").write_bytes(b"body{}")
    (site / "pic.png").write_bytes(b"\x89PNG")
    (site / "data.unknownext").write_bytes(b"?")
    (site / "bundle.tar.gz").write_bytes(b"\x1f\x8b")
    (site / "big.bin").write_bytes(os.urandom(BIG_SIZE))
    (site / "docs").mkdir()
    (site / "docs" / "index.html").write_bytes(b"<h1>docs</h1>\n")
    (site / "dir").mkdir()
    (site / "dir" / "inner.txt").write_bytes(b"12345")
    (site / "dir" / "sub").mkdir()
    (site / "evil.com").mkdir()
    (site / "a").mkdir()
    (site / "link_out").symlink_to(outside)
    (site / "secret_link.txt").symlink_to(outside / "secret.txt")
    (site / "link_in.txt").symlink_to(site / "hello.txt")
    (site / "leaky").mkdir()
    (site / "leaky" / "index.html").symlink_to(outside / "secret.txt")
    os.mkfifo(site / "fifo")
    return site


@pytest.fixture
def server(root: Path) -> Iterator[RunningServer]:
    with serve_in_thread(StaticFiles(root)) as running:
        yield running


def request(
    server: RunningServer, target: str, method: str = "GET", version: str = "HTTP/1.1"
) -> tuple[int, dict[str, str], bytes]:
    """Send one request with ``target`` byte for byte, read to EOF, split the response."""
    with server.connect() as sock:
        sock.sendall(
            f"{method} {target} {version}\r\nHost: t\r\nConnection: close\r\n\r\n".encode()
        )
        raw = b""
        while data := sock.recv(65536):
            raw += data
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, raw
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


# -- files ---------------------------------------------------------------------------------------


def test_get_file_with_type_length_and_mtime(server: RunningServer, root: Path) -> None:
    mtime = 1_700_000_000
    os.utime(root / "hello.txt", (mtime, mtime))
    status, headers, body = request(server, "/hello.txt")
    assert status == 200
    assert body == b"hello, world\n"
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers["content-length"] == "13"
    assert parsedate_to_datetime(headers["last-modified"]).timestamp() == mtime


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("style.css", "text/css; charset=utf-8"),
        ("docs/index.html", "text/html; charset=utf-8"),
        ("pic.png", "image/png"),
        ("data.unknownext", "application/octet-stream"),
        ("bundle.tar.gz", "application/gzip"),
        ("empty.bin", "application/octet-stream"),
    ],
)
def test_content_type(server: RunningServer, name: str, content_type: str) -> None:
    status, headers, _ = request(server, "/" + name)
    assert status == 200
    assert headers["content-type"] == content_type


def test_empty_file(server: RunningServer) -> None:
    status, headers, body = request(server, "/empty.bin")
    assert (status, headers["content-length"], body) == (200, "0", b"")


def test_percent_encoded_names(server: RunningServer) -> None:
    assert request(server, "/%3Cb%3E%26x.txt")[2] == b"tricky"
    assert request(server, "/caf%C3%A9%20%26%20co.txt")[2] == b"accent"
    assert request(server, "/hello.txt?query=ignored")[2] == b"hello, world\n"


def test_head_has_the_same_headers_and_no_body(server: RunningServer) -> None:
    conn = http.client.HTTPConnection(*server.address, timeout=5)
    try:
        for path in ("/hello.txt", "/big.bin", "/dir/", "/docs/"):
            conn.request("GET", path)
            get = conn.getresponse()
            get_body = get.read()
            conn.request("HEAD", path)
            head = conn.getresponse()
            assert head.read() == b""
            assert head.status == get.status == 200
            skip = {"date"}
            assert {k.lower(): v for k, v in head.getheaders() if k.lower() not in skip} == {
                k.lower(): v for k, v in get.getheaders() if k.lower() not in skip
            }
            assert head.getheader("Content-Length") == str(len(get_body))
        # The HEAD responses carried no body bytes: the connection is still in sync.
        conn.request("GET", "/hello.txt")
        assert conn.getresponse().read() == b"hello, world\n"
    finally:
        conn.close()


def test_large_file_arrives_intact(server: RunningServer, root: Path) -> None:
    expected = hashlib.sha256((root / "big.bin").read_bytes()).hexdigest()
    with urllib3.PoolManager() as pool:
        response = pool.request("GET", server.url + "/big.bin", retries=False)
    assert response.status == 200
    assert response.headers["Content-Length"] == str(BIG_SIZE)
    assert "Transfer-Encoding" not in response.headers
    assert hashlib.sha256(response.data).hexdigest() == expected


def test_large_file_is_not_buffered_whole_for_a_slow_reader(tmp_path: Path, root: Path) -> None:
    big = root / "huge.bin"
    size = 32 * 1024 * 1024
    with open(big, "wb") as f:
        f.truncate(size)  # sparse: cheap to create, 32 MiB to send
    config = ServerConfig(write_high_water=64 * 1024, write_low_water=16 * 1024)
    with serve_in_thread(StaticFiles(root), config) as running:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(5)
        try:
            sock.connect(running.address)
            sock.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            time.sleep(0.3)  # do not read: the socket buffers fill up

            def buffered() -> list[int]:
                return [c._writer.buffered() for c in running.server._connections]

            held = running.call(buffered)
            assert len(held) == 1
            # The handler waits for the output to drain: at most the high-water mark plus
            # one chunk is held, never the file.
            assert held[0] <= 64 * 1024 + 64 * 1024 + 1024
            raw = b""
            while b"\r\n\r\n" not in raw:
                raw += sock.recv(65536)
            head, _, rest = raw.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert f"\r\nContent-Length: {size}\r\n".encode() in head + b"\r\n"
            received = len(rest)
            while received < size:
                data = sock.recv(1 << 20)
                if not data:
                    break
                received += len(data)
            assert received == size
        finally:
            sock.close()


def test_client_leaving_mid_file_is_not_an_error(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with open(root / "huge.bin", "wb") as f:
        f.truncate(16 * 1024 * 1024)
    with (
        caplog.at_level(logging.DEBUG, logger="reactor"),
        serve_in_thread(StaticFiles(root)) as running,
    ):
        with running.connect() as sock:
            sock.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
        deadline = time.monotonic() + 5
        while running.call(lambda: running.server.connection_count) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert running.call(lambda: running.server.connection_count) == 0
        status, _, body = request(running, "/hello.txt")
        assert (status, body) == (200, b"hello, world\n")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- methods and errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_get_405_with_allow(server: RunningServer, method: str) -> None:
    status, headers, _ = request(server, "/hello.txt", method=method)
    assert status == 405
    assert headers["allow"] == "GET, HEAD"


def test_missing_is_404(server: RunningServer) -> None:
    assert request(server, "/nope.txt")[0] == 404
    assert request(server, "/dir/nope/deeper")[0] == 404
    assert request(server, "/hello.txt/")[0] == 404  # a file is not a directory
    assert request(server, "/hello.txt/x")[0] == 404


def test_special_files_are_refused(server: RunningServer) -> None:
    # A FIFO would block a reader; it is opened non-blocking and refused.
    assert request(server, "/fifo")[0] == 403


# -- directories -------------------------------------------------------------------------------


def test_directory_without_slash_redirects(server: RunningServer) -> None:
    status, headers, _ = request(server, "/dir")
    assert status == 301
    assert headers["location"] == "/dir/"
    status, headers, _ = request(server, "/dir/sub?x=1&y=2")
    assert (status, headers["location"]) == (301, "/dir/sub/?x=1&y=2")


def test_redirect_is_never_to_another_host(server: RunningServer) -> None:
    # "//evil.com" would make a Location that browsers read as a host.
    status, headers, _ = request(server, "//evil.com")
    assert status == 301
    assert headers["location"] == "/evil.com/"


def test_directory_index(server: RunningServer) -> None:
    status, headers, body = request(server, "/docs/")
    assert (status, body) == (200, b"<h1>docs</h1>\n")
    assert headers["content-type"] == "text/html; charset=utf-8"


def test_listing_escapes_names_and_links(server: RunningServer) -> None:
    status, headers, body = request(server, "/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["content-length"] == str(len(body))
    page = body.decode("utf-8")
    assert "<b>&x" not in page
    links = re.findall(r'<a href="([^"]*)">([^<]*)</a></td><td>([^<]*)</td>', page)
    by_text = {html.unescape(text): (html.unescape(href), size) for href, text, size in links}
    assert by_text["<b>&x.txt"] == ("%3Cb%3E%26x.txt", "6")
    assert by_text["caf\u00e9 & co.txt"] == ("caf%C3%A9%20%26%20co.txt", "6")
    assert by_text["hello.txt"] == ("hello.txt", "13")
    assert by_text["dir/"] == ("dir/", "-")
    assert by_text["docs/"] == ("docs/", "-")
    assert "../" not in by_text  # the root has no parent link
    # Every link resolves to what it names.
    for href, _ in by_text.values():
        if not href.endswith("/"):
            assert request(server, "/" + href)[0] in (200, 403)


def test_listing_of_a_subdirectory(server: RunningServer) -> None:
    status, _, body = request(server, "/dir/")
    assert status == 200
    page = body.decode()
    assert "<title>Index of /dir/</title>" in page
    assert '<a href="../">../</a>' in page
    assert '<a href="sub/">sub/</a></td><td>-</td>' in page
    assert '<a href="inner.txt">inner.txt</a></td><td>5</td>' in page


def test_listing_can_be_turned_off(root: Path) -> None:
    with serve_in_thread(StaticFiles(root, listing=False)) as running:
        assert request(running, "/dir/")[0] == 403
        assert request(running, "/docs/")[0] == 200


# -- never outside the root ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/../outside/secret.txt",
        "/../../../../../../etc/passwd",
        "/dir/../../outside/secret.txt",
        "/%2e%2e/outside/secret.txt",
        "/%2E%2E/%2E%2E/etc/passwd",
        "/.%2e/outside/secret.txt",
        "/a%2f..%2f..%2foutside%2fsecret.txt",
        "/a%2F..%2F..%2Fetc%2Fpasswd",
        "/link_out/secret.txt",
        "/link_out/",
        "/link_out",
        "/secret_link.txt",
        "/hello.txt%00.png",
        "/%00",
        "/%252e%252e/outside/secret.txt",
        "/..%5c..%5coutside%5csecret.txt",
    ],
)
def test_traversal_is_refused(server: RunningServer, target: str) -> None:
    for method in ("GET", "HEAD"):
        status, _, body = request(server, target, method=method)
        assert status in (403, 404), (target, status)
        assert SECRET not in body
        assert b"root:" not in body


def test_traversal_statuses(server: RunningServer) -> None:
    assert request(server, "/../outside/secret.txt")[0] == 403
    assert request(server, "/%2e%2e/outside/secret.txt")[0] == 403
    assert request(server, "/a%2f..%2f..%2foutside%2fsecret.txt")[0] == 403
    assert request(server, "/link_out/secret.txt")[0] == 403
    assert request(server, "/secret_link.txt")[0] == 403
    assert request(server, "/hello.txt%00.png")[0] == 403
    # Double encoding decodes once: "%2e%2e" is an ordinary (missing) name.
    assert request(server, "/%252e%252e/outside/secret.txt")[0] == 404


def test_absolute_form_target_is_confined_too(server: RunningServer) -> None:
    status, _, body = request(server, "http://t/../outside/secret.txt")
    assert status in (400, 403)
    assert SECRET not in body


def test_index_symlinked_outside_is_not_served(server: RunningServer) -> None:
    status, _, body = request(server, "/leaky/")
    assert SECRET not in body
    assert status == 200  # the listing instead
    assert b"Index of /leaky/" in body


def test_symlink_inside_the_root_is_served(server: RunningServer) -> None:
    assert request(server, "/link_in.txt")[2] == b"hello, world\n"


def test_resolve_unit(root: Path) -> None:
    static = StaticFiles(root)
    target = static.resolve("/dir/./inner.txt")
    assert target is not None
    assert target.path == str((root / "dir" / "inner.txt").resolve())
    assert target.segments == ("dir", "inner.txt")
    assert target.url_path == "/dir/inner.txt"
    for bad in ("/..", "/x/%2E%2e/..", "/a%2fb", "/a%00", "relative", "*"):
        with pytest.raises(Forbidden):
            static.resolve(bad)
    assert static.contains(static.root)
    assert not static.contains(static.root + "-sibling")


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        StaticFiles(tmp_path / "missing")
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        StaticFiles(tmp_path / "file")


def test_http10_client(server: RunningServer) -> None:
    status, headers, body = request(server, "/hello.txt", version="HTTP/1.0")
    assert (status, body) == (200, b"hello, world\n")
    assert headers["content-length"] == "13"


# -- validators, conditional requests and ranges -------------------------------------------------


def send(server: RunningServer, target: str, *headers: str, method: str = "GET") -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    with server.connect() as sock:
        sock.sendall(
            f"{method} {target} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n".encode()
        )
        raw = b""
        while data := sock.recv(65536):
            raw += data
    return raw


def test_etag_and_conditional_requests(server: RunningServer, root: Path) -> None:
    mtime = 1_700_000_000
    os.utime(root / "hello.txt", (mtime, mtime))
    _, headers, _ = request(server, "/hello.txt")
    etag = headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]+-d"', etag)
    assert headers["accept-ranges"] == "bytes"
    for cond in (
        f"If-None-Match: {etag}",
        f'If-None-Match: "other", W/{etag}',
        "If-None-Match: *",
        "If-Modified-Since: " + headers["last-modified"],
        "If-Modified-Since: Wed, 01 Jan 2025 00:00:00 GMT",
    ):
        out = send(server, "/hello.txt", cond)
        assert out.startswith(b"HTTP/1.1 304 "), (cond, out)
        assert f"\r\nETag: {etag}\r\n".encode() in out
        assert out.endswith(b"\r\n\r\n")  # no body
    for cond in (
        'If-None-Match: "other"',
        "If-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT",
        "If-Modified-Since: not a date",
        # If-None-Match wins over If-Modified-Since.
        'If-None-Match: "other"\r\nIf-Modified-Since: Wed, 01 Jan 2025 00:00:00 GMT',
    ):
        out = send(server, "/hello.txt", cond)
        assert out.startswith(b"HTTP/1.1 200 "), (cond, out)
        assert out.endswith(b"hello, world\n")
    os.utime(root / "hello.txt", (mtime + 5, mtime + 5))
    assert send(server, "/hello.txt", f"If-None-Match: {etag}").startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize(
    ("spec", "content_range", "body"),
    [
        ("bytes=0-4", "bytes 0-4/13", b"hello"),
        ("bytes=7-", "bytes 7-12/13", b"world\n"),
        ("bytes=-6", "bytes 7-12/13", b"world\n"),
        ("bytes=7-100", "bytes 7-12/13", b"world\n"),
        ("bytes=-100", "bytes 0-12/13", b"hello, world\n"),
        ("bytes=12-12", "bytes 12-12/13", b"\n"),
    ],
)
def test_single_range(server: RunningServer, spec: str, content_range: str, body: bytes) -> None:
    out = send(server, "/hello.txt", f"Range: {spec}")
    head, _, got = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 206 Partial Content\r\n"), out
    assert f"\r\nContent-Range: {content_range}\r\n".encode() in head
    assert f"\r\nContent-Length: {len(body)}\r\n".encode() in head
    assert got == body


@pytest.mark.parametrize("spec", ["bytes=13-", "bytes=100-200", "bytes=-0"])
def test_unsatisfiable_range_is_416(server: RunningServer, spec: str) -> None:
    out = send(server, "/hello.txt", f"Range: {spec}")
    assert out.startswith(b"HTTP/1.1 416 ")
    assert b"\r\nContent-Range: bytes */13\r\n" in out


@pytest.mark.parametrize(
    "spec", ["bytes=0-1,3-4", "items=0-1", "bytes=5-2", "bytes=abc", "bytes=1"]
)
def test_ignored_ranges_send_the_whole_file(server: RunningServer, spec: str) -> None:
    out = send(server, "/hello.txt", f"Range: {spec}")
    assert out.startswith(b"HTTP/1.1 200 ")
    assert out.endswith(b"\r\n\r\nhello, world\n")


def send_latin1(server: RunningServer, target: str, *headers: str) -> bytes:
    """``send`` with the header values' characters as single bytes (latin-1), as a raw
    client may send them."""
    extra = "".join(f"{h}\r\n" for h in headers)
    head = f"GET {target} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n"
    with server.connect() as sock:
        sock.sendall(head.encode("latin-1"))
        raw = b""
        while data := sock.recv(65536):
            raw += data
    return raw


# Numbers in a Range are ASCII digits (RFC 9110 14.1.1: 1*DIGIT): str.isdigit() is also true
# of superscripts, which int() refuses; a bound of thousands of digits is more than int()
# converts. Neither may reach int(): a malformed range is ignored (the whole file, 200), a
# huge one is judged by its value (past any file: 416; a last-pos or suffix past the end:
# clamped to it).
@pytest.mark.parametrize(
    ("spec", "status", "body"),
    [
        ("bytes=0-\xb2", 200, b"hello, world\n"),
        ("bytes=\xb2-", 200, b"hello, world\n"),
        ("bytes=-\xb3", 200, b"hello, world\n"),
        ("bytes=1\xb9-3", 200, b"hello, world\n"),
        ("bytes=0-" + "9" * 5000, 206, b"hello, world\n"),
        ("bytes=-" + "9" * 5000, 206, b"hello, world\n"),
        ("bytes=" + "0" * 5000 + "7-", 206, b"world\n"),
        ("bytes=" + "9" * 5000 + "-", 416, None),
        ("bytes=" + "9" * 5000 + "-" + "9" * 5000, 416, None),
    ],
)
def test_range_numbers_are_ascii_digits_of_any_length(
    server: RunningServer, spec: str, status: int, body: bytes | None
) -> None:
    out = send_latin1(server, "/hello.txt", f"Range: {spec}")
    head, _, got = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), out[:300]
    if body is not None:
        assert got == body
    else:
        assert b"\r\nContent-Range: bytes */13\r\n" in head


@pytest.mark.parametrize(
    "value",
    [
        "Sun, 06 Nov 2094 08:49:37 GMT".replace("2094", "\xb2\xb2\xb2\xb2"),
        "Sun, 06 Nov " + "9" * 5000 + " 08:49:37 GMT",
        "Sun, \xb9\xb2 Nov 2094 08:49:37 GMT",
        "Sun, 06 Nov 2094 08:49:37 GMT" + " " * 5000 + "x",
        "9" * 5000,
    ],
)
def test_malformed_if_modified_since_is_ignored(server: RunningServer, value: str) -> None:
    out = send_latin1(server, "/hello.txt", f"If-Modified-Since: {value}")
    assert out.startswith(b"HTTP/1.1 200 "), out[:300]
    assert out.endswith(b"\r\n\r\nhello, world\n")


def test_if_range(server: RunningServer) -> None:
    etag = request(server, "/hello.txt")[1]["etag"]
    ok = send(server, "/hello.txt", "Range: bytes=0-4", f"If-Range: {etag}")
    assert ok.startswith(b"HTTP/1.1 206 ") and ok.endswith(b"hello")
    stale = send(server, "/hello.txt", "Range: bytes=0-4", 'If-Range: "stale"')
    assert stale.startswith(b"HTTP/1.1 200 ") and stale.endswith(b"hello, world\n")


def test_range_of_a_big_file_with_urllib3(server: RunningServer, root: Path) -> None:
    data = (root / "big.bin").read_bytes()
    start, end = 1_000_000, 2_500_000
    with urllib3.PoolManager() as pool:
        response = pool.request(
            "GET", server.url + "/big.bin", headers={"Range": f"bytes={start}-{end}"}, retries=False
        )
    assert response.status == 206
    assert response.data == data[start : end + 1]


# -- dotfiles and types the platform table lacks ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("README.md", "text/markdown; charset=utf-8"),
        ("pyproject.toml", "application/toml; charset=utf-8"),
        ("app.mjs", "text/javascript; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("mod.wasm", "application/wasm"),
        ("site.webmanifest", "application/manifest+json; charset=utf-8"),
        ("pic.avif", "image/avif"),
    ],
)
def test_types_beyond_the_platform_table(tmp_path: Path, name: str, content_type: str) -> None:
    (tmp_path / name).write_bytes(b"x")
    assert StaticFiles(tmp_path).content_type(str(tmp_path / name)) == content_type


@pytest.fixture
def dotted(tmp_path: Path) -> Path:
    site = tmp_path / "dotted"
    site.mkdir()
    (site / ".env").write_bytes(b"PASSWORD=hunter2")
    (site / ".git").mkdir()
    (site / ".git" / "config").write_bytes(b"[core]")
    (site / "public.txt").write_bytes(b"public")
    (site / "alias.txt").symlink_to(site / ".env")
    (site / ".well-known").mkdir()
    (site / ".well-known" / "security.txt").write_bytes(b"Contact: x")
    return site


@pytest.mark.parametrize(("dotfiles", "status"), [("ignore", 404), ("deny", 403), ("allow", 200)])
def test_dotfiles_are_hidden_unless_allowed(dotted: Path, dotfiles: str, status: int) -> None:
    with serve_in_thread(StaticFiles(dotted, dotfiles=dotfiles)) as running:
        for path in ("/.env", "/.git/config", "/%2Egit/config", "/alias.txt", "/.git/"):
            got, _, body = request(running, path)
            assert got == (301 if path == "/.git" else status), path
            if status != 200:
                assert b"hunter2" not in body and b"[core]" not in body
        assert request(running, "/public.txt")[0] == 200
        assert request(running, "/.well-known/security.txt")[0] == 200
        listing = request(running, "/")[2]
    assert b"public.txt" in listing
    assert b".well-known" in listing
    assert (b".env" in listing) == (dotfiles == "allow")
    assert (b".git/" in listing) == (dotfiles == "allow")


def test_dotfiles_choice_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dotfiles must be one of"):
        StaticFiles(tmp_path, dotfiles="sometimes")


# -- mounted beside an application (reactor serve --static /assets=DIR) ---------------------------


def test_mount_beside_an_app(root: Path) -> None:
    from reactor.static import mount

    def app(w: object, r: object) -> None:
        w.write(b"app saw " + r.path.encode())  # type: ignore[attr-defined]

    static = StaticFiles(root, prefix="/assets/")
    docs = StaticFiles(root / "docs", prefix="/assets/docs")
    with serve_in_thread(mount(app, [static, docs])) as running:
        assert request(running, "/assets/hello.txt")[2] == b"hello, world\n"
        assert request(running, "/assets/docs/")[2] == b"<h1>docs</h1>\n"  # longest prefix
        status, headers, _ = request(running, "/assets/dir")
        assert (status, headers["location"]) == (301, "/assets/dir/")
        assert b"Index of /assets/dir/" in request(running, "/assets/dir/")[2]
        assert request(running, "/assets")[1]["location"] == "/assets/"
        assert request(running, "/assets/../hello.txt")[0] == 403
        assert request(running, "/assetsx/hello.txt")[2] == b"app saw /assetsx/hello.txt"
        assert request(running, "/other")[2] == b"app saw /other"
