"""Reconciliation after a blackout: lookup, batch sends, and 409s that say what differs."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import webtest
from sqlalchemy import create_engine, func, select

from galaxy_express.delivery.models import Package
from galaxy_express.inbox.models import InboxEntry
from tests.conftest import new_id
from tests.launched import launch
from tests.support.processes import start_together


def send_body(package_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "timestamp": "2142-01-01T00:00:00Z",
        "sender_id": "earth-1",
        "recipient_id": "mars-1",
        "package_id": package_id,
        "package_type": "personal",
    } | fields


def batch(testapp: webtest.TestApp, bodies: list[Any], **kwargs: Any) -> webtest.TestResponse:
    return testapp.post_json(
        "/v1/packages/batch", {"packages": bodies}, expect_errors=True, **kwargs
    )


def stats(testapp: webtest.TestApp) -> dict[str, Any]:
    return dict(testapp.get("/v1/stats").json)


def stored_counts(database_url: str) -> tuple[int, int, int]:
    """Stored packages, of them delivered, and inbox entries."""
    engine = create_engine(database_url, future=True)
    with engine.connect() as connection:
        count = select(func.count()).select_from(Package)
        packages = connection.execute(count).scalar_one()
        delivered = connection.execute(count.where(Package.status == "delivered")).scalar_one()
        inbox = connection.execute(select(func.count()).select_from(InboxEntry)).scalar_one()
    engine.dispose()
    return int(packages), int(delivered), int(inbox)


# ---- 409 names what differs ------------------------------------------------------------


def test_a_conflicting_send_lists_each_differing_field(testapp: webtest.TestApp) -> None:
    testapp.post_json("/v1/packages", send_body("p1", content={"subject": "hi", "body": "x"}))

    answer = testapp.post_json(
        "/v1/packages",
        send_body("p1", recipient_id="venus-1", timestamp="2142-01-01T00:00:01Z"),
        status=409,
    )

    assert answer.content_type == "application/problem+json"
    assert answer.json["errors"] == [
        {"field": "recipient_id", "message": "differs from the first send"},
        {"field": "timestamp", "message": "differs from the first send"},
        {"field": "content", "message": "differs from the first send"},
    ]


# ---- Lookup ----------------------------------------------------------------------------


def test_lookup_answers_found_and_missing_in_the_order_asked_and_counts_nothing(
    testapp: webtest.TestApp,
) -> None:
    first = testapp.post_json("/v1/packages", send_body("a")).json
    second = testapp.post_json("/v1/packages", send_body("c", package_type="marketing")).json
    before = stats(testapp)

    answer = testapp.post_json(
        "/v1/packages/lookup", {"package_ids": ["c", "b", "a", 7, "c"]}, status=200
    )

    assert answer.json == {"found": [second, first, second], "missing": ["b", "7"]}
    assert stats(testapp) == before


@pytest.mark.parametrize(
    "body",
    [{"package_ids": []}, {"package_ids": ["x"] * 501}, {"package_ids": ["bad id"]}, {}],
)
def test_lookup_refuses_bad_lists(testapp: webtest.TestApp, body: dict[str, Any]) -> None:
    assert testapp.post_json("/v1/packages/lookup", body, expect_errors=True).status_int == 422
    assert stats(testapp)["dropped_by_reason"]["invalid"] == 0


# ---- Batch -----------------------------------------------------------------------------


def test_a_batch_answers_each_item_as_its_single_send_would(
    testapp: webtest.TestApp, database_url: str
) -> None:
    testapp.post_json("/v1/packages", send_body("old"))
    testapp.post_json(
        "/v1/preferences",
        {
            "timestamp": "2142-01-01T00:00:00Z",
            "recipient_id": "mars-2",
            "personal_preference": False,
            "marketing_preference": True,
        },
    )

    answer = batch(
        testapp,
        [
            send_body("new"),
            send_body("old"),
            send_body("old", sender_id="earth-2"),
            send_body("bad", package_type="junk"),
            send_body("twice"),
            send_body("twice"),
            send_body("twice", package_type="marketing"),
            send_body("refused", recipient_id="mars-2"),
            "not an object",
        ],
    )

    assert answer.status_int == 200
    results = answer.json["results"]
    assert [r["index"] for r in results] == list(range(9))
    assert [(r["package_id"], r["status"], r["replayed"]) for r in results] == [
        ("new", 201, False),
        ("old", 200, True),
        ("old", 409, False),
        ("bad", 422, False),
        ("twice", 201, False),
        ("twice", 200, True),
        ("twice", 409, False),
        ("refused", 201, False),
        (None, 422, False),
    ]
    assert results[0]["package"] == testapp.get("/v1/packages/new").json
    assert results[0]["error"] is None
    assert results[2]["package"] is None
    assert results[2]["error"]["status"] == 409
    assert results[2]["error"]["errors"] == [
        {"field": "sender_id", "message": "differs from the first send"}
    ]
    assert results[6]["error"]["errors"] == [
        {"field": "package_type", "message": "differs from the first send"}
    ]
    assert results[3]["error"]["errors"][0]["field"] == "package_type"
    assert (results[7]["package"]["status"], results[7]["package"]["reason"]) == (
        "dropped",
        "opted_out",
    )

    totals = stats(testapp)
    assert totals["dropped_by_reason"] == {"opted_out": 1, "invalid": 2, "sender_reported": 0}
    packages, delivered, inbox = stored_counts(database_url)
    assert packages == 4  # old, new, twice, refused
    assert totals["packages_delivered"] == delivered == inbox == 3


def test_a_repeated_batch_replays_every_item(testapp: webtest.TestApp) -> None:
    bodies = [send_body(f"r{i}") for i in range(5)]
    first = batch(testapp, bodies).json["results"]
    again = batch(testapp, bodies).json["results"]

    assert [r["status"] for r in first] == [201] * 5
    assert [(r["status"], r["replayed"]) for r in again] == [(200, True)] * 5
    assert [r["package"] for r in again] == [r["package"] for r in first]
    assert stats(testapp)["packages_delivered"] == 5


@pytest.mark.parametrize(
    "body",
    [{"packages": []}, {"packages": [send_body("x")] * 101}, {"packages": {}}, {}],
)
def test_a_batch_that_is_not_a_list_of_1_to_100_is_refused_whole(
    testapp: webtest.TestApp, body: dict[str, Any]
) -> None:
    answer = testapp.post_json("/v1/packages/batch", body, expect_errors=True)
    assert answer.status_int == 422
    assert stats(testapp)["packages_delivered"] == 0


def test_a_batch_may_be_up_to_1_mib_and_no_more(testapp: webtest.TestApp) -> None:
    content = {"subject": "s", "body": "x" * 16000}
    # 60 packages of 16 KB: over the single send's 64 KiB and under 1 MiB; 70 are over it.
    under = [send_body(f"big{i}", content=content) for i in range(60)]
    over = [send_body(f"huge{i}", content=content) for i in range(70)]
    assert len(json.dumps({"packages": under})) < 1024 * 1024 < len(json.dumps({"packages": over}))

    assert batch(testapp, under).status_int == 200
    refused = batch(testapp, over)

    assert refused.status_int == 413
    assert refused.content_type == "application/problem+json"
    totals = stats(testapp)
    assert totals["packages_delivered"] == 60
    assert totals["dropped_by_reason"]["invalid"] == 0


# ---- Races across processes ------------------------------------------------------------

RACERS = [("batch", 3), ("batch", 3), ("single", 3), ("single", 3)]
RACE_IDS = 40


@pytest.mark.slow
def test_batches_and_single_sends_racing_across_processes_store_each_package_once(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Two server workers; batch and single-send clients, released together, send the
    same ids (every id raced by a batch and a single send at once)."""
    ids = [new_id("race") for _ in range(RACE_IDS)]
    servers = launch(database_url, redis_url, tmp_path / "var", workers=2, quiet=True)
    try:
        servers.wait_until_serving(http_workers=2)
        argv = [sys.executable, "-m", "tests.integration.batch_race_worker"]
        racers = start_together(
            [*argv, str(servers.http_port), mode, str(rounds), *ids] for mode, rounds in RACERS
        )
        reports = []
        for racer in racers:
            out, _ = racer.communicate(timeout=240)
            assert racer.returncode == 0
            reports.append(json.loads(out))
        _, _, totals = servers.request("GET", "/v1/stats")
    finally:
        servers.stop()

    assert max(r["started"] for r in reports) < min(r["ended"] for r in reports), "no overlap"
    statuses: Counter[str] = Counter()
    for report in reports:
        statuses.update(report["statuses"])
    sends = sum(rounds for _, rounds in RACERS) * RACE_IDS
    assert statuses == {"201": RACE_IDS, "200": sends - RACE_IDS}
    packages, delivered, inbox = stored_counts(database_url)
    assert packages == delivered == inbox == RACE_IDS
    assert totals["packages_delivered"] == RACE_IDS
    assert totals["packages_dropped"] == 0


# ---- Thrift ----------------------------------------------------------------------------


def thrift_send(package_id: str, **fields: Any) -> Any:
    from galaxy_express.thrift.gen import ttypes

    values = {
        "timestamp": 5_364_662_400_000,
        "sender_id": "earth-1",
        "recipient_id": "mars-1",
        "package_id": package_id,
        "package_type": "personal",
    } | fields
    return ttypes.SendPackageRequest(**values)


def test_thrift_conflicts_name_the_differing_fields(thrift_client: Any) -> None:
    from baseplate.thrift.ttypes import Error

    thrift_client.send_package(thrift_send("t1"))
    with pytest.raises(Error) as conflict:
        thrift_client.send_package(thrift_send("t1", sender_id="earth-2", package_type="marketing"))

    assert conflict.value.code == 409
    assert conflict.value.details == {
        "sender_id": "differs from the first send",
        "package_type": "differs from the first send",
    }


def test_thrift_lookup_and_batch_answer_as_http(thrift_client: Any) -> None:
    from baseplate.thrift.ttypes import Error

    from galaxy_express.thrift.gen import ttypes

    sent = thrift_client.send_package(thrift_send("t1")).sent_package
    answer = thrift_client.send_packages(
        ttypes.SendPackagesRequest(
            packages=[
                thrift_send("t2"),
                thrift_send("t1"),
                thrift_send("t1", recipient_id="venus-1"),
                thrift_send("t3", package_type="junk"),
                thrift_send("bad id"),
            ]
        )
    )
    results = [(r.index, r.package_id, r.status, r.replayed) for r in answer.results]
    lookup = thrift_client.lookup_packages(
        ttypes.LookupPackagesRequest(package_ids=["t2", "nope", "t1"])
    )

    assert results == [
        (0, "t2", 201, False),
        (1, "t1", 200, True),
        (2, "t1", 409, False),
        (3, "t3", 422, False),
        (4, None, 422, False),
    ]
    assert answer.results[1].sent_package == sent
    assert answer.results[2].error.details == {"recipient_id": "differs from the first send"}
    assert [p.package_id for p in lookup.found] == ["t2", "t1"]
    assert lookup.missing == ["nope"]
    statistics = thrift_client.get_statistics()
    assert (statistics.packages_delivered, statistics.dropped_by_reason["invalid"]) == (2, 2)
    with pytest.raises(Error) as empty:
        thrift_client.send_packages(ttypes.SendPackagesRequest(packages=[]))
    assert empty.value.code == 422
