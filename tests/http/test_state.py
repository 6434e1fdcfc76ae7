"""The connection state table: every transition not in TRANSITIONS raises."""

from __future__ import annotations

import itertools

import pytest

from reactor.http import TRANSITIONS, ConnState, HookState, check_transition

TERMINAL = {ConnState.HIJACKED, ConnState.CLOSED}


def test_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(ConnState)
    for targets in TRANSITIONS.values():
        assert targets <= set(ConnState)


@pytest.mark.parametrize(("current", "new"), list(itertools.product(ConnState, ConnState)), ids=str)
def test_check_transition_follows_the_table(current: ConnState, new: ConnState) -> None:
    if new in TRANSITIONS[current]:
        check_transition(current, new)
    else:
        with pytest.raises(RuntimeError, match=f"{current.name} -> {new.name}"):
            check_transition(current, new)


def test_terminal_states_have_no_transitions() -> None:
    for state in TERMINAL:
        assert TRANSITIONS[state] == frozenset()
    non_terminal = set(ConnState) - TERMINAL
    for state in non_terminal:
        assert TRANSITIONS[state], state


def test_no_self_loops() -> None:
    for state, targets in TRANSITIONS.items():
        assert state not in targets


def test_every_state_reaches_closed_and_only_handling_hijacks() -> None:
    for start in ConnState:
        seen = {start}
        todo = [start]
        while todo:
            for nxt in TRANSITIONS[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        if start is not ConnState.HIJACKED:
            assert ConnState.CLOSED in seen, start
    hijackers = {s for s, targets in TRANSITIONS.items() if ConnState.HIJACKED in targets}
    assert hijackers == {ConnState.HANDLING}


def test_hook_states_are_go_names() -> None:
    assert [s.value for s in HookState] == ["new", "active", "idle", "hijacked", "closed"]
