"""Convergence: the outcome is a function of the SET of messages received (hypothesis).

For random sets of preference updates and of task events, every arrival order,
with repeats, must leave the same current preferences, the same judgement of a
package at every timestamp, and the same task. Real databases (SQLite and
PostgreSQL); each example uses fresh recipients and external ids.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import webtest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from galaxy_express.core.validation import validate
from galaxy_express.delivery import service
from galaxy_express.delivery.commands import SendPackage, UpdatePreferences
from tests.conftest import new_id

T0 = datetime(2142, 1, 1, tzinfo=UTC)
MINUTES = 4  # updates and events fall on few instants, so ties are common
TYPES = ("personal", "marketing")

EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def at(minute: int) -> str:
    return (T0 + timedelta(minutes=minute)).isoformat()


def arrivals(items: list[Any]) -> st.SearchStrategy[list[Any]]:
    """The items in any order, each at least once, some repeated."""
    if not items:
        return st.just([])
    repeats = st.lists(st.sampled_from(items), max_size=len(items))
    return st.tuples(st.permutations(items), repeats, st.randoms()).map(
        lambda parts: _interleaved(list(parts[0]) + parts[1], parts[2])
    )


def _interleaved(items: list[Any], random: Any) -> list[Any]:
    random.shuffle(items)
    return items


# ---- Preferences ---------------------------------------------------------------------

Update = tuple[int, bool, bool]  # minute, personal allowed, marketing allowed
updates = st.lists(
    st.tuples(st.integers(0, MINUTES - 1), st.booleans(), st.booleans()),
    unique=True,
    max_size=6,
)


def apply_updates(context: Any, recipient: str, sequence: list[Update]) -> Any:
    for minute, personal, marketing in sequence:
        fields = {
            "timestamp": at(minute),
            "recipient_id": recipient,
            "personal_preference": personal,
            "marketing_preference": marketing,
        }
        service.update_preferences(context, validate(UpdatePreferences, fields))
    return service.get_preferences(context, recipient)


def judgements(context: Any, recipient: str) -> dict[tuple[int, str], str]:
    """How a package of each type is judged at every instant, before, on and between updates."""
    verdicts = {}
    for half_minutes in range(-1, 2 * MINUTES + 1):
        for package_type in TYPES:
            command = validate(
                SendPackage,
                {
                    "timestamp": (T0 + timedelta(seconds=30 * half_minutes)).isoformat(),
                    "sender_id": "earth-1",
                    "recipient_id": recipient,
                    "package_id": new_id("judged"),
                    "package_type": package_type,
                },
            )
            verdicts[half_minutes, package_type] = service.send_package(
                context, command
            ).package.status
    return verdicts


def expected_in_force(received: set[Update], minute: float) -> dict[str, bool]:
    """The spec's rule: the latest updates at or before; per type an opt-out wins."""
    earlier = [u for u in received if u[0] <= minute]
    if not earlier:
        return dict.fromkeys(TYPES, True)
    latest = max(u[0] for u in earlier)
    chosen = [u for u in earlier if u[0] == latest]
    return {"personal": all(u[1] for u in chosen), "marketing": all(u[2] for u in chosen)}


@EXAMPLES
@given(data=st.data(), received=updates)
def test_preferences_depend_on_the_set_of_updates_only(
    context: Any, data: st.DataObject, received: list[Update]
) -> None:
    orders = [data.draw(arrivals(received)) for _ in range(2)]
    recipients = [new_id("conv") for _ in orders]

    current = [
        apply_updates(context, r, order) for r, order in zip(recipients, orders, strict=True)
    ]
    verdicts = [judgements(context, r) for r in recipients]

    assert current[0].allowed == current[1].allowed
    assert current[0].updated_at == current[1].updated_at
    assert verdicts[0] == verdicts[1]
    expected_now = expected_in_force(set(received), MINUTES)
    assert {t: current[0].allowed[t] for t in TYPES} == expected_now
    for (half_minutes, package_type), status in verdicts[0].items():
        allowed = expected_in_force(set(received), half_minutes / 2)[package_type]
        assert status == ("delivered" if allowed else "dropped")


def test_an_identical_repeat_adds_no_history_row(context: Any) -> None:
    from sqlalchemy import func, select

    from galaxy_express.delivery.models import PreferenceUpdate

    recipient = new_id("repeat")
    for _ in range(3):
        answer = apply_updates(context, recipient, [(1, False, True)])
    count = context.db.execute(
        select(func.count()).where(PreferenceUpdate.recipient_id == recipient)
    ).scalar_one()
    context.db.rollback()
    assert count == 1
    assert answer.allowed["personal"] is False


# ---- Task events ---------------------------------------------------------------------

Event = tuple[str, int, bool, str]  # kind, minute, completed, content
events = st.lists(
    st.tuples(
        st.sampled_from(["updated", "updated", "deleted"]),
        st.integers(0, MINUTES - 1),
        st.booleans(),
        st.sampled_from(["a", "b", "ab"]),
    ),
    unique=True,
    max_size=6,
)
creations = st.tuples(st.just("created"), st.integers(0, 1), st.booleans(), st.just("start"))


def deliver(testapp: webtest.TestApp, external_id: str, event: Event) -> dict[str, Any]:
    kind, minute, completed, content = event
    body = {
        "event": kind,
        "timestamp": at(minute),
        "metadata": {"userId": "crew-1", "id": external_id, "content": content}
        | {"isCompleted": completed},
    }
    answer = testapp.post_json("/v1/webhooks/tasks", body)
    assert answer.status_int in (200, 201)
    return dict(answer.json["task"])


def final_task(testapp: webtest.TestApp, created: Event, sequence: list[Event]) -> dict[str, Any]:
    external_id = new_id("todo")
    task = deliver(testapp, external_id, created)
    for event in sequence:
        task = deliver(testapp, external_id, event)
    return {k: v for k, v in task.items() if k not in ("id", "external_id")}


RANK = {"created": 0, "updated": 1, "deleted": 2}


def in_order(received: list[Event]) -> list[Event]:
    """The spec's order: timestamp; created, updated, deleted; the completed one, then
    the larger content."""
    return sorted(received, key=lambda e: (e[1], RANK[e[0]], e[2], e[3]))


@EXAMPLES
@given(data=st.data(), created=creations, received=events)
def test_a_task_depends_on_the_set_of_its_events_only(
    testapp: webtest.TestApp, data: st.DataObject, created: Event, received: list[Event]
) -> None:
    orders = [in_order(received), *(data.draw(arrivals(received)) for _ in range(2))]

    tasks = [final_task(testapp, created, order) for order in orders]

    assert tasks[1] == tasks[0]
    assert tasks[2] == tasks[0]
