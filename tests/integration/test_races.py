"""At most once across processes: racing senders of the same ids, on both databases."""

from __future__ import annotations

import json
import sys

import pytest
from sqlalchemy import create_engine, func, select

from galaxy_express.bootstrap import make_baseplate
from galaxy_express.delivery import service
from galaxy_express.delivery.models import Package
from galaxy_express.inbox.models import InboxEntry
from tests.support import new_id
from tests.support.processes import start_together

pytestmark = pytest.mark.slow  # starts processes or runs many generated cases

PROCESSES = 4
ROUNDS = 3
IDS = 60


def test_racing_processes_store_each_package_once(database_url: str, redis_url: str) -> None:
    ids = [new_id("race") for _ in range(IDS)]
    argv = [sys.executable, "-m", "tests.integration.race_worker", database_url, redis_url]
    # All are set up before any sends.
    racers = start_together([*argv, str(ROUNDS), *ids] for _ in range(PROCESSES))
    results = []
    for racer in racers:
        out, _ = racer.communicate(timeout=240)
        assert racer.returncode == 0
        results.append(json.loads(out))

    # It was a race: the processes sent at the same time, and more than one won some ids.
    assert max(r["first_send"] for r in results) < min(r["last_send"] for r in results), results
    assert sum(1 for r in results if r["created"] > 0) >= 2, results
    answered = sum(r["created"] + r["replayed"] for r in results)
    assert sum(r["created"] for r in results) == IDS, results
    assert answered + sum(r["unavailable"] for r in results) == PROCESSES * ROUNDS * IDS

    engine = create_engine(database_url, future=True)
    with engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(Package)).scalar_one()
        delivered = connection.execute(
            select(func.count()).select_from(Package).where(Package.status == "delivered")
        ).scalar_one()
        in_inboxes = connection.execute(select(func.count()).select_from(InboxEntry)).scalar_one()
    engine.dispose()
    assert stored == IDS
    assert in_inboxes == delivered == IDS

    baseplate, _ = make_baseplate({"db.url": database_url, "redis.url": redis_url})
    with baseplate.server_context("check") as context:
        stats = service.get_statistics(context)
    assert stats.packages_delivered == stored
    assert stats.delivered_by_type == {"personal": IDS // 2, "marketing": IDS // 2}
    assert stats.packages_dropped == 0
