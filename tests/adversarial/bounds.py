"""The thresholds of the adversarial suite, each next to its precedent.

The servers under attack run with short timeouts so that a test sees them fire within a few
seconds; the defaults (reactor/config.py) are the production values. The bounds on what a
user sees are generous on purpose: the machine is shared and loaded, and the point is to
catch a stalled loop (seconds to tens of seconds), not to measure speed.

Bound: value here; precedent.

- A well-behaved client is answered within, while an attack runs: 2 s (ANSWER_WITHIN). None of
  nginx, Go or HAProxy promise a latency; a stalled loop shows as the length of the stall (a
  header timeout of 10 s, a write timeout of 60 s, seconds of CPU in one callback).
- Header timeout, from the connection's start to the end of the head, not reset by progress:
  1.5 s here, 10 s by default. Go's ReadHeaderTimeout (the whole head, not reset); nginx's
  client_header_timeout 60 s; HAProxy's timeout http-request (commonly 10 s, whole head).
- Body timeout, between two reads of a body: 1.5 s here, 60 s by default. nginx's
  client_body_timeout 60 s, between two reads; HAProxy's timeout client.
- Write timeout, without progress writing: 1.5 s here, 60 s by default. nginx's send_timeout
  60 s, between two writes; Go's WriteTimeout; HAProxy's timeout client.
- A connection cut at a timeout is gone within the timeout plus 2 s (TIMER_SLACK): the timer
  fires on the loop's next pass; the rest is slack for the loaded machine.
- A connection flood's table: --max-connections 50 here. nginx's worker_connections 512;
  HAProxy's maxconn.
- The fd limit of a flooded server: RLIMIT_NOFILE 128 here. nginx logs "accept() failed (24:
  Too many open files)" and retries; Go's Serve sleeps 5 ms, doubling to 1 s, on a temporary
  accept error.
- Unread pipelined bytes held per connection: max_read_ahead, 256 KiB. Go's bufio reader holds
  4 KiB; nginx's large_client_header_buffers 4 x 8 KiB; HAProxy's tune.bufsize 16 KiB.
- RSS growth under an attack that must not be buffered (trickles, floods, slow readers of a
  streamed response): 24 MiB (RSS_GROWTH_KIB). A few hundred connections at ~1 KiB each plus
  the allocator's slack; a server that buffered a 32 MiB response per slow reader, or every
  pipelined request, would grow by hundreds of MiB. Attacks whose data must be held (partial
  uploads, a plain handler's whole response) may add twice what they sent.
- Live objects after the attack, above the baseline: one per attacking connection, at least
  300 (leak_allowance). A leaked connection keeps dozens of objects (connection, parser,
  request, writer, buffers), so even one leak per ten connections shows; 300 absorbs caches
  that settle on first use.
- fds and the connection table after the attack: the baseline exactly.
"""

from __future__ import annotations

ANSWER_WITHIN = 2.0
HEADER_TIMEOUT = 1.5
BODY_TIMEOUT = 1.5
WRITE_TIMEOUT = 1.5
TIMER_SLACK = 2.0
MAX_CONNECTIONS = 50
NOFILE = 128
RSS_GROWTH_KIB = 24 * 1024


def leak_allowance(connections: int) -> int:
    """Objects the server may hold above its baseline after ``connections`` attacked it."""
    return max(300, connections)


#: The flags every server under attack runs with.
TIMEOUT_FLAGS = (
    "--read-header-timeout",
    str(HEADER_TIMEOUT),
    "--body-timeout",
    str(BODY_TIMEOUT),
    "--write-timeout",
    str(WRITE_TIMEOUT),
)
