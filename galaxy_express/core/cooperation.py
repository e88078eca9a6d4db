"""Long CPU work that shares the gevent hub: yield after a slice of time, not of items.

A worker serves all of its requests on one hub, so a request that computes for
10 ms without yielding delays every other request of the worker by 10 ms. Work
over many items (a big report's rows, its JSON) calls a ``Pacer`` once per item;
the pacer yields when this greenlet has run for ``SLICE_SECONDS`` since it last
yielded, so other requests wait at most about a slice per busy greenlet, however
slow a machine or large an item is. Outside a gevent server, a pause costs a
few microseconds and changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import gevent
from gevent.lock import BoundedSemaphore

# Half a millisecond: with ten big reports at once, another request waits a few
# slices per hub round (accept, read, answer), so it stays within a few ms.
SLICE_SECONDS = 0.0005


class Pacer:
    """Call once per item of a long loop; yields to other greenlets when the slice is spent."""

    def __init__(self, slice_seconds: float = SLICE_SECONDS) -> None:
        self._slice = slice_seconds
        self._resumed = time.perf_counter()

    def __call__(self) -> None:
        if time.perf_counter() - self._resumed >= self._slice:
            self.pause()

    def pause(self) -> None:
        """Yield now, until the hub has polled the sockets once, and start a new slice.

        A timer, not ``gevent.sleep(0)``: a greenlet woken by ``sleep(0)`` runs
        again before the hub polls the sockets (gevent runs its callbacks in
        rounds of 50 before it looks at the clock), so ten busy reports kept a
        waiting request's socket unread for tens of milliseconds. A timer is run
        after the poll, so the sockets get a turn every round. Not
        ``gevent.idle()`` either: a busy worker is never idle, and the report
        would wait forever.
        """
        gevent.sleep(_AFTER_THE_POLL)
        self._resumed = time.perf_counter()


# The shortest timer: due at once, but run only after the hub's next poll.
_AFTER_THE_POLL = 1e-6


class Turns:
    """At most ``at_once`` holders at a time per process; the others wait their turn.

    Paced work yields a slice per holder per hub round, so a request arriving
    during ten big reports waits ten slices a round; with two turns, two.
    """

    def __init__(self, at_once: int) -> None:
        self._semaphore = BoundedSemaphore(at_once)

    @contextmanager
    def turn(self) -> Iterator[None]:
        with self._semaphore:
            yield
