"""A client's EOF (``shutdown(SHUT_WR)``) means "no more requests", not "forget the ones you
have": every complete request already received is answered, in order, and only then is the
connection closed (RFC 9112 section 9.6; Go and nginx do the same). The last answer says
``Connection: close`` when the server can know it is the last. Issue 11, item 1."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from reactor import Request, ResponseWriter
from reactor.static import StaticFiles
from reactor.testing import raw_request
from reactor.wsgi import WSGIHandler

from .wire import recv_all


def parse_responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Every whole response in ``data`` (Content-Length framing), in order."""
    out = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        assert end >= 0, data[pos : pos + 200]
        lines = data[pos:end].decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers["content-length"])
        body = data[end + 4 : end + 4 + length]
        assert len(body) == length, "a response cut short"
        out.append((int(lines[0].split()[1]), headers, body))
        pos = end + 4 + length
    return out


def path_echo(w: ResponseWriter, r: Request) -> None:
    w.write(r.path.encode())


async def async_path_echo(w: ResponseWriter, r: Request) -> None:
    body = r.body.read() if r.method == "POST" else b""
    w.write(r.path.encode() + body)


def send_and_half_close(s: socket.socket, data: bytes) -> None:
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)


def check_no_early_close(responses: list[tuple[int, dict[str, str], bytes]]) -> None:
    """No answer but the last may say ``Connection: close`` (RFC 9112 section 9.6: the server
    closes after the response that says it). Whether the last says it depends on whether the
    EOF was seen before it was built: see test_the_answer_known_to_be_last_says_close."""
    assert [h.get("connection") for _, h, _ in responses[:-1]] == [None] * (len(responses) - 1)


@pytest.mark.parametrize("handler", [path_echo, async_path_echo], ids=["sync", "async"])
def test_every_held_request_is_answered_after_eof(serve: Any, handler: Any) -> None:
    srv = serve(handler)
    with srv.connect() as s:
        send_and_half_close(s, b"".join(raw_request("GET", f"/{i}") for i in range(3)))
        responses = parse_responses(recv_all(s))
    assert [b for _, _, b in responses] == [b"/0", b"/1", b"/2"]
    check_no_early_close(responses)


@pytest.mark.parametrize("handler", [path_echo, async_path_echo], ids=["sync", "async"])
def test_more_held_requests_than_one_pass_serves_are_all_answered_after_eof(
    serve: Any, handler: Any
) -> None:
    """Past reactor.connection._PASS_BUDGET the held requests are served over several passes:
    the EOF ends the connection only after the last of them."""
    from reactor.connection import _PASS_BUDGET

    count = 2 * _PASS_BUDGET + 3
    srv = serve(handler)
    with srv.connect() as s:
        send_and_half_close(s, b"".join(raw_request("GET", f"/{i}") for i in range(count)))
        responses = parse_responses(recv_all(s))
    assert [b for _, _, b in responses] == [f"/{i}".encode() for i in range(count)]
    check_no_early_close(responses)


def test_async_handler_reading_bodies_answers_all_after_eof(serve: Any) -> None:
    srv = serve(async_path_echo)
    with srv.connect() as s:
        send_and_half_close(
            s,
            raw_request("POST", "/a", body=b"one")
            + raw_request("GET", "/b")
            + raw_request("POST", "/c", body=b"three"),
        )
        responses = parse_responses(recv_all(s))
    assert [b for _, _, b in responses] == [b"/aone", b"/b", b"/cthree"]
    check_no_early_close(responses)


def test_a_partial_request_after_the_complete_ones_is_dropped_after_they_are_answered(
    serve: Any,
) -> None:
    srv = serve(async_path_echo)
    with srv.connect() as s:
        send_and_half_close(
            s, raw_request("GET", "/1") + raw_request("GET", "/2") + b"GET /3 HTTP/1.1\r\nHo"
        )
        responses = parse_responses(recv_all(s))
    assert [b for _, _, b in responses] == [b"/1", b"/2"]


def test_static_files_answer_every_held_request_after_eof(serve: Any, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"alpha")
    (tmp_path / "b.txt").write_bytes(b"beta")
    srv = serve(StaticFiles(str(tmp_path)))
    with srv.connect() as s:
        send_and_half_close(
            s,
            raw_request("GET", "/a.txt")
            + raw_request("GET", "/b.txt")
            + raw_request("GET", "/a.txt"),
        )
        responses = parse_responses(recv_all(s))
    assert [(st, b) for st, _, b in responses] == [(200, b"alpha"), (200, b"beta"), (200, b"alpha")]
    check_no_early_close(responses)


def test_wsgi_answers_every_held_request_after_eof(serve: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    srv = serve(WSGIHandler(app))
    with srv.connect() as s:
        send_and_half_close(s, b"".join(raw_request("GET", f"/w{i}") for i in range(3)))
        responses = parse_responses(recv_all(s))
    assert [b for _, _, b in responses] == [b"/w0", b"/w1", b"/w2"]


def test_a_slow_reader_that_pipelines_thousands_and_half_closes_gets_every_answer(
    serve: Any,
) -> None:
    """The client sends 3000 requests and its EOF without reading: the server's output backs
    up, it stops reading at the read-ahead limit, and sees the EOF only after it resumes.
    Every answer still arrives, in order."""
    n = 3000
    srv = serve(path_echo)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the server's output backs up
    s.settimeout(5.0)
    s.connect(srv.address)
    with s:
        data = b"".join(raw_request("GET", f"/{i}") for i in range(n))
        sender = threading.Thread(target=send_and_half_close, args=(s, data), daemon=True)
        sender.start()
        time.sleep(0.3)  # read late: the server's output fills the socket buffers meanwhile
        received = recv_all(s, timeout=20.0)
        sender.join(5.0)
    responses = parse_responses(received)
    assert len(responses) == n
    assert [b for _, _, b in responses] == [f"/{i}".encode() for i in range(n)]
    check_no_early_close(responses)


def test_the_answer_known_to_be_last_says_close(serve: Any) -> None:
    """The EOF arrives while the first of two held requests is handled: the first answer
    keeps the connection (one more is owed), the second is known to be the last and says
    ``Connection: close``; then the connection closes."""
    gate = threading.Event()

    async def handler(w: ResponseWriter, r: Request) -> None:
        while r.path == "/1" and not gate.is_set():
            await srv.loop.sleep(0.01)
        w.write(r.path.encode())

    srv = serve(handler)
    with srv.connect() as s:
        send_and_half_close(s, raw_request("GET", "/1") + raw_request("GET", "/2"))
        time.sleep(0.3)  # the server reads the EOF while /1 waits
        gate.set()
        responses = parse_responses(recv_all(s))
    assert [b for _, _, b in responses] == [b"/1", b"/2"]
    assert [h.get("connection") for _, h, _ in responses] == [None, "close"]


def test_eof_while_an_async_handler_runs_makes_its_answer_say_close(serve: Any) -> None:
    """One request, then EOF while its (async) handler runs: nothing more is held, so its
    answer is the last and says ``Connection: close`` (issue 11: a static response sent just
    before such a close lacked it)."""
    gate = threading.Event()

    async def handler(w: ResponseWriter, r: Request) -> None:
        while not gate.is_set():
            await srv.loop.sleep(0.01)
        w.write(b"done")

    srv = serve(handler)
    with srv.connect() as s:
        send_and_half_close(s, raw_request("GET", "/"))
        time.sleep(0.3)
        gate.set()
        responses = parse_responses(recv_all(s))
    assert [(b, h.get("connection")) for _, h, b in responses] == [(b"done", "close")]
