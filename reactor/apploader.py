"""Loading an APP given as ``module:callable``: what ``reactor serve`` and ``reactor
leakcheck`` both do with their APP argument.

Owns ``load_app`` (import the module with the current directory on ``sys.path``, walk a dotted
attribute, check that the result is callable) and the one-line reasons it gives when it cannot:
``AppLoadError``, whose message the commands print as their usage error, and ``one_line``, the
``Type: message`` form of an exception on one line. It imports nothing of reactor at run time
(the Handler type only for type checking), so both commands import it and not each other.
Tests: tests/integration/test_cli.py, tests/leaks/test_leakcheck.py (the usage errors).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Handler

__all__ = ["INTERFACES", "AppLoadError", "detect_interface", "load_app", "one_line"]

#: What ``reactor serve APP`` can serve: a reactor handler, a WSGI or an ASGI application.
INTERFACES = ("native", "wsgi", "asgi")

# Parameter names that mark a WSGI application (PEP 3333's, and what Falcon, Bottle and
# Django's WSGIHandler call them).
_WSGI_FIRST = frozenset({"environ", "env", "environment"})
_WSGI_SECOND = frozenset({"start_response", "start_resp", "sr"})


class AppLoadError(Exception):
    """APP could not be turned into a handler; the message says why, in one line."""


def load_app(spec: str) -> Handler:
    """Import ``module:callable`` (the attribute may be dotted) with the current directory
    on ``sys.path``; raises AppLoadError with a one-line reason."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AppLoadError(f"APP must look like module:callable, got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            raise AppLoadError(
                f"cannot import {module_name!r}: no module named {missing!r}"
            ) from None
        raise AppLoadError(f"importing {module_name!r} failed: {one_line(exc)}") from None
    except Exception as exc:
        raise AppLoadError(f"importing {module_name!r} failed: {one_line(exc)}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise AppLoadError(f"{spec} is a {type(obj).__name__}, not a callable handler(w, r)")
    handler: Handler = obj
    return handler


def detect_interface(app: Any) -> tuple[str, str]:
    """Which interface ``app`` speaks, from its call signature, and why (for the start-up
    line): ``"asgi"`` for an ``async def app(scope, receive, send)`` (or an object whose
    ``__call__`` is one), ``"wsgi"`` for ``app(environ, start_response)``, ``"native"`` for
    ``handler(w, r)``. Raises AppLoadError when it is none of them."""
    try:
        signature = inspect.signature(app)
    except (TypeError, ValueError):
        return "native", "no signature to inspect; served as a handler(w, r)"
    params = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if len(params) < 2 and any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values()):
        return "native", "(*args); served as a handler(w, r)"
    names = [p.name for p in params]
    call = None if inspect.isroutine(app) else type(app).__call__
    is_async = inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(call)
    if is_async and len(params) == 3:
        return "asgi", f"async ({', '.join(names)})"
    if len(params) == 2 and (names[0] in _WSGI_FIRST or names[1] in _WSGI_SECOND):
        return "wsgi", f"({', '.join(names)})"
    if len(params) == 2:
        return "native", f"({', '.join(names)})"
    kind = "an async callable" if is_async else "a callable"
    raise AppLoadError(
        f"{_name_of(app)} is {kind} of ({', '.join(names)}): not a handler(w, r), a WSGI "
        "app(environ, start_response) or an ASGI async app(scope, receive, send)"
    )


def _name_of(app: Any) -> str:
    name = getattr(app, "__qualname__", None) or type(app).__qualname__
    return str(name)


def one_line(exc: BaseException) -> str:
    """``Type: message`` with the message's whitespace folded to single spaces."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
