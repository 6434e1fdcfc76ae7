"""StallWatch: a warning when something holds the loop too long (a handler that blocks).

One thread reactor serves every connection, so a handler that sleeps, computes or waits on a
lock stops them all, invisibly. asyncio's debug mode times each callback
(``slow_callback_duration``); that costs two clock reads per callback on the per-request
path. This watch costs the loop nothing per request: a small thread sends the loop a beat
(``call_soon_threadsafe``) every quarter ``threshold`` and waits for it to run. A beat that
has not run after ``threshold`` seconds means the loop is stuck inside a callback; the
warning names where, from the loop thread's current stack, while it is still stuck (a
timing of callbacks can only say so afterwards). One warning per place (a handler that
always blocks is named once; later stalls there are counted at INFO), and an INFO line when
the loop runs again. Works on every loop backend (it needs only ``call_soon_threadsafe``).

Used by ``reactor serve`` (``--stall-warning SECONDS``, 0 to turn it off); embedders start
one themselves: ``StallWatch(loop, 0.5).start()``. Tests: tests/loop/test_stall.py.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from typing import Any

__all__ = ["StallWatch"]

log = logging.getLogger("reactor.loop")

_REACTOR_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class StallWatch:
    """Warn (on the "reactor.loop" logger) when ``loop`` runs no callback for ``threshold``
    seconds while it is running."""

    def __init__(self, loop: Any, threshold: float = 0.5) -> None:
        if not threshold > 0:
            raise ValueError(f"StallWatch threshold must be a positive number, got {threshold!r}")
        self.loop = loop
        self.threshold = threshold
        self.stalls = 0  # how many stalls were seen
        self._seen: dict[str, int] = {}  # stalls by the place they were in
        self._beat = threading.Event()
        self._stop = threading.Event()
        self._loop_thread: int | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> StallWatch:
        """Start watching. Called on the thread that runs the loop (as ``reactor serve``
        does), it knows that thread at once; else the first beat tells it."""
        if self._loop_thread is None and self.loop.is_running() is False:
            self._loop_thread = threading.get_ident()
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="reactor-stall-watch")
            self._thread.daemon = True
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._beat.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)

    # -- on the loop thread ------------------------------------------------------------------

    def _on_beat(self) -> None:
        self._loop_thread = threading.get_ident()
        self._beat.set()

    # -- on the watch thread -----------------------------------------------------------------

    def _send_beat(self) -> bool:
        self._beat.clear()
        try:
            self.loop.call_soon_threadsafe(self._on_beat)
        except Exception:  # the loop is closed: nothing left to watch
            return False
        return True

    def _watch(self) -> None:
        threshold = self.threshold
        while not self._stop.is_set():
            if not self.loop.is_running():
                self._stop.wait(threshold)
                continue
            if not self._send_beat():
                return
            sent = time.monotonic()
            if self._beat.wait(threshold) or self._stop.is_set():
                # The next beat a quarter threshold later: a stall is then seen once it is
                # 1.25 thresholds long at most (four beats a second at 0.5 s: the loop
                # barely notices them).
                self._stop.wait(threshold / 4)
                continue
            if not self.loop.is_running():
                continue  # it stopped meanwhile: not a stall
            self.stalls += 1
            where = self._where()
            seen = self._seen.get(where, 0)
            self._seen[where] = seen + 1
            if not seen:  # the first stall at this place: a warning, with its name
                log.warning(
                    "the loop has run no callback for %.1fs (--stall-warning %g): every "
                    "connection waits; it is busy in %s",
                    time.monotonic() - sent,
                    threshold,
                    where,
                )
            else:  # the same place again: counted, not warned about again
                log.info("the loop is held again (%d times) in %s", seen + 1, where)
            while not self._beat.wait(threshold):
                if self._stop.is_set():
                    return
            log.info("the loop runs again after %.1fs", time.monotonic() - sent)

    def _where(self) -> str:
        """The code the loop thread is in: the innermost frame outside reactor's own modules
        (the handler, usually) and, if it differs, the innermost frame of all."""
        ident = self._loop_thread
        frame = sys._current_frames().get(ident) if ident is not None else None
        if frame is None:
            return "an unknown place (the loop thread is not known yet)"
        stack = traceback.extract_stack(frame)
        inner = stack[-1]
        outside = next(
            (f for f in reversed(stack) if not f.filename.startswith(_REACTOR_DIR)), None
        )
        where = f"{inner.name} ({inner.filename}:{inner.lineno})"
        if outside is not None and outside is not inner:
            where = f"{outside.name} ({outside.filename}:{outside.lineno}), at {where}"
        return where
