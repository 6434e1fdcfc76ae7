"""Errors in the connection core on real sockets (issue 10's bugs 1, 2 and 6): the server's
own exceptions end the connection with an answer, error responses to HEAD carry no body, and
the request's host follows an absolute-form target."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest

from reactor import Request, ResponseWriter, streaming
from reactor.testing import raw_request
from reactor.wsgi import WSGIHandler

from .wire import ResponseReader, is_closed, recv_all, wait_for


def hello(w: ResponseWriter, r: Request) -> None:
    w.write(b"Hello, World!")


def internal_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "internal error" in r.getMessage()]


def test_invalid_absolute_form_target_is_a_400_and_the_connection_ends(serve: Any) -> None:
    srv = serve(hello)
    with srv.connect() as s:
        s.sendall(b"PUT s://]ufd/: HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        data = recv_all(s)
    assert data.startswith(b"HTTP/1.1 400 ")
    assert b"Connection: close" in data
    assert wait_for(lambda: srv.call(lambda: srv.server.connection_count) == 0)


def test_an_exception_in_server_code_answers_500_and_closes(
    serve: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Building the request fails (any bug of ours between the parse and the handler): the
    client gets a 500 and EOF, the error is logged once, nothing stays registered."""

    def broken_attach(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug in the server")

    monkeypatch.setattr(Request, "attach", broken_attach)
    srv = serve(hello)
    fds_before = srv.call(lambda: srv.loop.registered_fds())
    with caplog.at_level(logging.ERROR, logger="reactor.server"), srv.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        data = recv_all(s)
        assert data.startswith(b"HTTP/1.1 500 ")
        assert b"Connection: close" in data
        assert data.endswith(b"\r\n\r\n500 Internal Server Error\n")
        assert wait_for(lambda: srv.call(lambda: srv.server.connection_count) == 0)
    assert wait_for(lambda: srv.call(lambda: srv.loop.registered_fds()) <= fds_before)
    records = internal_errors(caplog)
    assert len(records) == 1
    assert records[0].exc_info is not None and "a bug in the server" in str(records[0].exc_info[1])


def test_an_exception_after_the_response_aborts_without_a_second_answer(
    serve: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Our code fails while finishing a request whose response is built: no 500 is made
    up after it; the connection is aborted and forgotten."""
    import reactor.request

    def broken_skip(self: Any) -> bool:
        raise RuntimeError("a bug while discarding the body")

    monkeypatch.setattr(reactor.request.Body, "skip_rest", broken_skip)
    srv = serve(hello)  # leaves the request body unread: the server discards it
    with caplog.at_level(logging.ERROR, logger="reactor.server"), srv.connect() as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
        data = recv_all(s)
    assert b" 500 " not in data
    assert wait_for(lambda: srv.call(lambda: srv.server.connection_count) == 0)
    assert len(internal_errors(caplog)) == 1


@pytest.mark.parametrize(
    "head",
    [
        b"HEAD /url HTTP/1.1\r\n\r\n",  # no Host
        b"HEAD /url HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
        b"HEAD /url HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n",  # 417
    ],
)
def test_error_responses_to_head_have_no_body(serve: Any, head: bytes) -> None:
    srv = serve(hello)
    with srv.connect() as s:
        s.sendall(head)
        data = recv_all(s)
    response_head, sep, body = data.partition(b"\r\n\r\n")
    assert sep and response_head.split(b" ")[1] in (b"400", b"417")
    assert b"Content-Length: " in response_head  # the length a GET would have had
    assert body == b""


def test_error_response_to_get_keeps_its_body(serve: Any) -> None:
    srv = serve(hello)
    with srv.connect() as s:
        s.sendall(b"GET /url HTTP/1.1\r\n\r\n")
        data = recv_all(s)
    assert data.startswith(b"HTTP/1.1 400 ")
    assert data.partition(b"\r\n\r\n")[2].startswith(b"400 Bad Request")


def test_absolute_form_target_names_the_host(serve: Any) -> None:
    seen: list[tuple[str, str, str, str | None]] = []

    def handler(w: ResponseWriter, r: Request) -> None:
        seen.append((r.host, r.path, r.query, r.headers.get("content-length")))
        w.write(r.body.read())

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(
            b"POST http://a.example/x?y=1 HTTP/1.1\r\nHost: b.example\r\n"
            b"Content-Length: 5, 5\r\n\r\nhello"
            b"GET /plain HTTP/1.1\r\nHost: b.example\r\n\r\n"
        )
        reader = ResponseReader(s)
        assert reader.read().body == b"hello"
        reader.read()
    assert seen == [("a.example", "/x", "y=1", "5"), ("b.example", "/plain", "", None)]


def test_wsgi_sees_the_absolute_form_host_and_one_content_length(serve: Any) -> None:
    seen: list[tuple[str, str]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append((environ["HTTP_HOST"], environ["CONTENT_LENGTH"]))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["wsgi.input"].read()]

    srv = serve(WSGIHandler(app))
    with srv.connect() as s:
        s.sendall(
            b"PUT http://a.example:8080/x HTTP/1.1\r\nHost: b.example\r\n"
            b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
        )
        assert ResponseReader(s).read().body == b"hello"
    assert seen == [("a.example:8080", "5")]


def test_a_head_that_never_completes_is_not_left_registered_after_eof(serve: Any) -> None:
    srv = serve(hello)
    s = srv.connect()
    s.sendall(b"GET / HTTP/1.1\r\nHo")
    s.shutdown(socket.SHUT_WR)
    assert is_closed(s)
    s.close()
    assert wait_for(lambda: srv.call(lambda: srv.server.connection_count) == 0)


def test_bad_chunk_framing_read_by_a_streaming_handler_is_a_400_not_a_500(
    serve: Any, caplog: Any
) -> None:
    """A streaming handler that awaits a chunked body with broken framing: the ProtocolError
    comes out of its read. The client gets the error's status and Connection: close, and the
    log has a bad-request line, not ERROR "handler raised" with a traceback."""

    @streaming
    async def handler(w: ResponseWriter, r: Request) -> None:
        data = await r.body.read()
        w.write(b"got %d" % len(data))

    srv = serve(handler)
    with caplog.at_level(logging.INFO, logger="reactor"), srv.connect() as s:
        s.sendall(
            raw_request("POST", "/", headers=[("Transfer-Encoding", "chunked")])
            + b"5\r\nhello\r\nzz\r\n"
        )
        data = recv_all(s)
    assert data.startswith(b"HTTP/1.1 400 "), data[:80]
    assert b"\r\nConnection: close\r\n" in data
    assert "bad request body" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
