"""What ``reactor leakcheck`` counts: reactor's per-connection objects and the loop's
registrations and armed timers.

Owns TRACKED_TYPES (most telling first: the first leaked one in this order is the one whose
chain is explained), ``count_objects`` (objgraph.typestats over them, armed handles only), the
Baseline a scenario's counts are compared with, and the three looks inside the SelectorLoop
that it has no public accessor for yet (``registrations``, ``armed_timers``, ``timer_loop``).
Used by the harness, the measurement and the explanation; tests: tests/leaks/test_leakcheck.py.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import objgraph  # type: ignore[import-untyped]

from ..buffers import BufferPair, Reader, Writer
from ..connection import Connection
from ..http.headers import Headers
from ..http.parser import ChunkedDecoder, RequestHead, RequestParser
from ..loop.futures import Future, Task
from ..loop.handles import FdEntry, Handle, TimerHandle
from ..loop.selector import SelectorLoop
from ..request import Body, Request, StreamingBody
from ..response import ResponseWriter
from ..server import Server

__all__ = [
    "TRACKED_TYPES",
    "Baseline",
    "armed_timers",
    "count_objects",
    "registrations",
    "timer_loop",
    "type_name",
]

# The per-connection objects whose counts must return to the baseline, most telling first
# (the first leaked one in this order is the one whose chain is explained).
TRACKED_TYPES: tuple[type, ...] = (
    Request,
    ResponseWriter,
    Connection,
    Body,
    StreamingBody,
    Task,
    Future,
    TimerHandle,
    Handle,
    RequestHead,
    Headers,
    RequestParser,
    ChunkedDecoder,
    BufferPair,
    Reader,
    Writer,
    Server,
    socket.socket,
)
_TRACKED = frozenset(TRACKED_TYPES)


def type_name(tp: type) -> str:
    """``module.QualName``: how objgraph (shortnames=False) and the report name a type."""
    return f"{tp.__module__}.{tp.__qualname__}"


def _is_tracked(obj: object) -> bool:
    tp = type(obj)
    if tp not in _TRACKED:
        return False
    if tp is TimerHandle or tp is Handle:
        # Lazy cancellation: a cancelled handle can sit in the timer heap until it reaches
        # the top, holding nothing (its callback and arguments are dropped). Only armed
        # handles count.
        return obj.callback is not None  # type: ignore[attr-defined]
    return True


def count_objects() -> dict[str, int]:
    """Live per-connection objects by type (objgraph.typestats over gc.get_objects())."""
    stats: dict[str, int] = objgraph.typestats(shortnames=False, filter=_is_tracked)
    return {name: stats.get(name, 0) for name in map(type_name, TRACKED_TYPES)}


@dataclass
class Baseline:
    """What a scenario started from, taken after its warm-up, before its traffic."""

    counts: dict[str, int]
    fds: int
    timers: int
    ids: set[int]
    peak: dict[str, int]
    fd_numbers: set[int]


# -- inside the loop ---------------------------------------------


def registrations(loop: SelectorLoop) -> dict[int, FdEntry | None]:
    """Every fd the loop's selector watches (the waker's entry is None), by number."""
    return loop.registrations()


def armed_timers(loop: SelectorLoop) -> list[TimerHandle]:
    """The timers in the loop's heap that are still armed (cancelled ones hold nothing)."""
    return loop.armed_timers()


def timer_loop(timer: TimerHandle) -> Any:
    """The loop an armed timer belongs to (None once it is cancelled)."""
    return timer.owner
