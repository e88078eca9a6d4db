"""The live stream's machinery in one worker: who watches which mailbox, and waking them.

A worker holds many open streams (``GET /v1/inbox/{id}/events``), most of them
idle. Each is a ``Follower``: it reads its mailbox's changes from the database
(the truth) whenever it is woken, sends them, and otherwise sleeps, sending a
heartbeat now and then. Nothing is held between reads: each read is a unit of
work of its own, on a context of its own, so idle streams hold no database
connection and no session.

Two things wake a follower, both per worker, not per stream (``Hub``):

- **wake-ups**: one Redis pub/sub subscription per worker (``Listener``, a
  greenlet) on the deployment's channel (``wakeups.channel_name``); a message
  ``(recipient, seq)`` wakes that mailbox's followers still behind ``seq``.
  Wake-ups arrive in milliseconds from any worker on any machine. A lost one
  (Redis down, a publish that failed, a gap while reconnecting) only delays;
- **the poll**: every ``poll_seconds`` (1 s) the hub reads the last seq of every
  watched mailbox in one query (``latest_seqs``) and wakes those behind. So a
  change reaches its streams within about a second even with Redis down.

The listener reconnects after any Redis error with a growing back-off (0.1 s
doubling to 5 s), on a connection of its own (never one of the context's pool),
and pings Redis every few seconds so a connection that went silent is noticed.
On a Redis Cluster it subscribes on any one master: Redis Cluster forwards
every PUBLISH to every node, so any node's subscribers see every message; when
that node fails the listener moves to the next one.

Shutdown: ``Hub.shut_down`` wakes every follower, which then ends its stream
(the client sees the response end and reconnects with ``Last-Event-ID``);
admissions are refused from then on. gevent is used directly: this module runs
only inside the gevent servers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import gevent
import gevent.event
import redis
from sqlalchemy import select

from galaxy_express.core.context import ServiceContext
from galaxy_express.core.errors import DependencyUnavailable, ServiceError
from galaxy_express.db import unit_of_work
from galaxy_express.inbox.models import InboxSequence

logger = logging.getLogger(__name__)

# How long the listener waits between reconnection attempts: doubling up to the last.
BACKOFF_FIRST_SECONDS = 0.1
BACKOFF_MAX_SECONDS = 5.0
# How often the listener pings Redis, and how long a ping may go unanswered.
PING_SECONDS = 5.0
PING_TIMEOUT_SECONDS = 3.0
# Mailboxes asked for per poll query (bind parameters stay well under SQLite's limit).
POLL_CHUNK = 500


class StreamLimitReached(DependencyUnavailable):
    """503: this worker already holds its maximum of open streams (or is stopping)."""

    slug = "too-many-streams"


@dataclass(frozen=True)
class StreamSettings:
    """``inbox.stream_*``: see README "Live stream"."""

    heartbeat_seconds: float = 15.0
    poll_seconds: float = 1.0
    max_streams: int = 2000
    retry_after_seconds: int = 2


class HasSeq(Protocol):
    @property
    def seq(self) -> int: ...


class Page(Protocol):
    """What a read of changes answers (``inbox.records.ChangesPage``)."""

    @property
    def changes(self) -> Sequence[HasSeq]: ...

    @property
    def next_since(self) -> int: ...

    @property
    def has_more(self) -> bool: ...


# Reads the changes of the follower's mailbox after a seq (on a fresh context).
ReadAfter = Callable[[int], Page]
# The last seq of each of these mailboxes (absent: none yet).
LatestSeqs = Callable[[ServiceContext, Sequence[str]], Mapping[str, int]]
# A fresh context for one unit of work, closed at the block's end (baseplate's
# ``server_context``): the request's own is not used once its answer has begun.
OpenContext = Callable[[], AbstractContextManager[ServiceContext]]
# Decodes a wake-up message into (recipient_id, seq); ValueError when it is not one.
Decode = Callable[[bytes], tuple[str, int]]


class Watch:
    """One follower's place in the hub: its mailbox, how far it has sent, its bell."""

    def __init__(self, recipient_id: str, last_sent: int) -> None:
        self.recipient_id = recipient_id
        self.last_sent = last_sent
        self.bell = gevent.event.Event()

    def wake_if_behind(self, seq: int) -> None:
        if seq > self.last_sent:
            self.bell.set()


class Hub:
    """A worker's open streams: the limit, the watches by mailbox, the listener and poller.

    The listener and the poller start with the first stream (a worker that
    never streams never subscribes) and stop at ``shut_down``.
    """

    def __init__(
        self,
        settings: StreamSettings,
        open_context: OpenContext,
        latest_seqs: LatestSeqs,
        listener: Listener | None,
    ) -> None:
        self.settings = settings
        self.open_context = open_context
        self._latest_seqs = latest_seqs
        self.listener = listener
        self._watches: dict[str, set[Watch]] = {}
        self._open = 0
        self.stopping = gevent.event.Event()
        self._poller: gevent.Greenlet | None = None
        self._poke = gevent.event.Event()
        self.polls = 0  # poll rounds done (tests and the benchmark read it)

    @property
    def open_streams(self) -> int:
        return self._open

    def admit(self, recipient_id: str, since: int) -> Watch:
        """A place for a new stream, or ``StreamLimitReached`` (503 with Retry-After)."""
        if self.stopping.is_set():
            raise StreamLimitReached("this server is stopping; reconnect", 1)
        if self._open >= self.settings.max_streams:
            raise StreamLimitReached(
                f"this server already holds {self.settings.max_streams} streams; retry later",
                self.settings.retry_after_seconds,
            )
        self._open += 1
        watch = Watch(recipient_id, since)
        self._watches.setdefault(recipient_id, set()).add(watch)
        return watch

    def release(self, watch: Watch) -> None:
        watching = self._watches.get(watch.recipient_id)
        if watching is None or watch not in watching:
            return  # released already
        watching.discard(watch)
        if not watching:
            del self._watches[watch.recipient_id]
        self._open -= 1

    def wake(self, recipient_id: str, seq: int) -> None:
        """A wake-up: the mailbox's changes now reach ``seq``."""
        for watch in self._watches.get(recipient_id, ()):
            watch.wake_if_behind(seq)

    def poll_soon(self) -> None:
        """Poll now rather than at the next interval (the listener lost messages)."""
        self._poke.set()

    def shut_down(self) -> None:
        """End every stream (they notice at once) and refuse new ones."""
        self.stopping.set()
        for watching in list(self._watches.values()):
            for watch in watching:
                watch.bell.set()
        if self.listener is not None:
            self.listener.stop()
        if self._poller is not None:
            self._poller.kill(block=False)

    def start(self) -> None:
        """Start the poller and the listener, once (the first stream does)."""
        if self._poller is None and not self.stopping.is_set():
            self._poller = gevent.spawn(self._poll_forever)
            if self.listener is not None:
                self.listener.start(self)

    def _poll_forever(self) -> None:
        while not self.stopping.is_set():
            self._poke.wait(self.settings.poll_seconds)
            self._poke.clear()
            try:
                self.poll_once()
            except Exception:  # a database outage: the next round tries again
                logger.warning("the live streams' poll failed; retrying", exc_info=True)

    def poll_once(self) -> None:
        """Wake every follower whose mailbox's last seq is past what it has sent."""
        self.polls += 1
        recipients = list(self._watches)
        for start in range(0, len(recipients), POLL_CHUNK):
            chunk = recipients[start : start + POLL_CHUNK]
            with self.open_context() as context:
                latest = self._latest_seqs(context, chunk)
            for recipient_id, seq in latest.items():
                self.wake(recipient_id, seq)


class Listener:
    """The worker's one pub/sub subscription, in a greenlet, reconnecting forever.

    ``connect`` makes a fresh client for each attempt (``subscriber_clients``), so
    the subscription never takes a connection of the context's pool.
    """

    def __init__(self, connect: Callable[[], redis.Redis], channel: str, decode: Decode) -> None:
        self._connect = connect
        self.channel = channel
        self._decode = decode
        self._greenlet: gevent.Greenlet | None = None
        self._stopping = False
        self.connected = gevent.event.Event()
        self.subscriptions = 0  # successful subscriptions (tests read it)

    def start(self, hub: Hub) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run, hub)

    def stop(self) -> None:
        self._stopping = True
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def _run(self, hub: Hub) -> None:
        delay = BACKOFF_FIRST_SECONDS
        while not self._stopping:
            subscriptions = self.subscriptions
            try:
                self._listen(hub)
            except (redis.RedisError, OSError) as error:
                if self.subscriptions > subscriptions:  # it was up: say once that it fell
                    logger.warning("inbox wake-ups lost (%s); streams poll until back", error)
            except Exception:
                logger.exception("inbox wake-up listener failed; restarting it")
            if self.subscriptions > subscriptions:
                delay = BACKOFF_FIRST_SECONDS  # a fresh outage starts its back-off again
            if self._stopping:
                break
            gevent.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_SECONDS)

    def _listen(self, hub: Hub) -> None:
        client = self._connect()
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(self.channel)
            last_heard = time.monotonic()
            ping_sent: float | None = None
            while not self._stopping:
                message = pubsub.get_message(timeout=1.0)
                now = time.monotonic()
                if message is not None:
                    last_heard, ping_sent = now, None
                    self._handle(hub, message)
                elif ping_sent is not None and now - ping_sent > PING_TIMEOUT_SECONDS:
                    raise redis.ConnectionError("Redis did not answer a ping")
                if ping_sent is None and now - last_heard > PING_SECONDS:
                    pubsub.ping()
                    ping_sent = now
        finally:
            self.connected.clear()
            pubsub.close()
            client.connection_pool.disconnect()

    def _handle(self, hub: Hub, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            self.subscriptions += 1
            self.connected.set()
            # Whatever was published while we were away is found by a poll, now.
            hub.poll_soon()
        elif kind == "message":
            try:
                recipient_id, seq = self._decode(message["data"])
            except ValueError:
                logger.warning("ignored a malformed inbox wake-up on %s", self.channel)
                return
            hub.wake(recipient_id, seq)


def latest_seqs(context: ServiceContext, recipient_ids: Sequence[str]) -> dict[str, int]:
    """The last seq given in each of these mailboxes (a mailbox never changed is absent).

    One indexed query on the counters (``inbox_sequences``, one row a mailbox),
    committed before the changes are visible, so a seq seen here can be read.
    """
    counters = InboxSequence.__table__
    statement = select(counters.c.recipient_id, counters.c.last_seq).where(
        counters.c.recipient_id.in_(recipient_ids)
    )
    with unit_of_work(context.db) as session:
        return {row.recipient_id: int(row.last_seq) for row in session.execute(statement)}


def subscriber_clients(
    urls: Sequence[str], *, connect_timeout: float = 0.5
) -> Callable[[], redis.Redis]:
    """A maker of one-connection clients for the subscription, trying ``urls`` in turn.

    One URL for a single Redis; one per startup node for a cluster (any node
    serves pub/sub; each attempt after a failure tries the next).
    """
    attempts = iter(_cycle(urls))

    def connect() -> redis.Redis:
        url = next(attempts)
        pool = redis.ConnectionPool.from_url(
            url,
            max_connections=1,
            socket_connect_timeout=connect_timeout,
            socket_keepalive=True,
        )
        return redis.Redis(connection_pool=pool)

    return connect


def _cycle(items: Sequence[str]) -> Iterator[str]:
    while True:
        yield from items


class Follower:
    """One stream's loop: batches of changes to send, ``[]`` for a heartbeat.

    Iterate it; ``close`` (the WSGI server calls it, also when the client went
    away) gives its place back. It ends when the hub shuts down or a read
    fails for good (a 410: the stream had fallen behind the retention).
    """

    def __init__(self, hub: Hub, watch: Watch, read_after: ReadAfter) -> None:
        self._hub, self._watch, self._read_after = hub, watch, read_after
        self._steps = self._run()
        hub.start()

    @property
    def last_sent(self) -> int:
        return self._watch.last_sent

    def sent(self, page: Page) -> list[Any]:
        """Record a page read outside the loop (the view's first one) as sent."""
        self._watch.last_sent = page.next_since
        if page.has_more:
            self._watch.bell.set()
        return list(page.changes)

    def __iter__(self) -> Iterator[list[Any]]:
        return self

    def __next__(self) -> list[Any]:
        return next(self._steps)

    def close(self) -> None:
        self._steps.close()
        self._hub.release(self._watch)

    def _run(self) -> Generator[list[Any], None, None]:
        bell, heartbeat = self._watch.bell, self._hub.settings.heartbeat_seconds
        quiet_until = time.monotonic() + heartbeat
        while not self._hub.stopping.is_set():
            if bell.is_set():
                bell.clear()
                changes = self._read()
                if changes is None:
                    return
                if changes:
                    yield changes
                    quiet_until = time.monotonic() + heartbeat
                continue
            if not bell.wait(max(0.0, quiet_until - time.monotonic())):
                yield []
                quiet_until = time.monotonic() + heartbeat

    def _read(self) -> list[Any] | None:
        """The changes after what was sent; None when the stream must end."""
        try:
            page = self._read_after(self._watch.last_sent)
        except DependencyUnavailable:
            # The database is down or busy: the hub's poll wakes us again once it answers.
            logger.info("a live stream's read failed; it retries at the next poll")
            return []
        except ServiceError as error:
            # A 410 (fallen behind the retention): the client's reconnection is answered
            # 410 too, before its stream starts, and it lists again.
            logger.info("a live stream ended: %s", error.detail)
            return None
        return self.sent(page)
