"""A Redis that is down, as a real client reports it, is a retryable 503 on both edges.

No operation lets a Redis outage through today (the spam counts fall back to the
rows); this is the net under whichever one would.
"""

from __future__ import annotations

import socket

import pytest
import redis

from galaxy_express.core.errors import DependencyUnavailable, outage_of


def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: nothing listens there


def test_a_refused_redis_connection_is_a_503() -> None:
    client = redis.Redis(port=refused_port(), socket_connect_timeout=1)
    with pytest.raises(redis.ConnectionError) as refused:
        client.scard("ge:spam:reporters:{x}")

    outage = outage_of(refused.value)

    assert isinstance(outage, DependencyUnavailable)
    assert (outage.status, outage.retry_after_seconds) == (503, 1)
    assert "127.0.0.1" not in str(outage)


def test_a_redis_that_never_answers_is_a_503() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts (in the kernel's backlog), never answers
        client = redis.Redis(port=silent.getsockname()[1], socket_timeout=0.2)
        with pytest.raises(redis.TimeoutError) as timed_out:
            client.scard("ge:spam:reporters:{x}")

    assert isinstance(outage_of(timed_out.value), DependencyUnavailable)


def test_other_errors_are_no_outage() -> None:
    assert outage_of(redis.ResponseError("WRONGTYPE")) is None
    assert outage_of(RuntimeError("bug")) is None
