"""A small Flask application for tests/leaks/test_leakcheck_apps.py: ``reactor leakcheck
--wsgi tests.leaks.flaskapp:app`` must call the stock views *cycles* (werkzeug's and Flask's
own per-request reference cycles, freed by the collector), ``/leak`` a *leak* (a module-level
list each request appends to) and ``/capture`` a failure (a cycle that captures reactor's
hijack handle, and through it the ResponseWriter).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

app = Flask(__name__)

#: What ``/leak`` keeps: one dict per request, never emptied.
SEEN: list[dict[str, Any]] = []


@app.get("/")
def index() -> str:
    return "hello from flask"


@app.get("/user/<name>")
def user(name: str) -> dict[str, Any]:
    return {"name": name, "agent": request.headers.get("User-Agent", "")}


@app.post("/echo")
def echo() -> bytes:
    return request.get_data()


@app.get("/leak")
def leak() -> str:
    SEEN.append({"args": request.args, "note": f"visit {len(SEEN)} of {request.path}"})
    return f"seen {len(SEEN)}"


@app.get("/capture")
def capture() -> str:
    hijack = request.environ["reactor.hijack"]

    def later() -> Any:
        # Refers to itself through its closure, and holds reactor's hijack handle.
        return later, hijack

    return "captured"
