"""Explaining a leak found by ``reactor leakcheck``, in words and as a picture.

Owns ``describe`` (one object in words), ``render_chain`` (a root-first back-reference chain
as lines, with an object's ``__dict__`` and a function's closure folded into the edges), the
cycle that a piece of cyclic garbage hangs from, the chain from a root (a module, the loop,
the server) down to a leaked object, the objgraph picture of it (Graphviz's ``dot`` when there
is one), and the loop registrations left. Tests: tests/leaks/test_leakcheck.py.
"""

from __future__ import annotations

import collections
import gc
import inspect
import os
import shutil
import subprocess
import types
from collections.abc import Callable, Iterable, Sequence

import objgraph  # type: ignore[import-untyped]

from ..loop.handles import TimerHandle
from ..loop.selector import SelectorLoop
from .harness import Harness
from .tracked import TRACKED_TYPES, registrations, timer_loop, type_name

__all__ = [
    "describe",
    "describe_registrations",
    "explain_cycle",
    "explain_holders",
    "garbage_culprit",
    "render_chain",
    "render_graph",
    "short_repr",
    "type_summary",
    "where",
]


def short_repr(obj: object, limit: int = 70) -> str:
    try:
        text = repr(obj)
    except Exception:
        text = f"<{type(obj).__name__} (repr failed)>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def where(filename: str) -> str:
    """A file name relative to the current directory when it is under it."""
    cwd = os.getcwd() + os.sep
    return filename[len(cwd) :] if filename.startswith(cwd) else filename


def describe(obj: object) -> str:
    """One object, in words."""
    if isinstance(obj, types.ModuleType):
        return f"module {obj.__name__!r}"
    if isinstance(obj, types.FunctionType):
        code = obj.__code__
        return f"function {obj.__qualname__!r} ({where(code.co_filename)}:{code.co_firstlineno})"
    if isinstance(obj, types.MethodType):
        return f"bound method {obj.__func__.__qualname__!r} of {short_repr(obj.__self__, 50)}"
    if isinstance(obj, types.CellType):
        return "closure cell"
    if isinstance(obj, types.FrameType):
        code = obj.f_code
        return f"frame of {code.co_qualname!r} ({where(code.co_filename)}:{obj.f_lineno})"
    if isinstance(obj, TimerHandle):
        state = "armed" if obj.callback is not None else "cancelled"
        loop = timer_loop(obj)
        due = f", due in {obj.when - loop.time():.1f} s" if loop is not None else ""
        return f"TimerHandle ({state}{due}, callback {short_repr(obj.callback, 60)})"
    if isinstance(obj, dict | list | tuple | set | frozenset | collections.deque):
        return f"{type(obj).__name__} of {len(obj)} items"
    return f"{type_name(type(obj))} {short_repr(obj)}"


def _slot_names(tp: type) -> Iterable[str]:
    for cls in tp.__mro__:
        slots = cls.__dict__.get("__slots__", ())
        yield from (slots,) if isinstance(slots, str) else slots


def _edge(holder: object, held: object) -> str:
    """How ``holder`` refers to ``held``: ``.attr``, ``[key]``, ..."""
    if isinstance(holder, dict):
        for key, value in holder.items():
            if value is held:
                return f"[{key!r}]"
            if key is held:
                return "(a key)"
    elif isinstance(holder, list | tuple | collections.deque):
        for i, value in enumerate(holder):
            if value is held:
                return f"[{i}]"
    elif isinstance(holder, set | frozenset):
        return "(a member)"
    elif isinstance(holder, types.CellType):
        return ".cell_contents"
    elif isinstance(holder, types.FunctionType):
        for name in ("__closure__", "__globals__", "__defaults__", "__kwdefaults__", "__dict__"):
            if getattr(holder, name, None) is held:
                return f".{name}"
    elif isinstance(holder, types.MethodType):
        return ".__self__" if holder.__self__ is held else ".__func__"
    elif isinstance(holder, types.FrameType):
        for name, value in holder.f_locals.items():
            if value is held:
                return f" local {name!r}"
    attrs = getattr(holder, "__dict__", None)
    if attrs is held:
        return ".__dict__"
    if isinstance(attrs, dict):
        # 3.11+ keeps instance attributes inline: the referrer is the object itself.
        for name, value in attrs.items():
            if value is held:
                return f".{name}"
    for name in _slot_names(type(holder)):
        try:
            if getattr(holder, name) is held:
                return f".{name}"
        except AttributeError:
            continue
    return " refers to"


def render_chain(chain: Sequence[object]) -> list[str]:
    """A root-first chain of objects as lines: the root, then one ``edge -> object`` line per
    hop. An object's ``__dict__`` (and a function's closure tuple and cell) is folded into the
    edge: ``module 'm'`` then ``.REQUESTS -> list``; ``function 'f'`` then ``closure
    variable 'r' -> Request``."""
    if not chain:
        return []
    lines = [describe(chain[0])]
    i = 0
    while i + 1 < len(chain):
        holder, held = chain[i], chain[i + 1]
        step = 1
        if (
            isinstance(held, dict)
            and getattr(holder, "__dict__", None) is held
            and i + 2 < len(chain)
        ):
            edge = _edge(held, chain[i + 2])
            edge = f".{edge[2:-2]}" if edge.startswith("['") else edge
            step = 2
        elif (
            isinstance(holder, types.FunctionType)
            and holder.__closure__ is not None
            and held is holder.__closure__
            and i + 3 < len(chain)
            and isinstance(chain[i + 2], types.CellType)
        ):
            index = holder.__closure__.index(chain[i + 2])
            edge = f" closure variable {holder.__code__.co_freevars[index]!r}"
            step = 3
        else:
            edge = _edge(holder, held)
        lines.append(f"  {edge.strip()} -> {describe(chain[i + step])}")
        i += step
    return lines


def _stack_frame_ids() -> list[int]:
    """The ids of the live frames from the caller up (objgraph must not see them as holders)."""
    ids = []
    frame: types.FrameType | None = inspect.currentframe()
    frame = frame.f_back if frame is not None else None  # from the caller: drop our own
    while frame is not None:
        ids.append(id(frame))
        frame = frame.f_back
    return ids


def explain_cycle(obj: object, garbage: list[object]) -> list[str]:
    """The cycle that ``obj`` hangs from, found by walking its referrers inside ``garbage``
    until one repeats; then the path from the cycle down to ``obj``."""
    members = {id(o) for o in garbage}
    ignore = {id(garbage), *_stack_frame_ids()}
    path: list[object] = [obj]
    index = {id(obj): 0}
    back = -1
    for _ in range(40):
        referrers = [
            r for r in gc.get_referrers(path[-1]) if id(r) in members and id(r) not in ignore
        ]
        if not referrers:
            break
        seen = next((r for r in referrers if id(r) in index), None)
        if seen is not None:
            back = index[id(seen)]
            break
        index[id(referrers[0])] = len(path)
        path.append(referrers[0])
    lines = ["unreachable, freed only by the cyclic GC:"]
    if back < 0:
        lines.extend(render_chain(path[::-1]))
        return lines
    # Each object refers to the next: path[back] -> path[-1] -> ... -> path[back + 1] -> back.
    cycle = [path[back], *path[:back:-1]]
    start = next((i for i, o in enumerate(cycle) if isinstance(o, types.FunctionType)), 0)
    cycle = cycle[start:] + cycle[:start]
    lines.append("the reference cycle:")
    lines.extend(render_chain([*cycle, cycle[0]]))
    if back > 0:
        # From the cycle member that refers to path[back], down to obj.
        lines.append("from the cycle down to the leaked object:")
        lines.extend(
            render_chain(
                [path[back + 1] if back + 1 < len(path) else path[back], *path[back::-1]][
                    0 if back + 1 < len(path) else 1 :
                ]
            )
        )
    del path, cycle
    return lines


def describe_registrations(loop: SelectorLoop, before: set[int]) -> list[str]:
    """One line per fd registered with the loop that is not in ``before``: its callbacks."""
    lines = []
    for fd, entry in registrations(loop).items():
        if entry is None or fd in before:
            continue
        callbacks = [cb for cb in (entry.reader, entry.writer) if cb is not None]
        lines.append(f"  fd {fd}: " + ", ".join(short_repr(cb, 90) for cb in callbacks))
    return lines


def type_summary(objs: Iterable[object]) -> str:
    counter = collections.Counter(type(o).__name__ for o in objs)
    return ", ".join(f"{n} {name}" for name, n in counter.most_common(6))


def garbage_culprit(garbage: list[object]) -> object:
    """The object of the garbage to explain: a reactor per-connection object if any (the most
    telling type first), else the first function, else the first object."""
    for tp in TRACKED_TYPES:
        for obj in garbage:
            if type(obj) is tp:
                return obj
    for obj in garbage:
        if isinstance(obj, types.FunctionType):
            return obj
    return garbage[0]


def _roots(h: Harness) -> Callable[[object], bool]:
    loop, server, app = h.loop, h.server, h.app

    def is_root(obj: object) -> bool:
        return obj is loop or obj is server or obj is app or bool(objgraph.is_proper_module(obj))

    return is_root


def explain_holders(victim: object, h: Harness) -> list[str]:
    ignore = _stack_frame_ids()
    chain: list[object] = objgraph.find_backref_chain(
        victim, _roots(h), max_depth=30, extra_ignore=ignore
    )
    if len(chain) < 2:
        del chain
        return [f"{describe(victim)}: no chain to a module, the loop or the server found"]
    lines = ["held by (root first):", *render_chain(chain)]
    del chain
    return lines


def render_graph(victim: object, h: Harness, filename: str, garbage: list[object]) -> list[str]:
    """The back-references of ``victim`` as a picture: objgraph.show_chain of its chain to a
    root when there is one, else objgraph.show_backrefs (a cycle). The .dot file is always
    written; PNG/SVG need Graphviz's ``dot``."""
    stem, ext = os.path.splitext(filename)
    dot_file = filename if ext == ".dot" else stem + ".dot"
    ignore = [*_stack_frame_ids(), id(garbage)]
    chain = objgraph.find_backref_chain(victim, _roots(h), max_depth=30, extra_ignore=ignore)
    ignore.append(id(chain))
    try:
        with open(dot_file, "w", encoding="utf-8") as out:
            if len(chain) > 1:
                objgraph.show_chain(chain, output=out, shortnames=False)
            else:
                objgraph.show_backrefs(
                    [victim],
                    max_depth=5,
                    extra_ignore=ignore,
                    too_many=8,
                    filter=lambda o: not isinstance(o, types.FrameType),
                    output=out,
                    shortnames=False,
                )
    except OSError as exc:
        return [f"could not write the graph: {exc}"]
    finally:
        del chain
    if ext == ".dot":
        return [f"back-reference graph written to {dot_file}"]
    dot = shutil.which("dot")
    if dot is None:
        return [
            f"back-reference graph written to {dot_file} (Graphviz's dot was not found; "
            f"render it with: dot -T{ext.lstrip('.') or 'png'} {dot_file} -o {filename})"
        ]
    done = subprocess.run(
        [dot, f"-T{ext.lstrip('.')}", dot_file, "-o", filename],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return [f"dot failed on {dot_file}: {done.stderr.strip()}"]
    return [f"back-reference graph rendered to {filename} (source {dot_file})"]
