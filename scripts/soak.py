"""Soak: minutes of mixed traffic at a steady rate, then every invariant checked.

    make soak                                   # 3 minutes at 40 requests/s
    .venv/bin/python scripts/soak.py --minutes 10 --rate 100

Starts the service as `make run` does (the launcher, 2 HTTP workers) with its
own SQLite file under var/soak and its own Redis: an embedded one on a free
port unless --redis-url names one (that database is flushed first, so give it a
number nobody else uses). The traffic: sends with lost answers retried and
duplicate deliveries, a few invalid sends, preference updates (some late),
package and statistics reads, and, when /openapi.json lists them, inbox
listings, spam reports and their counts, users and tasks. Then it checks:

- every accepted package is stored once, as sent, and delivered ones are in an inbox;
- the statistics equal the stored rows (and the invalid count the 400/422 answers);
- every spam count equals its distinct reporters in the database (and as sent);
- no answer was a 5xx;
- the HTTP workers' memory (RSS) is flat: the last minute against the first.

Exit status 0 when every invariant holds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shutil
import statistics
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import MetaData, create_engine, func, select  # noqa: E402

from tests.launched import Launched, free_port, launch, rss_bytes  # noqa: E402

SENDERS = [f"sender-{n}" for n in range(20)]
RECIPIENTS = [f"recipient-{n}" for n in range(30)]
PACKAGE_TYPES = ("personal", "marketing")
# Memory may grow this much (bytes, or a share of the first minute) and still be flat.
RSS_SLACK_BYTES = 16 * 1024 * 1024
RSS_SLACK_SHARE = 0.10


@dataclass
class Record:
    """What the clients saw; the invariants compare it with the database."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    server_errors: list[str] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    retried: Counter[str] = field(default_factory=Counter)  # attempts a retry absorbed
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)
    unanswered: dict[str, dict[str, Any]] = field(default_factory=dict)
    invalid_answers: int = 0
    lost_answers: int = 0
    delivered_to: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    reporters: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    users: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)

    def note(self, kind: str, status: int, seconds: float, detail: str = "") -> None:
        with self.lock:
            self.statuses[(kind, status)] += 1
            self.latencies[kind].append(seconds)
            if status >= 500:
                self.server_errors.append(f"{kind} -> {status} {detail[:200]}")


class Client:
    """HTTP to the service, one connection per thread (fresh after any failure).

    With ``retries``, a lost connection or a 502/503/504 is tried again (the
    same request: every operation of the mix is safe to repeat) after a short
    pause, like a client far away; only the last attempt's answer is recorded.
    """

    RETRYABLE = frozenset({-1, 502, 503, 504})

    def __init__(self, port: int, record: Record, retries: int = 0) -> None:
        self.port, self.record, self.retries = port, record, retries
        self.local = threading.local()

    def call(
        self, kind: str, method: str, path: str, body: Any = None, read: bool = True
    ) -> tuple[int, Any]:
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            status, answer = self._attempt(kind, method, path, body, read, last)
            if last or status not in self.RETRYABLE:
                return status, answer
            with self.record.lock:
                self.record.retried[kind] += 1
            time.sleep(min(2.0, 0.1 * 2**attempt))
        raise AssertionError("unreachable")

    def _attempt(
        self, kind: str, method: str, path: str, body: Any, read: bool, last: bool
    ) -> tuple[int, Any]:
        started = time.monotonic()
        connection = self._connection()
        try:
            payload = None if body is None else json.dumps(body)
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, path, payload, headers)
            if not read:  # the answer is lost on the way back
                self._drop()
                with self.record.lock:
                    self.record.lost_answers += 1
                return 0, None
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            if last:
                with self.record.lock:
                    self.record.failures[f"{kind}: {type(exc).__name__}"] += 1
            return -1, None
        if not last and response.status in self.RETRYABLE:
            self._drop()
            return response.status, None
        answer = json.loads(data) if data else None
        self.record.note(kind, response.status, time.monotonic() - started, data.decode())
        if response.getheader("Connection", "").lower() == "close":
            self._drop()
        return response.status, answer

    def _connection(self) -> http.client.HTTPConnection:
        if getattr(self.local, "connection", None) is None:
            self.local.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection: http.client.HTTPConnection = self.local.connection
        return connection

    def _drop(self) -> None:
        connection = getattr(self.local, "connection", None)
        if connection is not None:
            connection.close()
        self.local.connection = None


class Traffic:
    """The operations of the mix; each runs on a pool thread."""

    def __init__(self, client: Client, record: Record, routes: set[tuple[str, str]]) -> None:
        self.client, self.record, self.routes = client, record, routes
        self.inbox = ("GET", "/v1/inbox/{recipient_id}") in routes
        self.spam = ("POST", "/v1/inbox/{recipient_id}/spam") in routes
        self.spam_counts = ("GET", "/v1/senders/{sender_id}/spam-reports") in routes
        self.users = ("POST", "/v1/users") in routes
        self.tasks = ("POST", "/v1/tasks") in routes

    def mix(self) -> list[tuple[float, Any]]:
        weights: list[tuple[float, Any]] = [
            (40, self.send),
            (4, self.send_again),
            (2, self.send_invalid),
            (8, self.update_preferences),
            (10, self.read_statistics),
            (8, self.read_package),
        ]
        if self.inbox:
            weights.append((10, self.list_inbox))
        if self.spam:
            weights.append((4, self.report_spam))
        if self.spam_counts:
            weights.append((4, self.read_spam_count))
        if self.users:
            weights.append((2, self.create_user))
        if self.tasks:
            weights += [(3, self.create_task), (3, self.list_tasks)]
        return weights

    def send(self) -> None:
        body: dict[str, Any] = {
            "timestamp": _now_seconds() - random.randint(0, 600),
            "sender_id": random.choice(SENDERS),
            "recipient_id": random.choice(RECIPIENTS),
            "package_id": f"soak-{uuid.uuid4().hex[:16]}",
            "package_type": random.choice(PACKAGE_TYPES),
        }
        if random.random() < 0.7:
            body["content"] = {"subject": "soak", "body": "x" * random.randint(0, 2000)}
        with self.record.lock:
            self.record.sent[body["package_id"]] = body
        if random.random() < 0.1:  # the link drops the answer: retry until answered
            self.client.call("send (lost)", "POST", "/v1/packages", body, read=False)
            self._send_until_answered(body)
            return
        self._send_until_answered(body)
        if random.random() < 0.15:  # the link delivers the request twice
            self._send_until_answered(body, expect_replay=True)

    def send_again(self) -> None:
        with self.record.lock:
            if not self.record.accepted:
                return
            body = random.choice(list(self.record.accepted.values()))
        self._send_until_answered(body, expect_replay=True)

    def _send_until_answered(self, body: dict[str, Any], expect_replay: bool = False) -> None:
        for _ in range(50):
            status, answer = self.client.call("send", "POST", "/v1/packages", body)
            if status in (200, 201):
                with self.record.lock:
                    first = body["package_id"] not in self.record.accepted
                    self.record.accepted[body["package_id"]] = body
                    self.record.unanswered.pop(body["package_id"], None)
                    if first and answer["status"] == "delivered":
                        self.record.delivered_to[body["recipient_id"]].append(
                            f"{body['package_id']}|{body['sender_id']}"
                        )
                    if expect_replay and status != 200:
                        self.record.failures["a duplicate was not a replay"] += 1
                return
            if status not in (-1, 503):
                with self.record.lock:
                    self.record.failures[f"send answered {status}"] += 1
                return
            time.sleep(0.2)
        with self.record.lock:
            self.record.unanswered[body["package_id"]] = body

    def send_invalid(self) -> None:
        body = {"package_id": f"bad-{uuid.uuid4().hex[:8]}", "package_type": "parcel"}
        status, _ = self.client.call("send (invalid)", "POST", "/v1/packages", body)
        if status in (400, 422):
            with self.record.lock:
                self.record.invalid_answers += 1

    def update_preferences(self) -> None:
        body = {
            "timestamp": _now_seconds() - random.randint(0, 3600),  # some arrive late
            "recipient_id": random.choice(RECIPIENTS),
            "personal_preference": random.random() < 0.9,
            "marketing_preference": random.random() < 0.5,
        }
        self.client.call("preferences", "POST", "/v1/preferences", body)

    def read_statistics(self) -> None:
        self.client.call("stats", "GET", "/v1/stats")

    def read_package(self) -> None:
        with self.record.lock:
            if not self.record.accepted:
                return
            package_id = random.choice(list(self.record.accepted))
        status, answer = self.client.call("get package", "GET", f"/v1/packages/{package_id}")
        if status != 200 or answer["package_id"] != package_id:
            with self.record.lock:
                self.record.failures[f"an accepted package read as {status}"] += 1

    def list_inbox(self) -> None:
        recipient = random.choice(RECIPIENTS)
        self.client.call("inbox", "GET", f"/v1/inbox/{recipient}?limit=20")

    def report_spam(self) -> None:
        recipient = random.choice(RECIPIENTS)
        with self.record.lock:
            delivered = list(self.record.delivered_to.get(recipient, []))
        if not delivered:
            return
        package_id, sender = random.choice(delivered).split("|")
        body = {"package_ids": [package_id]}
        status, answer = self.client.call("spam", "POST", f"/v1/inbox/{recipient}/spam", body)
        if status == 200 and package_id not in answer.get("not_found", []):
            with self.record.lock:
                self.record.reporters[sender].add(recipient)

    def read_spam_count(self) -> None:
        sender = random.choice(SENDERS)
        self.client.call("spam count", "GET", f"/v1/senders/{sender}/spam-reports")

    def create_user(self) -> None:
        body = {"username": f"soak-{uuid.uuid4().hex[:12]}"}
        status, answer = self.client.call("users", "POST", "/v1/users", body)
        if status == 201:
            with self.record.lock:
                self.record.users.append(answer["id"])

    def create_task(self) -> None:
        status, answer = self.client.call(
            "tasks", "POST", "/v1/tasks", {"name": f"soak task {uuid.uuid4().hex[:6]}"}
        )
        if status != 201:
            return
        with self.record.lock:
            self.record.tasks.append(answer["id"])
            user = random.choice(self.record.users) if self.record.users else None
        if user is not None:
            self.client.call("assign", "PUT", f"/v1/tasks/{answer['id']}/assignees/{user}")

    def list_tasks(self) -> None:
        self.client.call("list tasks", "GET", "/v1/tasks?limit=20")

    def finish_unanswered(self) -> None:
        with self.record.lock:
            pending = list(self.record.unanswered.values())
        for body in pending:
            self._send_until_answered(body)


def main() -> int:
    args = _parse_args()
    var_dir = Path(args.var_dir).resolve()
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)
    database_url = f"sqlite:///{var_dir / 'soak.db'}"
    redis_url = args.redis_url or f"redis://127.0.0.1:{free_port()}/0"
    if args.redis_url:
        import redis

        redis.Redis.from_url(redis_url).flushdb()  # the soak's own database number
    print(f"soak: {args.minutes} min at {args.rate}/s, {database_url}, {redis_url}", flush=True)

    service = launch(database_url, redis_url, var_dir, workers=args.workers, quiet=not args.verbose)
    try:
        service.wait_until_serving(http_workers=args.workers)
        return soak(service, database_url, args)
    finally:
        service.process.terminate()
        service.process.wait(timeout=60)


def soak(service: Launched, database_url: str, args: argparse.Namespace) -> int:
    record = Record()
    routes = _routes(service)
    traffic = Traffic(Client(service.http_port, record), record, routes)
    operations, weights = zip(*((op, w) for w, op in traffic.mix()), strict=True)
    print(f"soak: mix {[op.__name__ for op in operations]}", flush=True)

    samples: list[tuple[float, int]] = []
    duration = args.minutes * 60
    started = time.monotonic()
    next_sample = started
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        tick = 0
        while (now := time.monotonic()) - started < duration:
            if now >= next_sample:
                samples.append((now - started, sum(rss_bytes(p) for p in service.http_workers())))
                next_sample += 5
            pool.submit(_guarded, random.choices(operations, weights)[0], record)
            tick += 1
            time.sleep(max(0.0, started + tick / args.rate - time.monotonic()))
            if tick % (args.rate * 30) == 0:
                print(f"soak: {int(now - started)} s, {tick} operations", flush=True)
    samples.append((time.monotonic() - started, sum(rss_bytes(p) for p in service.http_workers())))
    traffic.finish_unanswered()
    elapsed = time.monotonic() - started
    _report_traffic(record, tick, elapsed)
    checks = check_invariants(service, database_url, record, traffic)
    checks.append(_memory_is_flat(samples))
    print("\nInvariants:")
    for ok, text in checks:
        print(f"  [{'ok' if ok else 'FAILED'}] {text}")
    return 0 if all(ok for ok, _ in checks) else 1


def _guarded(operation: Any, record: Record) -> None:
    try:
        operation()
    except Exception as exc:  # a bug in the soak itself must not pass silently
        with record.lock:
            record.failures[f"{operation.__name__} raised {type(exc).__name__}: {exc}"] += 1


def check_invariants(
    service: Launched, database_url: str, record: Record, traffic: Traffic
) -> list[tuple[bool, str]]:
    engine = create_engine(database_url, future=True)
    tables = MetaData()
    tables.reflect(engine)
    packages, inbox = tables.tables["packages"], tables.tables["inbox_entries"]
    with engine.connect() as connection:
        rows = {row.package_id: row for row in connection.execute(select(packages))}
        in_inbox = set(connection.execute(select(inbox.c.package_id)).scalars())
        spam_reporters = _spam_reporters_in_db(connection, tables)
    engine.dispose()
    stats = service.request("GET", "/v1/stats")[2]
    checks: list[tuple[bool, str]] = []

    accepted = record.accepted
    mismatched = [
        pid for pid, body in accepted.items() if pid in rows and not _same(rows[pid], body)
    ]
    checks.append(
        (
            set(rows) == set(accepted) and not mismatched and not record.unanswered,
            f"every accepted package stored once, as sent: {len(accepted)} accepted, "
            f"{len(rows)} stored, {len(mismatched)} differ, {len(record.unanswered)} unanswered",
        )
    )
    delivered = {pid for pid, row in rows.items() if row.status == "delivered"}
    checks.append(
        (
            delivered <= in_inbox,
            f"every delivered package is in an inbox: {len(delivered)} delivered, "
            f"{len(delivered - in_inbox)} missing",
        )
    )
    by_type = Counter(row.package_type for row in rows.values() if row.status == "delivered")
    by_reason = Counter(row.reason for row in rows.values() if row.status == "dropped")
    expected_dropped = dict(by_reason) | {"invalid": record.invalid_answers}
    dropped = {reason: n for reason, n in stats["dropped_by_reason"].items() if n}
    checks.append(
        (
            {t: n for t, n in stats["delivered_by_type"].items() if n} == dict(by_type)
            and dropped == {r: n for r, n in expected_dropped.items() if n}
            and stats["packages_delivered"] == len(delivered),
            f"statistics equal the stored rows: delivered {stats['delivered_by_type']} vs "
            f"{dict(by_type)}; dropped {dropped} vs {expected_dropped}",
        )
    )
    if traffic.spam_counts:
        checks.append(_spam_counts_match(service, record, spam_reporters))
    else:
        checks.append((True, "spam counts: no spam-report route in this build, skipped"))
    errors = record.server_errors
    checks.append((not errors, f"no 5xx answers ({len(errors)}: {errors[:3]})"))
    checks.append(
        (
            not record.failures,
            f"no client-side surprises ({dict(record.failures) or 'none'})",
        )
    )
    return checks


def _same(row: Any, body: dict[str, Any]) -> bool:
    sent_at = datetime.fromtimestamp(body["timestamp"], tz=UTC).replace(tzinfo=None)
    content = body.get("content")
    return (
        row.sender_id == body["sender_id"]
        and row.recipient_id == body["recipient_id"]
        and row.package_type == body["package_type"]
        and row.timestamp.replace(tzinfo=None) == sent_at
        and row.subject == (None if content is None else content["subject"])
    )


def _spam_reporters_in_db(connection: Any, tables: MetaData) -> dict[str, int] | None:
    """Distinct reporters per sender, from whichever table keeps the spam reports."""
    for table in tables.tables.values():
        columns = set(table.c.keys())
        reporter = next((c for c in ("reporter_id", "recipient_id") if c in columns), None)
        if "spam" in table.name and "sender_id" in columns and reporter is not None:
            counts = connection.execute(
                select(table.c.sender_id, func.count(table.c[reporter].distinct())).group_by(
                    table.c.sender_id
                )
            )
            return {sender: int(n) for sender, n in counts}
    return None


def _spam_counts_match(
    service: Launched, record: Record, in_db: dict[str, int] | None
) -> tuple[bool, str]:
    wrong = []
    for sender in SENDERS:
        answer = service.request("GET", f"/v1/senders/{sender}/spam-reports")[2]
        count = answer["reporter_count"]
        expected = len(record.reporters.get(sender, set()))
        stored = None if in_db is None else in_db.get(sender, 0)
        if count != expected or (stored is not None and count != stored):
            wrong.append(f"{sender}: {count} counted, {expected} reported, {stored} in the DB")
    total = sum(len(r) for r in record.reporters.values())
    source = "no spam table found in the DB" if in_db is None else "and in the DB"
    return not wrong, f"spam counts equal distinct reporters ({total} pairs, {source}): {wrong}"


def _memory_is_flat(samples: list[tuple[float, int]]) -> tuple[bool, str]:
    first = [rss for at, rss in samples if at <= 60]
    last_start = samples[-1][0] - 60
    last = [rss for at, rss in samples if at >= last_start]
    if not first or not last or samples[-1][0] < 120:
        return True, "worker memory: the run is under two minutes, not judged"
    before, after = statistics.median(first), statistics.median(last)
    allowed = max(RSS_SLACK_BYTES, before * RSS_SLACK_SHARE)
    mib = 1024 * 1024
    return (
        after - before <= allowed,
        f"worker memory flat: RSS of the HTTP workers {before / mib:.1f} MiB in the first "
        f"minute, {after / mib:.1f} MiB in the last (allowed growth {allowed / mib:.1f} MiB)",
    )


def _report_traffic(record: Record, ticks: int, elapsed: float) -> None:
    print(f"\nTraffic: {ticks} operations in {elapsed:.0f} s ({ticks / elapsed:.1f}/s)")
    print(f"  {'operation':<16} {'answers':<34} {'p50 ms':>7} {'p99 ms':>7}")
    for kind in sorted(record.latencies):
        answers = ", ".join(
            f"{status}: {n}" for (k, status), n in sorted(record.statuses.items()) if k == kind
        )
        times = sorted(record.latencies[kind])
        p50 = times[len(times) // 2] * 1000
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))] * 1000
        print(f"  {kind:<16} {answers:<34} {p50:7.1f} {p99:7.1f}")
    print(f"  answers dropped on purpose (then retried): {record.lost_answers}")
    if record.failures:
        print(f"  connection failures and surprises: {dict(record.failures)}")


def _routes(service: Launched) -> set[tuple[str, str]]:
    document = service.request("GET", "/openapi.json")[2]
    return {(m.upper(), path) for path, item in document["paths"].items() for m in item}


def _now_seconds() -> int:
    return int(time.time())


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--rate", type=int, default=40, help="operations per second")
    parser.add_argument("--workers", type=int, default=2, help="HTTP worker processes")
    parser.add_argument("--concurrency", type=int, default=32, help="client threads")
    parser.add_argument("--redis-url", help="a Redis database of the soak's own (flushed)")
    parser.add_argument("--var-dir", default=str(ROOT / "var" / "soak"))
    parser.add_argument("--verbose", action="store_true", help="show the servers' logs")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
