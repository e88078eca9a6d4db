"""Spam reports: exact distinct-reporter counts in Redis, stored reports, rebuilds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gevent
import pytest
from prometheus_client import REGISTRY

from galaxy_express.bootstrap import make_baseplate
from galaxy_express.inbox import service, spam_reports
from galaxy_express.inbox.records import InboxAction
from galaxy_express.runtime.shell import setup as shell_setup
from tests.conftest import ROOT, TEST_CONFIG, free_port
from tests.support import new_id, send, service_context, spam_report_rows
from tests.support.processes import start_together


def count(context: Any, sender_id: str) -> int:
    return service.get_spam_report_count(context, sender_id).reporter_count


def members(redis_client: Any, sender_id: str) -> set[str]:
    return {m.decode() for m in redis_client.smembers(spam_reports.reporters_key(sender_id))}


@contextmanager
def contexts(app_config: dict[str, str], n: int) -> Iterator[list[Any]]:
    """``n`` request contexts sharing one baseplate (one engine), like one server
    process serving ``n`` requests at once."""
    baseplate, _ = make_baseplate(app_config)
    made = []
    for _ in range(n):
        context = baseplate.make_context_object()
        span = baseplate.make_server_span(context, "test")
        span.start()
        made.append((context, span))
    try:
        yield [context for context, _ in made]
    finally:
        for _, span in made:
            span.finish()


def join_all(greenlets: list[gevent.Greenlet]) -> None:
    """Wait for every greenlet (none is left mid-transaction), then fail on any error."""
    gevent.joinall(greenlets)
    assert [g.exception for g in greenlets if g.exception is not None] == []


def test_a_recipient_counts_once_however_many_packages_they_report(
    context, redis_client, database_url
) -> None:
    spammer, recipient = new_id("s"), new_id("r")
    packages = [send(context, recipient, sender_id=spammer) for _ in range(3)]

    service.update_inbox(context, recipient, InboxAction.SPAM, packages)
    assert count(context, spammer) == 1

    service.update_inbox(context, recipient, InboxAction.SPAM, packages)
    service.update_inbox(context, recipient, InboxAction.SPAM, packages[1:])
    assert count(context, spammer) == 1
    assert members(redis_client, spammer) == {recipient}
    assert spam_report_rows(database_url) == {(spammer, recipient, packages[0])}

    other = new_id("r")
    service.update_inbox(
        context, other, InboxAction.SPAM, [send(context, other, sender_id=spammer)]
    )
    assert count(context, spammer) == 2


def test_one_action_reports_each_sender_of_the_packages_found(context, database_url) -> None:
    recipient = new_id("r")
    a1, b1, a2 = (
        send(context, recipient, sender_id="alice"),
        send(context, recipient, sender_id="bob"),
        send(context, recipient, sender_id="alice"),
    )
    send(context, recipient, sender_id="carol")

    service.update_inbox(context, recipient, InboxAction.SPAM, [b1, a2, a1, "unknown"])

    # The first package given of each sender is kept as the report's evidence.
    assert spam_report_rows(database_url) == {("alice", recipient, a2), ("bob", recipient, b1)}
    assert [count(context, s) for s in ("alice", "bob", "carol")] == [1, 1, 0]


def test_other_actions_report_nobody(context, database_url) -> None:
    recipient = new_id("r")
    package = send(context, recipient, sender_id="alice")
    for action in InboxAction:
        if action is not InboxAction.SPAM:
            service.update_inbox(context, recipient, action, [package])
    assert spam_report_rows(database_url) == set()
    assert count(context, "alice") == 0


def test_concurrent_reporters_are_counted_exactly(app_config, context, database_url) -> None:
    spammer = new_id("s")
    recipients = [new_id("r") for _ in range(30)]
    mailboxes = {r: [send(context, r, sender_id=spammer) for _ in range(3)] for r in recipients}
    # Every recipient reports each package on its own, several times, all at once.
    jobs = [
        (recipient, [package])
        for _ in range(2)
        for recipient, packages in mailboxes.items()
        for package in packages
    ]
    with contexts(app_config, len(jobs)) as request_contexts:
        greenlets = [
            gevent.spawn(service.update_inbox, ctx, recipient, InboxAction.SPAM, ids)
            for ctx, (recipient, ids) in zip(request_contexts, jobs, strict=True)
        ]
        join_all(greenlets)

    assert count(context, spammer) == len(mailboxes)
    assert {r for s, r, _ in spam_report_rows(database_url) if s == spammer} == set(mailboxes)


def test_one_recipients_reports_naming_senders_in_any_order_never_deadlock(
    app_config, context
) -> None:
    recipient = new_id("r")
    rounds = []
    for _ in range(10):
        first, second = new_id("s"), new_id("s")
        forward = [send(context, recipient, sender_id=s) for s in (first, second)]
        backward = [send(context, recipient, sender_id=s) for s in (second, first)]
        rounds.append((first, second, forward, backward))
    with contexts(app_config, 2 * len(rounds)) as request_contexts:
        jobs = [ids for _, _, forward, backward in rounds for ids in (forward, backward)]
        greenlets = [
            gevent.spawn(service.update_inbox, ctx, recipient, InboxAction.SPAM, ids)
            for ctx, ids in zip(request_contexts, jobs, strict=True)
        ]
        join_all(greenlets)
    assert all(count(context, s) == 1 for first, second, _, _ in rounds for s in (first, second))


@pytest.mark.slow
def test_reporters_in_several_processes_are_counted_exactly(
    app_config, context, redis_client, database_url
) -> None:
    spammer = new_id("s")
    recipients = [new_id("r") for _ in range(24)]
    mailboxes = {r: [send(context, r, sender_id=spammer) for _ in range(2)] for r in recipients}
    # Four processes; each recipient reports from two of them (its group's and the next).
    groups = [recipients[i * 6 : (i + 1) * 6] for i in range(4)]
    shares = [
        {r: mailboxes[r] for r in groups[i] + groups[(i + 1) % 4]} for i in range(len(groups))
    ]
    worker = [sys.executable, "-m", "tests.unit.inbox.spam_worker"]
    processes = start_together(
        [*worker, json.dumps({"app_config": app_config, "mailboxes": share})] for share in shares
    )
    assert [process.wait(timeout=120) for process in processes] == [0, 0, 0, 0]

    assert count(context, spammer) == len(recipients)
    assert members(redis_client, spammer) == set(recipients)
    assert len(spam_report_rows(database_url)) == len(recipients)


def _report_spread(context: Any) -> dict[str, int]:
    """Reports of several senders by overlapping recipients; the expected counts."""
    expected = {}
    for s in range(5):
        sender = f"spammer-{s}"
        for r in range(s + 1):
            recipient = f"victim-{r}"
            package = send(context, recipient, sender_id=sender)
            service.update_inbox(context, recipient, InboxAction.SPAM, [package])
        expected[sender] = s + 1
    return expected


def test_rebuild_after_flushdb_gives_the_same_counts(context, redis_client) -> None:
    expected = _report_spread(context)
    before = {sender: members(redis_client, sender) for sender in expected}
    assert {s: count(context, s) for s in expected} == expected

    redis_client.flushdb()
    assert {s: count(context, s) for s in expected} == dict.fromkeys(expected, 0)
    outcome = service.rebuild_spam_counts(context)

    assert (outcome.senders, outcome.reports, outcome.removed) == (5, 15, 0)
    assert {s: count(context, s) for s in expected} == expected
    assert {sender: members(redis_client, sender) for sender in expected} == before
    # Counts don't expire, and no scratch key is left behind.
    assert all(redis_client.ttl(spam_reports.reporters_key(s)) == -1 for s in expected)
    assert sorted(k.decode() for k in redis_client.keys("*")) == sorted(
        spam_reports.reporters_key(s) for s in expected
    )


def test_rebuild_removes_what_the_reports_do_not_hold(context, redis_client) -> None:
    expected = _report_spread(context)
    redis_client.sadd(spam_reports.reporters_key("spammer-0"), "someone-who-never-reported")
    redis_client.sadd(spam_reports.reporters_key("never-reported"), "victim-0", "victim-1")

    outcome = service.rebuild_spam_counts(context)

    assert outcome.removed == 1
    assert {s: count(context, s) for s in expected} == expected
    assert count(context, "never-reported") == 0
    assert not redis_client.exists(spam_reports.reporters_key("never-reported"))


def test_rebuild_touches_only_its_own_prefix_and_survives_non_utf8_keys(
    app_config, redis_client
) -> None:
    with service_context({**app_config, "redis.key_prefix": "ge-a:"}) as ours:
        expected = _report_spread(ours)
    stale = spam_reports.reporters_key("", "ge-a:").encode() + b"\xff\xfe-not-utf8"
    redis_client.sadd(stale, "someone")
    theirs = spam_reports.reporters_key("spammer-0", "ge-b:")
    redis_client.sadd(theirs, "another deployment's reporter")
    redis_client.sadd(spam_reports.reporters_key("never-reported", "ge-b:"), "x")

    with service_context({**app_config, "redis.key_prefix": "ge-a:"}) as ours:
        outcome = service.rebuild_spam_counts(ours)
        counts = {s: count(ours, s) for s in expected}

    assert outcome.removed == 1, "the non-UTF-8 set is stale: no stored sender has that id"
    assert counts == expected
    assert not redis_client.exists(stale)
    assert redis_client.smembers(theirs) == {b"another deployment's reporter"}
    assert redis_client.exists(spam_reports.reporters_key("never-reported", "ge-b:"))
    assert not redis_client.keys("ge:*"), "nothing written under the default prefix"


def test_rebuild_reads_in_batches(context, monkeypatch) -> None:
    monkeypatch.setattr(spam_reports, "_ROWS_PER_READ", 2)
    monkeypatch.setattr(spam_reports, "_MEMBERS_PER_SADD", 2)
    monkeypatch.setattr(spam_reports, "_COMMANDS_PER_ROUND_TRIP", 3)
    expected = _report_spread(context)
    context.redis.flushdb()

    outcome = service.rebuild_spam_counts(context)

    assert (outcome.senders, outcome.reports) == (5, 15)
    assert {s: count(context, s) for s in expected} == expected


def test_a_report_made_while_the_rebuild_swaps_in_counts_is_kept(
    app_config, context, monkeypatch
) -> None:
    """A report committed after the rebuild read its sender's reports, and counted
    in Redis before the swap, would be overwritten by the swap: the rebuild's last
    pass adds it back."""
    expected = _report_spread(context)
    swap = spam_reports._SetBuilder._swap
    late = {"spammer-4": "late-victim", "new-spammer": "early-victim"}
    packages = {s: send(context, r, sender_id=s) for s, r in late.items()}

    def report_then_swap(builder: Any) -> None:
        with service_context(app_config) as other:
            for sender, recipient in late.items():
                service.update_inbox(other, recipient, InboxAction.SPAM, [packages[sender]])
        swap(builder)

    monkeypatch.setattr(spam_reports._SetBuilder, "_swap", report_then_swap)
    service.rebuild_spam_counts(context)

    assert count(context, "spammer-4") == expected["spammer-4"] + 1
    # A sender first reported after the rebuild read the reports: its count
    # survives the removal of counts without reports.
    assert count(context, "new-spammer") == 1


def test_a_rebuild_racing_reports_ends_exact(app_config, context, database_url) -> None:
    spammer = new_id("s")
    recipients = [new_id("r") for _ in range(40)]
    mailboxes = {r: [send(context, r, sender_id=spammer)] for r in recipients}
    with contexts(app_config, len(mailboxes) + 1) as request_contexts:
        rebuild = gevent.spawn(service.rebuild_spam_counts, request_contexts[-1])
        reporters = [
            gevent.spawn(service.update_inbox, ctx, r, InboxAction.SPAM, ids)
            for ctx, (r, ids) in zip(request_contexts, mailboxes.items(), strict=False)
        ]
        join_all([rebuild, *reporters])
    assert count(context, spammer) == len(mailboxes)


def test_a_report_succeeds_while_redis_is_down_and_a_rebuild_catches_up(
    app_config, context, redis_client, database_url
) -> None:
    spammer, recipient = new_id("s"), new_id("r")
    package = send(context, recipient, sender_id=spammer)
    failures = REGISTRY.get_sample_value("galaxy_express_spam_count_sync_failures_total") or 0
    down = {**app_config, "redis.url": f"redis://127.0.0.1:{free_port()}/0"}

    with service_context(down) as without_redis:
        outcome = service.update_inbox(without_redis, recipient, InboxAction.SPAM, [package])
        # Counted from the stored reports while Redis is down.
        assert count(without_redis, spammer) == 1

    assert outcome.updated == 1
    assert spam_report_rows(database_url) == {(spammer, recipient, package)}
    assert REGISTRY.get_sample_value("galaxy_express_spam_count_sync_failures_total") == (
        failures + 1
    )
    assert count(context, spammer) == 0  # Redis missed it...
    service.rebuild_spam_counts(context)
    assert count(context, spammer) == 1  # ...until the rebuild.

    # Reporting again also repairs the pair it names, without a rebuild.
    redis_client.flushdb()
    service.update_inbox(context, recipient, InboxAction.SPAM, [package])
    assert count(context, spammer) == 1


def test_the_shell_helper_rebuilds(context, redis_client) -> None:
    expected = _report_spread(context)
    redis_client.flushdb()
    env: dict[str, Any] = {"context": context}
    shell_setup(env, {})

    outcome = env["ops"].rebuild_spam_counts()

    assert outcome.reports == 15
    assert {s: count(context, s) for s in expected} == expected


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "galaxy_express.runtime.rebuild", "--config", "{config}"],
        [
            str(Path(sys.executable).parent / "baseplate-script"),
            "{config}",
            "galaxy_express.runtime.rebuild:run",
        ],
    ],
    ids=["module", "baseplate-script"],
)
def test_the_operator_command_rebuilds(
    context, redis_client, database_url, redis_url, tmp_path, command
) -> None:
    expected = _report_spread(context)
    redis_client.flushdb()
    config = tmp_path / "rebuild.ini"
    config.write_text(
        TEST_CONFIG.read_text()
        .replace("db.url = sqlite:///var/test.db", f"db.url = {database_url}")
        .replace("redis.url = redis://127.0.0.1:6379/13", f"redis.url = {redis_url}")
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}

    result = subprocess.run(
        [part.format(config=config) for part in command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "5 senders, 15 reports" in result.stdout
    assert {s: count(context, s) for s in expected} == expected


def test_a_keyed_request_rolled_back_leaves_no_count_and_no_metric(
    context, redis_client, database_url
) -> None:
    """Under an Idempotency-Key the action joins the request's transaction: Redis and
    the metric are told after that commits, and not at all when it rolls back."""
    from galaxy_express.db.unit_of_work import request_transaction

    spammer, recipient = new_id("s"), new_id("r")
    package = send(context, recipient, sender_id=spammer)
    reports_before = REGISTRY.get_sample_value("galaxy_express_spam_reports_total") or 0

    def failing_request() -> None:
        with request_transaction(context.db):
            service.update_inbox(context, recipient, InboxAction.SPAM, [package])
            raise RuntimeError("the request fails after the action")

    with pytest.raises(RuntimeError):
        failing_request()

    assert members(redis_client, spammer) == set()
    assert spam_report_rows(database_url) == set()
    assert (REGISTRY.get_sample_value("galaxy_express_spam_reports_total") or 0) == reports_before

    with request_transaction(context.db):
        service.update_inbox(context, recipient, InboxAction.SPAM, [package])
        assert members(redis_client, spammer) == set()  # not before the commit
    assert members(redis_client, spammer) == {recipient}
    assert REGISTRY.get_sample_value("galaxy_express_spam_reports_total") == reports_before + 1
