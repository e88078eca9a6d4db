"""The live stream's machinery in one process: the hub, its Redis listener, followers.

Real Redis (this run's server), real greenlets; the database side is a table of
mailboxes' last seqs kept in the test (what ``latest_seqs`` and the reads answer).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import gevent
import pytest
import redis

from galaxy_express.core.errors import DependencyUnavailable
from galaxy_express.inbox import live
from tests.support import wait_until

CHANNEL = "ge-test:inbox-changes"


@dataclass(frozen=True)
class Change:
    seq: int


@dataclass(frozen=True)
class Page:
    changes: list[Change]
    next_since: int
    has_more: bool


@dataclass
class Mailboxes:
    """The database's side: each mailbox's last seq; reads answer the changes after ``since``."""

    last: dict[str, int] = field(default_factory=dict)
    reads: int = 0
    down: bool = False

    def latest_seqs(self, _context: Any, recipient_ids: Sequence[str]) -> dict[str, int]:
        if self.down:
            raise DependencyUnavailable("down")
        return {r: self.last[r] for r in recipient_ids if r in self.last}

    def reader(self, recipient_id: str, limit: int = 3) -> live.ReadAfter:
        def read_after(since: int) -> Page:
            self.reads += 1
            if self.down:
                raise DependencyUnavailable("down")
            last = self.last.get(recipient_id, 0)
            upto = min(last, since + limit)
            changes = [Change(seq) for seq in range(since + 1, upto + 1)]
            return Page(changes, upto if changes else since, upto < last)

        return read_after


def decode(data: bytes) -> tuple[str, int]:
    fields = json.loads(data)
    return fields["recipient_id"], fields["seq"]


@contextlib.contextmanager
def no_context() -> Iterator[Any]:
    yield None


def make_hub(mailboxes: Mailboxes, redis_url: str | None, **settings: Any) -> live.Hub:
    listener = None
    if redis_url is not None:
        listener = live.Listener(live.subscriber_clients([redis_url]), CHANNEL, decode)
    options = {"heartbeat_seconds": 15.0, "poll_seconds": 30.0, "max_streams": 10} | settings
    hub = live.Hub(live.StreamSettings(**options), no_context, mailboxes.latest_seqs, listener)
    hub.start()  # as the first stream does
    return hub


@pytest.fixture
def mailboxes() -> Mailboxes:
    return Mailboxes()


NewHub = Callable[..., live.Hub]


@pytest.fixture
def new_hub(mailboxes: Mailboxes) -> Iterator[NewHub]:
    """``make_hub`` over this test's mailboxes; every hub made is shut down afterwards."""
    made: list[live.Hub] = []

    def new(redis_url: str | None = None, **settings: Any) -> live.Hub:
        made.append(make_hub(mailboxes, redis_url, **settings))
        return made[-1]

    yield new
    for hub in made:
        hub.shut_down()


def subscribed(hub: live.Hub) -> live.Listener:
    """The hub's listener, once it has subscribed."""
    assert hub.listener is not None
    assert hub.listener.connected.wait(5)
    return hub.listener


def publish(client: redis.Redis, recipient_id: str, seq: int) -> None:
    client.publish(CHANNEL, json.dumps({"recipient_id": recipient_id, "seq": seq}))


def test_a_wake_up_rings_the_followers_behind_it_only(
    mailboxes: Mailboxes, new_hub: NewHub, redis_url: str, redis_client: redis.Redis
) -> None:
    hub = new_hub(redis_url)
    behind, caught_up, other = hub.admit("m1", 0), hub.admit("m1", 7), hub.admit("m2", 0)
    subscribed(hub)
    publish(redis_client, "m1", 7)
    assert behind.bell.wait(1)
    gevent.sleep(0.05)
    assert not caught_up.bell.is_set()
    assert not other.bell.is_set()


def test_the_listener_resubscribes_after_its_connection_is_killed(
    mailboxes: Mailboxes, new_hub: NewHub, redis_url: str, redis_client: redis.Redis
) -> None:
    hub = new_hub(redis_url)
    watch = hub.admit("m1", 0)
    listener = subscribed(hub)
    assert redis_client.execute_command("CLIENT", "KILL", "TYPE", "pubsub") >= 1
    wait_until(lambda: listener.subscriptions >= 2, 5)
    publish(redis_client, "m1", 1)
    assert watch.bell.wait(1)


def test_a_malformed_wake_up_is_ignored(
    mailboxes: Mailboxes, new_hub: NewHub, redis_url: str, redis_client: redis.Redis
) -> None:
    hub = new_hub(redis_url)
    watch = hub.admit("m1", 0)
    listener = subscribed(hub)
    redis_client.publish(CHANNEL, b"\xff not json")
    publish(redis_client, "m1", 1)
    assert watch.bell.wait(1)
    assert listener.subscriptions == 1  # still the first subscription


def test_without_redis_the_poll_rings_the_followers_behind(
    mailboxes: Mailboxes, new_hub: NewHub
) -> None:
    dead = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    hub = new_hub(dead, poll_seconds=0.1)
    watch = hub.admit("m1", 0)
    mailboxes.last["m1"] = 3
    started = time.monotonic()
    assert watch.bell.wait(2)
    assert time.monotonic() - started < 1.0
    assert hub.listener is not None
    assert not hub.listener.connected.is_set()


def test_a_follower_sends_pages_then_heartbeats(mailboxes: Mailboxes, new_hub: NewHub) -> None:
    hub = new_hub(heartbeat_seconds=0.05)
    mailboxes.last["m1"] = 5
    follower = live.Follower(hub, hub.admit("m1", 0), mailboxes.reader("m1", limit=3))
    follower.sent(Page([], 0, True))  # the view's first read said there is more
    assert [c.seq for c in next(follower)] == [1, 2, 3]
    assert [c.seq for c in next(follower)] == [4, 5]
    started = time.monotonic()
    assert next(follower) == []  # nothing new: a heartbeat
    assert time.monotonic() - started >= 0.04
    mailboxes.last["m1"] = 6
    hub.wake("m1", 6)
    assert [c.seq for c in next(follower)] == [6]
    assert follower.last_sent == 6
    follower.close()
    assert hub.open_streams == 0


def test_a_follower_outlives_a_database_outage(mailboxes: Mailboxes, new_hub: NewHub) -> None:
    hub = new_hub(heartbeat_seconds=5, poll_seconds=0.05)
    follower = live.Follower(hub, hub.admit("m1", 0), mailboxes.reader("m1"))
    mailboxes.down = True
    mailboxes.last["m1"] = 1
    hub.wake("m1", 1)
    got = gevent.spawn(next, follower)
    wait_until(lambda: mailboxes.reads >= 1, 2)
    assert not got.ready()  # the failed read sent nothing
    mailboxes.down = False  # the next poll finds mailbox m1 ahead and rings again
    assert [c.seq for c in got.get(timeout=2)] == [1]
    follower.close()


def test_shutting_down_ends_every_follower_and_refuses_new_ones(
    mailboxes: Mailboxes, new_hub: NewHub
) -> None:
    hub = new_hub()
    followers = [
        live.Follower(hub, hub.admit(f"m{i}", 0), mailboxes.reader(f"m{i}")) for i in range(3)
    ]
    runs = [gevent.spawn(list, follower) for follower in followers]
    gevent.sleep(0.05)
    hub.shut_down()
    gevent.joinall(runs, timeout=1, raise_error=True)
    assert all(run.successful() and run.value == [] for run in runs)
    with pytest.raises(live.StreamLimitReached) as refused:
        hub.admit("m9", 0)
    assert refused.value.retry_after_seconds == 1


def test_the_stream_limit_is_per_hub_and_a_closed_stream_frees_its_place(
    mailboxes: Mailboxes, new_hub: NewHub
) -> None:
    hub = new_hub(max_streams=2, retry_after_seconds=7)
    first = live.Follower(hub, hub.admit("m1", 0), mailboxes.reader("m1"))
    hub.admit("m1", 0)
    with pytest.raises(live.StreamLimitReached) as refused:
        hub.admit("m2", 0)
    assert refused.value.status == 503
    assert refused.value.retry_after_seconds == 7
    first.close()
    first.close()  # twice frees one place only
    hub.admit("m2", 0)
    assert hub.open_streams == 2
