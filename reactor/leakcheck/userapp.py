"""``reactor leakcheck``'s scenarios for a user's handler (APP or ``--wsgi``).

Owns APP_SCENARIOS: the Target request (``--method``, ``--path``, ``--body-file``) over
keep-alive connections, with ``Connection: close``, and pipelined. Tests:
tests/leaks/test_leakcheck.py.
"""

from __future__ import annotations

from .harness import Harness
from .scenarios import PER_CONN, Scenario, split_batches

__all__ = ["APP_SCENARIOS"]


def _app_sequential(h: Harness, n: int) -> int:
    batches = split_batches(n, PER_CONN)
    head_only = h.target.method == "HEAD"
    for count in batches:
        c = h.client.connect()
        for _ in range(count):
            c.send(h.target.request())
            _status, headers, _body = c.read_response(head_only)
            if headers.get("connection", "").lower() == "close":
                c.close()
                h.wait_closed()
                c = h.client.connect()
        c.close()
        h.wait_closed()
    return len(batches)


def _app_close(h: Harness, n: int) -> int:
    n = max(n, 1)
    for _ in range(n):
        c = h.client.connect()
        c.send(h.target.request(close=True))
        c.read_response(h.target.method == "HEAD")
        c.read_to_eof()
        c.close()
        h.wait_closed()
    return n


def _app_pipelined(h: Harness, n: int) -> int:
    batches = split_batches(n, 5)
    for count in batches:
        c = h.client.connect()
        c.send(h.target.request() * count)
        for _ in range(count):
            c.read_response(h.target.method == "HEAD")
        c.close()
        h.wait_closed()
    return len(batches)


APP_SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "app-keepalive",
            f"the request over keep-alive connections, {PER_CONN} per connection",
            _app_sequential,
        ),
        Scenario("app-close", "the request with Connection: close, one per connection", _app_close),
        Scenario("app-pipelined", "bursts of 5 pipelined requests", _app_pipelined),
    )
}
