"""The connection state table: (state, event) -> state, and nothing else changes the state."""

from __future__ import annotations

import itertools

import pytest

from reactor.http import HOOKS, TRANSITIONS, ConnEvent, ConnState, HookState, check_transition
from reactor.http.state import InvalidTransition, next_state

TERMINAL = {ConnState.HIJACKED, ConnState.CLOSED}


def successors(state: ConnState) -> set[ConnState]:
    return {t for (s, _), t in TRANSITIONS.items() if s is state}


def test_table_covers_every_state() -> None:
    states = {s for s, _ in TRANSITIONS} | set(TRANSITIONS.values())
    assert states == set(ConnState)
    assert {e for _, e in TRANSITIONS} == set(ConnEvent)


@pytest.mark.parametrize(
    ("current", "event"), list(itertools.product(ConnState, ConnEvent)), ids=str
)
def test_next_state_follows_the_table(current: ConnState, event: ConnEvent) -> None:
    if (current, event) in TRANSITIONS:
        assert next_state(current, event) is TRANSITIONS[current, event]
    else:
        with pytest.raises(InvalidTransition, match=f"{event.name} in {current.name}"):
            next_state(current, event)


@pytest.mark.parametrize(("current", "new"), list(itertools.product(ConnState, ConnState)), ids=str)
def test_check_transition_follows_the_table(current: ConnState, new: ConnState) -> None:
    if new in successors(current):
        check_transition(current, new)
    else:
        with pytest.raises(RuntimeError, match=f"{current.name} -> {new.name}"):
            check_transition(current, new)


def test_terminal_states_have_no_transitions() -> None:
    for state in TERMINAL:
        assert successors(state) == set()
    for state in set(ConnState) - TERMINAL:
        assert successors(state), state


def test_no_self_loops() -> None:
    for (state, _), target in TRANSITIONS.items():
        assert state is not target


def test_every_state_reaches_closed_and_only_handling_hijacks() -> None:
    for start in ConnState:
        seen = {start}
        todo = [start]
        while todo:
            for nxt in successors(todo.pop()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        if start is not ConnState.HIJACKED:
            assert ConnState.CLOSED in seen, start
    hijackers = {s for (s, _), t in TRANSITIONS.items() if t is ConnState.HIJACKED}
    assert hijackers == {ConnState.HANDLING}


def test_every_live_state_can_close() -> None:
    for state in set(ConnState) - TERMINAL:
        assert TRANSITIONS[state, ConnEvent.CLOSE] is ConnState.CLOSED


def test_hooks_are_reported_only_for_transitions_of_the_table() -> None:
    assert set(HOOKS) <= set(TRANSITIONS)
    # A request begins (ACTIVE) only from a waiting state; IDLE only after a response.
    for (state, _event), hook in HOOKS.items():
        if hook is HookState.ACTIVE:
            assert state in (ConnState.NEW, ConnState.IDLE)
        if hook is HookState.IDLE:
            assert state is ConnState.HANDLING
    closed = {k for k, v in HOOKS.items() if v is HookState.CLOSED}
    assert closed == {k for k, v in TRANSITIONS.items() if v is ConnState.CLOSED}


def test_hook_states_are_go_names() -> None:
    assert [s.value for s in HookState] == ["new", "active", "idle", "hijacked", "closed"]
