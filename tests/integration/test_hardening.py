"""Issue 18, the application half: cursors, strict parsing, bounded storage, file modes."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import webtest
from baseplate.thrift.ttypes import Error
from sqlalchemy import create_engine, select

from galaxy_express.bootstrap import make_baseplate
from galaxy_express.core import clock
from galaxy_express.http.app import make_wsgi_app
from galaxy_express.reports.runner import prune_report_files, write_report_files
from galaxy_express.reports.service import TaskReport
from galaxy_express.thrift.gen import ttypes
from galaxy_express.webhooks.models import WebhookDelivery
from galaxy_express.webhooks.service import REFUSED_BODY_PREFIX_BYTES, prune_deliveries
from galaxy_express.webhooks.signing import sign
from tests.conftest import load_app_config
from tests.support import assert_problem, new_id, send_body
from tests.support.webhooks import post_signed

SECRET = "whsec_" + base64.b64encode(b"hardening-secret").decode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _rows(url: str, *columns: Any) -> list[Any]:
    engine = create_engine(url, future=True)
    with engine.connect() as connection:
        rows = connection.execute(select(*columns).order_by(WebhookDelivery.id)).all()
    engine.dispose()
    return rows


# ---- Cursors ----------------------------------------------------------------


def _a_real_cursor(testapp: webtest.TestApp, path: str) -> str:
    page = testapp.get(path, params={"limit": 1}).json
    assert page["next_cursor"]
    return str(page["next_cursor"])


def _forgeries(real: str) -> list[str]:
    body, _, mac = real.partition(".")
    forged_mac = _b64(b"\0" * 16)
    unsigned = [
        [{"t": "2142-01-01T00:00:00+00:00"}, "x"],
        ["not a time", "x"],
        [10**30, 10**30],
        [None, None],
        [{"t": None}, 1],
        [[1, 2], {"a": 1}],
        [],
    ]
    forged = [f"{_b64(json.dumps(key).encode())}.{mac}" for key in unsigned]
    forged += [f"{_b64(json.dumps(key).encode())}.{forged_mac}" for key in unsigned]
    return [
        *forged,
        real[:-3],  # truncated
        body,  # no HMAC
        f"{body}.",
        f"{body}.{forged_mac}",
        "%%%.@@@",
        "é",
        real + real,
        _b64(json.dumps({"k": [1], "q": "0" * 16}).encode()),  # the old unsigned format
    ]


@pytest.fixture
def listed(testapp: webtest.TestApp) -> webtest.TestApp:
    for index in range(3):
        testapp.post_json("/v1/users", {"id": new_id("usr"), "username": f"user{index}"})
        testapp.post_json("/v1/tasks", {"name": f"task {index}"})
        testapp.post_json("/v1/packages", send_body(recipient_id="mars-9"))
    return testapp


@pytest.mark.parametrize("path", ["/v1/users", "/v1/tasks", "/v1/inbox/mars-9"])
def test_every_cursor_problem_is_a_422(listed: webtest.TestApp, path: str) -> None:
    real = _a_real_cursor(listed, path)
    assert listed.get(path, params={"cursor": real}).status_int == 200
    for forged in _forgeries(real):
        answer = listed.get(path, params={"cursor": forged}, expect_errors=True)
        assert_problem(answer, 422)
        assert answer.json["errors"][0]["field"] == "cursor"


def test_a_cursor_of_another_list_or_filter_is_refused(listed: webtest.TestApp) -> None:
    users = _a_real_cursor(listed, "/v1/users")
    answer = listed.get("/v1/tasks", params={"cursor": users}, expect_errors=True)
    assert_problem(answer, 422)
    tasks = _a_real_cursor(listed, "/v1/tasks?order=created_at")
    answer = listed.get("/v1/tasks", params={"cursor": tasks}, expect_errors=True)
    assert_problem(answer, 422)


def test_cursors_survive_a_secret_rotation_and_not_another_server(
    app_config: dict[str, str],
) -> None:
    old = webtest.TestApp(make_wsgi_app(app_config | {"cursors.secret": "first"}))
    for index in range(2):
        old.post_json("/v1/users", {"id": new_id("usr"), "username": f"rot{index}"})
    cursor = _a_real_cursor(old, "/v1/users")
    rotated = webtest.TestApp(
        make_wsgi_app(app_config | {"cursors.secret": "second", "cursors.previous_secret": "first"})
    )
    assert rotated.get("/v1/users", params={"cursor": cursor}).json["items"]
    new_cursor = _a_real_cursor(rotated, "/v1/users")
    assert new_cursor != cursor
    stranger = webtest.TestApp(make_wsgi_app(app_config | {"cursors.secret": "other"}))
    assert_problem(stranger.get("/v1/users", params={"cursor": cursor}, expect_errors=True), 422)


def test_thrift_cursor_problems_are_error_422(thrift_client: Any) -> None:
    for _ in range(2):
        thrift_client.send_package(
            ttypes.SendPackageRequest(
                timestamp=clock.to_millis(clock.now()),
                sender_id="earth-1",
                recipient_id="mars-t",
                package_id=new_id("pkg"),
                package_type="personal",
            )
        )
    page = thrift_client.list_inbox(ttypes.ListInboxRequest(recipient_id="mars-t", limit=1))
    for forged in _forgeries(page.next_cursor):
        with pytest.raises(Error) as raised:
            thrift_client.list_inbox(
                ttypes.ListInboxRequest(recipient_id="mars-t", limit=1, cursor=forged)
            )
        assert raised.value.code == 422


# ---- Strict parsing ---------------------------------------------------------


@pytest.mark.parametrize("code", [*range(0x20), 0x7F, 0x85, 0x2028])
def test_no_id_may_hold_a_control_character(testapp: webtest.TestApp, code: int) -> None:
    character = chr(code)
    for bad in (f"alice{character}", f"{character}alice", f"al{character}ice"):
        answer = testapp.post_json("/v1/packages", send_body(recipient_id=bad), expect_errors=True)
        assert_problem(answer, 422)
        user = testapp.post_json("/v1/users", {"id": bad, "username": "xyz"}, expect_errors=True)
        assert_problem(user, 422)


def test_location_is_a_path_whatever_the_host(testapp: webtest.TestApp) -> None:
    user_id = new_id("usr")
    answer = testapp.post_json(
        "/v1/users", {"id": user_id, "username": "hosted"}, headers={"Host": "evil.example"}
    )
    assert answer.headers["Location"] == f"/v1/users/{user_id}"
    task = testapp.post_json("/v1/tasks", {"name": "t"}, headers={"Host": "evil.example"})
    assert task.headers["Location"].startswith("/v1/tasks/")


def test_a_422_lists_at_most_20_field_errors_and_counts_the_rest(
    testapp: webtest.TestApp,
) -> None:
    body = {f"unknown_{index}": index for index in range(2000)}
    raw = json.dumps(body).encode()
    answer = testapp.post("/v1/users", raw, content_type="application/json", expect_errors=True)
    assert_problem(answer, 422)
    assert len(answer.json["errors"]) == 20
    assert "more field errors not listed" in answer.json["detail"]
    assert len(answer.body) < 4096 < len(raw)


@pytest.fixture
def signed_app(app_config: dict[str, str]) -> webtest.TestApp:
    return webtest.TestApp(make_wsgi_app(app_config | {"webhooks.secret": SECRET}))


def _event() -> bytes:
    return json.dumps(
        {
            "event": "created",
            "timestamp": "2142-05-01T11:00:00Z",
            "metadata": {"userId": "crew-1", "id": new_id("todo"), "content": "x"}
            | {"isCompleted": False},
        }
    ).encode()


@pytest.mark.parametrize(
    "timestamp",
    ["9" * 400, "1" * 21, "+{now}", "000{now}", " {now}", "{now} ", "{now}\n", "١٢٣", "1_0", ""],
)
def test_webhook_timestamps_are_1_to_20_ascii_digits_and_refusals_audited(
    signed_app: webtest.TestApp, app_config: dict[str, str], timestamp: str
) -> None:
    now = int(clock.now().timestamp())
    raw = _event()
    value = timestamp.format(now=now)
    headers = {
        "webhook-id": "msg-ts",
        "webhook-timestamp": value,
        "webhook-signature": sign(SECRET, "msg-ts", now, raw),
    }
    assert_problem(post_signed(signed_app, raw, headers), 401)
    rows = _rows(app_config["db.url"], WebhookDelivery.status_code, WebhookDelivery.outcome)
    assert [(row.status_code, row.outcome) for row in rows] == [(401, "unauthorized")]


# ---- Bounded storage --------------------------------------------------------


def test_a_refused_delivery_keeps_a_digest_the_size_and_one_kib(
    signed_app: webtest.TestApp, app_config: dict[str, str]
) -> None:
    raw = json.dumps({"padding": "x" * 60_000}).encode()
    headers = {"webhook-id": "m1", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"}
    for _ in range(5):
        assert post_signed(signed_app, raw, headers).status_int == 401
    too_big = signed_app.post(
        "/v1/webhooks/tasks", b"x" * 70_000, content_type="application/json", expect_errors=True
    )
    assert too_big.status_int == 413
    rows = _rows(
        app_config["db.url"],
        WebhookDelivery.status_code,
        WebhookDelivery.body,
        WebhookDelivery.body_sha256,
        WebhookDelivery.body_size,
    )
    assert len(rows) == 6
    for row in rows[:5]:
        assert row.body.encode() == raw[:REFUSED_BODY_PREFIX_BYTES]
        assert row.body_sha256 == hashlib.sha256(raw).hexdigest()
        assert row.body_size == len(raw)
    assert (rows[5].status_code, rows[5].body, rows[5].body_size) == (413, None, 70_000)


def test_accepted_deliveries_keep_their_body_until_pruned(
    testapp: webtest.TestApp, app_config: dict[str, str]
) -> None:
    raw = _event()
    testapp.post("/v1/webhooks/tasks", raw, content_type="application/json")
    [row] = _rows(app_config["db.url"], WebhookDelivery.body)
    assert row.body.encode() == raw
    baseplate, _ = make_baseplate(
        app_config | {"webhooks.retention_days": "1", "webhooks.delivery_retention_days": "3"}
    )
    with baseplate.server_context("test") as context:
        assert prune_deliveries(context).bodies == 0
        with clock.frozen(clock.now() + timedelta(days=2)):
            pruned = prune_deliveries(context)
        assert (pruned.bodies, pruned.deliveries) == (1, 0)
        assert _rows(app_config["db.url"], WebhookDelivery.body)[0].body is None
        with clock.frozen(clock.now() + timedelta(days=4)):
            assert prune_deliveries(context).deliveries == 1
    assert _rows(app_config["db.url"], WebhookDelivery.id) == []


def test_pruning_goes_in_bounded_batches(
    signed_app: webtest.TestApp, app_config: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(7):
        signed_app.post(
            "/v1/webhooks/tasks", b"{}", content_type="application/json", expect_errors=True
        )
    baseplate, _ = make_baseplate(app_config | {"webhooks.delivery_retention_days": "1"})
    monkeypatch.setattr("galaxy_express.webhooks.service.PRUNE_BATCH", 2)
    later = clock.now() + timedelta(days=2)
    with baseplate.server_context("test") as context, clock.frozen(later):
        assert prune_deliveries(context, max_batches=2).deliveries == 4
        assert prune_deliveries(context, max_batches=2).deliveries == 3


def test_report_files_are_0640_and_pruned_after_their_retention(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    now = clock.now()
    write_report_files(folder, {"u1": TaskReport("u1", now - timedelta(hours=1), now)})
    [file] = list(folder.iterdir())
    assert stat.S_IMODE(file.stat().st_mode) == 0o640
    assert stat.S_IMODE(folder.stat().st_mode) & 0o007 == 0
    # Age is judged by the file's mtime: pin it to the test's instant, so a clock
    # another test froze (the clock is process-wide) can't make the file look old.
    os.utime(file, (now.timestamp(), now.timestamp()))
    assert prune_report_files(folder, 30, now=now + timedelta(days=29)) == 0
    assert prune_report_files(folder, 30, now=now + timedelta(days=31)) == 1
    assert list(folder.iterdir()) == []


def test_the_sqlite_database_and_its_wal_are_0600(tmp_path: Path, redis_url: str) -> None:
    from galaxy_express.runtime import migrate

    database = tmp_path / "private" / "ge.db"
    url = f"sqlite:///{database}"
    migrate.upgrade(url)
    app = webtest.TestApp(make_wsgi_app(load_app_config(**{"db.url": url, "redis.url": redis_url})))
    app.post_json("/v1/packages", send_body())
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert Path(f"{database}-wal").exists()
    assert stat.S_IMODE(os.stat(database.parent).st_mode) & 0o007 == 0


# ---- Scoped keys ------------------------------------------------------------

ACME, ALICE, OPS, OLD = "key-acme-sender", "key-alice-mailbox", "key-ops-admin", "key-unscoped"


@pytest.fixture
def scoped_app(app_config: dict[str, str]) -> webtest.TestApp:
    keys = f"{ACME} senders:acme,acme-2\n{ALICE} recipients:alice ; {OPS} admin"
    config = app_config | {
        "auth.keys": keys,
        "auth.api_keys": OLD,
        "delivery.spam_drop_threshold": "2",
    }
    return webtest.TestApp(make_wsgi_app(config))


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_sender_key_sends_only_as_its_senders(scoped_app: webtest.TestApp) -> None:
    mine = send_body(sender_id="acme", recipient_id="alice")
    assert scoped_app.post_json("/v1/packages", mine, headers=_as(ACME)).status_int == 201
    other = send_body(sender_id="bank-of-mars", recipient_id="alice")
    answer = scoped_app.post_json("/v1/packages", other, headers=_as(ACME), expect_errors=True)
    assert_problem(answer, 403)
    # The sender reads its own package; the recipient's key does too; a stranger's is 404.
    path = f"/v1/packages/{mine['package_id']}"
    assert scoped_app.get(path, headers=_as(ACME)).status_int == 200
    assert scoped_app.get(path, headers=_as(ALICE)).status_int == 200
    for key in (ACME, ALICE):
        assert_problem(scoped_app.get("/v1/inbox/bob", headers=_as(key), expect_errors=True), 403)
    answer = scoped_app.get("/v1/inbox/alice", headers=_as(ACME), expect_errors=True)
    assert_problem(answer, 403)


def test_a_recipient_key_acts_only_on_its_mailbox(scoped_app: webtest.TestApp) -> None:
    for recipient in ("alice", "bob"):
        body = send_body(sender_id="acme", recipient_id=recipient)
        scoped_app.post_json("/v1/packages", body, headers=_as(ACME))
    assert len(scoped_app.get("/v1/inbox/alice", headers=_as(ALICE)).json["items"]) == 1
    prefs = {
        "recipient_id": "bob",
        "timestamp": "2142-01-01T00:00:00Z",
        "personal_preference": True,
        "marketing_preference": False,
    }
    answer = scoped_app.post_json("/v1/preferences", prefs, headers=_as(ALICE), expect_errors=True)
    assert_problem(answer, 403)
    mine = prefs | {"recipient_id": "alice"}
    assert scoped_app.post_json("/v1/preferences", mine, headers=_as(ALICE)).status_int == 200
    assert_problem(
        scoped_app.get("/v1/preferences/bob", headers=_as(ALICE), expect_errors=True), 403
    )
    assert scoped_app.get("/v1/preferences/alice", headers=_as(ALICE)).status_int == 200


@pytest.mark.parametrize(
    "path", ["/v1/stats", "/v1/senders/acme/spam-reports", "/v1/users", "/v1/tasks"]
)
def test_statistics_and_other_domains_need_admin(scoped_app: webtest.TestApp, path: str) -> None:
    for key in (ACME, ALICE):
        assert_problem(scoped_app.get(path, headers=_as(key), expect_errors=True), 403)
    assert scoped_app.get(path, headers=_as(OPS)).status_int == 200
    assert scoped_app.get(path, headers=_as(OLD)).status_int == 200
    assert_problem(scoped_app.get(path, expect_errors=True), 401)


def test_spam_reports_count_only_authenticated_recipients(scoped_app: webtest.TestApp) -> None:
    """The sock-puppet abuse: reports made with other keys than the recipient's don't count."""
    for recipient in ("puppet-1", "puppet-2", "puppet-3"):
        body = send_body(sender_id="acme", recipient_id=recipient)
        scoped_app.post_json("/v1/packages", body, headers=_as(ACME))
        for key in (OPS, OLD):
            scoped_app.post_json(
                f"/v1/inbox/{recipient}/spam",
                {"package_ids": [body["package_id"]]},
                headers=_as(key),
            )
    count = scoped_app.get("/v1/senders/acme/spam-reports", headers=_as(OPS)).json
    assert count["reporter_count"] == 0
    real = send_body(sender_id="acme", recipient_id="alice")
    assert scoped_app.post_json("/v1/packages", real, headers=_as(ACME)).json["status"] == (
        "delivered"
    )
    scoped_app.post_json(
        "/v1/inbox/alice/spam", {"package_ids": [real["package_id"]]}, headers=_as(ALICE)
    )
    count = scoped_app.get("/v1/senders/acme/spam-reports", headers=_as(OPS)).json
    assert count["reporter_count"] == 1


def test_open_mode_still_lets_anyone_do_anything(testapp: webtest.TestApp) -> None:
    body = send_body(sender_id="bank-of-mars", recipient_id="anyone")
    assert testapp.post_json("/v1/packages", body).status_int == 201
    assert testapp.get("/v1/stats").status_int == 200


@pytest.mark.parametrize(
    ("keys", "warned"),
    [({}, True), ({"auth.api_keys": "k1"}, True), ({"auth.keys": "k2 recipients:alice"}, False)],
)
def test_a_spam_threshold_without_scoped_keys_is_warned_of_at_start_up(
    app_config: dict[str, str], caplog: pytest.LogCaptureFixture, keys: dict[str, str], warned: bool
) -> None:
    """Open mode (or unscoped keys) lets anyone report spam for anyone: said at start-up."""
    caplog.set_level(logging.WARNING, logger="galaxy_express.http.auth")
    make_wsgi_app(app_config | {"delivery.spam_drop_threshold": "10"} | keys)
    said = [r.getMessage() for r in caplog.records if "spam_drop_threshold" in r.getMessage()]
    assert bool(said) is warned, said


@pytest.mark.parametrize(
    "keys",
    ["k1", "k1 owner", "k1 senders:", "k1 senders:bad\nid", "k1 admin\nk1 admin", "k1 senders:a b"],
)
def test_bad_scoped_keys_fail_start_up(app_config: dict[str, str], keys: str) -> None:
    with pytest.raises(ValueError, match=r"auth\.keys entry"):
        make_wsgi_app(app_config | {"auth.keys": keys})


# ---- Reports ----------------------------------------------------------------


def test_an_on_demand_report_is_bounded_and_says_so(
    testapp: webtest.TestApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("galaxy_express.reports.service.MAX_ITEMS_PER_LIST", 5)
    owner = new_id("usr")
    testapp.post_json("/v1/users", {"id": owner, "username": "reported"})
    for index in range(7):
        task = testapp.post_json("/v1/tasks", {"name": f"task {index}"}).json
        testapp.put(f"/v1/tasks/{task['id']}/assignees/{owner}")
    now = int(clock.now().timestamp())
    params = {"user_id": owner, "start": str(now - 3600), "end": str(now + 3600)}
    report = testapp.get("/v1/reports/tasks", params=params).json
    assert len(report["created"]) == len(report["open"]) == 5
    assert report["counts"] == {"created": 7, "completed": 0, "deleted": 0, "open": 7}
    assert report["truncated"] is True
    whole = testapp.get("/v1/reports/tasks", params=params | {"user_id": new_id("usr")}).json
    assert whole["truncated"] is False
