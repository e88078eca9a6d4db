"""Delivery through the Pyramid app (WebTest), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
import webtest

from tests.support import assert_problem, new_id, send_body

__all__ = ["assert_problem", "send_body"]  # kept importable from here for older tests


def invalid_count(testapp: webtest.TestApp) -> int:
    return int(testapp.get("/v1/stats").json["dropped_by_reason"]["invalid"])


def test_send_replay_and_conflict(testapp: webtest.TestApp) -> None:
    body = send_body(package_id=42)

    created = testapp.post_json("/v1/packages", body, status=201)
    replay = testapp.post_json(
        "/v1/packages", body | {"package_id": "42", "timestamp": "2142-01-01T12:00:00+00:00"}
    )
    conflict = testapp.post_json(
        "/v1/packages", body | {"recipient_id": "venus-2"}, expect_errors=True
    )

    assert created.json["package_id"] == "42"
    assert created.json["timestamp"] == "2142-01-01T12:00:00Z"
    assert created.json["status"] == "delivered"
    assert created.json["processed_at"].endswith("Z")
    assert "Idempotent-Replayed" not in created.headers
    assert replay.status_int == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json == created.json
    assert_problem(conflict, 409)
    assert testapp.get("/v1/packages/42").json == created.json
    # Written as text (package_json_text): byte for byte the GET's encoded dict.
    assert created.body == replay.body == testapp.get("/v1/packages/42").body
    assert created.content_type == replay.content_type == "application/json"
    assert testapp.get("/v1/stats").json["packages_delivered"] == 1


def test_preferences_round_trip_and_opt_out(testapp: webtest.TestApp) -> None:
    update = {
        "timestamp": "2142-01-01T00:00:00Z",
        "recipient_id": "mars-1",
        "personal_preference": True,
        "marketing_preference": False,
    }
    applied = testapp.post_json("/v1/preferences", update).json
    stale = testapp.post_json(
        "/v1/preferences",
        update | {"timestamp": "2141-12-31T00:00:00Z", "marketing_preference": True},
    ).json
    dropped = testapp.post_json(
        "/v1/packages", send_body(package_type="marketing"), status=201
    ).json

    assert applied == {
        "recipient_id": "mars-1",
        "preferences": {"personal": True, "marketing": False},
        "updated_at": "2142-01-01T00:00:00Z",
        "applied": True,
    }
    assert stale["applied"] is False
    assert stale["preferences"] == applied["preferences"]
    assert testapp.get("/v1/preferences/mars-1").json["preferences"]["marketing"] is False
    assert (dropped["status"], dropped["reason"]) == ("dropped", "opted_out")
    stats = testapp.get("/v1/stats").json
    assert stats["dropped_by_reason"]["opted_out"] == 1


def test_unknown_recipient_preferences_allow_everything(testapp: webtest.TestApp) -> None:
    body = testapp.get("/v1/preferences/nobody").json
    assert body == {
        "recipient_id": "nobody",
        "preferences": {"personal": True, "marketing": True},
        "updated_at": None,
    }


def test_disagreeing_preference_fields_are_refused(testapp: webtest.TestApp) -> None:
    update = {
        "timestamp": 0,
        "recipient_id": "r",
        "personal_preference": True,
        "marketing_preference": True,
        "preferences": {"personal": False},
    }
    assert_problem(testapp.post_json("/v1/preferences", update, expect_errors=True), 422)


def test_preferences_alone_are_a_full_statement(testapp: webtest.TestApp) -> None:
    update = {"timestamp": 1, "recipient_id": "alone", "preferences": {"marketing": False}}
    body = testapp.post_json("/v1/preferences", update).json
    assert body["preferences"] == {"personal": True, "marketing": False}
    assert testapp.get("/v1/preferences/alone").json["preferences"] == body["preferences"]


def test_the_original_form_alone_needs_both_booleans(testapp: webtest.TestApp) -> None:
    update = {"timestamp": 1, "recipient_id": "half", "personal_preference": False}
    response = testapp.post_json("/v1/preferences", update, expect_errors=True)
    assert_problem(response, 422)
    assert "marketing_preference" in json.dumps(response.json)


BAD_JSON_BODIES = [
    pytest.param(b"{not json", "application/json", id="broken-json"),
    pytest.param(b'{"a": NaN}', "application/json", id="nan"),
    pytest.param(b"\xff\xfe{}", "application/json", id="not-utf8"),
    pytest.param(b"[" * 40 + b"]" * 40, "application/json", id="deeply-nested"),
    pytest.param(b"[" * 5000 + b"]" * 5000, "application/json", id="very-deeply-nested"),
    pytest.param(b'{"a": 1' + b"0" * 5000 + b"}", "application/json", id="huge-number"),
    pytest.param(json.dumps(send_body()).encode(), "text/plain", id="wrong-content-type"),
    pytest.param(b"", "application/json", id="empty"),
]


@pytest.mark.parametrize(("raw", "content_type"), BAD_JSON_BODIES)
def test_unreadable_bodies_are_400_and_counted(
    testapp: webtest.TestApp, raw: bytes, content_type: str
) -> None:
    response = testapp.post("/v1/packages", raw, content_type=content_type, expect_errors=True)
    assert_problem(response, 400)
    assert invalid_count(testapp) == 1


INVALID_FIELDS = [
    {"package_type": "parcel"},
    {"package_id": None},
    {"package_id": 10**200},
    {"package_id": "ünïcode"},
    {"package_id": 1.5},
    {"sender_id": ["a"]},
    {"timestamp": "2142-01-01"},
    {"timestamp": True},
    {"timestamp": -5},
    {"content": {"subject": "x" * 201}},
    {"content": {"body": "x" * 16385}},
    {"content": "text"},
    {"unexpected": "field"},
]


@pytest.mark.parametrize("fields", INVALID_FIELDS)
def test_invalid_fields_are_422_naming_the_field_and_counted(
    testapp: webtest.TestApp, fields: dict[str, Any]
) -> None:
    response = testapp.post_json("/v1/packages", send_body(**fields), expect_errors=True)
    assert_problem(response, 422)
    assert response.json["errors"], "each invalid field is named"
    assert invalid_count(testapp) == 1


def test_a_json_array_or_missing_fields_are_422(testapp: webtest.TestApp) -> None:
    assert_problem(testapp.post_json("/v1/packages", [1, 2], expect_errors=True), 422)
    missing = testapp.post_json("/v1/packages", {}, expect_errors=True)
    assert_problem(missing, 422)
    assert {e["field"] for e in missing.json["errors"]} >= {"package_id", "timestamp"}
    assert invalid_count(testapp) == 2


def test_a_body_over_64_kib_is_413_and_not_counted(testapp: webtest.TestApp) -> None:
    huge = json.dumps(send_body(content={"body": "x" * 70_000})).encode()
    assert_problem(
        testapp.post("/v1/packages", huge, content_type="application/json", expect_errors=True),
        413,
    )
    one_megabyte = b'{"a": "' + b"x" * 1_000_000 + b'"}'
    assert_problem(
        testapp.post(
            "/v1/packages", one_megabyte, content_type="application/json", expect_errors=True
        ),
        413,
    )
    assert invalid_count(testapp) == 0


def test_unknown_things_answer_problems(testapp: webtest.TestApp) -> None:
    assert_problem(testapp.get("/v1/packages/nope", expect_errors=True), 404)
    assert_problem(testapp.get("/v1/packages/bad%20id", expect_errors=True), 422)
    assert_problem(testapp.get("/v2/whatever", expect_errors=True), 404)
    not_allowed = testapp.delete("/v1/packages", expect_errors=True)
    assert_problem(not_allowed, 405)
    assert not_allowed.headers["Allow"] == "POST"


def test_health_names_each_dependency(testapp: webtest.TestApp) -> None:
    assert testapp.get("/health").json == {"status": "ok", "database": "ok", "redis": "ok"}


def test_openapi_documents_every_route(testapp: webtest.TestApp) -> None:
    document = testapp.get("/openapi.json").json
    operations = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    assert {
        ("POST", "/v1/packages"),
        ("GET", "/v1/packages/{package_id}"),
        ("POST", "/v1/preferences"),
        ("GET", "/v1/preferences/{recipient_id}"),
        ("GET", "/v1/stats"),
        ("GET", "/health"),
    } <= operations
    send = document["paths"]["/v1/packages"]["post"]
    assert {"200", "201", "400", "409", "413", "422", "503"} <= set(send["responses"])
    assert testapp.get("/docs").content_type == "text/html"


@pytest.mark.parametrize(
    ("literal", "taken_as"),
    [("7.0", "7"), ("1e2", "100"), ("12345678901234567891.0", "12345678901234567891")],
)
def test_integer_valued_numbers_are_integer_ids(testapp, literal: str, taken_as: str) -> None:
    """JSON Schema counts 7.0 as an integer, so the document allows it; taken exactly."""
    body = json.dumps(send_body(package_id="placeholder")).replace('"placeholder"', literal)
    sent = testapp.post("/v1/packages", body, content_type="application/json")
    assert sent.json["package_id"] == taken_as
    assert testapp.get(f"/v1/packages/{taken_as}").json == sent.json


@pytest.mark.parametrize("literal", ["7.5", "-1.0", "1e200"])
def test_other_numbers_are_not_ids(testapp, literal: str) -> None:
    body = json.dumps(send_body(package_id="placeholder")).replace('"placeholder"', literal)
    refused = testapp.post("/v1/packages", body, content_type="application/json", status=422)
    assert [e["field"] for e in refused.json["errors"]] == ["package_id"]


NOON = "2142-01-01T12:00:00Z"
NOON_SECONDS = 5_427_864_000  # the same instant as Unix seconds
OMIT = object()  # a field left out of the body


def spelled(body: dict[str, Any], *changes: dict[str, Any]) -> dict[str, Any]:
    """``body`` with each of ``changes`` applied in turn (``OMIT`` removes a field)."""
    for change in changes:
        body = {**body, **change}
    return {field: value for field, value in body.items() if value is not OMIT}


@pytest.mark.parametrize(
    ("first", "retry"),
    [
        ({"timestamp": NOON}, {"timestamp": "2142-01-01T13:00:00+01:00"}),
        ({"timestamp": NOON}, {"timestamp": "2142-01-01T12:00:00"}),  # no offset: UTC
        ({"timestamp": NOON}, {"timestamp": NOON_SECONDS}),
        ({"timestamp": NOON}, {"timestamp": "2142-01-01T12:00:00.000000000Z"}),
        # Beyond microseconds, digits are dropped (not rounded): .1234569 is .123456.
        (
            {"timestamp": "2142-01-01T12:00:00.1234569Z"},
            {"timestamp": "2142-01-01T12:00:00.123456Z"},
        ),
        ({"sender_id": 7}, {"sender_id": "7"}),
        ({"recipient_id": "12"}, {"recipient_id": 12}),
        ({"content": None}, {"content": OMIT}),  # null and omitted are both "no content"
        ({"content": OMIT}, {"content": None}),
    ],
    ids=[
        "+01:00",
        "no-offset",
        "unix-seconds",
        "9-digits",
        "7-digits",
        "int-sender",
        "int-recipient",
        "null-then-omitted",
        "omitted-then-null",
    ],
)
def test_a_retry_spelled_another_way_is_the_same_send(
    testapp: webtest.TestApp, first: dict[str, Any], retry: dict[str, Any]
) -> None:
    body = send_body(timestamp=NOON)
    created = testapp.post_json("/v1/packages", spelled(body, first), status=201)
    replay = testapp.post_json("/v1/packages", spelled(body, first, retry), status=200)

    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json == created.json
    assert testapp.get("/v1/stats").json["packages_delivered"] == 1


@pytest.mark.parametrize(
    ("first", "retry"),
    [
        ({"timestamp": NOON}, {"timestamp": "2142-01-01T12:00:00+01:00"}),  # an hour before
        ({"timestamp": NOON}, {"timestamp": "2142-01-01T12:00:00.000001Z"}),
        ({"timestamp": NOON}, {"timestamp": NOON_SECONDS + 1}),
        ({"content": OMIT}, {"content": {"subject": "", "body": ""}}),  # empty is content
    ],
    ids=["+01:00-same-digits", "1-microsecond", "1-second", "empty-content"],
)
def test_a_retry_of_another_instant_or_content_is_a_409(
    testapp: webtest.TestApp, first: dict[str, Any], retry: dict[str, Any]
) -> None:
    body = send_body(timestamp=NOON)
    testapp.post_json("/v1/packages", spelled(body, first), status=201)
    retried = testapp.post_json("/v1/packages", spelled(body, first, retry), expect_errors=True)
    assert_problem(retried, 409)
    assert invalid_count(testapp) == 0, "a 409 is not counted as invalid"


def test_a_thrift_send_in_milliseconds_replays_over_http_as_a_string(
    testapp: webtest.TestApp, thrift_client: Any
) -> None:
    from galaxy_express.thrift.gen import ttypes

    package_id = new_id("cross")
    request = ttypes.SendPackageRequest(
        timestamp=NOON_SECONDS * 1000 + 250,
        sender_id="7",
        recipient_id="mars-1",
        package_id=package_id,
        package_type="personal",
    )
    sent = thrift_client.send_package(request)
    over_http = testapp.post_json(
        "/v1/packages",
        send_body(package_id=package_id, sender_id=7, timestamp="2142-01-01T13:00:00.250+01:00")
        | {"content": None},
        status=200,
    )
    back_over_thrift = thrift_client.send_package(request)

    assert sent.replayed is False
    assert over_http.headers["Idempotent-Replayed"] == "true"
    assert over_http.json["timestamp"] == "2142-01-01T12:00:00.250000Z"
    assert back_over_thrift.replayed is True
    assert testapp.get("/v1/stats").json["packages_delivered"] == 1
