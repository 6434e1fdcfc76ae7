"""An HTTP CONNECT proxy: hijack the request, then splice two sockets on the loop.

Shows a hijack that bridges the client to a second socket. For ``CONNECT host:port`` the
handler connects to the target without blocking the loop (``connect_ex`` and a writability
wait), answers ``200 Connection Established`` and hijacks. Two ``reactor.stream.Stream``
objects are then copied into each other by two tasks, each ``read -> write -> await drain()``:
a side is only read while the other side's output is under its high-water mark, so a slow
reader slows the fast writer down (TCP flow control, end to end) and memory stays bounded.
Bytes the client sent right after the CONNECT head (already in ``pair.reader``) are the first
the client stream yields, so they are forwarded first. An EOF on one side is passed on as a
half-close (``shutdown(SHUT_WR)``) to the other; both sockets close when both directions end.

Safety: only loopback targets are allowed unless ``--allow-any`` is given (403 otherwise).
Targets must be IP literals or ``localhost``: resolving names would block the loop.

Run:  python docs/examples/connect_proxy.py --port 8080
Try:  curl -p -x http://127.0.0.1:8080 http://127.0.0.1:8000/   (some server on :8000)
Tests: tests/examples/test_examples.py.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import socket

from reactor import (
    BufferPair,
    ReactorError,
    Reader,
    Request,
    ResponseWriter,
    SelectorLoop,
    Server,
    Writer,
)
from reactor.server import Handler
from reactor.stream import Stream


def make_handler(loop: SelectorLoop, allow_any: bool = False) -> Handler:
    async def handler(w: ResponseWriter, r: Request) -> None:
        if r.method != "CONNECT":
            w.headers.set("Allow", "CONNECT")
            w.write_header(405)
            w.write(b"this is a CONNECT proxy\n")
            return
        host, _, port = r.target.rpartition(":")
        host = "127.0.0.1" if host == "localhost" else host.strip("[]")
        try:
            ip = ipaddress.ip_address(host)
            address = (str(ip), int(port))
            if not 0 < address[1] < 65536:
                raise ValueError(port)
        except ValueError:
            w.write_header(400)
            w.write(b"CONNECT needs an IP-literal host:port target\n")
            return
        if not (ip.is_loopback or allow_any):
            w.write_header(403)
            w.write(b"only loopback targets are allowed\n")
            return
        upstream = socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET)
        err = await connect(loop, upstream, address)
        if err:
            upstream.close()
            w.write_header(502)
            w.write(f"cannot connect to {r.target}: {errno.errorcode.get(err, err)}\n".encode())
            return
        sock, pair = w.hijack()
        client = Stream(loop, sock, pair)  # pair.reader may already hold tunnel bytes
        target = Stream(loop, upstream, BufferPair(Reader(upstream), Writer(upstream)))
        try:
            client.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            up = loop.spawn(pipe(client, target, loop))
            down = loop.spawn(pipe(target, client, loop))
            await up
            await down
        finally:
            client.close()
            target.close()

    return handler


async def connect(loop: SelectorLoop, sock: socket.socket, address: tuple[str, int]) -> int:
    """Connect without blocking the loop; return 0 or the errno of the failure."""
    sock.setblocking(False)
    err = sock.connect_ex(address)
    if err in (errno.EINPROGRESS, errno.EWOULDBLOCK):
        writable = loop.create_future()

        def wake() -> None:
            if not writable.done():
                writable.set_result(None)

        loop.add_writer(sock, wake)
        timeout = loop.call_later(10, wake)
        try:
            await writable
        finally:
            loop.remove_writer(sock)
            timeout.cancel()
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if not err:
            try:
                sock.getpeername()
            except OSError:  # the 10 s timeout ran out
                err = errno.ETIMEDOUT
    return err


async def pipe(src: Stream, dst: Stream, loop: SelectorLoop) -> None:
    """Copy ``src`` into ``dst`` until EOF, then half-close ``dst``. On any error (a reset,
    a write to a closed peer) close both streams, which ends the other direction too."""
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()  # while dst is over its high-water mark, src is not read
        while dst.write_buffered():  # drain() only bounds the buffer; send it all
            await dst.drain()
            if dst.write_buffered():
                await loop.sleep(0.005)
        dst.socket.shutdown(socket.SHUT_WR)  # pass the EOF on
    except (ReactorError, OSError):
        src.close()
        dst.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="HTTP CONNECT proxy (reactor hijack example)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--allow-any", action="store_true", help="allow non-loopback targets")
    args = parser.parse_args(argv)
    loop = SelectorLoop()
    server = Server(make_handler(loop, args.allow_any), loop=loop)
    host, port = server.listen(args.host, args.port)
    print(f"CONNECT proxy on http://{host}:{port}/", flush=True)
    try:
        loop.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        loop.close()


if __name__ == "__main__":
    main()
