"""What a scenario left to the cyclic garbage collector, sorted out.

Owns ``analyse_garbage``: given what ``gc.collect()`` found (saved with ``gc.DEBUG_SAVEALL``)
after some requests, the reference cycles among it (strongly connected components of the
references between those objects), grouped by shape, each with how many per request, the
shortest cycle in words and where it was made (tracemalloc's allocation site of the function
that closes it, else of its first object); whose cycle it is: *reactor's own* when one of its
members is an object of a reactor class or a function defined in reactor (reactor promises
release by reference counting: always a failure), else *the application's*; and the reactor
objects that are not in a cycle but were held by one. Those are passengers when reactor itself
handed them over (through the WSGI ``environ``, or held by another reactor object), and a
failure when the application's own objects captured them (a closure cell, a list, an
attribute). It must not keep any of the objects alive once it returns. Tests:
tests/leaks/test_leakcheck.py, tests/leaks/test_leakcheck_apps.py.
"""

from __future__ import annotations

import collections
import gc
import linecache
import os
import tracemalloc
import types
from collections.abc import Sequence
from dataclasses import dataclass, field

from .explain import describe, render_chain, where
from .tracked import type_name

__all__ = ["CycleGroup", "CycleReport", "PinnedGroup", "analyse_garbage", "is_reactor_object"]

_LEAKCHECK = __name__.rpartition(".")[0]  # reactor.leakcheck


def _reactor_module(module: object) -> bool:
    if not isinstance(module, str):
        return False
    if module == _LEAKCHECK or module.startswith(_LEAKCHECK + "."):
        return False
    return module == "reactor" or module.startswith("reactor.")


def is_reactor_object(obj: object) -> bool:
    """An instance of a class defined in reactor, or a function defined there (leakcheck's
    own excluded)."""
    if isinstance(obj, types.FunctionType):
        return _reactor_module(obj.__module__)
    return _reactor_module(type(obj).__module__)


def _is_environ(obj: object) -> bool:
    return isinstance(obj, dict) and "wsgi.version" in obj


def _passes_on(h: int, nodes: list[object], holders: list[list[int]]) -> bool:
    """Whether ``nodes[h]``, holding a reactor object, is only passing on what reactor gave:
    another reactor object, a method bound to one, the WSGI environ, a frame of the call
    (kept by an exception's traceback) or such a frame's locals."""
    obj = nodes[h]
    if is_reactor_object(obj) or _is_environ(obj) or isinstance(obj, types.FrameType):
        return True
    if isinstance(obj, types.MethodType):
        return is_reactor_object(obj.__self__)
    if isinstance(obj, dict):
        up = holders[h]
        return bool(up) and all(isinstance(nodes[j], types.FrameType) for j in up)
    return False


@dataclass
class CycleGroup:
    """Cycles of one shape: whose, how many, what they are made of, where they were made."""

    owner: str  # "reactor" or "application"
    count: int
    per_request: float
    size: int
    types: list[tuple[str, int]]
    made_at: str
    reactor_types: list[str]
    cycle: list[str] = field(default_factory=list)


@dataclass
class PinnedGroup:
    """Reactor objects of one type held by cycles: handed over by reactor, or captured."""

    type: str
    count: int
    captured: bool
    via: str
    path: list[str] = field(default_factory=list)
    #: The reactor types the captured object holds in turn (a ResponseWriter...).
    holds: list[str] = field(default_factory=list)


@dataclass
class CycleReport:
    objects: int = 0
    requests: int = 0  # the requests whose garbage this is (the first round's)
    groups: list[CycleGroup] = field(default_factory=list)
    pinned: list[PinnedGroup] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        """Why this garbage breaks reactor's promise (empty: it is the application's own)."""
        out = []
        for g in self.groups:
            if g.owner == "reactor":
                out.append(
                    f"reactor's own {', '.join(g.reactor_types)} in a reference cycle "
                    f"({g.per_request:.2f} per request, made at {g.made_at})"
                )
        for p in self.pinned:
            if p.captured:
                holds = f", and with it {', '.join(p.holds)}" if p.holds else ""
                out.append(
                    f"the application's cycle captures reactor's {p.type}{holds} "
                    f"({p.count} in {self.requests} requests; {p.via})"
                )
        return out


# Types CPython 3.11 reuses from free lists: tracemalloc's trace of such an object's memory
# can be that of an earlier object (or none).
_FREE_LISTED = (dict, list, tuple, float, types.FrameType)


def made_at(obj: object) -> str:
    """Where ``obj`` was allocated (tracemalloc's most recent frame), as ``file:line (code)``:
    for a function, where its ``def`` or ``lambda`` ran; "" when tracemalloc cannot tell (an
    object of a free-listed type, or of a class with a managed ``__dict__`` on 3.11)."""
    tb = None if isinstance(obj, _FREE_LISTED) else tracemalloc.get_object_traceback(obj)
    if tb is None or not len(tb):
        if isinstance(obj, types.FunctionType):
            code = obj.__code__
            return f"{where(code.co_filename)}:{code.co_firstlineno}"
        return ""
    frame = tb[-1]
    line = linecache.getline(frame.filename, frame.lineno).strip()
    text = f"{where(frame.filename)}:{frame.lineno}"
    return f"{text} ({line[:70]})" if line else text


def _components(nodes: list[object], edges: list[list[int]]) -> list[list[int]]:
    """Tarjan's strongly connected components, iteratively; only those with a cycle."""
    index = [-1] * len(nodes)
    low = [0] * len(nodes)
    on_stack = [False] * len(nodes)
    stack: list[int] = []
    out: list[list[int]] = []
    counter = 0
    for start in range(len(nodes)):
        if index[start] >= 0:
            continue
        work = [(start, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack[v] = True
            recurse = False
            succ = edges[v]
            while i < len(succ):
                w = succ[i]
                i += 1
                if index[w] < 0:
                    work.append((v, i))
                    work.append((w, 0))
                    recurse = True
                    break
                if on_stack[w]:
                    low[v] = min(low[v], index[w])
            if recurse:
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack[w] = False
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1 or v in edges[v]:
                    out.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return out


def _shortest_cycle(start: int, members: set[int], edges: list[list[int]]) -> list[int]:
    """The shortest path from ``start`` back to itself inside ``members`` (BFS)."""
    parent = {start: -1}
    queue = collections.deque([start])
    while queue:
        v = queue.popleft()
        for w in edges[v]:
            if w == start:
                path = [v]
                while parent[path[-1]] != -1:
                    path.append(parent[path[-1]])
                return [*path[::-1], start]
            if w in members and w not in parent:
                parent[w] = v
                queue.append(w)
    return [start]


def _key_member(comp: list[int], nodes: list[object]) -> int:
    """The member that names a cycle: a reactor object, else a function (the closure that
    closes it), else the first."""
    for i in comp:
        if is_reactor_object(nodes[i]) and not isinstance(nodes[i], types.FunctionType):
            return i
    functions = [i for i in comp if isinstance(nodes[i], types.FunctionType)]
    if functions:
        # The innermost closure: the one whose code is defined last in its file.
        return max(functions, key=lambda i: nodes[i].__code__.co_firstlineno)  # type: ignore[attr-defined]
    methods = [i for i in comp if isinstance(nodes[i], types.MethodType)]
    if methods:
        return methods[0]  # self.x = self.method: the method names the cycle
    for i in comp:
        if type(nodes[i]).__module__ != "builtins":
            return i  # an instance of the application's (or a library's) class
    return comp[0]


def _anchor(obj: object) -> str:
    """Who made a cycle: where its key member was allocated, else what it is."""
    site = made_at(obj)
    if site:
        return site
    if isinstance(obj, types.MethodType):
        return f"bound method {obj.__func__.__qualname__!r} kept by its own object"
    return f"a {type_name(type(obj))} (tracemalloc cannot say where it was made)"


def analyse_garbage(garbage: Sequence[object], requests: int) -> CycleReport:
    """Sort out ``garbage`` (what one ``gc.collect()`` found after ``requests`` requests)."""
    report = CycleReport(objects=len(garbage), requests=requests)
    if not garbage:
        return report
    nodes = list(garbage)
    position = {id(o): i for i, o in enumerate(nodes)}
    edges: list[list[int]] = [[] for _ in nodes]
    holders: list[list[int]] = [[] for _ in nodes]
    for i, obj in enumerate(nodes):
        for ref in gc.get_referents(obj):
            j = position.get(id(ref))
            if j is not None:
                edges[i].append(j)
                holders[j].append(i)
    comps = _components(nodes, edges)
    in_cycle = {i for comp in comps for i in comp}

    shapes: dict[tuple[object, ...], list[list[int]]] = {}
    for comp in comps:
        key = _key_member(comp, nodes)
        counts = collections.Counter(type_name(type(nodes[i])) for i in comp)
        anchor: object = _anchor(nodes[key])
        shapes.setdefault((anchor, frozenset(counts)), []).append(comp)
    for (anchor, _names), group in sorted(shapes.items(), key=lambda kv: -len(kv[1])):
        comp = group[0]
        counts = collections.Counter(type_name(type(nodes[i])) for i in comp)
        reactor_types = sorted(
            {
                type_name(type(nodes[i]))
                for c in group
                for i in c
                if is_reactor_object(nodes[i]) and not isinstance(nodes[i], types.FunctionType)
            }
            | {
                f"function {nodes[i].__qualname__}"  # type: ignore[attr-defined]
                for c in group
                for i in c
                if isinstance(nodes[i], types.FunctionType) and is_reactor_object(nodes[i])
            }
        )
        key = _key_member(comp, nodes)
        path = _shortest_cycle(key, set(comp), edges)
        report.groups.append(
            CycleGroup(
                owner="reactor" if reactor_types else "application",
                count=len(group),
                per_request=round(len(group) / max(requests, 1), 2),
                size=len(comp),
                types=counts.most_common(6),
                made_at=str(anchor),
                reactor_types=reactor_types,
                cycle=render_chain([nodes[i] for i in path]),
            )
        )

    pinned: dict[tuple[str, bool], list[int]] = {}
    for i, obj in enumerate(nodes):
        if i in in_cycle or not is_reactor_object(obj) or isinstance(obj, types.FunctionType):
            continue
        captured = any(not _passes_on(h, nodes, holders) for h in holders[i])
        pinned.setdefault((type_name(type(obj)), captured), []).append(i)
    for (name, captured), members in sorted(pinned.items(), key=lambda kv: -len(kv[1])):
        first = members[0]
        trail = _path_from_cycle(first, holders, in_cycle)
        holder = nodes[trail[-2]] if len(trail) > 1 else None
        # Up to the function or object whose closure or attributes hold it, for the words.
        while isinstance(nodes[trail[0]], tuple | dict | types.CellType):
            up = [h for h in holders[trail[0]] if h in in_cycle and h not in trail]
            if not up:
                break
            trail.insert(0, up[0])
        if captured:
            owner = next(
                (nodes[j] for j in trail if isinstance(nodes[j], types.FunctionType)), holder
            )
            via = f"held by {describe(owner)}"
        elif isinstance(holder, dict) and _is_environ(holder):
            keys = [k for k, v in holder.items() if v is nodes[first]]
            via = f"handed over by reactor in the WSGI environ {keys!r}"
        else:
            via = f"held by reactor's {describe(holder)}" if holder is not None else "held"
        report.pinned.append(
            PinnedGroup(
                type=name,
                count=len(members),
                captured=captured,
                via=via,
                path=render_chain([nodes[j] for j in trail]) if captured else [],
                holds=_reactor_below(first, nodes, edges) if captured else [],
            )
        )
    del nodes, position
    return report


def _reactor_below(start: int, nodes: list[object], edges: list[list[int]]) -> list[str]:
    """The reactor types ``nodes[start]`` holds through other reactor objects."""
    seen = {start}
    queue = [start]
    names: dict[str, None] = {}
    while queue:
        v = queue.pop()
        for w in edges[v]:
            if w not in seen and is_reactor_object(nodes[w]):
                seen.add(w)
                queue.append(w)
                names[type_name(type(nodes[w]))] = None
    return list(names)


def _path_from_cycle(start: int, holders: list[list[int]], in_cycle: set[int]) -> list[int]:
    """From the nearest cycle member down to ``start`` (BFS up the holders)."""
    parent = {start: -1}
    queue = collections.deque([start])
    while queue:
        v = queue.popleft()
        if v in in_cycle:
            path = [v]
            while parent[path[-1]] != -1:
                path.append(parent[path[-1]])
            return path
        for h in holders[v]:
            if h not in parent:
                parent[h] = v
                queue.append(h)
    return [start]


def short_site(text: str) -> str:
    """A ``made_at`` without its source excerpt, for one-line reports."""
    return text.split(" (", 1)[0] if os.sep in text or ":" in text else text
