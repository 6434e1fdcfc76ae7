"""The connection state table: states, events, and one ``(state, event) -> state`` dict.

A connection's HTTP/1.1 state changes only by looking up ``TRANSITIONS[(state, event)]``
(``ServerProtocol.apply``); a pair not in the table is a bug and raises, naming both. The hook
states a user's ``on_state`` sees (Go's ConnState) are derived from the same table: ``HOOKS``
says which transitions report which hook state. docs/architecture.md's diagram is generated
from TRANSITIONS (tools/gen_state_diagram.py), never drawn by hand. Sans-IO.
Tests: tests/http/test_state.py, tests/http/test_protocol.py.
"""

from __future__ import annotations

import enum

__all__ = [
    "HOOKS",
    "TRANSITIONS",
    "ConnEvent",
    "ConnState",
    "HookState",
    "InvalidTransition",
    "check_transition",
    "next_state",
]


class ConnState(enum.IntEnum):
    """Where a connection is in its life.

    IntEnums, so that the table look-ups on every transition hash in C (a plain Enum's
    ``__hash__`` is Python code, measurable on the per-request path)."""

    NEW = 1  # accepted, no byte of a first request yet
    IDLE = 2  # between requests of a keep-alive connection
    READING_HEAD = 3  # some bytes of a head are here, not all
    READING_BODY = 4  # head parsed; a buffering handler waits for the whole body
    HANDLING = 5  # the handler runs (or its response is being finished)
    DRAINING = 6  # responses done; output over the high-water mark waits for the kernel
    CLOSING = 7  # no more requests: the last output goes out, then the connection ends
    LINGERING = 8  # last output sent, write side shut; reading and discarding until EOF
    HIJACKED = 9  # terminal: the handler owns the socket
    CLOSED = 10  # terminal


class ConnEvent(enum.IntEnum):
    """What happened: the protocol decides it, the table says where it leads."""

    HEAD_START = 1  # the first bytes of a head arrived, not all of it
    WAIT_BODY = 2  # a head is parsed; its buffering handler needs the whole body first
    DISPATCH = 3  # the handler is called
    RESPONSE_DONE = 4  # the response is complete and the connection may be reused
    OUTPUT_BLOCKED = 5  # output over the high-water mark holds the next requests back
    OUTPUT_DRAINED = 6  # that output is sent
    END = 7  # no more requests: send what is queued, then close
    REJECT = 8  # an error response is queued; send it, then close (lingering)
    LINGER = 9  # output sent with input still coming: shut our side, discard until EOF
    HIJACK = 10  # the handler took the socket
    CLOSE = 11  # the socket is closed


# The states and events by name, imported by the modules that test them on the per-request
# path (a module global is a cheaper look-up than an enum attribute).
NEW = ConnState.NEW
IDLE = ConnState.IDLE
READING_HEAD = ConnState.READING_HEAD
READING_BODY = ConnState.READING_BODY
HANDLING = ConnState.HANDLING
DRAINING = ConnState.DRAINING
CLOSING = ConnState.CLOSING
LINGERING = ConnState.LINGERING
HIJACKED = ConnState.HIJACKED
CLOSED = ConnState.CLOSED
HEAD_START = ConnEvent.HEAD_START
WAIT_BODY = ConnEvent.WAIT_BODY
DISPATCH = ConnEvent.DISPATCH
RESPONSE_DONE = ConnEvent.RESPONSE_DONE
END = ConnEvent.END


class HookState(enum.Enum):
    """The states a connection-state hook sees (Go's ConnState)."""

    NEW = "new"
    ACTIVE = "active"
    IDLE = "idle"
    HIJACKED = "hijacked"
    CLOSED = "closed"


class InvalidTransition(RuntimeError):
    """A (state, event) pair the table does not have: a bug in the caller."""


S = ConnState
E = ConnEvent
_WAITING = (S.NEW, S.IDLE)  # between requests
_LIVE = (S.NEW, S.IDLE, S.READING_HEAD, S.READING_BODY, S.HANDLING, S.DRAINING)

TRANSITIONS: dict[tuple[ConnState, ConnEvent], ConnState] = {
    **{(s, E.HEAD_START): S.READING_HEAD for s in _WAITING},
    **{(s, E.WAIT_BODY): S.READING_BODY for s in (*_WAITING, S.READING_HEAD)},
    **{(s, E.DISPATCH): S.HANDLING for s in (*_WAITING, S.READING_HEAD, S.READING_BODY)},
    (S.HANDLING, E.RESPONSE_DONE): S.IDLE,
    (S.IDLE, E.OUTPUT_BLOCKED): S.DRAINING,
    (S.DRAINING, E.OUTPUT_DRAINED): S.IDLE,
    **{(s, E.END): S.CLOSING for s in _LIVE},
    **{(s, E.REJECT): S.CLOSING for s in (*_WAITING, S.READING_HEAD, S.READING_BODY)},
    (S.CLOSING, E.LINGER): S.LINGERING,
    (S.HANDLING, E.HIJACK): S.HIJACKED,
    **{(s, E.CLOSE): S.CLOSED for s in (*_LIVE, S.CLOSING, S.LINGERING)},
}

# Which transitions a state hook reports (Go's setState calls): a request begins (ACTIVE,
# also for a request that is rejected), a keep-alive connection waits again (IDLE), the
# terminal states. NEW is reported when the connection starts, before any transition.
HOOKS: dict[tuple[ConnState, ConnEvent], HookState] = {
    **{
        (s, e): HookState.ACTIVE
        for s in _WAITING
        for e in (E.HEAD_START, E.WAIT_BODY, E.DISPATCH, E.REJECT)
    },
    (S.HANDLING, E.RESPONSE_DONE): HookState.IDLE,
    (S.HANDLING, E.HIJACK): HookState.HIJACKED,
    **{(s, E.CLOSE): HookState.CLOSED for s in (*_LIVE, S.CLOSING, S.LINGERING)},
}


def next_state(current: ConnState, event: ConnEvent) -> ConnState:
    """The state ``event`` leads to from ``current``; InvalidTransition if none."""
    try:
        return TRANSITIONS[current, event]
    except KeyError:
        raise InvalidTransition(
            f"invalid connection state transition: {event.name} in {current.name}"
        ) from None


def check_transition(current: ConnState, new: ConnState) -> None:
    """Raise unless some event leads from ``current`` to ``new``."""
    if not any(s is current and t is new for (s, _), t in TRANSITIONS.items()):
        raise InvalidTransition(f"invalid connection state transition {current.name} -> {new.name}")
