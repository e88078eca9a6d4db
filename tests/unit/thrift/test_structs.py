"""The Thrift structs of records: the generated builders give what the generic walk gives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from hypothesis import given

from galaxy_express.core.clock import to_millis
from galaxy_express.core.shapes import field_values
from galaxy_express.inbox.records import InboxItem
from galaxy_express.packages.records import PackageRecord
from galaxy_express.thrift.delivery import package_struct
from galaxy_express.thrift.edge import struct_builder, thrift_value
from galaxy_express.thrift.gen import ttypes
from galaxy_express.thrift.inbox import inbox_item_struct
from tests.support.strategies import inbox_items, packages


def _walked(package: PackageRecord) -> dict[str, object]:
    """A package's fields as the generic walk gives them, its content a struct."""
    fields = field_values(package, thrift_value)
    content = package.content
    fields["content"] = None if content is None else ttypes.Content(content.subject, content.body)
    return fields


@given(packages)
def test_a_package_struct_holds_the_walked_fields(package: PackageRecord) -> None:
    assert package_struct(package) == ttypes.Package(**_walked(package))


@given(inbox_items)
def test_an_inbox_item_struct_is_its_package_and_its_mailbox_fields(item: InboxItem) -> None:
    read_at = None if item.read_at is None else to_millis(item.read_at)
    expected = ttypes.InboxItem(
        **_walked(item.package), folder=item.folder, is_read=item.read, read_at=read_at
    )
    assert inbox_item_struct(item) == expected


@dataclass(frozen=True)
class _Listed:
    names: tuple[str, ...]
    at: datetime | None
    other: object


def test_tuples_become_lists_and_other_types_go_the_general_way() -> None:
    build = struct_builder(_Listed, dict)
    at = datetime(2026, 1, 2, tzinfo=UTC)
    assert build(_Listed(("a", "b"), at, at)) == {
        "names": ["a", "b"],
        "at": to_millis(at),
        "other": to_millis(at),
    }
    assert build(_Listed((), None, None)) == {"names": [], "at": None, "other": None}
