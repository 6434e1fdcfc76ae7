"""reactor.stream.Stream over real sockets: a socketpair (or a loopback TCP pair) where one end
is wrapped like a hijacked connection (a BufferPair with held bytes fed in) and the other end is
the peer, driven from the test or from a thread. Every loop run is bounded by a safety timer and
every thread join by a timeout, so a failing test fails instead of hanging.
"""

from __future__ import annotations

import gc
import os
import socket
import struct
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from reactor.buffers import BufferPair, Reader, Writer
from reactor.errors import BrokenConnectionError, ConnectionClosedError, LimitExceeded
from reactor.loop import BACKENDS, SelectorLoop, new_loop
from reactor.stream import IncompleteReadError, LineTooLongError, Stream, StreamClosed

SAFETY = 5.0  # seconds any single loop run may take before the test fails


@pytest.fixture
def loop() -> Iterator[SelectorLoop]:
    lp = SelectorLoop()
    yield lp
    lp.close()


@pytest.fixture
def peers() -> Iterator[list[socket.socket]]:
    """Sockets a test created; closed at the end whatever happened."""
    socks: list[socket.socket] = []
    yield socks
    for s in socks:
        s.close()


def make_stream(
    loop: SelectorLoop,
    peers: list[socket.socket],
    held: bytes = b"",
    pair: tuple[socket.socket, socket.socket] | None = None,
    **kwargs: Any,
) -> tuple[Stream, socket.socket]:
    ours, peer = pair if pair is not None else socket.socketpair()
    peers.extend((ours, peer))
    reader = Reader(ours)
    if held:
        reader.feed(held)  # what a hijack hands over
    stream = Stream(loop, ours, BufferPair(reader, Writer(ours)), **kwargs)
    return stream, peer


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return server, client


def run(loop: SelectorLoop, coro: Coroutine[Any, Any, Any]) -> Any:
    """run_until_complete, but a stuck coroutine fails the test after SAFETY seconds."""
    safety = loop.call_later(SAFETY, loop.stop)
    try:
        return loop.run_until_complete(coro)
    finally:
        safety.cancel()


def run_for(loop: SelectorLoop, seconds: float) -> None:
    loop.call_later(seconds, loop.stop)
    loop.run()


def send_later(
    peer: socket.socket, chunks: list[bytes], delay: float, close: bool
) -> Callable[[], None]:
    """Send ``chunks`` from a thread, ``delay`` apart; returns a join function."""

    def target() -> None:
        for chunk in chunks:
            time.sleep(delay)
            peer.sendall(chunk)
        if close:
            peer.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def join() -> None:
        thread.join(SAFETY)
        assert not thread.is_alive()

    return join


# -- construction -------------------------------------------------------------------------------


def test_stream_makes_the_socket_non_blocking(
    loop: SelectorLoop, peers: list[socket.socket]
) -> None:
    stream, _ = make_stream(loop, peers)
    assert stream.socket.gettimeout() == 0.0
    assert (stream.high_water, stream.low_water) == (64 * 1024, 16 * 1024)
    assert loop.registered_fds() == 0  # nothing registered before anyone reads or writes
    stream.close()


def test_bad_water_marks_are_refused(loop: SelectorLoop, peers: list[socket.socket]) -> None:
    with pytest.raises(
        ValueError, match=r"low_water \(10\) must be between 0 and high_water \(5\)"
    ):
        make_stream(loop, peers, high_water=5, low_water=10)


# -- reads ----------------------------------------------------------------------------------------


def test_held_bytes_come_first_then_socket_bytes_in_order(
    loop: SelectorLoop, peers: list[socket.socket]
) -> None:
    stream, peer = make_stream(loop, peers, held=b"held-bytes|")
    peer.sendall(b"socket-1|")  # already in the kernel before the first read

    async def main() -> list[bytes]:
        got = [await stream.read(4), await stream.read(100)]
        join = send_later(peer, [b"socket-2|", b"socket-3"], 0.01, close=True)
        got.append(await stream.read())
        join()
        return got

    got = run(loop, main())
    # read(n) serves held bytes without touching the socket, even when the socket has data.
    assert got[:2] == [b"held", b"-bytes|"]
    assert got[2] == b"socket-1|socket-2|socket-3"
    assert stream.at_eof()
    stream.close()


def test_read_n_returns_between_one_and_n_bytes(
    loop: SelectorLoop, peers: list[socket.socket]
) -> None:
    stream, peer = make_stream(loop, peers, held=b"0123456789")
    payload = os.urandom(50_000)
    join = send_later(
        peer, [payload[i : i + 7000] for i in range(0, len(payload), 7000)], 0.002, True
    )

    async def main() -> list[bytes]:
        parts = []
        while chunk := await stream.read(3000):
            parts.append(chunk)
        return parts

    parts = run(loop, main())
    join()
    assert all(1 <= len(p) <= 3000 for p in parts)
    assert b"".join(parts) == b"0123456789" + payload
    assert stream.at_eof()
    stream.close()


def test_read_zero_returns_nothing_and_reads_nothing(
    loop: SelectorLoop, peers: list[socket.socket]
) -> None:
    stream, _ = make_stream(loop, peers, held=b"x")
    assert run(loop, stream.read(0)) == b""
    assert run(loop, stream.read(1)) == b"x"
    stream.close()


def test_readexactly_across_many_chunks(loop: SelectorLoop, peers: list[socket.socket]) -> None:
    stream, peer = make_stream(loop, peers, held=b"HEAD")
    payload = os.urandom(200_000)
    chunks = [payload[i : i + 997] for i in range(0, len(payload), 997)]
    join = send_later(peer, chunks, 0.0005, close=False)

    async def main() -> tuple[bytes, bytes, bytes]:
        first = await stream.readexactly(2)
        body = await stream.readexactly(2 + 150_000)
        rest = await stream.readexactly(50_000)
        return first, body, rest

    first, body, rest = run(loop, main())
    join()
    assert first == b"HE"
    assert body == b"AD" + payload[:150_000]
    assert rest == payload[150_000:]
    assert run(loop, stream.readexactly(0)) == b""
    assert not stream.at_eof()
    stream.close()


def test_readexactly_early_eof_names_expected_and_got(
    loop: SelectorLoop, peers: list[socket.socket]
) -> None:
    stream, peer = make_stream(loop, peers, held=b"abc")
    join = send_later(peer, [b"de"], 0.01, close=True)

    async def main() -> IncompleteReadError:
        with pytest.raises(IncompleteReadError) as info:
            await stream.readexactly(10)
        return info.value

    error = run(loop, main())
    join()
    assert isinstance(error, BrokenConnectionError)
    assert error.partial == b"abcde"
    assert error.expected == 10
    assert "expected 10, got 5" in str(error)
    assert stream.at_eof()
    assert run(loop, stream.read()) == b""
    stream.close()


def test_readline_lines_then_partial_then_eof(
    loop: SelectorLoop, peers: list[socket.socket]
) -> None:
    stream, peer = make_stream(loop, peers, held=b"first\nsec")
    join = send_later(peer, [b"on", b"d\nthi", b"rd"], 0.005, close=True)

    async def main() -> list[bytes]:
        return [await stream.readline() for _ in range(4)]

    lines = run(loop, main())
    join()
    assert lines == [b"first\n", b"second\n", b"third", b""]
    assert stream.at_eof()
    stream.close()


def test_readline_limit(loop: SelectorLoop, peers: list[socket.socket]) -> None:
    stream, peer = make_stream(loop, peers, held=b"abcd\n" + b"x" * 20)

    async def main() -> tuple[bytes, LineTooLongError, bytes]:
        exact = await stream.readline(limit=5)  # 5 bytes with the newline: allowed
        with pytest.raises(LineTooLongError) as info:
            await stream.readline(limit=10)
        kept = await stream.readexactly(20)  # the too-long line was not consumed
        return exact, info.value, kept

    exact, error, kept = run(loop, main())
    assert exact == b"abcd\n"
    assert isinstance(error, LimitExceeded)
    assert "limit of 10 bytes" in str(error)
    assert kept == b"x" * 20

    # The limit also holds when the line arrives in pieces from the socket.
    join = send_later(peer, [b"y" * 30, b"y" * 30, b"\n"], 0.005, close=False)

    async def long_line() -> None:
        await stream.readline(limit=50)

    with pytest.raises(LineTooLongError, match="limit of 50 bytes"):
        run(loop, long_line())
    join()
    stream.close()


def test_readline_without_limit(loop: SelectorLoop, peers: list[socket.socket]) -> None:
    stream, peer = make_stream(loop, peers)
    line = b"z" * 300_000 + b"\n"
    join = send_later(peer, [line[:100_000], line[100_000:] + b"tail"], 0.005, close=True)

    async def main() -> tuple[bytes, bytes]:
        return await stream.readline(limit=-1), await stream.readline(limit=-1)

    assert run(loop, main()) == (line, b"tail")
    join()
    stream.close()


def test_read_to_eof_and_at_eof(loop: SelectorLoop, peers: list[socket.socket]) -> None:
    stream, peer = make_stream(loop, peers, held=b"held")
    payload = os.urandom(300_000)
    join = send_later(peer, [payload[:100_000], payload[100_000:]], 0.005, close=True)
    assert not stream.at_eof()
    assert run(loop, stream.read(-1)) == b"held" + payload
    join()
    assert stream.at_eof()
    assert run(loop, stream.read(-1)) == b""
    assert run(loop, stream.read(5)) == b""
    assert loop.registered_fds() == 0  # reading is not registered once nobody waits
    stream.close()


def test_at_eof_is_false_while_held_bytes_remain(
    loop: SelectorLoop, peers: list[socket.socket]
) -> None:
    stream, peer = make_stream(loop, peers, held=b"ab")
    peer.shutdown(socket.SHUT_WR)
    assert run(loop, stream.readexactly(1)) == b"a"
    with pytest.raises(IncompleteReadError):
        run(loop, stream.readexactly(2))  # consumes b"b" and sees EOF
    assert stream.at_eof()
    stream.close()


def test_only_one_reader_at_a_time(loop: SelectorLoop, peers: list[socket.socket]) -> None:
    stream, peer = make_stream(loop, peers)

    async def main() -> bytes:
        first = loop.spawn(stream.read(10))
        await loop.sleep(0.01)
        with pytest.raises(RuntimeError, match="already waiting to read"):
            await stream.read(10)
        peer.sendall(b"data")
        return await first

    assert run(loop, main()) == b"data"
    stream.close()


def test_a_cancelled_read_loses_no_bytes(loop: SelectorLoop, peers: list[socket.socket]) -> None:
    stream, peer = make_stream(loop, peers)

    async def main() -> tuple[bool, bytes]:
        reading = loop.spawn(stream.read(10))
        await loop.sleep(0.01)
        reading.cancel()
        await loop.sleep(0.01)
        peer.sendall(b"kept")
        await loop.sleep(0.01)
        return reading.cancelled(), await stream.read(10)

    assert run(loop, main()) == (True, b"kept")
    assert loop.registered_fds() == 0
    stream.close()


def test_connection_reset_is_a_broken_connection(
    loop: SelectorLoop, peers: list[socket.socket]
) -> None:
    stream, peer = make_stream(loop, peers, held=b"held", pair=tcp_pair())
    # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()

    async def main() -> bytes:
        held = await stream.read()  # held bytes still come first
        with pytest.raises(BrokenConnectionError, match="broke"):
            await stream.read()
        return held

    assert run(loop, main()) == b"held"
    with pytest.raises(BrokenConnectionError):
        stream.write(b"x")
    stream.close()


# -- writes ---------------------------------------------------------------------------------------


def test_output_buffered_before_the_hijack_goes_first(
    loop: SelectorLoop, peers: list[socket.socket]
) -> None:
    ours, peer = socket.socketpair()
    peers.extend((ours, peer))
    writer = Writer(ours)
    writer.write(b"pending|")
    stream = Stream(loop, ours, BufferPair(Reader(ours), writer))
    stream.write(b"new")

    async def flushed() -> None:
        while stream.write_buffered():
            await loop.sleep(0.001)

    run(loop, flushed())
    peer.settimeout(SAFETY)
    assert peer.recv(100) == b"pending|new"
    assert loop.registered_fds() == 0  # the writer is unregistered once all is sent
    stream.close()


def test_write_and_drain_with_a_slow_reader(loop: SelectorLoop, peers: list[socket.socket]) -> None:
    stream, peer = make_stream(loop, peers)
    payload = os.urandom(4 * 1024 * 1024)
    received = bytearray()
    peer.settimeout(SAFETY)

    def slow_reader() -> None:
        while True:
            chunk = peer.recv(32 * 1024)
            if not chunk:
                return
            received.extend(chunk)
            time.sleep(0.0005)

    thread = threading.Thread(target=slow_reader, daemon=True)
    thread.start()
    stats = {"max_buffered": 0, "waited": 0, "after_wait_max": 0}

    async def main() -> None:
        for i in range(0, len(payload), 16 * 1024):
            stream.write(payload[i : i + 16 * 1024])
            stats["max_buffered"] = max(stats["max_buffered"], stream.write_buffered())
            if stream.write_buffered() > stream.high_water:
                stats["waited"] += 1
                await stream.drain()
                stats["after_wait_max"] = max(stats["after_wait_max"], stream.write_buffered())
            else:
                await stream.drain()  # returns at once
            assert stream.write_buffered() <= stream.high_water
        while stream.write_buffered():
            await loop.sleep(0.001)

    run(loop, main())
    stream.close()  # EOF for the reading thread
    thread.join(SAFETY)
    assert not thread.is_alive()
    assert stats["max_buffered"] > stream.high_water
    assert stats["waited"] > 0
    # A wait ends at the low-water mark (a few bytes may be written between wakeup and resume,
    # but never more than what the kernel took in one send).
    assert stats["after_wait_max"] <= stream.low_water
    assert bytes(received) == payload


def test_drain_is_immediate_below_high_water(
    loop: SelectorLoop, peers: list[socket.socket]
) -> None:
    stream, _ = make_stream(loop, peers)
    stream.write(b"small")
    drain = stream.drain()
    with pytest.raises(StopIteration):  # finished on its first step: no loop pass needed
        drain.send(None)
    stream.close()
    with pytest.raises(StreamClosed):
        run(loop, stream.drain())
    with pytest.raises(StreamClosed):
        stream.write(b"more")


def test_write_to_a_gone_peer_is_a_broken_connection(
    loop: SelectorLoop, peers: list[socket.socket]
) -> None:
    stream, peer = make_stream(loop, peers)
    peer.close()
    with pytest.raises(BrokenConnectionError, match="broke"):
        stream.write(b"x" * 1000)
    with pytest.raises(BrokenConnectionError, match="broke"):
        run(loop, stream.drain())
    stream.close()


def test_drain_fails_when_the_peer_goes_away_while_waiting(
    loop: SelectorLoop, peers: list[socket.socket]
) -> None:
    stream, peer = make_stream(loop, peers, high_water=1024, low_water=0)

    async def main() -> None:
        stream.write(b"x" * (4 * 1024 * 1024))  # far more than the kernel buffers
        loop.call_later(0.02, peer.close)
        await stream.drain()

    with pytest.raises(BrokenConnectionError):
        run(loop, main())
    stream.close()
    assert loop.registered_fds() == 0


# -- closing and memory ---------------------------------------------------------------------------


def test_close_unregisters_and_fails_waiters(
    loop: SelectorLoop, peers: list[socket.socket]
) -> None:
    baseline = loop.registered_fds()
    stream, _ = make_stream(loop, peers, high_water=1024, low_water=0)

    async def main() -> tuple[BaseException | None, BaseException | None]:
        reading = loop.spawn(stream.read())
        stream.write(b"x" * (4 * 1024 * 1024))  # no one reads the peer: output stays buffered
        draining = loop.spawn(stream.drain())
        await loop.sleep(0.01)
        assert loop.registered_fds() == baseline + 1  # one fd, reader and writer
        assert stream.is_reading()
        stream.close()
        assert loop.registered_fds() == baseline
        stream.close()  # idempotent
        with pytest.raises(StreamClosed):
            await reading
        with pytest.raises(StreamClosed):
            await draining
        return reading.exception(), draining.exception()

    read_error, drain_error = run(loop, main())
    assert isinstance(read_error, ConnectionClosedError)
    assert isinstance(drain_error, ConnectionClosedError)
    assert stream.is_closed() and stream.at_eof()
    assert stream.socket.fileno() == -1
    with pytest.raises(StreamClosed):
        run(loop, stream.read())


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_socket_closed_under_the_stream_is_still_unregistered(
    backend: str, peers: list[socket.socket]
) -> None:
    """A user closed ``stream.socket`` (its fileno() is -1 from then on) while the stream was
    registered: ``close()`` and ``pause_reading()`` still remove the registration."""
    lp = new_loop(backend)
    try:
        stream, _ = make_stream(lp, peers)  # type: ignore[arg-type]

        async def awaiting() -> None:
            reading = lp.spawn(stream.read())
            stream.write(b"x" * (8 * 1024 * 1024))  # no one reads the peer: output waits
            await lp.sleep(0.01)
            assert lp.registered_fds() == 1  # one fd, reader and writer
            stream.socket.close()
            stream.close()
            assert lp.registered_fds() == 0
            with pytest.raises(StreamClosed):
                await reading

        lp.run_until_complete(awaiting())

        stream, _ = make_stream(lp, peers)  # type: ignore[arg-type]

        async def protocol() -> None:
            stream.set_protocol(lambda data: None)
            await lp.sleep(0.01)
            assert stream.is_reading() and lp.registered_fds() == 1
            stream.socket.close()
            stream.pause_reading()
            assert not stream.is_reading() and lp.registered_fds() == 0
            stream.close()

        lp.run_until_complete(protocol())
    finally:
        lp.close()


def _assert_freed(ref: weakref.ref[Stream]) -> None:
    assert ref() is None, gc.get_referrers(ref())


def test_stream_is_freed_after_close_without_the_cyclic_collector(
    loop: SelectorLoop, peers: list[socket.socket]
) -> None:
    gc.collect()
    gc.disable()
    try:
        # 1. Awaitable use: reads, writes, a wait interrupted by close().
        stream, peer = make_stream(loop, peers, held=b"held\n")
        peer.sendall(b"line\nmore")

        async def use(s: Stream) -> None:
            await s.readline()
            await s.readline()
            await s.readexactly(2)
            s.write(b"reply")
            await s.drain()
            waiting = loop.spawn(s.read())
            await loop.sleep(0.005)
            s.close()
            await loop.sleep(0)
            # Checked without re-raising it here: re-raising a task's stored exception in this
            # frame would make a cycle (exception -> traceback -> this frame -> task) that has
            # nothing to do with the stream.
            assert isinstance(waiting.exception(), StreamClosed)

        run(loop, use(stream))
        ref = weakref.ref(stream)
        del stream
        _assert_freed(ref)

        # 2. A protocol whose callbacks reference the stream, closed before its start ran.
        stream, peer = make_stream(loop, peers, held=b"held")

        class Echo:
            def __init__(self, s: Stream) -> None:
                self.stream = s

            def on_data(self, data: bytes) -> None:
                self.stream.write(data)

        echo = Echo(stream)
        stream.set_protocol(echo.on_data, lambda: None)
        stream.close()
        ref = weakref.ref(stream)
        del stream, echo
        _assert_freed(ref)

        # 3. A running protocol that received data and paused, then closed from on_eof.
        stream, peer = make_stream(loop, peers, held=b"held")
        got: list[bytes] = []

        def on_eof() -> None:
            ref_stream = ref()
            assert ref_stream is not None
            ref_stream.close()
            loop.stop()

        ref = weakref.ref(stream)
        stream.set_protocol(got.append, on_eof)
        peer.sendall(b"data")
        peer.shutdown(socket.SHUT_WR)
        del stream
        safety = loop.call_later(SAFETY, loop.stop)
        loop.run()  # the loop's registration is what keeps the stream alive meanwhile
        safety.cancel()
        assert b"".join(got) == b"helddata"
        _assert_freed(ref)
        assert loop.registered_fds() == 0

        # 4. A connection reset: the stored error must not hold the frame that caught it.
        stream, peer = make_stream(loop, peers, held=b"held", pair=tcp_pair())
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()

        async def broken(s: Stream) -> int:
            errors = 0
            await s.read()
            try:
                await s.read()
            except BrokenConnectionError:
                errors += 1
            try:
                s.write(b"x")
            except BrokenConnectionError:
                errors += 1
            try:
                await s.drain()
            except BrokenConnectionError:
                errors += 1
            return errors

        assert run(loop, broken(stream)) == 3
        stream.close()
        ref = weakref.ref(stream)
        del stream
        _assert_freed(ref)
    finally:
        gc.enable()


# -- the callback (protocol) form ---------------------------------------------------------------


def test_protocol_gets_held_bytes_first_then_data_then_eof(
    loop: SelectorLoop, peers: list[socket.socket]
) -> None:
    stream, peer = make_stream(loop, peers, held=b"held|")
    # Already in the kernel: readable on the very first pass, before queued callbacks run.
    peer.sendall(b"early|")
    chunks: list[bytes] = []
    eofs: list[bool] = []

    def on_eof() -> None:
        eofs.append(True)
        loop.stop()

    stream.set_protocol(chunks.append, on_eof)
    assert chunks == []  # delivery starts on the next loop pass, never inside set_protocol
    with pytest.raises(RuntimeError, match="protocol is set"):
        run(loop, stream.read())
    join = send_later(peer, [b"late-1|", b"late-2"], 0.01, close=True)
    safety = loop.call_later(SAFETY, loop.stop)
    loop.run()
    safety.cancel()
    join()
    assert chunks[0] == b"held|"
    assert b"".join(chunks) == b"held|early|late-1|late-2"
    assert eofs == [True]
    assert not stream.is_reading()
    stream.close()


def test_protocol_set_after_eof_gets_held_bytes_then_eof(
    loop: SelectorLoop, peers: list[socket.socket]
) -> None:
    stream, peer = make_stream(loop, peers, held=b"ab")
    peer.shutdown(socket.SHUT_WR)
    with pytest.raises(IncompleteReadError):
        run(loop, stream.readexactly(3))  # reaches EOF, consumes the held bytes
    stream, peer = make_stream(loop, peers, held=b"xy")
    peer.sendall(b"z")
    peer.shutdown(socket.SHUT_WR)
    assert run(loop, stream.read(1)) == b"x"
    events: list[object] = []
    stream.set_protocol(events.append, lambda: events.append("eof"))
    run_for(loop, 0.05)
    assert events == [b"y", b"z", "eof"]
    stream.close()


def test_pause_and_resume_reading(loop: SelectorLoop, peers: list[socket.socket]) -> None:
    stream, peer = make_stream(loop, peers, held=b"held")
    chunks: list[bytes] = []

    def on_data(data: bytes) -> None:
        chunks.append(data)
        stream.pause_reading()

    stream.set_protocol(on_data)
    peer.sendall(b"one")
    run_for(loop, 0.05)
    assert chunks == [b"held"]  # paused by the first delivery: the socket is not read
    assert not stream.is_reading()
    assert loop.registered_fds() == 0

    stream.resume_reading()
    run_for(loop, 0.05)
    assert chunks == [b"held", b"one"]
    peer.sendall(b"two")
    run_for(loop, 0.05)
    assert chunks == [b"held", b"one"]  # paused again by on_data

    stream.resume_reading()
    stream.resume_reading()  # resuming twice is harmless
    run_for(loop, 0.05)
    assert chunks == [b"held", b"one", b"two"]
    stream.close()
    stream.resume_reading()  # after close: nothing happens
    assert loop.registered_fds() == 0


def test_paused_before_the_protocol_starts_delivers_nothing(
    loop: SelectorLoop, peers: list[socket.socket]
) -> None:
    stream, peer = make_stream(loop, peers, held=b"held")
    peer.sendall(b"data")
    chunks: list[bytes] = []
    stream.pause_reading()
    stream.set_protocol(chunks.append)
    run_for(loop, 0.03)
    assert chunks == []
    stream.resume_reading()
    run_for(loop, 0.03)
    assert b"".join(chunks) == b"helddata"
    assert chunks[0] == b"held"
    stream.close()


def test_set_protocol_refused_while_a_task_reads(
    loop: SelectorLoop, peers: list[socket.socket]
) -> None:
    stream, peer = make_stream(loop, peers)

    async def main() -> bytes:
        reading = loop.spawn(stream.read(10))
        await loop.sleep(0.01)
        with pytest.raises(RuntimeError, match="waiting to read"):
            stream.set_protocol(lambda data: None)
        peer.sendall(b"ok")
        return await reading

    assert run(loop, main()) == b"ok"
    stream.close()
    with pytest.raises(StreamClosed):
        stream.set_protocol(lambda data: None)


def test_aclose_sends_everything_then_closes(
    loop: SelectorLoop, peers: list[socket.socket]
) -> None:
    """close() after drain() may drop output below the high-water mark; flush()/aclose()
    wait until the kernel has taken every byte."""
    stream, peer = make_stream(loop, peers)
    payload = os.urandom(3 * 1024 * 1024)
    received = bytearray()
    peer.settimeout(SAFETY)

    def reader() -> None:
        while True:
            chunk = peer.recv(65536)
            if not chunk:
                return
            received.extend(chunk)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()

    async def main() -> None:
        stream.write(payload)
        assert stream.write_buffered() > 0
        await stream.aclose()

    run(loop, main())
    thread.join(SAFETY)
    assert stream.is_closed()
    assert bytes(received) == payload


def test_write_eof_half_closes_after_the_output(
    loop: SelectorLoop, peers: list[socket.socket]
) -> None:
    stream, peer = make_stream(loop, peers)
    payload = os.urandom(2 * 1024 * 1024)
    received = bytearray()
    peer.settimeout(SAFETY)

    def reader() -> None:
        while True:
            chunk = peer.recv(65536)
            if not chunk:
                break
            received.extend(chunk)
        peer.sendall(b"reply after eof")

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()

    async def main() -> bytes:
        stream.write(payload)
        stream.write_eof()
        with pytest.raises(StreamClosed):
            stream.write(b"more")
        await stream.flush()
        return await stream.readexactly(len(b"reply after eof"))

    assert run(loop, main()) == b"reply after eof"
    thread.join(SAFETY)
    assert bytes(received) == payload
    stream.close()
