"""Supervisor: pre-forked worker processes for ``reactor serve --workers N``.

Owns forking N workers that share the listening sockets made before the fork, the status pipe
of each (the worker writes ``1`` once it serves, ``.`` as its loop's heartbeat, ``r`` when it
retires by itself), restarting a worker that dies, killing one whose heartbeat stopped (its
loop is blocked) and the signals, with gunicorn's meanings: TERM and INT stop every worker
gracefully (each drains its in-flight requests for up to ``graceful_timeout`` seconds, then
the supervisor kills what is left; a second one stops them at once), QUIT stops them at once;
HUP calls ``reload`` (the app is imported afresh, in the supervisor, so a broken deploy is
refused while the old workers keep serving) and replaces the workers one by one, starting
each replacement and waiting until it serves before stopping the worker it replaces; USR1
calls ``reopen_logs`` and passes USR1 on to every worker; TTIN adds a worker, TTOU retires
one. With ``watch`` (``--reload``), a changed source file does what HUP does.

All workers accept from the same listening sockets, so a worker that stops accepting leaves
the queued connections to the others and a rolling restart drops nothing. (Separate
SO_REUSEPORT sockets per worker would spread connections more evenly, but Linux resets the
connections queued on a socket when its worker closes it, unless net.ipv4.tcp_migrate_req is
set.) It must not know HTTP: a worker is a function ``run_worker(parent_pid, link)``, and
``link`` (a WorkerLink) is how it talks back.
Tests: tests/integration/test_workers.py, test_worker_signals.py.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Supervisor", "WorkerLink"]

log = logging.getLogger("reactor.workers")


class WorkerLink:
    """A worker's end of its status pipe. Call it (``link(*_)``) once the worker serves;
    ``heartbeat()`` from a loop timer (with ``worker_timeout``, a worker that has not beaten
    for that long is killed: its loop is blocked); ``retire()`` before stopping by itself (the
    supervisor starts its replacement at once and does not count it as a death). Writes never
    block and never fail: a full pipe or a gone supervisor only loses the byte."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __call__(self, *_args: Any) -> None:
        self._send(STATUS_READY)

    def heartbeat(self) -> None:
        self._send(STATUS_BEAT)

    def retire(self) -> None:
        self._send(STATUS_RETIRING)

    def _send(self, byte: bytes) -> None:
        try:
            os.write(self.fd, byte)
        except OSError:  # BlockingIOError (the supervisor is behind), BrokenPipeError (gone)
            pass


STATUS_READY = b"1"
STATUS_BEAT = b"."
STATUS_RETIRING = b"r"

#: ``run_worker(parent_pid, link)`` serves until it is told to stop; it calls ``link()`` once
#: it serves. Its return value is ignored; the worker then exits with status 0.
RunWorker = Callable[[int, WorkerLink], object]

#: Seconds a new worker gets to say it is ready before it is considered failed.
START_TIMEOUT = 30.0
#: Seconds INT/QUIT give workers to close before they are killed.
FAST_STOP_SECONDS = 3.0
#: A worker that dies within this many seconds of its start counts as a failed start;
#: restarts are then delayed, longer each time, up to MAX_RESTART_DELAY.
QUICK_DEATH_SECONDS = 1.0
MAX_RESTART_DELAY = 5.0

_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGCHLD,
    signal.SIGUSR1,
    signal.SIGTTIN,
    signal.SIGTTOU,
)


@dataclass
class Worker:
    pid: int
    status_fd: int  # the read end of its status pipe; -1 once it closed
    started: float
    ready: bool = False
    retiring: bool = False  # told to stop, or stopping by itself: its exit is expected
    last_seen: float = 0.0  # when it last wrote to its status pipe
    kill_at: float = float("inf")  # a retiring worker is killed if it has not exited by then


@dataclass
class _Stats:
    started: int = 0
    restarted: int = 0
    replaced: int = 0
    killed: int = 0
    recycled: int = 0
    timed_out: int = 0
    exits: list[int] = field(default_factory=list)


class Supervisor:
    """Runs ``count`` workers until a stopping signal; ``run(ready)`` returns the exit status
    (0 after SIGTERM/SIGINT/SIGQUIT) and calls ``ready()`` once every worker serves."""

    def __init__(
        self,
        count: int,
        run_worker: RunWorker,
        *,
        graceful_timeout: float,
        worker_timeout: float | None = None,
        reload: Callable[[], object] | None = None,
        reopen_logs: Callable[[], object] | None = None,
        watch: Callable[[], str | None] | None = None,
    ) -> None:
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        self.count = count
        self.run_worker = run_worker
        self.graceful_timeout = graceful_timeout
        #: Seconds a serving worker may go without a heartbeat before it is killed (None: off).
        self.worker_timeout = worker_timeout
        #: Called on SIGHUP before the workers are replaced; an exception cancels the reload.
        self.reload = reload
        #: Called on SIGUSR1 (the workers get SIGUSR1 too).
        self.reopen_logs = reopen_logs
        #: ``--reload``: called about once a second; a reason (a changed file) reloads as
        #: SIGHUP does.
        self.watch = watch
        self.workers: dict[int, Worker] = {}
        self.stats = _Stats()
        self._pending: list[int] = []
        self._wake_r = -1
        self._wake_w = -1
        self._stopping: str | None = None
        self._stop_deadline = 0.0
        self._rolling: list[int] = []  # pids still to replace in a rolling restart
        self._replacing: tuple[int, int] | None = None  # (old pid, new pid) in progress
        self._quick_deaths = 0
        self._restart_at = 0.0
        self._announced = False
        self._deaths_to_replace = 0  # workers that died and whose replacement is a restart
        self._watched_at = 0.0

    # -- running ---------------------------------------------------------------------------

    def run(self, ready: Callable[[], object]) -> int:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        previous_fd = signal.set_wakeup_fd(self._wake_w)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _SIGNALS}
        try:
            for _ in range(self.count):
                self._spawn()
            deadline = time.monotonic() + START_TIMEOUT
            while not self._stopping:
                # Until the workers are up, wake at the start deadline; after it, once a second
                # (the deadline is in the past by then and would make the wait zero: a spin).
                wait = 1.0 if self._announced else deadline - time.monotonic()
                self._pump(min(1.0, max(0.0, wait)))
                if not self._announced and self._all_ready():
                    self._announced = True
                    log.info("%d workers ready: %s", self.count, self._pids())
                    ready()
                if not self._announced and time.monotonic() > deadline:
                    log.error("workers did not start within %.0fs", START_TIMEOUT)
                    self._begin_stop("start failure", signal.SIGKILL, 0.0)
                    return self._finish(1)
            return self._finish(0)
        finally:
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _finish(self, status: int) -> int:
        """Wait for every worker to exit (killing them at the stop deadline)."""
        killed = False
        while self.workers:
            remaining = self._stop_deadline - time.monotonic()
            if remaining <= 0 and not killed:
                for pid in list(self.workers):
                    log.warning("worker %d did not stop in time; killing it", pid)
                    self._kill(pid, signal.SIGKILL)
                    self.stats.killed += 1
                killed = True
            readable = self._wait_events(0.1 if killed else min(0.5, max(0.0, remaining)))
            for worker in list(self.workers.values()):
                if worker.status_fd >= 0 and worker.status_fd in readable:
                    self._on_status(worker)
            self._reap()
            pending, self._pending = self._pending, []
            for signum in pending:
                if signum != signal.SIGCHLD:
                    self._handle_signal(signum)
        return status

    def summary(self) -> str:
        s = self.stats
        return (
            f"{s.started} worker(s) started, {s.restarted} restarted after dying, "
            f"{s.replaced} replaced by SIGHUP/--reload, "
            f"{s.recycled} recycled after --max-requests, "
            f"{s.timed_out} killed for missing heartbeats, {s.killed} killed at the deadline"
        )

    # -- events ----------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: object) -> None:
        self._pending.append(signum)

    def _wait_events(self, timeout: float) -> list[int]:
        fds = [self._wake_r] + [w.status_fd for w in self.workers.values() if w.status_fd >= 0]
        try:
            readable, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:
            readable = []
        if self._wake_r in readable:
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
        return readable

    def _pump(self, timeout: float) -> None:
        readable = self._wait_events(timeout)
        for worker in list(self.workers.values()):
            if worker.status_fd >= 0 and worker.status_fd in readable:
                self._on_status(worker)
        self._reap()
        pending, self._pending = self._pending, []
        for signum in pending:
            self._handle_signal(signum)
        if self._stopping:
            return
        self._check_heartbeats()
        now = time.monotonic()
        if self.watch is not None and self._announced and now - self._watched_at >= 0.5:
            self._watched_at = now
            reason = self.watch() if not self._rolling and self._replacing is None else None
            if reason is not None:
                log.info("%s changed: reloading", reason)
                self._on_hup()
        self._advance_rolling()
        live = len(self.workers) - self._retiring_count()
        if live < self.count and time.monotonic() >= self._restart_at:
            self._spawn()
            if self._deaths_to_replace:
                self._deaths_to_replace -= 1
                self.stats.restarted += 1

    def _on_status(self, worker: Worker) -> None:
        try:
            data = os.read(worker.status_fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # it exited (or closed the pipe): _reap will see it
            os.close(worker.status_fd)
            worker.status_fd = -1
            return
        worker.last_seen = time.monotonic()
        if STATUS_READY in data and not worker.ready:
            worker.ready = True
            self._quick_deaths = 0
            log.info("worker %d serving", worker.pid)
        if STATUS_RETIRING in data and not worker.retiring:
            # It reached --max-requests and drains: its replacement starts now (_pump).
            self._retire(worker)
            self.stats.recycled += 1
            log.info("worker %d retiring after its requests; starting another", worker.pid)

    def _check_heartbeats(self) -> None:
        now = time.monotonic()
        for pid, worker in list(self.workers.items()):
            if worker.retiring and now >= worker.kill_at:
                log.warning("worker %d did not stop within the graceful timeout; killing it", pid)
                self._kill(pid, signal.SIGKILL)
                worker.kill_at = float("inf")
                self.stats.killed += 1
                continue
            timeout = self.worker_timeout
            if timeout is None or not worker.ready or worker.retiring:
                continue
            if now - worker.last_seen > timeout:
                log.error(
                    "worker %d sent no heartbeat for %.1fs (its loop is blocked); killing it",
                    pid,
                    now - worker.last_seen,
                )
                self._kill(pid, signal.SIGKILL)
                self.stats.timed_out += 1
                worker.last_seen = float("inf")  # once; _reap replaces it

    def _handle_signal(self, signum: int) -> None:
        if signum == signal.SIGCHLD:
            return  # reaped in _pump
        name = signal.Signals(signum).name
        if signum == signal.SIGUSR1:
            log.info("SIGUSR1: reopening log files (and telling %d worker(s))", len(self.workers))
            if self.reopen_logs is not None:
                self.reopen_logs()
            for pid in self.workers:
                self._kill(pid, signal.SIGUSR1)
            return
        if self._stopping:
            if signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
                # A second stopping signal: what is still draining stops at once.
                self._begin_stop(name, signal.SIGQUIT, FAST_STOP_SECONDS)
            return
        if signum == signal.SIGHUP:
            self._on_hup()
        elif signum == signal.SIGTTIN:
            self.count += 1
            log.info("SIGTTIN: %d worker(s) wanted", self.count)
        elif signum == signal.SIGTTOU:
            if self.count <= 1:
                log.info("SIGTTOU: already at 1 worker; ignored")
                return
            self.count -= 1
            log.info("SIGTTOU: %d worker(s) wanted", self.count)
            live = [w for w in self.workers.values() if not w.retiring]
            if len(live) > self.count:
                newest = max(live, key=lambda w: w.started)
                self._rolling = [pid for pid in self._rolling if pid != newest.pid]
                self._retire(newest)
                self._kill(newest.pid, signal.SIGTERM)
        elif signum in (signal.SIGTERM, signal.SIGINT):
            self._begin_stop(name, signal.SIGTERM, self.graceful_timeout + 1.0)
        else:
            self._begin_stop(name, signal.SIGQUIT, FAST_STOP_SECONDS)

    def _on_hup(self) -> None:
        if self.reload is not None:
            try:
                self.reload()
            except Exception as exc:
                log.error("SIGHUP: reloading failed, the workers keep the old code: %s", exc)
                return
        log.info("SIGHUP: replacing %d worker(s) one by one", len(self.workers))
        self._rolling = [pid for pid, w in self.workers.items() if not w.retiring]

    def _retire(self, worker: Worker) -> None:
        worker.retiring = True
        worker.kill_at = time.monotonic() + self.graceful_timeout + 1.0

    def _begin_stop(self, why: str, sig: int, seconds: float) -> None:
        self._stopping = why
        self._stop_deadline = time.monotonic() + seconds
        log.info("%s: stopping %d worker(s)", why, len(self.workers))
        for pid, worker in self.workers.items():
            worker.retiring = True
            self._kill(pid, sig)

    # -- workers ---------------------------------------------------------------------------

    def _pids(self) -> list[int]:
        return sorted(self.workers)

    def _all_ready(self) -> bool:
        live = [w for w in self.workers.values() if not w.retiring]
        return len(live) >= self.count and all(w.ready for w in live)

    def _retiring_count(self) -> int:
        return sum(1 for w in self.workers.values() if w.retiring)

    def _spawn(self) -> int:
        status_r, status_w = os.pipe()
        os.set_blocking(status_r, False)
        os.set_blocking(status_w, False)
        pid = os.fork()
        if pid == 0:  # the worker
            status = 1
            try:
                os.close(status_r)
                self._become_worker(status_w)
                status = 0
            except BaseException:
                log.exception("worker %d failed", os.getpid())
            finally:
                os._exit(status)
        os.close(status_w)
        now = time.monotonic()
        self.workers[pid] = Worker(pid, status_r, now, last_seen=now)
        self.stats.started += 1
        log.info("started worker %d", pid)
        return pid

    def _become_worker(self, status_w: int) -> None:
        signal.set_wakeup_fd(-1)
        for sig in _SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        # TTIN/TTOU are the supervisor's; their default action would suspend the worker.
        signal.signal(signal.SIGTTIN, signal.SIG_IGN)
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        os.close(self._wake_r)
        os.close(self._wake_w)
        for worker in self.workers.values():
            if worker.status_fd >= 0:
                os.close(worker.status_fd)
        parent = os.getppid()
        self.run_worker(parent, WorkerLink(status_w))

    def _kill(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def _reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            if worker.status_fd >= 0:
                os.close(worker.status_fd)
                worker.status_fd = -1
            code = os.waitstatus_to_exitcode(status)
            self.stats.exits.append(code)
            if worker.retiring:
                log.info("worker %d stopped (exit %d)", pid, code)
                continue
            log.warning("worker %d died (exit %d); starting another", pid, code)
            self._deaths_to_replace += 1
            if self._replacing is not None and self._replacing[1] == pid:
                self._replacing = None  # the replacement died: the old one stays
            if time.monotonic() - worker.started < QUICK_DEATH_SECONDS:
                self._quick_deaths += 1
                delay = min(MAX_RESTART_DELAY, 0.1 * 2**self._quick_deaths)
                self._restart_at = time.monotonic() + delay
            else:
                self._quick_deaths = 0

    def _advance_rolling(self) -> None:
        if self._replacing is not None:
            old, new = self._replacing
            replacement = self.workers.get(new)
            if replacement is None or not replacement.ready:
                return
            self._replacing = None
            worker = self.workers.get(old)
            if worker is not None:
                self._retire(worker)
                self._kill(old, signal.SIGTERM)
                self.stats.replaced += 1
                log.info("worker %d replaced by %d", old, new)
        while self._rolling and self._replacing is None:
            old = self._rolling.pop(0)
            if old not in self.workers:
                continue
            new = self._spawn()
            self._replacing = (old, new)
