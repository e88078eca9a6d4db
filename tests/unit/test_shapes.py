"""``record_json``: the generic rendering of a record, from a plan made per record type."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from galaxy_express.core.clock import to_rfc3339
from galaxy_express.core.shapes import field_values, json_value, record_json
from galaxy_express.inbox.records import InboxSummary, InboxUpdate
from galaxy_express.packages.records import Content, PackageRecord
from galaxy_express.tasks.records import TaskRecord

AT = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def _generic(record: object) -> object:
    return {name: json_value(value) for name, value in field_values(record, lambda v: v).items()}


def test_a_package_renders_as_the_generic_walk_does() -> None:
    for content in (Content("s", "b"), None):
        package = PackageRecord("p", "s", "r", "personal", AT, content, "delivered", None, AT)
        rendered = record_json(package)
        assert rendered == _generic(package)
        assert list(rendered) == [
            "package_id",
            "sender_id",
            "recipient_id",
            "package_type",
            "timestamp",
            "content",
            "status",
            "reason",
            "processed_at",
        ]
    assert record_json(package)["timestamp"] == "2026-01-02T03:04:05.678000Z"
    # Nested records too, stated literally: the generic walk renders them with record_json.
    nested = PackageRecord("p", "s", "r", "personal", AT, Content("s", "b"), "delivered", None, AT)
    assert record_json(nested)["content"] == {"subject": "s", "body": "b"}


def test_a_task_renders_tuples_as_lists_and_missing_instants_as_null() -> None:
    task = TaskRecord("t", "n", None, "pending", None, AT, AT, None, None, ("u1", "u2"), None, "o")
    rendered = record_json(task)
    assert rendered == _generic(task)
    assert rendered["assignee_ids"] == ["u1", "u2"]
    assert rendered["expires_at"] is None


def test_records_of_plain_fields_and_lists_render_as_they_are() -> None:
    assert record_json(InboxSummary(1, 2, 3, 4)) == {"inbox": 1, "unread": 2, "trash": 3, "spam": 4}
    assert record_json(InboxUpdate(1, ["a"])) == {"updated": 1, "not_found": ["a"]}


def test_an_instant_of_another_zone_is_shown_in_utc() -> None:
    elsewhere = AT.astimezone(timezone(timedelta(hours=5)))
    assert to_rfc3339(elsewhere) == "2026-01-02T03:04:05.678000Z"
    assert to_rfc3339(AT.replace(microsecond=0)) == "2026-01-02T03:04:05Z"
