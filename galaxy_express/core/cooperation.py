"""Long CPU work that shares the gevent hub: yield after a slice of time, not of items.

A worker serves all of its requests on one hub, so a request that computes for
10 ms without yielding delays every other request of the worker by 10 ms. Work
over many items (a big report's rows, its JSON) calls a ``Pacer`` once per item;
the pacer yields when this greenlet has run for ``SLICE_SECONDS`` since it last
yielded, so other requests wait at most about a slice per busy greenlet, however
slow a machine or large an item is. Outside gevent, ``gevent.sleep(0)`` costs
a few microseconds and changes nothing.
"""

from __future__ import annotations

import time

import gevent

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
        """Yield now (between two statements, say), and start a new slice."""
        gevent.sleep(0)
        self._resumed = time.perf_counter()
