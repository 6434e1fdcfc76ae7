"""WebSocket echo: upgrade an HTTP request by hijacking it, then speak WebSocket on the loop.

Shows the whole path of a protocol switch with reactor: the handler checks the upgrade request
and answers ``101 Switching Protocols`` through the ordinary ResponseWriter, ``w.hijack()``
flushes that head and hands over the socket with the connection's own buffers, and a
``reactor.stream.Stream`` carries on over them on the same loop. wsproto (sans-IO) does the
framing; the stream does the I/O. Messages are echoed fragment by fragment as they arrive, with
``await stream.drain()`` after each write, so a large message (1 MiB and more) is streamed
through with bounded memory. wsproto answers pings; the close handshake is echoed, then the
server closes TCP (RFC 6455 5.5.1, 7.1.1). Compression is not negotiated.

Run:  python docs/examples/websocket_echo.py --port 8765
Try:  python -m websockets ws://127.0.0.1:8765/
Tests: tests/examples/test_examples.py.
"""

from __future__ import annotations

import argparse

from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, Message, Ping
from wsproto.utilities import generate_accept_token

from reactor import ReactorError, Request, ResponseWriter, SelectorLoop, Server
from reactor.server import Handler
from reactor.stream import Stream


def is_websocket_upgrade(r: Request) -> bool:
    """RFC 6455 4.2.1: a GET with Upgrade: websocket, Connection: upgrade, version 13, a key."""
    connection = {t.strip().lower() for t in r.headers.get("Connection", "").split(",")}
    return (
        r.method == "GET"
        and r.headers.get("Upgrade", "").lower() == "websocket"
        and "upgrade" in connection
        and r.headers.get("Sec-WebSocket-Version") == "13"
        and bool(r.headers.get("Sec-WebSocket-Key"))
    )


def make_handler(loop: SelectorLoop) -> Handler:
    """The server's handler; ``loop`` is the server's loop (the Stream runs on it)."""

    async def handler(w: ResponseWriter, r: Request) -> None:
        if not is_websocket_upgrade(r):
            w.headers.set("Upgrade", "websocket")
            w.headers.set("Sec-WebSocket-Version", "13")
            w.write_header(426)  # Upgrade Required
            w.write(b"this is a WebSocket echo endpoint\n")
            return
        key = r.headers["Sec-WebSocket-Key"].encode()
        w.headers.set("Upgrade", "websocket")
        w.headers.set("Connection", "Upgrade")
        w.headers.set("Sec-WebSocket-Accept", generate_accept_token(key).decode())
        w.write_header(101)
        sock, pair = w.hijack()  # the 101 head goes out first; pair may hold early frames
        stream = Stream(loop, sock, pair)
        try:
            await echo(stream, loop)
        except ReactorError:
            pass  # the peer broke the connection
        finally:
            stream.close()

    return handler


async def echo(stream: Stream, loop: SelectorLoop) -> None:
    ws = Connection(ConnectionType.SERVER)
    while data := await stream.read(65536):  # b"": the peer hung up without a close frame
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, Message):  # TextMessage or BytesMessage, maybe a fragment
                reply = type(event)(data=event.data, message_finished=event.message_finished)
                stream.write(ws.send(reply))
            elif isinstance(event, Ping):
                stream.write(ws.send(event.response()))
            elif isinstance(event, CloseConnection):  # the peer's close, or a protocol error
                stream.write(ws.send(event.response()))
                await sent_all(stream, loop)  # the close frame must leave before we close
                return
            await stream.drain()  # backpressure: wait while the client is slow to read


async def sent_all(stream: Stream, loop: SelectorLoop) -> None:
    """Wait until the kernel has taken every written byte. ``drain()`` only bounds the
    buffer (it returns at once below the high-water mark) and ``close()`` drops the rest."""
    while stream.write_buffered():
        await stream.drain()  # raises if the peer is gone
        if stream.write_buffered():
            await loop.sleep(0.005)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="WebSocket echo server (reactor + wsproto)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)
    loop = SelectorLoop()
    server = Server(make_handler(loop), loop=loop)
    host, port = server.listen(args.host, args.port)
    print(f"WebSocket echo on ws://{host}:{port}/", flush=True)
    try:
        loop.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        loop.close()


if __name__ == "__main__":
    main()
