"""Fair accepts: each wake-up takes the worker's share of a burst, not one connection.

Real sockets and a real board file; the "other worker" is a slot of the board
that the test sets, and one call of the server's accept callback is one wake-up.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
from gevent.server import StreamServer

from galaxy_express.runtime import balance
from galaxy_express.runtime.balance import ABSENT, Board

QUEUED = 10


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    yield sock
    sock.close()


def _queue(listener: socket.socket, count: int) -> list[socket.socket]:
    """Connections the kernel has completed and queued, none accepted yet."""
    return [socket.create_connection(listener.getsockname(), timeout=5) for _ in range(count)]


def _board(tmp_path: Path, counts: list[int]) -> Board:
    board = Board.create(tmp_path / "board", len(counts))
    for slot, count in enumerate(counts):
        board.counts[slot] = count
    return board


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="TCP_INFO's queue length: Linux")
def test_the_accept_queue_length_is_read_off_the_listening_socket(
    listener: socket.socket,
) -> None:
    clients = _queue(listener, 5)
    waiting_before = balance.waiting_connections(listener)
    listener.accept()[0].close()

    assert (waiting_before, balance.waiting_connections(listener)) == (5, 4)
    for client in clients:
        client.close()


def test_a_socket_whose_queue_is_unknown_counts_as_one_waiting() -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
        assert balance.waiting_connections(unix) == 1


@pytest.mark.parametrize(
    ("counts", "slot", "waiting", "due"),
    [
        ([0, 0], 0, 64, 32),  # a burst on idle workers: half each
        ([0, 0], 0, 63, 32),  # an odd one rounds up, so none is left behind
        ([0, 32], 0, 32, 32),  # the other took its half: the rest is mine
        ([10, 0], 0, 2, 1),  # ahead of the other: still one, as it was woken
        ([0, ABSENT], 0, 64, 64),  # a slot whose worker is gone doesn't count
        ([5, 5, 5], 2, 6, 2),  # three workers: 21 open and waiting, 7 each
    ],
)
def test_each_wake_up_is_due_its_share_of_the_open_and_waiting_connections(
    tmp_path: Path, counts: list[int], slot: int, waiting: int, due: int
) -> None:
    assert _board(tmp_path, counts).accepts_due(slot, waiting) == due


def test_one_wake_up_of_a_worker_takes_its_half_of_a_queued_burst(
    tmp_path: Path, listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Accepting one a wake-up, a busy worker answered every connection it held
    between two accepts: a burst's last connection waited for all those rounds."""
    board = _board(tmp_path, [0, 0])
    monkeypatch.setenv(balance.BOARD_VARIABLE, str(tmp_path / "board"))
    monkeypatch.setenv(balance.SLOT_VARIABLE, "0")
    held: list[socket.socket] = []
    server = StreamServer(listener, lambda connection, _address: held.append(connection))
    balance.share_accepts(server)
    server.start()
    server.stop_accepting()  # the hub must not accept on its own: the test wakes it once
    clients = _queue(listener, QUEUED)
    try:
        server._do_read()
        accepted = board.counts[0]  # counted as accepted, before their handlers run
        gevent.sleep(0)
    finally:
        server.stop()
        for client in clients:
            client.close()

    assert accepted == QUEUED // 2
    assert len(held) == QUEUED // 2
