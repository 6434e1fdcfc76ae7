"""The standard library's server in the benchmark: ThreadingHTTPServer with HTTP/1.1 keep-alive.

Routes: ``/`` (``Hello, World!``), ``/64k``, ``/post`` (answers the body length) and
``/static/<name>`` (a file under ``--www`` copied with ``shutil.copyfileobj``). Not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HELLO = b"Hello, World!"
BIG = b"x" * 65536


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Unbuffered (the default), the head and the body are two send() calls, and with Nagle
    # on the second waits for the client's delayed ACK (40 ms): the benchmark would measure
    # that timer. Buffered, handle_one_request() flushes the whole response at once.
    wbufsize = -1
    disable_nagle_algorithm = True
    root = "."

    def log_message(self, format: str, *args: object) -> None:
        pass

    def answer(self, body: bytes, ctype: str = "text/plain", status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            # The server closes after this response but does not say so (RFC 9112 9.6 says
            # it SHOULD): wrk would count the close as an error on its next request.
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path
        if path == "/":
            self.answer(HELLO)
        elif path == "/64k":
            self.answer(BIG, "application/octet-stream")
        elif path.startswith("/static/") and "/.." not in path:
            try:
                f = open(os.path.join(self.root, path.lstrip("/")), "rb")  # noqa: SIM115
            except OSError:
                self.answer(b"not found", status=404)
                return
            with f:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(os.fstat(f.fileno()).st_size))
                self.end_headers()
                shutil.copyfileobj(f, self.wfile, 65536)
        else:
            self.answer(b"not found", status=404)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.answer(str(len(body)).encode())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--www", default=".")
    args = parser.parse_args()
    Handler.root = os.path.realpath(args.www)
    ThreadingHTTPServer.request_queue_size = 4096
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
