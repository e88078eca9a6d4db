"""Long CPU work that shares the gevent hub: yield after a slice of time, not of items.

A worker serves all of its requests on one hub, so a request that computes for
10 ms without yielding delays every other request of the worker by 10 ms. Work
over many items (a big report's rows, its JSON) calls a ``Pacer`` once per item;
the pacer yields when this greenlet has run for ``SLICE_SECONDS`` since it last
yielded, so other requests wait at most about a slice per busy greenlet, however
slow a machine or large an item is. In a process that gevent has not patched
(the reporter, a script) nobody shares the hub, and a pause does nothing.
"""

from __future__ import annotations

import time

import gevent
import gevent.monkey

# Half a millisecond: with ten big reports at once, another request waits a few
# slices per hub round (accept, read, answer), so it stays within a few ms.
SLICE_SECONDS = 0.0005


class Pacer:
    """Call once per item of a long loop; yields to other greenlets when the slice is spent."""

    def __init__(self) -> None:
        self._resumed = time.perf_counter()

    def __call__(self) -> None:
        if time.perf_counter() - self._resumed >= SLICE_SECONDS:
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
        let_the_sockets_in()
        self._resumed = time.perf_counter()


def let_the_sockets_in() -> None:
    """Yield until the hub has polled the sockets once (see ``Pacer.pause``).

    The servers call it after each answer: a connection whose next request is
    already buffered would otherwise be served again before the hub polls, and
    with requests that never wait on a socket (SQLite reads run in C) a few
    connections kept the worker while the others' requests waited up to a second.
    """
    if _shares_the_hub():
        gevent.sleep(_AFTER_THE_POLL)


# The shortest timer: due at once, but run only after the hub's next poll.
_AFTER_THE_POLL = 1e-6


def _shares_the_hub() -> bool:
    """Whether other greenlets serve requests here: gevent has patched the sockets."""
    return bool(gevent.monkey.is_module_patched("socket"))
