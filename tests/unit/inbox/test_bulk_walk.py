"""A bulk action by filter walks the mailbox through an index, batch after batch.

Each batch is a seek (``core.pagination.rows_after``) in an index ending in
the walk's order (timestamp, package id) after the filter's equality columns:
with no folder named, ``ix_inbox_entries_walk``. Batches that change what
matches (``read`` of unread packages) neither skip nor take again a package.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from galaxy_express.inbox import service
from galaxy_express.inbox.commands import BulkByFilter
from galaxy_express.inbox.models import InboxEntry
from tests.support import fill_mailbox, new_id
from tests.support.statements import statements_run

# More than two batches.
ENTRIES = 2 * service.BULK_BATCH + 137


def _walk_statements(call: Any) -> list[tuple[str, Any]]:
    """The batches' statements: the ordered, limited reads of inbox_entries."""
    with statements_run() as seen:
        call()
    return [run for run in seen if "FROM inbox_entries" in run[0] and "LIMIT" in run[0]]


def _count(context: Any, recipient: str, *conditions: Any) -> int:
    return context.db.execute(
        select(func.count()).where(InboxEntry.recipient_id == recipient, *conditions)
    ).scalar_one()


def test_a_walk_without_a_folder_takes_every_match_once(context) -> None:
    recipient = new_id("r")
    fill_mailbox(context.db, recipient, ENTRIES)  # inbox and trash, half of them unread
    unread = _count(context, recipient, InboxEntry.read_at.is_(None))
    command = BulkByFilter.model_validate(
        {"action": "read", "filter": {"unread": True}, "up_to_seq": 0}
    )
    outcome = service.update_inbox_by_filter(context, recipient, command)
    assert outcome.updated == unread
    assert _count(context, recipient, InboxEntry.read_at.is_(None)) == 0

    # Every entry, in both folders, moved once: counted once.
    command = BulkByFilter.model_validate({"action": "trash", "up_to_seq": 0})
    assert service.update_inbox_by_filter(context, recipient, command).updated == ENTRIES
    assert _count(context, recipient, InboxEntry.folder == "trash") == ENTRIES


def test_entries_delivered_after_up_to_seq_are_left(context) -> None:
    recipient = new_id("r")
    fill_mailbox(context.db, recipient, ENTRIES)
    context.db.execute(
        InboxEntry.__table__.update()
        .where(InboxEntry.recipient_id == recipient, InboxEntry.package_id.like("%1"))
        .values(delivered_seq=7)
    )
    context.db.commit()
    later = _count(context, recipient, InboxEntry.delivered_seq == 7)
    command = BulkByFilter.model_validate({"action": "delete", "up_to_seq": 6})
    assert service.update_inbox_by_filter(context, recipient, command).updated == ENTRIES - later
    assert _count(context, recipient) == later


def test_each_batch_without_a_folder_is_an_index_seek(context) -> None:
    recipient = new_id("r")
    fill_mailbox(context.db, recipient, ENTRIES)
    command = BulkByFilter.model_validate({"action": "read", "up_to_seq": 0})
    statements = _walk_statements(
        lambda: service.update_inbox_by_filter(context, recipient, command)
    )
    assert len(statements) == 3  # two full batches and the rest
    statement, parameters = statements[-1]  # a batch after a seek key
    connection = context.db.connection()
    if connection.dialect.name == "postgresql":
        plan = connection.exec_driver_sql(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters
        ).scalar()
        node = plan[0]["Plan"]
        while node.get("Relation Name") != "inbox_entries":
            node = node["Plans"][0]
        # An index scan, or a bitmap of one (PostgreSQL's pick for the last 137
        # rows): either way the walk index, starting at the seek key.
        if node["Node Type"] == "Bitmap Heap Scan":
            node = node["Plans"][0]
        assert node["Node Type"] in ("Index Scan", "Bitmap Index Scan"), node
        assert node["Index Name"] == "ix_inbox_entries_walk", node
        assert '"timestamp" >=' in node["Index Cond"], node
        # Started at the key: not the two batches before it.
        assert node["Actual Rows"] < ENTRIES - service.BULK_BATCH, node
    else:
        plan = " ".join(
            row[-1]
            for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        )
        assert "SEARCH inbox_entries USING INDEX ix_inbox_entries_walk" in plan, plan
        assert "timestamp>" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
    context.db.rollback()
