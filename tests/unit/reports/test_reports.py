"""Report contents for hand-built timelines, and the reporter's window bookkeeping."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from galaxy_express.bootstrap import make_baseplate
from galaxy_express.core import clock
from galaxy_express.core.validation import validate
from galaxy_express.db import unit_of_work
from galaxy_express.reports.commands import ReportQuery
from galaxy_express.reports.models import CLAIMED, WRITTEN, ReportWindow
from galaxy_express.reports.runner import EPOCH, Reporter, report_file_name
from galaxy_express.reports.service import CATEGORIES, get_task_report, reports_for_users
from galaxy_express.tasks.models import COMPLETED, TaskAssignee
from galaxy_express.tasks.service import add_task, mark_deleted
from galaxy_express.users.models import User
from tests.support import instants

START = datetime(2142, 7, 1, 10, 0, tzinfo=UTC)
END = START + timedelta(hours=1)


at = instants(START, timedelta(minutes=1))


def make_task(
    session: Any,
    name: str,
    created: float,
    owner: str = "u1",
    completed: float | None = None,
    deleted: float | None = None,
) -> str:
    fields: dict[str, Any] = {"name": name}
    if completed is not None:
        fields["status"] = COMPLETED
    task = add_task(
        session,
        fields,
        created_at=at(created),
        completed_at=None if completed is None else at(completed),
        owner_id=owner,
    )
    if deleted is not None:
        mark_deleted(task, at(deleted))
    return task.id


@pytest.fixture
def timeline(context: Any) -> dict[str, str]:
    with unit_of_work(context.db, write=True) as session:
        session.add(User(id="u1", username="one", created_at=at(-600)))
        ids = {
            "completed_at_start": make_task(session, "A", created=-60, completed=0),
            "created_at_start": make_task(session, "B", created=0),
            "created_at_end": make_task(session, "C", created=60),
            "deleted_inside": make_task(session, "D", created=-30, deleted=59.99),
            "completed_at_end": make_task(session, "E", created=-60, completed=60),
            "deleted_at_end": make_task(session, "F", created=-60, deleted=60),
            "assigned_to_u1": make_task(session, "G", created=30, owner="u2"),
            "someone_elses": make_task(session, "H", created=30, owner="u2"),
        }
        session.add(TaskAssignee(task_id=ids["assigned_to_u1"], user_id="u1", assigned_at=at(31)))
    return ids


def report_ids(context: Any, user_id: str = "u1") -> dict[str, set[str]]:
    query = validate(ReportQuery, {"user_id": user_id, "start": START, "end": END})
    report = get_task_report(context, query)
    return {
        name: {task.id for task in getattr(report, name)}
        for name in ("created", "completed", "deleted", "open")
    }


def test_each_category_holds_exactly_the_tasks_of_the_window(
    context: Any, timeline: dict[str, str]
) -> None:
    ids = report_ids(context)
    named = {task_id: name for name, task_id in timeline.items()}

    assert {named[t] for t in ids["created"]} == {"created_at_start", "assigned_to_u1"}
    assert {named[t] for t in ids["completed"]} == {"completed_at_start"}
    assert {named[t] for t in ids["deleted"]} == {"deleted_inside"}
    assert {named[t] for t in ids["open"]} == {
        "created_at_start",
        "completed_at_end",
        "deleted_at_end",
        "assigned_to_u1",
    }


def test_any_valid_id_gets_a_report(context: Any, timeline: dict[str, str]) -> None:
    assert report_ids(context, "nobody-at-all") == {
        "created": set(),
        "completed": set(),
        "deleted": set(),
        "open": set(),
    }


def test_window_query_is_validated() -> None:
    from galaxy_express.core.errors import InvalidInput

    with pytest.raises(InvalidInput):
        validate(ReportQuery, {"user_id": "u1", "start": END, "end": START})
    with pytest.raises(InvalidInput):
        validate(ReportQuery, {"user_id": "u1", "start": START, "end": START + timedelta(days=400)})


# ---- The reporter -------------------------------------------------------------


def reporter(app_config: dict[str, str], folder: Path, name: str) -> Reporter:
    baseplate, _ = make_baseplate(app_config)
    return Reporter(baseplate, timedelta(hours=1), folder, name)


def windows(context: Any) -> list[ReportWindow]:
    with unit_of_work(context.db) as session:
        rows = list(session.execute(select(ReportWindow).order_by(ReportWindow.start)).scalars())
        session.expunge_all()
    return rows


def test_reporter_writes_closed_windows_once_and_contiguously(
    app_config: dict[str, str], context: Any, timeline: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "reports"
    first, second = (reporter(app_config, folder, name) for name in ("first", "second"))

    with clock.frozen(END + timedelta(minutes=5)):
        written = first.write_due_windows()
        nothing_left = second.write_due_windows()
    with clock.frozen(END + timedelta(hours=2, minutes=1)):
        caught_up = second.write_due_windows()

    assert [w.start for w in written] == [START]
    assert nothing_left == []
    assert [w.start for w in caught_up] == [END, END + timedelta(hours=1)]
    rows = windows(context)
    assert [(r.start, r.end) for r in rows] == [
        (START, END),
        (END, END + timedelta(hours=1)),
        (END + timedelta(hours=1), END + timedelta(hours=2)),
    ]
    assert {r.status for r in rows} == {WRITTEN}
    report = json.loads((folder / report_file_name("u1", START, END)).read_text())
    assert report["counts"] == {"created": 2, "completed": 1, "deleted": 1, "open": 4}
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [
            report_file_name("u1", START, END),
            report_file_name("u2", START, END),
            report_file_name("u1", END, END + timedelta(hours=1)),
        ]
    )


def test_an_abandoned_window_is_released_and_taken_over(
    app_config: dict[str, str], context: Any, timeline: dict[str, str], tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the folder should be")
    failing = reporter(app_config, blocked, "failing")
    healthy = reporter(app_config, tmp_path / "reports", "healthy")

    with clock.frozen(END + timedelta(minutes=5)):
        with pytest.raises(FileExistsError):
            failing.write_due_windows()
        released = windows(context)
        taken_over = healthy.write_due_windows()

    assert [(r.status, r.claimed_at) for r in released] == [(CLAIMED, EPOCH)]
    assert [w.start for w in taken_over] == [START]
    assert [(r.status, r.claimed_by) for r in windows(context)] == [(WRITTEN, "healthy")]
    assert (tmp_path / "reports" / report_file_name("u1", START, END)).exists()


def test_a_standing_by_reporter_says_so_once_and_idle_windows_are_quiet(
    app_config: dict[str, str],
    context: Any,
    timeline: dict[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = tmp_path / "reports"
    first, second = (reporter(app_config, folder, name) for name in ("first", "second"))
    caplog.set_level(logging.INFO, logger="galaxy_express.reports.runner")

    with clock.frozen(END + timedelta(minutes=5)):
        assert len(first.write_due_windows()) == 1
    with clock.frozen(END + timedelta(hours=2, minutes=1)):
        assert len(first.write_due_windows()) == 2  # the last one without task activity
        assert second.write_due_windows() == []
        second._say_who_holds_the_windows()
        second._say_who_holds_the_windows()

    messages = [record.getMessage() for record in caplog.records]
    standing_by = [m for m in messages if "another reporter (first) holds the windows" in m]
    assert len(standing_by) == 1, messages
    assert not [m for m in messages if "wrote 0 reports" in m], "idle windows are silent at info"
    assert [m for m in messages if "wrote 2 reports" in m]


@pytest.mark.parametrize("limit", [1, 2, 1000])
def test_on_demand_lists_are_the_files_lists_cut(
    context: Any, timeline: dict[str, str], monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    """On demand files and cuts tasks its own way (bounded); it must give the files'
    lists' first tasks, in the same order (ties too), and their full counts."""
    with unit_of_work(context.db, write=True) as session:
        for name in "XYZ":  # created at the same instant: the id breaks the tie
            make_task(session, name, created=10)
    monkeypatch.setattr("galaxy_express.reports.service.MAX_ITEMS_PER_LIST", limit)
    query = validate(ReportQuery, {"user_id": "u1", "start": START, "end": END})
    on_demand = get_task_report(context, query)
    with unit_of_work(context.db) as session:
        whole = reports_for_users(session, START, END, ["u1"])["u1"]
    for name in CATEGORIES:
        full = [task.id for task in getattr(whole, name)]
        assert [task.id for task in getattr(on_demand, name)] == full[:limit], name
    assert on_demand.counts() == whole.counts()
    assert on_demand.truncated is (limit < max(whole.counts().values()))
    assert on_demand.open == whole.open[:limit]  # whole records, assignees and all
