"""The connection state table: states in an enum, every allowed transition in one dict.

A transition not in the table is a bug and raises. docs/architecture.md's diagram is generated
from TRANSITIONS (tools/gen_state_diagram.py), never drawn by hand. Sans-IO.
Tests: tests/http/test_state.py.
"""

from __future__ import annotations

import enum

__all__ = ["TRANSITIONS", "ConnState", "HookState", "check_transition"]


class ConnState(enum.IntEnum):
    """Where a connection is in its life (internal; finer than the hook states).

    An IntEnum so that the table look-ups on every transition hash in C (a plain Enum's
    ``__hash__`` is Python code, measurable on the per-request path)."""

    IDLE = 1  # waiting for the first byte of a request (keep-alive or new)
    READING_HEAD = 2  # some bytes of a head are here, not all
    READING_BODY = 3  # head parsed, waiting for the body of a buffering handler
    HANDLING = 4  # the handler runs (or its response is being finished)
    DRAINING = 5  # responses done, output over the high-water mark waits for the kernel
    CLOSING = 6  # last output sent, write side shut; reading and discarding until EOF
    HIJACKED = 7  # terminal: the handler owns the socket
    CLOSED = 8  # terminal


class HookState(enum.Enum):
    """The states a connection-state hook sees (Go's ConnState)."""

    NEW = "new"
    ACTIVE = "active"
    IDLE = "idle"
    HIJACKED = "hijacked"
    CLOSED = "closed"


S = ConnState
TRANSITIONS: dict[ConnState, frozenset[ConnState]] = {
    S.IDLE: frozenset(
        {S.READING_HEAD, S.READING_BODY, S.HANDLING, S.DRAINING, S.CLOSING, S.CLOSED}
    ),
    S.READING_HEAD: frozenset({S.READING_BODY, S.HANDLING, S.CLOSING, S.CLOSED}),
    S.READING_BODY: frozenset({S.HANDLING, S.CLOSING, S.CLOSED}),
    S.HANDLING: frozenset({S.IDLE, S.HIJACKED, S.CLOSING, S.CLOSED}),
    S.DRAINING: frozenset({S.IDLE, S.CLOSING, S.CLOSED}),
    S.CLOSING: frozenset({S.CLOSED}),
    S.HIJACKED: frozenset(),
    S.CLOSED: frozenset(),
}


def check_transition(current: ConnState, new: ConnState) -> None:
    if new not in TRANSITIONS[current]:
        raise RuntimeError(f"invalid connection state transition {current.name} -> {new.name}")
