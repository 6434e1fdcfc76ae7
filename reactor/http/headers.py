"""Headers: a case-insensitive multi-map that keeps the received order; Trailers, the same for
a response's trailer fields, checked as they are set.

Used for request headers (built by the parser) and response headers (filled by the handler).
Names and values are ``str`` (latin-1, as received on the wire). Sans-IO.
Tests: tests/http/test_headers.py, test_trailers.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .serialize import check_trailer_field

__all__ = ["Headers", "Trailers"]


class Headers:
    """Ordered ``(name, value)`` pairs with case-insensitive look-up.

    ``get`` returns the first value, ``get_all`` every value in order; iterating yields the
    pairs with the names as they were received or set. ``fields`` is the list of pairs itself,
    for code that reads them in order without a copy (the response serialiser); change
    headers through the methods, which keep the look-up index right.
    """

    __slots__ = ("_index", "fields")

    def __init__(
        self, items: Iterable[tuple[str, str]] | None = None, *, copy: bool = True
    ) -> None:
        """``copy=False`` adopts ``items``, which must then be a list nobody else changes (the
        parser's own list of the fields it just read)."""
        if items is None:
            self.fields: list[tuple[str, str]] = []
        elif copy or type(items) is not list:
            self.fields = list(items)
        else:
            self.fields = items
        self._index: dict[str, list[str]] | None = None

    def _build_index(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for name, value in self.fields:
            key = name.lower()
            values = index.get(key)
            if values is None:
                index[key] = [value]
            else:
                values.append(value)
        self._index = index
        return index

    def get(self, name: str, default: str | None = None) -> str | None:
        index = self._index if self._index is not None else self._build_index()
        values = index.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        index = self._index if self._index is not None else self._build_index()
        return list(index.get(name.lower(), ()))

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        index = self._index if self._index is not None else self._build_index()
        return name.lower() in index

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __bool__(self) -> bool:
        return bool(self.fields)

    def items(self) -> list[tuple[str, str]]:
        return list(self.fields)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self.fields == other.items()
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    # -- mutation (response headers) ----------------------------------------------------

    def add(self, name: str, value: str) -> None:
        """Append a field, keeping any existing ones of the same name."""
        self.fields.append((name, value))
        if self._index is not None:
            self._index.setdefault(name.lower(), []).append(value)

    def extend(self, items: Iterable[tuple[str, str]]) -> None:
        """Append fields, keeping any existing ones (``add`` of each, in one call)."""
        self.fields.extend(items)
        self._index = None

    def set(self, name: str, value: str) -> None:
        """Replace every field of this name with one."""
        items = self.fields
        if items:
            self.remove(name)
            items = self.fields
        items.append((name, value))
        if self._index is not None:
            self._index.setdefault(name.lower(), []).append(value)

    __setitem__ = set

    def remove(self, name: str) -> None:
        key = name.lower()
        for n, _ in self.fields:
            if n.lower() == key:
                self.fields = [(n, v) for n, v in self.fields if n.lower() != key]
                self._index = None
                return

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self.remove(name)

    def setdefault(self, name: str, value: str) -> str:
        current = self.get(name)
        if current is None:
            self.add(name, value)
            return value
        return current

    def __repr__(self) -> str:
        return f"Headers({self.fields!r})"


class Trailers(Headers):
    """A response's trailer fields (ResponseWriter.trailers). ``add`` and ``set`` raise
    ValueError naming the field for one a trailer section must not carry (RFC 9110 6.5.1:
    framing, routing, request modifiers, authentication, response control, content format) or
    a name or value a header could not have either (serialize.check_trailer_field)."""

    __slots__ = ()

    def __init__(self, items: Iterable[tuple[str, str]] | None = None) -> None:
        super().__init__(items)
        for name, value in self.fields:
            check_trailer_field(name, value)

    def add(self, name: str, value: str) -> None:
        check_trailer_field(name, value)
        super().add(name, value)

    def set(self, name: str, value: str) -> None:
        check_trailer_field(name, value)
        super().set(name, value)

    def extend(self, items: Iterable[tuple[str, str]]) -> None:
        items = list(items)
        for name, value in items:
            check_trailer_field(name, value)
        super().extend(items)

    __setitem__ = set

    def __repr__(self) -> str:
        return f"Trailers({self.fields!r})"
