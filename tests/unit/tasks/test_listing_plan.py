"""The task list's page query reads its order's listing index (SQLite's plans).

SQLite plans without statistics (the service never runs ANALYZE), so an index
that merely matches a term can win over the one that serves the order: the
reports' index on ``deleted_at``, over every task, matched the list's
``deleted_at IS NULL`` and made each page a seek over every live task and a
sort. PostgreSQL plans by the statistics it gathers itself, so its plans are
not pinned here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from galaxy_express.bootstrap import make_baseplate
from galaxy_express.core import clock
from galaxy_express.db import unit_of_work
from galaxy_express.tasks import service
from galaxy_express.tasks.commands import TaskListQuery
from tests.conftest import load_app_config
from tests.support.statements import statements_run

LISTING_INDEXES = {
    "-created_at": "ix_tasks_live_created",
    "created_at": "ix_tasks_live_created",
    "expires_at": "ix_tasks_live_expiry",
    "-expires_at": "ix_tasks_live_expiry_desc",
}


@pytest.fixture
def sqlite_context(sqlite_url: str, redis_url: str, tmp_path: Any) -> Iterator[Any]:
    config = load_app_config(
        **{"db.url": sqlite_url, "redis.url": redis_url, "reports.dir": str(tmp_path / "r")}
    )
    baseplate, _ = make_baseplate(config)
    with baseplate.server_context("test") as context:
        yield context


@pytest.mark.parametrize("order", sorted(LISTING_INDEXES))
def test_a_page_of_live_tasks_walks_its_orders_index(sqlite_context, order) -> None:
    with unit_of_work(sqlite_context.db, write=True) as session:
        tasks = [service.add_task(session, {"name": f"t{n}"}) for n in range(120)]
        for task in tasks[::3]:
            service.mark_deleted(task, clock.now())

    with statements_run() as seen:
        page = service.list_tasks(sqlite_context, TaskListQuery(limit=20, order=order))
    assert len(page.items) == 20

    statement, parameters = next(run for run in seen if "FROM tasks" in run[0])
    connection = sqlite_context.db.connection()
    plan = [
        row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
    ]
    assert f"SCAN tasks USING INDEX {LISTING_INDEXES[order]}" in plan, plan
    # The page's rows come in the index's order: only the outer query's re-sort
    # of its own 21 rows remains (the assignees are joined to the page).
    assert sum("TEMP B-TREE" in step for step in plan) == 1, plan
    assert not any("ix_tasks_deleted_at" in step for step in plan), plan
