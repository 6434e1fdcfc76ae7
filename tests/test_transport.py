"""reactor.transport.Transport over real sockets, on every loop backend: a small subclass
records the events (data, EOF, read errors, write progress, write failures) while the test
drives the peer end of a socketpair (or a loopback TCP pair, for resets). File bodies go out
through os.sendfile() and through the pread() + send() fallback; ``detach`` hands over the
same reader and writer and leaves the loop; ``close_transport`` leaves it too. Every loop run
is bounded, and every thread join has a timeout, so a failing test fails instead of hanging.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reactor.buffers import BufferPair, Reader, Writer
from reactor.errors import BrokenConnectionError
from reactor.loop import BACKENDS, new_loop
from reactor.loop.base import Loop
from reactor.transport import Transport

SAFETY = 5.0  # seconds any single wait may take before the test fails
MiB = 1024 * 1024


class Recorder(Transport):
    """Records every event as ``(name, value)``; reading goes on after data."""

    __slots__ = ("events",)

    def __init__(self, loop: Loop, sock: socket.socket, pair: BufferPair | None = None) -> None:
        super().__init__(loop, sock, pair)
        self.events: list[tuple[str, Any]] = []

    def _data_received(self) -> None:
        self.events.append(("data", self._reader.take(-1)))

    def _eof_received(self, error: OSError | None) -> None:
        self.events.append(("eof", error))

    def _write_progress(self, remaining: int, progressed: bool) -> None:
        self.events.append(("progress", (remaining, progressed)))

    def _write_failed(self, error: OSError) -> None:
        self.events.append(("write_failed", error))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


@pytest.fixture(params=BACKENDS)
def loop(request: pytest.FixtureRequest) -> Iterator[Loop]:
    lp = new_loop(request.param)
    yield lp
    lp.close()


@pytest.fixture
def socks() -> Iterator[list[socket.socket]]:
    """Sockets a test created; closed at the end whatever happened."""
    made: list[socket.socket] = []
    yield made
    for s in made:
        s.close()


def make(
    loop: Loop,
    socks: list[socket.socket],
    pair: tuple[socket.socket, socket.socket] | None = None,
    buffers: BufferPair | None = None,
) -> tuple[Recorder, socket.socket]:
    ours, peer = pair if pair is not None else socket.socketpair()
    socks.extend((ours, peer))
    ours.setblocking(False)
    return Recorder(loop, ours, buffers), peer


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return server, client


def run_until(loop: Loop, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + SAFETY
    while not done():
        assert time.monotonic() < deadline, "the loop never got there"
        loop.run_once(0.01)


def drain_peer(peer: socket.socket, expected: int) -> tuple[bytearray, Callable[[], None]]:
    """Read ``expected`` bytes from ``peer`` in a thread; returns the buffer and a join."""
    received = bytearray()
    peer.settimeout(SAFETY)

    def target() -> None:
        while len(received) < expected:
            chunk = peer.recv(65536)
            if not chunk:
                break
            received.extend(chunk)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def join() -> None:
        thread.join(SAFETY)
        assert not thread.is_alive()

    return received, join


def fill_kernel(t: Transport, writer: Writer) -> int:
    """Buffer far more than the kernel takes and send what it takes; returns what is left."""
    writer.write(b"x" * (8 * MiB))
    remaining = t.flush_output()
    assert remaining > 0
    return remaining


def fd_is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


# -- reading --------------------------------------------------------------------------------------


def test_data_then_eof_and_reading_stops(loop: Loop, socks: list[socket.socket]) -> None:
    t, peer = make(loop, socks)
    assert loop.registered_fds() == 0  # nothing registered before start_reading
    t.start_reading()
    t.start_reading()  # already registered: a no-op
    assert loop.registered_fds() == 1
    peer.sendall(b"hello")
    run_until(loop, lambda: bool(t.events))
    assert t.events == [("data", b"hello")]

    t.stop_reading()
    assert loop.registered_fds() == 0
    peer.sendall(b"unread")
    for _ in range(3):
        loop.run_once(0.01)
    assert t.events == [("data", b"hello")]  # not registered: nothing received

    t.start_reading()
    peer.shutdown(socket.SHUT_WR)
    run_until(loop, lambda: t.names()[-1:] == ["eof"])
    assert t.events == [("data", b"hello"), ("data", b"unread"), ("eof", None)]
    assert loop.registered_fds() == 0  # reading stopped at EOF
    t.start_reading()  # after EOF: nothing more comes, nothing is registered
    assert loop.registered_fds() == 0
    t.close_transport()


def test_held_reader_bytes_stay_ahead_of_received_ones(
    loop: Loop, socks: list[socket.socket]
) -> None:
    ours, peer = socket.socketpair()
    reader = Reader(ours)
    reader.feed(b"held|")
    t = Recorder(loop, ours, BufferPair(reader, Writer(ours)))
    socks.extend((ours, peer))
    ours.setblocking(False)
    t.start_reading()
    peer.sendall(b"new")
    run_until(loop, lambda: bool(t.events))
    assert t.events == [("data", b"held|new")]  # fed behind the held bytes, same reader
    t.close_transport()


def test_a_reset_is_an_eof_with_the_error(loop: Loop, socks: list[socket.socket]) -> None:
    t, peer = make(loop, socks, pair=tcp_pair())
    # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()
    t.start_reading()
    run_until(loop, lambda: bool(t.events))
    [(name, error)] = t.events
    assert name == "eof"
    assert isinstance(error, ConnectionResetError)
    assert loop.registered_fds() == 0
    t.close_transport()


# -- writing --------------------------------------------------------------------------------------


def test_partial_writes_go_on_as_the_socket_becomes_writable(
    loop: Loop, socks: list[socket.socket]
) -> None:
    ours, peer = socket.socketpair()
    pair = BufferPair(Reader(ours), Writer(ours))
    t, peer = make(loop, socks, pair=(ours, peer), buffers=pair)
    payload = os.urandom(4 * MiB)
    pair.writer.write(payload)
    remaining = t.flush_output()
    assert 0 < remaining < len(payload)  # the kernel took some, not all
    assert t.output_pending() == remaining
    assert loop.registered_fds() == 1  # waiting for writability
    received, join = drain_peer(peer, len(payload))
    run_until(loop, lambda: t.output_pending() == 0)
    join()
    assert bytes(received) == payload
    progress = [value for name, value in t.events if name == "progress"]
    assert progress[-1] == (0, True)
    assert any(progressed for _, progressed in progress)
    lefts = [left for left, _ in progress]
    assert lefts == sorted(lefts, reverse=True)
    assert loop.registered_fds() == 0  # unregistered once everything is sent
    assert t.flush_output() == 0
    t.close_transport()


def test_sending_to_a_gone_peer_is_a_write_failure(loop: Loop, socks: list[socket.socket]) -> None:
    ours, peer = socket.socketpair()
    pair = BufferPair(Reader(ours), Writer(ours))
    t, peer = make(loop, socks, pair=(ours, peer), buffers=pair)
    fill_kernel(t, pair.writer)
    peer.close()
    run_until(loop, lambda: "write_failed" in t.names())
    assert t.names() == ["write_failed"]
    assert isinstance(t.events[0][1], (BrokenPipeError, ConnectionResetError))
    assert loop.registered_fds() == 0  # writing stopped
    t.close_transport()


def test_send_now_raises_for_a_gone_peer(loop: Loop, socks: list[socket.socket]) -> None:
    ours, peer = socket.socketpair()
    pair = BufferPair(Reader(ours), Writer(ours))
    t, peer = make(loop, socks, pair=(ours, peer), buffers=pair)
    peer.close()
    pair.writer.write(b"x")
    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        t.send_now()
    t.close_transport()


def test_shutdown_write_half_closes(loop: Loop, socks: list[socket.socket]) -> None:
    t, peer = make(loop, socks)
    assert t.shutdown_write()
    peer.settimeout(SAFETY)
    assert peer.recv(10) == b""  # the peer sees EOF
    peer.sendall(b"still readable")
    t.start_reading()
    run_until(loop, lambda: bool(t.events))
    assert t.events == [("data", b"still readable")]
    t.close_transport()
    assert not t.shutdown_write()  # a closed socket refuses


# -- file bodies ----------------------------------------------------------------------------------


def _counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Count the calls of os.<name> (the real one still runs)."""
    calls: list[int] = []
    real = getattr(os, name)

    def wrapper(*args: Any) -> Any:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(os, name, wrapper)
    return calls


def _send_file_body(
    loop: Loop, t: Transport, writer: Writer, peer: socket.socket, path: Path
) -> tuple[bytes, int]:
    """Queue ``head|`` then bytes 10..size-10 of ``path``; returns what the peer got and the
    file's fd (closed by the transport once sent)."""
    content = path.read_bytes()
    body = content[10:-10]
    fd = os.open(path, os.O_RDONLY)
    done = loop.create_future()
    writer.write(b"head|")
    t.queue_file(fd, 10, len(body), True, done)
    assert t.output_pending() == 5 + len(body)
    received, join = drain_peer(peer, 5 + len(body))
    t.flush_output()
    run_until(loop, done.done)
    join()
    assert done.result() is None
    assert t.output_pending() == 0
    assert loop.registered_fds() == 0
    return bytes(received), fd


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "body.bin"
    path.write_bytes(os.urandom(3 * MiB + 123))
    return path


def test_file_body_with_sendfile(
    loop: Loop, socks: list[socket.socket], big_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, peer = socket.socketpair()
    pair = BufferPair(Reader(ours), Writer(ours))
    t, peer = make(loop, socks, pair=(ours, peer), buffers=pair)
    sendfiles = _counting(monkeypatch, "sendfile")
    preads = _counting(monkeypatch, "pread")
    got, fd = _send_file_body(loop, t, pair.writer, peer, big_file)
    assert got == b"head|" + big_file.read_bytes()[10:-10]
    assert sendfiles and not preads
    assert not fd_is_open(fd)  # close_fd=True: closed once sent
    t.close_transport()


class SubclassedSocket(socket.socket):
    """Not exactly socket.socket, as an SSLSocket is not: the transport may not sendfile()."""


def test_file_body_with_pread_and_send(
    loop: Loop, socks: list[socket.socket], big_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, peer = socket.socketpair()
    ours = SubclassedSocket(a.family, a.type, a.proto, a.detach())
    pair = BufferPair(Reader(ours), Writer(ours))
    t, peer = make(loop, socks, pair=(ours, peer), buffers=pair)
    sendfiles = _counting(monkeypatch, "sendfile")
    preads = _counting(monkeypatch, "pread")
    got, fd = _send_file_body(loop, t, pair.writer, peer, big_file)
    assert got == b"head|" + big_file.read_bytes()[10:-10]
    assert preads and not sendfiles
    assert not fd_is_open(fd)
    t.close_transport()


def test_file_body_falls_back_when_sendfile_refuses(
    loop: Loop, socks: list[socket.socket], big_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, peer = socket.socketpair()
    pair = BufferPair(Reader(ours), Writer(ours))
    t, peer = make(loop, socks, pair=(ours, peer), buffers=pair)
    refused: list[int] = []

    def refusing(*args: Any) -> int:
        refused.append(1)
        raise OSError(errno.EINVAL, "sendfile() refuses this file")

    monkeypatch.setattr(os, "sendfile", refusing)
    preads = _counting(monkeypatch, "pread")
    got, _ = _send_file_body(loop, t, pair.writer, peer, big_file)
    assert got == b"head|" + big_file.read_bytes()[10:-10]
    assert refused == [1] and preads  # asked once, then pread() + send() for the rest
    t.close_transport()


@pytest.mark.parametrize("use_sendfile", [True, False])
def test_a_file_that_shrank_is_an_error(
    loop: Loop, socks: list[socket.socket], tmp_path: Path, use_sendfile: bool
) -> None:
    a, peer = socket.socketpair()
    ours = a if use_sendfile else SubclassedSocket(a.family, a.type, a.proto, a.detach())
    t, peer = make(loop, socks, pair=(ours, peer))
    path = tmp_path / "short.bin"
    path.write_bytes(b"z" * 1000)
    fd = os.open(path, os.O_RDONLY)
    done = loop.create_future()
    t.queue_file(fd, 0, 2000, True, done)  # 1000 bytes more than there are
    with pytest.raises(OSError) as caught:
        t.flush_output()
    assert caught.value.errno == errno.EIO
    assert not done.done()
    t.close_transport()  # the queued file fails and its fd is closed
    assert isinstance(done.exception(), BrokenConnectionError)
    assert not fd_is_open(fd)


# -- leaving the loop -----------------------------------------------------------------------------


def test_detach_hands_over_the_same_buffers_and_unregisters(
    loop: Loop, socks: list[socket.socket]
) -> None:
    ours, peer = socket.socketpair()
    pair = BufferPair(Reader(ours), Writer(ours))
    t, peer = make(loop, socks, pair=(ours, peer), buffers=pair)
    pair.reader.feed(b"held")
    t.start_reading()
    pair.writer.write(b"buffered before the hijack")
    assert loop.registered_fds() == 1

    sock, handed = t.detach()

    assert sock is ours
    assert handed.reader is pair.reader and handed.writer is pair.writer
    assert loop.registered_fds() == 0
    assert sock.gettimeout() == 0.0  # still non-blocking: detach never waits
    assert handed.writer.buffered() == 0  # the kernel took it all before the hand-over (B7)
    peer.settimeout(SAFETY)
    assert peer.recv(100) == b"buffered before the hijack"
    assert handed.reader.take(-1) == b"held"  # held bytes stay held (B3)
    peer.sendall(b"after")
    for _ in range(3):
        loop.run_once(0.01)
    assert t.events == []  # the loop no longer reads it
    sock.setblocking(True)
    sock.settimeout(SAFETY)
    assert sock.recv(100) == b"after"


def test_detach_refuses_while_a_file_is_queued(
    loop: Loop, socks: list[socket.socket], tmp_path: Path
) -> None:
    t, _ = make(loop, socks)
    path = tmp_path / "f.bin"
    path.write_bytes(b"f" * 10)
    fd = os.open(path, os.O_RDONLY)
    done = loop.create_future()
    t.queue_file(fd, 0, 10, True, done)
    with pytest.raises(RuntimeError, match="sendfile"):
        t.detach()
    t.close_transport()
    assert isinstance(done.exception(), BrokenConnectionError)
    assert not fd_is_open(fd)


def test_close_transport_unregisters_and_fails_a_queued_file(
    loop: Loop, socks: list[socket.socket], tmp_path: Path
) -> None:
    ours, peer = socket.socketpair()
    pair = BufferPair(Reader(ours), Writer(ours))
    t, peer = make(loop, socks, pair=(ours, peer), buffers=pair)
    baseline = loop.registered_fds()
    path = tmp_path / "f.bin"
    path.write_bytes(b"f" * 10)
    fd = os.open(path, os.O_RDONLY)
    done = loop.create_future()
    t.start_reading()
    fill_kernel(t, pair.writer)  # registered for writability too
    t.queue_file(fd, 0, 10, True, done)  # behind the output that waits
    assert loop.registered_fds() == baseline + 1  # one fd: reader and writer
    t.close_transport()
    assert loop.registered_fds() == baseline
    assert ours.fileno() == -1
    assert isinstance(done.exception(), BrokenConnectionError)
    assert not fd_is_open(fd)
    assert pair.writer.buffered() > 0  # unsent output is left for the caller to judge
    for _ in range(3):
        loop.run_once(0.01)
    assert t.events == []


def test_detach_hands_over_what_the_kernel_does_not_take_without_waiting(
    loop: Loop, socks: list[socket.socket]
) -> None:
    """Issue 11, item 4: a peer that does not read. detach() sends what the kernel takes and
    hands the rest over in the writer, at once (it used to flush in blocking mode)."""
    ours, peer = socket.socketpair()
    pair = BufferPair(Reader(ours), Writer(ours))
    t, peer = make(loop, socks, pair=(ours, peer), buffers=pair)
    data = bytes(range(256)) * (16 << 10)  # 4 MiB: more than the socket buffers hold
    pair.writer.write(data)
    t.start_reading()
    started = time.monotonic()
    sock, handed = t.detach()
    assert time.monotonic() - started < 1.0
    left = handed.writer.buffered()
    assert 0 < left < len(data)
    sock.setblocking(True)
    sock.settimeout(SAFETY)
    received = bytearray()
    peer.settimeout(SAFETY)

    def drain() -> None:
        while len(received) < len(data):
            received.extend(peer.recv(1 << 20))

    reader = threading.Thread(target=drain)
    reader.start()
    handed.writer.flush()  # blocking now: the rest, in order
    reader.join(SAFETY)
    assert bytes(received) == data
