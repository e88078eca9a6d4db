"""Real reporter processes: two at once, then a restart; every task reported exactly once."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from galaxy_express.bootstrap import make_baseplate
from galaxy_express.db import unit_of_work
from galaxy_express.reports.models import WRITTEN, ReportWindow
from galaxy_express.tasks.service import add_task
from tests.conftest import ROOT, TEST_CONFIG

pytestmark = pytest.mark.slow  # starts processes or runs many generated cases


def start_reporters(count: int, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    script = Path(sys.executable).parent / "baseplate-script"
    argv = [str(script), str(TEST_CONFIG), "galaxy_express.runtime.reporter:run"]
    return [subprocess.Popen(argv, cwd=ROOT, env=os.environ | env) for _ in range(count)]


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        assert process.wait(timeout=30) == 0


def wait_for_first_window(database_url: str) -> None:
    engine = create_engine(database_url, future=True)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                if connection.execute(select(ReportWindow.start)).first():
                    return
            time.sleep(0.1)
    finally:
        engine.dispose()
    raise TimeoutError("no reporter started")


def create_tasks_for(
    seconds: float, app_config: dict[str, str], created: list[tuple[str, datetime]]
) -> None:
    baseplate, _ = make_baseplate(app_config)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with (
            baseplate.server_context("test") as context,
            unit_of_work(context.db, write=True) as session,
        ):
            task = add_task(session, {"name": "job"}, owner_id="crew")
            created.append((task.id, task.created_at))
        time.sleep(0.15)


def test_windows_stay_contiguous_and_each_task_is_reported_once(
    app_config: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "reports"
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": app_config["redis.url"],
        "REPORTS_DIR": str(folder),
        "REPORT_INTERVAL_SECONDS": "1",
    }
    created: list[tuple[str, datetime]] = []

    both = start_reporters(2, env)
    wait_for_first_window(database_url)
    create_tasks_for(4.5, app_config, created)
    stop(both)
    create_tasks_for(2.0, app_config, created)  # nobody reports: the restart must catch up
    restarted = start_reporters(1, env)
    create_tasks_for(2.5, app_config, created)
    time.sleep(2.5)  # let the last windows close and be written
    stop(restarted)

    engine = create_engine(database_url, future=True)
    with engine.connect() as connection:
        rows = connection.execute(select(ReportWindow).order_by(ReportWindow.start)).all()
    engine.dispose()
    assert rows, "the reporters wrote no window"
    assert all(row.status == WRITTEN for row in rows)
    assert all(later.start == earlier.end for earlier, later in itertools.pairwise(rows))
    assert len({row.claimed_by for row in rows}) >= 2, "both first reporters took part"

    reported: list[str] = []
    for path in sorted(folder.glob("task_report_crew_*.json")):
        report: dict[str, Any] = json.loads(path.read_text())
        reported.extend(task["id"] for task in report["created"])
    assert len(reported) == len(set(reported)), "no task in two windows"
    closed = {task_id for task_id, created_at in created if created_at < rows[-1].end}
    assert set(reported) == closed, "every task of a written window, and no other"
    assert len(closed) > 30
    assert not list(folder.glob(".*.tmp")), "no partial files left"
