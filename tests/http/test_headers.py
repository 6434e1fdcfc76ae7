"""Headers: the case-insensitive multi-map that keeps the received order."""

from __future__ import annotations

import pytest

from reactor.http import Headers


def test_case_insensitive_get_and_contains() -> None:
    h = Headers([("Content-Type", "text/plain"), ("X-A", "1")])
    assert h.get("content-type") == "text/plain"
    assert h.get("CONTENT-TYPE") == "text/plain"
    assert h["x-a"] == "1"
    assert "X-a" in h
    assert "missing" not in h
    assert 42 not in h
    assert h.get("missing") is None
    assert h.get("missing", "d") == "d"
    with pytest.raises(KeyError):
        h["missing"]


def test_empty_value_is_present() -> None:
    h = Headers([("Empty", "")])
    assert h.get("empty") == ""
    assert h["EMPTY"] == ""
    assert h.get("empty", "default") == ""


def test_get_all_keeps_order_and_returns_a_copy() -> None:
    h = Headers([("Set-Cookie", "a=1"), ("X", "x"), ("set-cookie", "b=2"), ("SET-COOKIE", "c")])
    assert h.get("set-cookie") == "a=1"
    values = h.get_all("Set-Cookie")
    assert values == ["a=1", "b=2", "c"]
    values.append("mutated")
    assert h.get_all("set-cookie") == ["a=1", "b=2", "c"]
    assert h.get_all("nothing") == []


def test_iteration_keeps_order_and_spelling() -> None:
    items = [("B", "1"), ("a", "2"), ("b", "3"), ("C-D", "4")]
    h = Headers(items)
    assert list(h) == items
    assert h.items() == items
    assert len(h) == 4
    assert bool(h)
    assert not Headers()
    assert len(Headers()) == 0


def test_constructor_copies_its_input() -> None:
    items = [("A", "1")]
    h = Headers(items)
    h.add("B", "2")
    assert items == [("A", "1")]


def test_add_appends_and_updates_lookups() -> None:
    h = Headers([("A", "1")])
    assert h.get("a") == "1"  # builds the index
    h.add("a", "2")
    h.add("New", "n")
    assert h.get_all("A") == ["1", "2"]
    assert h.get("new") == "n"
    assert list(h) == [("A", "1"), ("a", "2"), ("New", "n")]


def test_set_replaces_every_field_of_the_name() -> None:
    h = Headers([("A", "1"), ("B", "b"), ("a", "2")])
    h.set("A", "3")
    assert list(h) == [("B", "b"), ("A", "3")]
    assert h.get_all("a") == ["3"]
    h["b"] = "bb"
    assert list(h) == [("A", "3"), ("b", "bb")]
    h.set("fresh", "f")
    assert h.get("FRESH") == "f"


def test_remove_and_del() -> None:
    h = Headers([("A", "1"), ("B", "b"), ("a", "2")])
    assert h.get("a") == "1"
    h.remove("A")
    assert list(h) == [("B", "b")]
    assert h.get("a") is None
    assert "a" not in h
    h.remove("not-there")  # no error
    del h["b"]
    assert list(h) == []
    with pytest.raises(KeyError):
        del h["b"]


def test_setdefault() -> None:
    h = Headers([("A", "1")])
    assert h.setdefault("a", "2") == "1"
    assert h.setdefault("B", "2") == "2"
    assert list(h) == [("A", "1"), ("B", "2")]


def test_equality_is_ordered_and_exact() -> None:
    assert Headers([("A", "1")]) == Headers([("A", "1")])
    assert Headers([("A", "1"), ("B", "2")]) != Headers([("B", "2"), ("A", "1")])
    assert Headers([("A", "1")]) != Headers([("a", "1")])
    assert Headers() != [("A", "1")]
    with pytest.raises(TypeError):
        hash(Headers())


def test_parser_list_is_adopted() -> None:
    items = [("Host", "a")]
    h = Headers(items, copy=False)
    assert h.get("host") == "a"
    assert list(h) == items
    assert repr(h) == "Headers([('Host', 'a')])"
    h.add("X", "1")
    assert items == [("Host", "a"), ("X", "1")]  # the same list, not a copy


def test_items_are_copied_by_default() -> None:
    items = [("Host", "a")]
    h = Headers(items)
    h.add("X", "1")
    assert items == [("Host", "a")]
    t = (("A", "1"),)
    assert list(Headers(t, copy=False)) == [("A", "1")]  # not a list: copied anyway


def test_extend_appends_in_order_and_keeps_the_index_right() -> None:
    h = Headers([("A", "1")])
    assert h.get("a") == "1"  # the index is built
    h.extend([("B", "2"), ("a", "3")])
    assert list(h) == [("A", "1"), ("B", "2"), ("a", "3")]
    assert h.get_all("A") == ["1", "3"] and h.get("b") == "2"
