"""A worker killed around the commit of a keyed write, then the client's repeat.

Killed after the commit (the effects and the key's answer stored, the answer
never sent): the repeat gets that first answer, replayed. Killed before it:
nothing was stored, and the repeat is processed afresh. Either way, one effect.
The service runs as `make run` runs it (the launcher, two HTTP workers); a
test-only ``sitecustomize`` (tests/crash_hook) does the killing.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from galaxy_express.packages.models import Package
from galaxy_express.tasks.models import Task
from tests.conftest import ROOT, new_id
from tests.launched import Launched, launch

pytestmark = pytest.mark.slow


@pytest.fixture
def flag(tmp_path: Path) -> Path:
    return tmp_path / "kill-next-commit"


@pytest.fixture
def service(sqlite_url: str, redis_url: str, tmp_path: Path, flag: Path) -> Iterator[Launched]:
    env = {"PYTHONPATH": str(ROOT / "tests" / "crash_hook"), "GE_TEST_KILL_FLAG": str(flag)}
    launched = launch(sqlite_url, redis_url, tmp_path / "var", env=env, quiet=True)
    try:
        launched.wait_until_serving(http_workers=2)
        yield launched
    finally:
        launched.stop()


def rows(database_url: str, model: Any) -> int:
    engine = create_engine(database_url, future=True)
    with engine.connect() as connection:
        total = int(connection.execute(select(func.count()).select_from(model)).scalar_one())
    engine.dispose()
    return total


def lost_answer(service: Launched, path: str, body: Any, key: str) -> None:
    """The request is sent; the worker dies before answering."""
    with pytest.raises((OSError, http.client.HTTPException)):
        service.request("POST", path, body, headers={"Idempotency-Key": key})


def repeat(service: Launched, path: str, body: Any, key: str) -> tuple[int, dict[str, str], Any]:
    deadline = time.monotonic() + 30
    while True:
        try:
            answer = service.request("POST", path, body, headers={"Idempotency-Key": key})
            if answer[0] != 503:
                return answer
        except (OSError, http.client.HTTPException):
            pass
        assert time.monotonic() < deadline, "the repeat was never answered"
        time.sleep(0.1)


SEND = {
    "timestamp": "2142-01-01T00:00:00Z",
    "sender_id": "earth-7",
    "recipient_id": "mars-1",
    "package_id": "p-crash",
    "package_type": "personal",
}


@pytest.mark.parametrize(
    ("path", "body", "model"),
    [("/v1/tasks", {"name": "survive"}, Task), ("/v1/packages", SEND, Package)],
    ids=["task", "package"],
)
def test_killed_after_the_commit_the_repeat_gets_the_first_answer(
    service: Launched, sqlite_url: str, flag: Path, path: str, body: Any, model: Any
) -> None:
    key = new_id("crash")
    flag.write_text("after")
    lost_answer(service, path, body, key)
    assert not flag.exists()  # a worker took it, and died after committing
    assert rows(sqlite_url, model) == 1

    status, headers, answer = repeat(service, path, body, key)
    assert status == 201
    assert headers["Idempotent-Replayed"] == "true"
    assert rows(sqlite_url, model) == 1
    if model is Task:
        assert service.request("GET", f"/v1/tasks/{answer['id']}")[2] == answer
    else:
        assert service.request("GET", "/v1/stats")[2]["packages_delivered"] == 1


def test_killed_before_the_commit_the_repeat_is_processed_once(
    service: Launched, sqlite_url: str, flag: Path
) -> None:
    key = new_id("crash")
    flag.write_text("before")
    lost_answer(service, "/v1/tasks", {"name": "again"}, key)
    assert not flag.exists()
    assert rows(sqlite_url, Task) == 0

    status, headers, _ = repeat(service, "/v1/tasks", {"name": "again"}, key)
    assert status == 201
    assert "Idempotent-Replayed" not in headers
    assert rows(sqlite_url, Task) == 1
