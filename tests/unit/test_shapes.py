"""``record_json``: the generic rendering of a record, from a plan made per record type."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from galaxy_express.core.clock import to_rfc3339
from galaxy_express.core.pagination import Page
from galaxy_express.core.shapes import (
    field_values,
    json_text,
    json_text_renderer,
    json_value,
    page_json_text,
    record_builder,
    record_json,
)
from galaxy_express.inbox.records import InboxItem, InboxSummary, InboxUpdate
from galaxy_express.inbox.schemas import inbox_item_json, inbox_item_text, inbox_page_text
from galaxy_express.packages.records import Content, PackageRecord
from galaxy_express.tasks.records import TaskRecord
from tests.support.strategies import inbox_items, packages, tasks, texts

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


@pytest.mark.parametrize(
    "instant",
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
        datetime(1000, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 10, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 999999, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_an_instant_is_shown_as_its_isoformat_says(instant: datetime) -> None:
    # to_rfc3339 formats the fields itself (faster than isoformat): the same text.
    assert to_rfc3339(instant) == instant.replace(tzinfo=None).isoformat() + "Z"


# ---- the generated renderer against the shape's declared fields --------------------


def _declared(record: object) -> bytes:
    """The JSON the shape's declared fields give: each field through json_value."""
    return _encoded(field_values(record, json_value))


def _encoded(value: object) -> bytes:
    # As json_response encodes an answer.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@given(st.one_of(packages, tasks, inbox_items))
def test_the_generated_renderer_gives_the_declared_fields_json_byte_for_byte(
    record: object,
) -> None:
    assert _encoded(record_json(record)) == _declared(record)


@given(st.one_of(packages, tasks, inbox_items))
def test_the_json_text_renderer_writes_the_records_json_byte_for_byte(record: object) -> None:
    text = json_text_renderer(type(record))(record)
    assert text.encode() == _encoded(record_json(record))


@given(st.lists(tasks, max_size=3), st.none() | texts)
def test_a_page_as_text_is_its_json_byte_for_byte(
    tasks: list[TaskRecord], cursor: str | None
) -> None:
    render = json_text_renderer(TaskRecord)
    expected = {"items": [record_json(task) for task in tasks], "next_cursor": cursor}
    assert page_json_text(Page(tasks, cursor), render).encode() == _encoded(expected)


def test_a_record_as_text_falls_back_to_its_json_for_other_types() -> None:
    node = _Node("a", _Node("b", None))
    assert json_text_renderer(_Node)(node) == json_text(record_json(node))
    assert json_text_renderer(InboxSummary)(InboxSummary(1, 2, 3, 4)) == (
        '{"inbox":1,"unread":2,"trash":3,"spam":4}'
    )


@given(inbox_items)
def test_an_inbox_item_is_its_package_and_its_mailbox_fields(item: InboxItem) -> None:
    expected = {
        **field_values(item.package, json_value),
        "folder": item.folder,
        "read": item.read_at is not None,
        "read_at": None if item.read_at is None else to_rfc3339(item.read_at),
    }
    assert _encoded(inbox_item_json(item)) == _encoded(expected)


@given(st.lists(inbox_items, max_size=3), st.none() | texts)
def test_an_inbox_page_as_text_is_its_items_json_byte_for_byte(
    items: list[InboxItem], cursor: str | None
) -> None:
    for item in items:
        assert inbox_item_text(item).encode() == _encoded(inbox_item_json(item))
    expected = {"items": [inbox_item_json(item) for item in items], "next_cursor": cursor}
    assert inbox_page_text(Page(items, cursor)).encode() == _encoded(expected)


def test_a_nested_record_as_text_is_its_json() -> None:
    package = PackageRecord("p", "s", "r", "personal", AT, Content('a "q"', "é\n"), "ok", None, AT)
    assert json_text_renderer(PackageRecord)(package) == json_text(record_json(package))


def test_instants_render_as_rfc3339_utc_at_the_edges() -> None:
    cases = {
        datetime(1, 1, 1, tzinfo=UTC): "0001-01-01T00:00:00Z",
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC): "9999-12-31T23:59:59.999999Z",
        datetime(2026, 1, 2, 3, 4, 5, 1, tzinfo=UTC): "2026-01-02T03:04:05.000001Z",
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-3))): "2026-01-02T06:04:05Z",
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(0), "GMT")): "2026-01-02T03:04:05Z",
    }
    for instant, text in cases.items():
        package = PackageRecord("p", "s", "r", "personal", instant, None, "delivered", None, AT)
        assert record_json(package)["timestamp"] == text


def test_a_record_holding_its_own_type_renders_as_the_generic_walk_does() -> None:
    assert record_json(_Node("a", _Node("b", None))) == {
        "name": "a",
        "child": {"name": "b", "child": None},
    }


@dataclass(frozen=True)
class _Node:
    name: str
    child: _Node | None


def test_records_from_rows_put_each_column_in_its_own_field() -> None:
    # Rows of distinct values: a column in another field's place would show.
    columns = [*(f.name for f in dataclasses.fields(PackageRecord) if f.name != "content")]
    row = SimpleNamespace(**{name: f"v-{name}" for name in columns}, subject="s", body=None)
    package = PackageRecord.from_row(row)
    assert package.content == Content("s", "")
    assert all(getattr(package, name) == f"v-{name}" for name in columns)
    assert PackageRecord.from_row(SimpleNamespace(**vars(row) | {"subject": None})).content is None

    names = [f.name for f in dataclasses.fields(TaskRecord) if f.name != "assignee_ids"]
    task_row: Any = SimpleNamespace(**{n: f"v-{n}" for n in names})  # duck-typed as a Row
    task = TaskRecord.from_row(task_row, ["u2", "u1"])
    assert task.assignee_ids == ("u1", "u2")
    assert all(getattr(task, name) == f"v-{name}" for name in names)
    # Built without __init__, it is still the record __init__ makes: equal, hashable, frozen.
    values: dict[str, Any] = {n: f"v-{n}" for n in names}
    made = TaskRecord(**values, assignee_ids=("u1", "u2"))
    assert task == made
    assert hash(task) == hash(made)
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.name = "changed"  # type: ignore[misc]


def test_an_inbox_item_from_a_row_is_its_entry_and_its_package() -> None:
    columns = [f.name for f in dataclasses.fields(PackageRecord) if f.name != "content"]
    row: Any = SimpleNamespace(
        **{name: f"v-{name}" for name in columns}, subject=None, folder="spam", read_at=AT
    )
    item = InboxItem.from_row(row)
    assert item == InboxItem(PackageRecord.from_row(row), "spam", AT)
    assert item.read


@dataclass(frozen=True, slots=True)
class _Slotted:
    name: str


@dataclass(frozen=True)
class _Checked:
    name: str

    def __post_init__(self) -> None:
        raise AssertionError("a builder would skip this")


def test_a_record_builder_refuses_records_it_would_build_wrongly() -> None:
    with pytest.raises(TypeError, match="slots"):
        record_builder(_Slotted)
    with pytest.raises(TypeError, match="fields alone"):
        record_builder(_Checked)
    with pytest.raises(ValueError, match="no field"):
        record_builder(_Node, ("parent",))
    build = record_builder(_Node, ("child",))
    assert build(SimpleNamespace(name="a"), None) == _Node("a", None)
