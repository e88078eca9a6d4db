"""The delivery service layer, called directly (real SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from galaxy_express.core.errors import Conflict, InvalidInput, NotFound
from galaxy_express.core.validation import validate
from galaxy_express.delivery import service
from galaxy_express.delivery.commands import SendPackage, UpdatePreferences
from galaxy_express.delivery.models import Package, PreferenceUpdate
from galaxy_express.inbox.models import InboxEntry
from tests.conftest import new_id

T0 = datetime(2142, 1, 1, 12, 0, tzinfo=UTC)


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def package(**fields: Any) -> SendPackage:
    data = {
        "timestamp": at(0),
        "sender_id": "earth-1",
        "recipient_id": "mars-1",
        "package_id": new_id("pkg"),
        "package_type": "personal",
    } | fields
    return validate(SendPackage, data)


def preferences(minutes: int, personal: bool = True, marketing: bool = True) -> UpdatePreferences:
    return validate(
        UpdatePreferences,
        {
            "timestamp": at(minutes),
            "recipient_id": "mars-1",
            "personal_preference": personal,
            "marketing_preference": marketing,
        },
    )


def stored_rows(context: Any, model: Any) -> int:
    count = context.db.execute(select(func.count()).select_from(model)).scalar_one()
    context.db.rollback()
    return int(count)


def test_first_send_delivers_stores_counts_and_fills_the_inbox(context: Any) -> None:
    outcome = service.send_package(context, package(package_id="p1"))

    assert not outcome.replayed
    assert (outcome.package.status, outcome.package.reason) == ("delivered", None)
    assert service.get_package(context, "p1") == outcome.package
    assert stored_rows(context, InboxEntry) == 1
    assert service.get_statistics(context).delivered_by_type["personal"] == 1


def test_identical_retry_replays_without_counting_again(context: Any) -> None:
    first = service.send_package(context, package(package_id="7", timestamp=at(0)))
    # The same request written differently: an integer id, an offset instead of Z, Unix seconds.
    again = service.send_package(context, package(package_id=7, timestamp=T0.timestamp()))

    assert again.replayed
    assert again.package == first.package
    assert stored_rows(context, Package) == 1
    assert stored_rows(context, InboxEntry) == 1
    assert service.get_statistics(context).packages_delivered == 1


def test_reused_id_with_other_fields_conflicts_and_changes_nothing(context: Any) -> None:
    first = service.send_package(context, package(package_id="p1"))

    with pytest.raises(Conflict):
        service.send_package(context, package(package_id="p1", package_type="marketing"))
    with pytest.raises(Conflict):
        service.send_package(context, package(package_id="p1", content={"subject": "new"}))

    assert service.get_package(context, "p1") == first.package
    assert service.get_statistics(context).packages_delivered == 1


def test_opted_out_package_is_dropped_and_never_reaches_the_inbox(context: Any) -> None:
    service.update_preferences(context, preferences(-10, personal=False))

    outcome = service.send_package(context, package())

    assert (outcome.package.status, outcome.package.reason) == ("dropped", "opted_out")
    assert stored_rows(context, InboxEntry) == 0
    stats = service.get_statistics(context)
    assert stats.dropped_by_reason["opted_out"] == 1
    assert stats.packages_dropped == 1


def test_rule_1_an_older_update_is_kept_but_does_not_change_current(context: Any) -> None:
    newer = service.update_preferences(context, preferences(10, personal=False))
    older = service.update_preferences(context, preferences(5, personal=True, marketing=False))

    assert newer.applied is True
    assert older.applied is False
    current = service.get_preferences(context, "mars-1")
    assert current.allowed == {"personal": False, "marketing": True}
    assert current.updated_at == T0 + timedelta(minutes=10)
    assert older.allowed == current.allowed
    assert stored_rows(context, PreferenceUpdate) == 2


def test_rule_2_a_package_is_judged_by_preferences_in_force_at_its_timestamp(context: Any) -> None:
    service.update_preferences(context, preferences(10, personal=False))

    late_but_earlier = service.send_package(context, package(timestamp=at(9)))
    exactly_at_update = service.send_package(context, package(timestamp=at(10)))
    after_update = service.send_package(context, package(timestamp=at(11)))

    assert late_but_earlier.package.status == "delivered"
    assert exactly_at_update.package.status == "dropped"
    assert after_update.package.status == "dropped"


def test_rule_2_a_late_older_update_still_governs_packages_of_its_time(context: Any) -> None:
    service.update_preferences(context, preferences(10, personal=True))
    late = service.update_preferences(context, preferences(0, personal=False))

    between = service.send_package(context, package(timestamp=at(5)))
    after = service.send_package(context, package(timestamp=at(15)))

    assert late.applied is False
    assert between.package.reason == "opted_out"
    assert after.package.status == "delivered"


def test_updates_with_equal_timestamps_let_the_last_received_win(context: Any) -> None:
    service.update_preferences(context, preferences(10, marketing=True))
    second = service.update_preferences(context, preferences(10, marketing=False))

    assert second.applied is True
    assert service.get_preferences(context, "mars-1").allowed["marketing"] is False


def test_unknown_recipient_allows_every_type(context: Any) -> None:
    fresh = service.get_preferences(context, "venus-9")

    assert fresh.updated_at is None
    assert set(fresh.allowed.values()) == {True}


def test_statistics_equal_stored_rows(context: Any) -> None:
    service.update_preferences(context, preferences(0, marketing=False))
    for minutes in range(6):
        service.send_package(context, package(timestamp=at(minutes)))
        service.send_package(context, package(timestamp=at(minutes), package_type="marketing"))
    service.record_invalid_package(context)

    stats = service.get_statistics(context)
    delivered = context.db.execute(
        select(func.count()).select_from(Package).where(Package.status == "delivered")
    ).scalar_one()
    dropped = context.db.execute(
        select(func.count()).select_from(Package).where(Package.status == "dropped")
    ).scalar_one()
    assert stats.packages_delivered == delivered == 6
    assert stats.packages_dropped == dropped + 1 == 7
    assert stats.dropped_by_reason["invalid"] == 1
    assert stats.packages_dropped == sum(stats.dropped_by_reason.values())
    assert stats.packages_delivered == sum(stats.delivered_by_type.values())


def test_unknown_package_is_not_found(context: Any) -> None:
    with pytest.raises(NotFound):
        service.get_package(context, "missing")


@pytest.mark.parametrize(
    "fields",
    [
        {"package_type": "parcel"},
        {"package_id": ""},
        {"package_id": "x" * 129},
        {"sender_id": "bad id"},
        {"sender_id": True},
        {"package_id": -1},
        {"timestamp": "2142-02-30T00:00:00Z"},
        {"timestamp": "yesterday"},
        {"timestamp": 1e20},
        {"content": {"subject": "s" * 201}},
        {"content": {"body": "nul\x00"}},
        {"content": {"subject": "\ud800"}},
        {"extra": 1},
    ],
)
def test_invalid_packages_are_refused_by_the_schema(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        package(**fields)
