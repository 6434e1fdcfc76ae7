"""The buffer pair a hijack hands over: Reader and Writer in blocking and non-blocking mode.

Held bytes always come first; then the socket, in its current mode."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from reactor.buffers import BufferPair, Reader, Writer


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, peer = socket.socketpair()
    ours.settimeout(5)
    peer.settimeout(5)
    yield ours, peer
    ours.close()
    peer.close()


def held_reader(sock: socket.socket, held: bytes) -> Reader:
    reader = Reader(sock)
    reader.feed(held)  # what the server had read and not consumed
    return reader


def test_held_bytes_come_first_then_the_socket(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    reader = held_reader(ours, b"held-")
    peer.sendall(b"socket")
    assert reader.buffered() == 5
    assert reader.peek(3) == b"hel"
    assert reader.read(3) == b"hel"  # from the held bytes, without touching the socket
    assert reader.read(100) == b"d-"  # the rest of the held bytes only
    assert reader.buffered() == 0
    assert reader.read(100) == b"socket"  # now the socket


def test_read_all_and_readline_across_held_and_socket(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, peer = pair
    reader = held_reader(ours, b"line one\nline ")
    peer.sendall(b"two\nrest")
    peer.shutdown(socket.SHUT_WR)
    assert reader.readline() == b"line one\n"
    assert reader.readline() == b"line two\n"  # completed from the socket
    assert reader.readline(limit=2) == b"re"
    assert reader.read() == b"st"  # to EOF
    assert reader.read(10) == b""


def test_readinto(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    reader = held_reader(ours, b"abc")
    buf = bytearray(10)
    assert reader.readinto(buf) == 3 and buf[:3] == b"abc"
    peer.sendall(b"xyz")
    assert reader.readinto(memoryview(buf)[3:]) == 3 and buf[:6] == b"abcxyz"


def test_non_blocking_reads(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    ours.setblocking(False)
    reader = held_reader(ours, b"held")
    # With bytes held, reads return them and never block.
    assert reader.read(2) == b"he"
    peer.sendall(b"+more")
    assert reader.read() == b"ld+more"  # what is there, then stops at "would block"
    # Nothing held and nothing on the socket: BlockingIOError, as a non-blocking socket.
    with pytest.raises(BlockingIOError):
        reader.read(10)
    with pytest.raises(BlockingIOError):
        reader.read()
    with pytest.raises(BlockingIOError):
        reader.readline()
    assert reader.peek(4) == b""  # peek does not raise: it shows what is held
    peer.sendall(b"partial")
    assert reader.readline() == b"partial"  # no newline: the partial line that is there


def test_writer_blocking_flush(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    writer = Writer(ours)
    assert writer.write(b"hello ") == 6
    writer.write(memoryview(b"world"))
    assert writer.buffered() == 11
    peer.settimeout(0.1)
    with pytest.raises(TimeoutError):
        peer.recv(100)  # nothing is sent before flush()
    writer.flush()
    assert writer.buffered() == 0
    assert peer.recv(100) == b"hello world"


def test_writer_non_blocking_flush_keeps_the_rest(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, peer = pair
    ours.setblocking(False)
    writer = Writer(ours)
    payload = bytes(range(256)) * 40_000  # ~10 MiB: more than the socket buffers hold
    writer.write(payload)
    with pytest.raises(BlockingIOError):
        writer.flush()
    left = writer.buffered()
    assert 0 < left < len(payload)
    # Read what was sent, then flush the rest; the stream arrives whole and in order.
    got = bytearray()
    while len(got) < len(payload):
        got += peer.recv(1 << 20)
        try:
            writer.flush()
        except BlockingIOError:
            pass
    assert writer.buffered() == 0
    assert bytes(got) == payload


def test_pair_unpacks_and_holds_no_connection(pair: tuple[socket.socket, socket.socket]) -> None:
    import gc

    ours, _peer = pair
    reader, writer = Reader(ours), Writer(ours)
    bp = BufferPair(reader, writer)
    r, w = bp
    assert r is reader and w is writer
    # The pair references the socket and bytes only.
    for obj in (reader, writer, bp):
        assert all(type(ref).__module__ != "reactor.connection" for ref in gc.get_referents(obj))
