"""What a ``reactor leakcheck`` scenario drives: the loop, the server, the client, the app.

Owns Harness: settling (pump until no connection, registration or new timer is left), waiting
for the server to close, and checkpoints (counts against the baseline in mid-scenario, with an
allowance, e.g. for parked hijacks). Tests: tests/leaks/test_leakcheck.py.
"""

from __future__ import annotations

import time
from typing import Any

from ..loop.selector import SelectorLoop
from ..server import Server
from ..testing import FakeClock
from .client import Client, Target
from .tracked import Baseline, count_objects, type_name

__all__ = ["Harness"]


class Harness:
    """What a scenario drives: the loop, the server, the client, the app; and checkpoints."""

    def __init__(
        self,
        loop: SelectorLoop,
        server: Server,
        app: Any,
        clock: FakeClock | None,
        target: Target,
    ) -> None:
        self.loop = loop
        self.server = server
        self.app = app
        self.clock = clock
        self.target = target
        host, port = server.addresses[0][:2]
        self.client = Client(loop, (host, port))
        self.baseline: Baseline | None = None
        self.checkpoint_leaks: list[str] = []

    def idle(self) -> bool:
        base_fds = self.baseline.fds if self.baseline else 1
        base_timers = self.baseline.timers if self.baseline else 0
        return (
            self.server.connection_count == 0
            and self.loop.registered_fds() <= base_fds
            and self.loop.pending_timers() <= base_timers
        )

    def settle(self, timeout: float = 1.0) -> None:
        """Pump until no connection or registration is left (at most ``timeout``), then
        until no new timer is armed (briefly: a connection's timer goes when it closes, so a
        timer still armed then is a leak, not something to wait for)."""
        deadline = time.monotonic() + timeout
        while not self.closed() and time.monotonic() < deadline:
            self.loop.run_once(0.002)
        deadline = time.monotonic() + min(timeout, 0.1)
        while not self.idle() and time.monotonic() < deadline:
            self.loop.run_once(0.002)
        for _ in range(3):
            self.loop.run_once(0)

    def closed(self) -> bool:
        base_fds = self.baseline.fds if self.baseline else 1
        return self.server.connection_count == 0 and self.loop.registered_fds() <= base_fds

    def wait_closed(self) -> None:
        """Wait until the server let go of every connection (timers are checked at the end:
        a handler's own timer may rightly outlive its connection, or be the leak)."""
        self.client.wait("the server to close the connection", self.closed)

    def checkpoint(self, allowed: dict[type, int], label: str) -> None:
        """Counts now against the baseline, with ``allowed`` extra objects by type."""
        if self.baseline is None:
            return  # warm-up
        self.settle(1.0)
        now = count_objects()
        extra = {type_name(tp): n for tp, n in allowed.items()}
        for name, n in now.items():
            over = n - self.baseline.counts[name] - extra.get(name, 0)
            if over > 0:
                self.checkpoint_leaks.append(f"{label}: {over} {name} beyond the allowance")
        if self.server.connection_count:
            self.checkpoint_leaks.append(
                f"{label}: the server still tracks {self.server.connection_count} connections"
            )
        if self.loop.registered_fds() > self.baseline.fds:
            self.checkpoint_leaks.append(f"{label}: fds still registered with the loop")
        if self.loop.pending_timers() > self.baseline.timers:
            self.checkpoint_leaks.append(f"{label}: timers still armed")
