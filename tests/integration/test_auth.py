"""Optional API keys on the HTTP edge: off by default, every route but /health when on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import webtest

from galaxy_express.core.access import UNSCOPED_KEY, Principal
from galaxy_express.core.config import parse_settings, with_env_overrides
from galaxy_express.http.app import make_wsgi_app
from galaxy_express.http.auth import OPEN_PATHS, _digest, principal_of_key
from tests.conftest import load_app_config
from tests.support import assert_problem, new_id, send_body

KEYS = ("first-key", "second-key-which-is-longer")


@pytest.fixture
def keyed_app(sqlite_url: str, redis_url: str, tmp_path: Path) -> webtest.TestApp:
    config = load_app_config(
        **{
            "db.url": sqlite_url,
            "redis.url": redis_url,
            "reports.dir": str(tmp_path / "r"),
            "auth.api_keys": ",".join(KEYS),
        }
    )
    return webtest.TestApp(make_wsgi_app(config))


def assert_unauthorized(response: webtest.TestResponse) -> None:
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {KEYS[0]}"},
        {"Authorization": f"bearer {KEYS[1]}"},
        {"X-API-Key": KEYS[1]},
        {"Authorization": "Bearer wrong", "X-API-Key": KEYS[0]},
    ],
)
def test_a_configured_key_in_either_header_lets_in(
    keyed_app: webtest.TestApp, headers: dict[str, str]
) -> None:
    assert keyed_app.post_json("/v1/packages", send_body(), headers=headers).status_int == 201
    assert keyed_app.get("/v1/stats", headers=headers).json["packages_delivered"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": f"Basic {KEYS[0]}"},
        {"Authorization": KEYS[0]},
        {"X-API-Key": KEYS[0][:-1]},
        {"X-API-Key": KEYS[0] + "x"},
        {"X-API-Key": f"{KEYS[0]},{KEYS[1]}"},
        {"X-API-Key": "ünïcödé"},
    ],
)
def test_a_missing_or_wrong_key_is_401_before_anything_runs(
    keyed_app: webtest.TestApp, headers: dict[str, str]
) -> None:
    assert_unauthorized(
        keyed_app.post_json("/v1/packages", send_body(), headers=headers, status=401)
    )
    assert_unauthorized(keyed_app.get("/v1/stats", headers=headers, status=401))
    # Unknown routes and bad bodies reveal nothing before the key is checked.
    assert_unauthorized(keyed_app.get("/v2/secret", headers=headers, status=401))
    assert_unauthorized(keyed_app.post("/v1/packages", b"{bad json", headers=headers, status=401))
    assert keyed_app.get("/v1/stats", headers={"X-API-Key": KEYS[0]}).json == {
        "packages_delivered": 0,
        "packages_dropped": 0,
        "dropped_by_reason": {"opted_out": 0, "invalid": 0, "sender_reported": 0},
        "delivered_by_type": {"personal": 0, "marketing": 0},
    }, "a refused request is not even counted as invalid"


def test_health_stays_open(keyed_app: webtest.TestApp) -> None:
    assert keyed_app.get("/health").json["status"] == "ok"
    assert_unauthorized(keyed_app.get("/health/", status=401))


def test_the_document_declares_the_keys_when_on(keyed_app: webtest.TestApp) -> None:
    document = keyed_app.get("/openapi.json", headers={"X-API-Key": KEYS[0]}).json
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key as a bearer",
    }
    assert schemes["apiKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert document["security"] == [{"bearerKey": []}, {"apiKeyHeader": []}]
    assert document["paths"]["/health"]["get"]["security"] == []
    assert "401" in document["paths"]["/v1/packages"]["post"]["responses"]
    assert "401" not in document["paths"]["/health"]["get"]["responses"]


def test_off_by_default_nothing_is_asked_nor_declared(testapp: webtest.TestApp) -> None:
    assert testapp.get("/v1/stats").status_int == 200
    document = testapp.get("/openapi.json").json
    assert "security" not in document
    assert "securitySchemes" not in document["components"]
    assert "401" not in document["paths"]["/v1/packages"]["post"]["responses"]


def test_api_keys_come_from_the_environment_comma_separated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("API_KEYS", "one, two,,three")
    settings = parse_settings(with_env_overrides(load_app_config()))
    assert settings.api_keys == ("one", "two", "three")
    monkeypatch.setenv("API_KEYS", "")
    assert parse_settings(with_env_overrides(load_app_config())).api_keys == ()


def test_every_key_is_compared_whichever_matches() -> None:
    scoped = Principal("scoped", recipients=frozenset({"alice"}))
    keys = ((_digest(KEYS[0]), UNSCOPED_KEY), (_digest(KEYS[1]), scoped))
    assert principal_of_key([KEYS[0]], keys) is UNSCOPED_KEY
    assert principal_of_key([KEYS[1]], keys) is scoped
    assert principal_of_key(["nope", KEYS[1]], keys) is scoped
    assert principal_of_key([], keys) is None
    assert principal_of_key(["nope", KEYS[0].upper()], keys) is None


def test_the_explorer_and_its_document_are_open(keyed_app: webtest.TestApp) -> None:
    page = keyed_app.get("/docs")
    assert "swagger-ui-bundle.js" in page.text
    bundle = keyed_app.get("/docs/static/swagger-ui-bundle.js")
    assert bundle.content_type == "application/javascript"
    assert len(bundle.body) > 100_000
    assert keyed_app.get("/openapi.json").json["openapi"] == "3.1.0"
    assert_unauthorized(keyed_app.get("/docs/static/other.js", status=401))
    assert_unauthorized(keyed_app.get("/v1/stats", status=401))


def test_every_operation_of_the_document_demands_a_key(keyed_app: webtest.TestApp) -> None:
    """Walked over the document, not fuzzed: every path and method, whatever it answers
    with a key (a 404 on a random id included), is a 401 without one or with a wrong one."""
    document = keyed_app.get("/openapi.json", headers={"X-API-Key": KEYS[0]}).json
    operations = [
        (method, re.sub(r"{\w+}", lambda _: new_id("x"), path))
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"} and path not in OPEN_PATHS
    ]
    assert len(operations) >= 20, "the document lists the service's operations"
    for method, path in operations:
        for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}):
            answer = keyed_app.request(
                path, method=method.upper(), headers=headers, body=b"{}", expect_errors=True
            )
            assert answer.status_int == 401, (method, path, headers)
            assert_unauthorized(answer)
        allowed = keyed_app.request(
            path,
            method=method.upper(),
            # JSON only: a live stream then answers 406 instead of a stream that never ends.
            headers={
                "X-API-Key": KEYS[0],
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            body=b"{}",
            expect_errors=True,
        )
        assert allowed.status_int != 401, (method, path)
