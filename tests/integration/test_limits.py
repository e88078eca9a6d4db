"""Limits: every oversized, out-of-range or undecodable input gets a clear 4xx.

Where a limit holds for every operation (body size, page size, repeated
query parameters, path ids), the test walks the service's own /openapi.json,
so operations added later are covered without new tests.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import webtest
from pyramid.request import Request
from sqlalchemy import create_engine, text

from galaxy_express.core import errors
from galaxy_express.core.validation import QueryModel
from galaxy_express.delivery.views import MAX_BATCH_BODY_BYTES
from galaxy_express.http.web import MAX_BODY_BYTES, query_as
from tests.support import assert_problem, new_id, send_body


def operations(testapp: webtest.TestApp) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) for every documented operation."""
    document = testapp.get("/openapi.json").json
    return [
        (method.upper(), path, spec)
        for path, item in document["paths"].items()
        for method, spec in item.items()
    ]


def concrete(path: str) -> str:
    """The path with a fresh valid id for each parameter."""
    return re.sub(r"{\w+}", lambda _: new_id("x"), path)


# ---- Bodies -----------------------------------------------------------------


# The operations that take more than 64 KiB, and how much.
LARGER_BODIES = {"/v1/packages/batch": MAX_BATCH_BODY_BYTES}


def test_every_body_over_64_kib_is_413(testapp: webtest.TestApp) -> None:
    with_bodies = [(m, p) for m, p, spec in operations(testapp) if "requestBody" in spec]
    assert with_bodies
    for method, path in with_bodies:
        limit = LARGER_BODIES.get(path, MAX_BODY_BYTES)
        response = testapp.request(
            concrete(path),
            method=method,
            body=json.dumps({"padding": "x" * limit}).encode(),
            headers={"Content-Type": "application/json"},
            expect_errors=True,
        )
        assert_problem(response, 413)


def test_a_body_of_exactly_64_kib_is_read(testapp: webtest.TestApp) -> None:
    body = json.dumps(send_body(content={"subject": "s", "body": ""})).encode()
    padded = body[:-1] + b" " * (MAX_BODY_BYTES - len(body)) + b"}"
    assert len(padded) == MAX_BODY_BYTES
    response = testapp.post("/v1/packages", padded, content_type="application/json")
    assert response.status_int == 201


def test_json_nested_inside_a_valid_body_is_refused(testapp: webtest.TestApp) -> None:
    nested: Any = "x"
    for _ in range(40):
        nested = [nested]
    response = testapp.post_json(
        "/v1/packages", send_body(content={"subject": nested}), expect_errors=True
    )
    assert_problem(response, 400)


# ---- Timestamps -------------------------------------------------------------

OUT_OF_RANGE_TIMESTAMPS = [
    "1969-12-31T23:59:59Z",
    "1970-01-01T00:59:59+01:00",
    "10000-01-01T00:00:00Z",
    "9999-12-31T23:59:59-01:00",  # year 10000 in UTC: once a 500 (OverflowError)
    "0001-01-01T00:00:00+01:00",  # year 0 in UTC: once a 500 (OverflowError)
    "2142-02-30T00:00:00Z",
    "2142-01-01T24:00:00Z",
    "2142-01-01T00:00:00+24:00",
    -1,
    -0.5,
    253_402_300_800,
    10**400,  # once a 500: compared as a float (OverflowError)
    1e308,
]


@pytest.mark.parametrize("timestamp", OUT_OF_RANGE_TIMESTAMPS, ids=repr)
def test_timestamps_out_of_range_are_422(testapp: webtest.TestApp, timestamp: Any) -> None:
    for path, body in (
        ("/v1/packages", send_body(timestamp=timestamp)),
        ("/v1/preferences", preferences_body(timestamp=timestamp)),
    ):
        response = testapp.post_json(path, body, expect_errors=True)
        assert_problem(response, 422)
        assert [e["field"] for e in response.json["errors"]] == ["timestamp"]


@pytest.mark.parametrize(
    "timestamp",
    [
        "1970-01-01T00:00:00Z",
        "1970-01-01T01:00:00+01:00",
        "9999-12-31T23:59:59Z",
        0,
        253_402_300_799,
    ],
    ids=repr,
)
def test_the_edges_of_the_range_are_accepted(testapp: webtest.TestApp, timestamp: Any) -> None:
    assert testapp.post_json("/v1/packages", send_body(timestamp=timestamp)).status_int == 201


def preferences_body(**fields: Any) -> dict[str, Any]:
    return {
        "timestamp": "2142-01-01T00:00:00Z",
        "recipient_id": "mars-1",
        "personal_preference": True,
        "marketing_preference": True,
    } | fields


# ---- Strings and ids --------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"package_id": "p" * 129}, "package_id"),
        ({"sender_id": 10**128}, "sender_id"),
        ({"recipient_id": ""}, "recipient_id"),
        ({"content": {"subject": "s" * 201}}, "content.subject"),
        ({"content": {"body": "b" * 16385}}, "content.body"),
        ({"content": {"subject": "nul\x00"}}, "content.subject"),
        ({"content": {"body": "lone \ud800 surrogate"}}, "content.body"),
    ],
)
def test_strings_beyond_their_limits_are_422(
    testapp: webtest.TestApp, fields: dict[str, Any], field: str
) -> None:
    raw = json.dumps(send_body(**fields)).encode()  # ensure_ascii keeps \ud800 as an escape
    response = testapp.post(
        "/v1/packages", raw, content_type="application/json", expect_errors=True
    )
    assert_problem(response, 422)
    assert [e["field"] for e in response.json["errors"]] == [field]


def test_ids_at_their_limits_are_accepted(testapp: webtest.TestApp) -> None:
    longest = "p" * 128
    assert testapp.post_json("/v1/packages", send_body(package_id=longest)).status_int == 201
    assert testapp.get(f"/v1/packages/{longest}").json["package_id"] == longest
    as_integer = 10**128 - 1
    created = testapp.post_json("/v1/packages", send_body(package_id=as_integer)).json
    assert created["package_id"] == "9" * 128


def test_every_path_id_is_checked(testapp: webtest.TestApp) -> None:
    with_ids = [(m, p) for m, p, _ in operations(testapp) if "{" in p and m in ("GET", "DELETE")]
    assert with_ids
    for bad_id in ("x" * 129, "a%00b", "-leading-dash", "%E2%98%83"):
        for method, path in with_ids:
            url = re.sub(r"{\w+}", bad_id, path)
            response = testapp.request(url, method=method, expect_errors=True)
            assert_problem(response, 422)


@pytest.mark.parametrize(
    "path",
    ["/v1/packages/..%2F..%2Fetc%2Fpasswd", "/v1/packages/../../etc/passwd", "/v1//packages"],
)
def test_path_tricks_find_nothing(testapp: webtest.TestApp, path: str) -> None:
    response = testapp.get(path, expect_errors=True)
    assert response.status_int in (404, 422)
    assert_problem(response, response.status_int)


# ---- Encoding ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["/v1/packages/%FF", "/%C3%28", "/v1/stats?x=%FF", "/v1/stats?%FF=1", "/health?%C0%AF"]
)
def test_a_path_or_query_that_is_not_utf8_is_400(testapp: webtest.TestApp, url: str) -> None:
    assert_problem(testapp.get(url, expect_errors=True), 400)


def test_a_body_that_is_not_utf8_is_400_whatever_charset_it_claims(
    testapp: webtest.TestApp,
) -> None:
    raw = json.dumps(send_body(content={"subject": "é"}), ensure_ascii=False).encode("latin-1")
    response = testapp.post(
        "/v1/packages", raw, content_type="application/json; charset=latin-1", expect_errors=True
    )
    assert_problem(response, 400)


# ---- Query strings and pages --------------------------------------------------


class Filters(QueryModel):
    folder: str = "inbox"


def test_a_repeated_query_parameter_is_422() -> None:
    with pytest.raises(errors.InvalidInput) as refused:
        query_as(Request.blank("/?folder=inbox&folder=spam"), Filters)
    assert refused.value.errors == (errors.FieldError("folder", "given more than once"),)
    assert query_as(Request.blank("/?folder=spam"), Filters).folder == "spam"


def query_operations(testapp: webtest.TestApp) -> list[tuple[str, dict[str, Any]]]:
    return [
        (path, spec)
        for method, path, spec in operations(testapp)
        if method == "GET" and any(p["in"] == "query" for p in spec.get("parameters", []))
    ]


def test_every_repeated_query_parameter_is_422(testapp: webtest.TestApp) -> None:
    with_queries = query_operations(testapp)
    assert with_queries, "the document lists operations with query parameters"
    for path, spec in with_queries:
        for name in (p["name"] for p in spec["parameters"] if p["in"] == "query"):
            response = testapp.get(f"{concrete(path)}?{name}=1&{name}=2", expect_errors=True)
            assert_problem(response, 422)
            assert {e["field"] for e in response.json["errors"]} == {name}, (path, name)


# Pages the spec sizes otherwise than 1..100: the change feed's events are small.
LARGER_PAGES = {"/v1/inbox/{recipient_id}/changes": 500}


def test_every_page_size_is_bounded(testapp: webtest.TestApp) -> None:
    paged = [
        (path, spec)
        for path, spec in query_operations(testapp)
        if any(p["name"] == "limit" for p in spec["parameters"])
    ]
    assert paged, "the document lists paginated operations"
    for path, spec in paged:
        limit = next(p for p in spec["parameters"] if p["name"] == "limit")["schema"]
        most = LARGER_PAGES.get(path, 100)
        assert (limit.get("minimum"), limit.get("maximum")) == (1, most), path
        url = concrete(path)
        for bad in ("0", str(most + 1), "-1", "ten", "1e2", "99999999999999999999999"):
            assert_problem(testapp.get(f"{url}?limit={bad}", expect_errors=True), 422)
        assert testapp.get(f"{url}?limit={most}", expect_errors=True).status_int in (200, 404)


def test_every_list_a_request_may_carry_is_bounded(testapp: webtest.TestApp) -> None:
    """Ids per bulk action and any other list in a body: the document bounds them all."""
    document = testapp.get("/openapi.json").json
    schemas = document["components"]["schemas"]
    bodies = [
        spec["requestBody"]["content"]["application/json"]["schema"]
        for _, _, spec in operations(testapp)
        if "requestBody" in spec
    ]
    arrays = [a for body in bodies for a in _arrays_in(body, schemas, set())]
    assert arrays, "the document lists requests that carry lists"
    unbounded = [a for a in arrays if "maxItems" not in a]
    assert not unbounded, unbounded


def _arrays_in(schema: Any, schemas: dict[str, Any], seen: set[str]) -> list[dict[str, Any]]:
    if isinstance(schema, list):
        return [a for item in schema for a in _arrays_in(item, schemas, seen)]
    if not isinstance(schema, dict):
        return []
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return []
        return _arrays_in(schemas[name], schemas, seen | {name})
    found = [schema] if schema.get("type") == "array" else []
    return found + [a for value in schema.values() for a in _arrays_in(value, schemas, seen)]


# ---- Nothing leaks ----------------------------------------------------------

LEAKS = re.compile(
    r"Traceback|File \"|\.py\b|/tmp/|/work/|site-packages|sqlalchemy|sqlite|psycopg"
    r"|SELECT|INSERT|no such table|does not exist|secret",
    re.IGNORECASE,
)


def assert_bare_500(response: webtest.TestResponse) -> None:
    assert_problem(response, 500)
    assert response.json["detail"] == "an unexpected error occurred; it was logged"
    assert response.json["errors"] == []
    assert LEAKS.search(response.text) is None, response.text


def test_an_unexpected_exception_is_a_bare_500_and_logged(
    testapp: webtest.TestApp, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from galaxy_express.delivery import service

    def broken(_context: Any) -> None:
        raise RuntimeError("SELECT secret FROM /work/secret/file.py")

    monkeypatch.setattr(service, "get_statistics", broken)
    assert_bare_500(testapp.get("/v1/stats", expect_errors=True))
    assert "SELECT secret" in caplog.text, "the cause is in the log, not in the answer"


def test_a_broken_schema_is_a_bare_500_not_a_503(
    database_url: str, app_config: dict[str, str], redis_url: str
) -> None:
    """A missing table is a bug, not an outage: no Retry-After, nothing about SQL."""
    from galaxy_express.http.app import make_wsgi_app

    broken_url = throwaway_copy(database_url)
    try:
        engine = create_engine(broken_url, future=True)
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE package_counters"))
        engine.dispose()
        app = webtest.TestApp(make_wsgi_app(app_config | {"db.url": broken_url}))
        response = app.post_json("/v1/packages", send_body(), expect_errors=True)
        assert_bare_500(response)
        assert "Retry-After" not in response.headers
        assert_bare_500(app.get("/v1/stats", expect_errors=True))
    finally:
        drop_throwaway(broken_url)


def throwaway_copy(database_url: str) -> str:
    """A migrated database of its own, to break at will."""
    from galaxy_express.runtime import migrate

    if database_url.startswith("sqlite"):
        url = database_url.replace("galaxy.db", "broken.db")  # a new file beside it
    else:
        name = f"ge_broken_{new_id('db').replace('-', '_')}"
        admin = create_engine(database_url, isolation_level="AUTOCOMMIT", future=True)
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = database_url.rsplit("/", 1)[0] + f"/{name}"
    migrate.upgrade(url)
    return url


def drop_throwaway(url: str) -> None:
    if url.startswith("sqlite"):
        return
    admin_url, name = url.rsplit("/", 1)
    admin = create_engine(f"{admin_url}/postgres", isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_a_semicolon_in_a_query_value_stays_in_the_value(testapp: webtest.TestApp) -> None:
    # WebOb splits query strings on ";" too; the service splits on "&" only, so
    # an opaque value keeps its characters and is judged whole.
    answer = testapp.get("/v1/users?cursor=a;limit=7&limit=2", expect_errors=True)

    assert answer.status_int == 422
    assert [e["field"] for e in answer.json["errors"]] == ["cursor"]
