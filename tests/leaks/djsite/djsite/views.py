"""Planted problems for tests/leaks/test_leakcheck_apps.py (the rest of the project is
``django-admin startproject djsite``'s): ``/leak/`` keeps what each request appends to a
module-level list; ``/capture/`` makes a reference cycle that captures reactor's hijack
handle (and through it the ResponseWriter)."""

from typing import Any

from django.http import HttpRequest, HttpResponse

#: What ``/leak/`` keeps: one dict per request, never emptied.
SEEN: list[dict[str, Any]] = []


def leak(request: HttpRequest) -> HttpResponse:
    SEEN.append({"get": request.GET.copy(), "note": f"visit {len(SEEN)} of {request.path}"})
    return HttpResponse(f"seen {len(SEEN)}")


def capture(request: HttpRequest) -> HttpResponse:
    hijack = request.environ["reactor.hijack"]

    def later() -> Any:
        # Refers to itself through its closure, and holds reactor's hijack handle.
        return later, hijack

    return HttpResponse("captured")
