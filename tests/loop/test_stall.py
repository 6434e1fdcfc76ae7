"""StallWatch: a warning that names the code holding the loop, while it holds it, once per
stall; nothing while the loop is idle or busy with short callbacks. On every backend."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from reactor.loop import BACKENDS, new_loop
from reactor.loop.stall import StallWatch


def blocking_handler_stand_in(seconds: float) -> None:
    time.sleep(seconds)  # what a handler that blocks the loop does


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_blocking_callback_is_named_once_while_it_blocks(backend: str, caplog: Any) -> None:
    loop = new_loop(backend)
    watch = StallWatch(loop, 0.2)
    seen_during: list[str] = []

    def block() -> None:
        blocking_handler_stand_in(0.8)
        seen_during.append(caplog.text)  # the warning came while we were still blocked

    with caplog.at_level(logging.INFO, logger="reactor.loop"):
        loop.call_later(0.3, block)
        loop.call_later(1.6, loop.stop)
        watch.start()
        thread = threading.Thread(target=loop.run)
        thread.start()
        thread.join(10)
        watch.stop()
    loop.close()
    assert watch.stalls == 1
    assert "blocking_handler_stand_in" in seen_during[0] and "test_stall.py" in seen_during[0]
    assert "the loop runs again after" in caplog.text
    assert caplog.text.count("has run no callback") == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_idle_or_busy_but_responsive_loop_is_not_reported(backend: str, caplog: Any) -> None:
    loop = new_loop(backend)
    watch = StallWatch(loop, 0.2)

    def short_work(n: int) -> None:
        time.sleep(0.01)
        if n:
            loop.call_soon(short_work, n - 1)

    with caplog.at_level(logging.WARNING, logger="reactor.loop"):
        loop.call_later(0.1, short_work, 50)  # 0.5 s of short callbacks
        loop.call_later(1.0, loop.stop)
        watch.start()
        loop.run()  # idle after the work
        watch.stop()
    loop.close()
    assert watch.stalls == 0 and "no callback" not in caplog.text


def test_threshold_must_be_positive() -> None:
    loop = new_loop("selectors")
    with pytest.raises(ValueError, match="positive"):
        StallWatch(loop, 0)
    loop.close()


def test_a_place_that_stalls_again_is_warned_about_once(caplog: Any) -> None:
    """A handler that always blocks is named in one warning; later stalls there are counted
    at INFO, not warned about again."""
    loop = new_loop("selectors")
    watch = StallWatch(loop, 0.2)
    with caplog.at_level(logging.INFO, logger="reactor.loop"):
        for at in (0.3, 1.2):
            loop.call_later(at, blocking_handler_stand_in, 0.6)
        loop.call_later(2.2, loop.stop)
        watch.start()
        loop.run()
        watch.stop()
    loop.close()
    assert watch.stalls == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "blocking_handler_stand_in" in warnings[0].getMessage()
    assert "held again (2 times)" in caplog.text
