"""Fair accepts among the worker processes that share one listening socket.

The launcher binds each port once and hands the socket to its workers, so
they take connections from one accept queue (``galaxy_express.runtime.launcher``).
Shared alone, that is not fair: every worker is woken by each new connection
and the first one back from its event loop wins, so a worker that happens to
be idle at a burst takes most of it. Two rules even it out:

- each wake-up accepts the worker's share of what is open and waiting (on
  Linux the accept queue's length is known; elsewhere one connection), so on
  a burst each worker takes about half at once (gevent would accept up to 100);
- a worker holding more than the lowest count + 1 of open connections leaves
  the next accept to the others for ``DEFER_SECONDS``, then accepts as usual.

Taking a share at once, not one a wake-up, matters to a busy worker: between
two wake-ups it answers every connection it holds once, so accepting a burst
of 32 one at a time made the last one's first request wait for 32 rounds that
grew from 1 to 32 answers (64 connections opening at once on two workers busy
with inbox pages: first answers up to ~0.5 s late, the p99 of a 3-second
benchmark row 296 ms against 48 ms for the same load after 30 seconds).

The counts live in a small file the launcher creates (``Board``): one 32-bit
slot per worker, written by its worker only (+1 on accept, -1 when the
connection ends) and read by the others. A slot is ``ABSENT`` until its
worker starts and again from the moment the launcher sees the worker exit,
so a dead worker's counts never steer the others; a stuck worker can make
them defer, but each deferral is bounded and then they accept anyway.
Without the launcher's variables (``baseplate-serve`` on its own) the worker
only accepts one connection per wake-up.
"""

from __future__ import annotations

import mmap
import os
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gevent.server import StreamServer

BOARD_VARIABLE = "GE_ACCEPT_BOARD"
SLOT_VARIABLE = "GE_ACCEPT_SLOT"
ABSENT = -1
# Long enough for an idler worker's event loop to come round to its accept,
# short enough that a worker waiting on a stuck one barely notices.
DEFER_SECONDS = 0.003
_SLOT_BYTES = 4


class Board:
    """Open connections per worker of one port, in a file every worker maps."""

    def __init__(self, path: Path) -> None:
        with path.open("r+b") as file:
            self._map = mmap.mmap(file.fileno(), 0)
        self.counts = memoryview(self._map).cast("i")

    @classmethod
    def create(cls, path: Path, workers: int) -> Board:
        path.write_bytes(ABSENT.to_bytes(_SLOT_BYTES, "little", signed=True) * max(1, workers))
        return cls(path)

    def reset(self, slot: int) -> None:
        """The launcher, when the slot's worker has exited: count it no more."""
        self.counts[slot] = ABSENT

    def over_share(self, slot: int) -> bool:
        mine = self.counts[slot]
        return mine > min(count for count in self.counts if count != ABSENT) + 1

    def accepts_due(self, slot: int, waiting: int) -> int:
        """How many of ``waiting`` connections this worker takes now: up to an even
        share of all its port's open and waiting ones, and at least one (it was woken)."""
        present = [count for count in self.counts if count != ABSENT] or [0]
        share = -(-(sum(present) + waiting) // len(present))  # rounded up
        return max(1, share - max(0, self.counts[slot]))


# struct tcp_info: seven one-byte fields and a byte of bit fields, then u32s, of
# which the fifth (tcpi_unacked) holds a listening socket's accept queue length.
_TCP_INFO_BYTES = 104
_ACCEPT_QUEUE_AT = 24


def waiting_connections(listener: socket.socket) -> int:
    """Connections in the listening socket's accept queue; 1 where the system can't say."""
    try:
        info = listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_BYTES)
        (waiting,) = struct.unpack_from("I", info, _ACCEPT_QUEUE_AT)
    except (AttributeError, OSError, struct.error):  # no TCP_INFO (macOS), or a short one
        return 1
    return int(waiting)


def share_accepts(server: StreamServer) -> None:
    """The board's rules under the launcher; on its own, one accept per wake-up (see above)."""
    server.max_accept = 1
    name = os.environ.get(BOARD_VARIABLE)
    if not name:
        return
    board, slot = Board(Path(name)), int(os.environ[SLOT_VARIABLE])
    board.counts[slot] = 0
    _count_connections(server, board.counts, slot)
    server._do_read = _deferring(server, board, slot)


def _count_connections(server: StreamServer, counts: memoryview, slot: int) -> None:
    """+1 as a connection is accepted (not when its greenlet first runs: the
    next wake-up must already see it), -1 when its handler returns."""
    # server.handle, not _handle: start() sets _handle from it.
    do_handle, handle = server.do_handle, server.handle

    def do_handle_counted(*args: Any) -> None:
        counts[slot] += 1
        try:
            do_handle(*args)
        except BaseException:
            counts[slot] -= 1
            raise

    def handle_counted(*args: Any) -> Any:
        try:
            return handle(*args)
        finally:
            counts[slot] -= 1

    server.do_handle, server.handle = do_handle_counted, handle_counted


def _deferring(server: StreamServer, board: Board, slot: int) -> Callable[[], None]:
    accept = server._do_read
    accept_until = 0.0  # after a deferral, accept one connection if it comes by then
    timer: Any = None

    def resume() -> None:
        nonlocal accept_until, timer
        timer.close()
        timer = None
        accept_until = time.monotonic() + DEFER_SECONDS
        server._start_accepting_if_started()

    def read_or_defer() -> None:
        nonlocal accept_until, timer
        if accept_until and time.monotonic() <= accept_until:
            accept_until = 0.0
        elif board.over_share(slot):
            server.stop_accepting()
            timer = server.loop.timer(DEFER_SECONDS)
            timer.start(resume)
            return
        server.max_accept = board.accepts_due(slot, waiting_connections(server.socket))
        accept()

    return read_or_defer
