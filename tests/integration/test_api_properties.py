"""Property-based API tests: schemathesis against the service's own /openapi.json.

Every operation the document declares (whatever domain adds it) is called with
generated requests, valid and invalid, against the WSGI app in-process with a
real SQLite database and real Redis. Beside schemathesis' own checks (no 5xx,
status codes, content types, headers and bodies as documented, invalid data
refused), every error must be problem+json that leaks nothing internal.

``GE_API_EXAMPLES`` sets the examples per operation (default 25; CI keeps it
small so the whole suite stays fast, a nightly run can raise it).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import webtest
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from galaxy_express import make_wsgi_app
from tests.conftest import load_app_config

EXAMPLES = int(os.environ.get("GE_API_EXAMPLES", "25"))
PROBLEM_FIELDS = {"type", "title", "status", "detail", "errors"}
# What an answer must never show: traces, SQL, driver names, file paths.
LEAKS = re.compile(
    r"Traceback|File \"|\.py\b|/work/|/usr/|site-packages|sqlalchemy|psycopg|sqlite3?\b"
    r"|\bSELECT\b|\bINSERT\b|\bUPDATE\b.+\bSET\b|\bDELETE FROM\b|Exception|Error\(",
    re.IGNORECASE,
)


API_KEY = "fuzz-key"
KEY_HEADERS = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def api_schema(app_config: dict[str, str]) -> Any:
    """The document of the app on SQLite and on PostgreSQL in turn."""
    return schemathesis.openapi.from_wsgi("/openapi.json", make_wsgi_app(app_config))


@pytest.fixture
def keyed_api_schema(sqlite_url: str, redis_url: str, tmp_path: Path) -> Any:
    """The same with API keys on: the document declares them, the app demands them.

    The document offers two alternative headers; schemathesis reads alternatives as
    if both were required, so it is shown the bearer one only (test_auth.py covers
    X-API-Key).
    """
    config = load_app_config(
        **{
            "db.url": sqlite_url,
            "redis.url": redis_url,
            "reports.dir": str(tmp_path / "r"),
            "auth.api_keys": f"other-key,{API_KEY}",
        }
    )
    app = webtest.TestApp(make_wsgi_app(config))
    document = app.get("/openapi.json", headers=KEY_HEADERS).json
    assert {"bearerKey": []} in document["security"]
    document["security"] = [{"bearerKey": []}]
    loaded = schemathesis.openapi.from_dict(document)
    loaded.app = app.app
    return loaded


def header(response: Any, name: str) -> str:
    values = {key.lower(): value for key, value in response.headers.items()}.get(name.lower())
    return values[0] if values else ""


def errors_are_problems(ctx: Any, response: Any, case: Any) -> None:
    """Every 4xx and 5xx is RFC 9457 problem+json with our fields and its own status."""
    if response.status_code < 400:
        return
    content_type = header(response, "Content-Type")
    assert content_type.startswith("application/problem+json"), content_type
    body = json.loads(response.content)
    assert set(body) == PROBLEM_FIELDS, body
    assert body["status"] == response.status_code, body


def errors_leak_nothing(ctx: Any, response: Any, case: Any) -> None:
    """No stack trace, SQL, driver or file path in any error answer."""
    if response.status_code >= 400:
        leak = LEAKS.search(response.content.decode("utf-8", "replace"))
        assert leak is None, f"the answer leaks {leak.group(0)!r}: {response.content[:500]!r}"


def valid_data_is_accepted(ctx: Any, response: Any, case: Any) -> None:
    """schemathesis' positive_data_acceptance, except for rules across fields.

    A JSON Schema describes each field; a rule between fields (two fields that
    must agree, a start before an end) is not in it, so a request valid field
    by field may still be refused, with a 422 naming the whole body.
    """
    if response.status_code == 422:
        fields = {error["field"] for error in json.loads(response.content)["errors"]}
        if fields == {"body"}:
            return
    positive_data_acceptance(ctx, response, case)


CHECKS: dict[str, Any] = {
    "excluded_checks": [positive_data_acceptance],
    "additional_checks": [errors_are_problems, errors_leak_nothing, valid_data_is_accepted],
}
schema = schemathesis.pytest.from_fixture("api_schema")
keyed_schema = schemathesis.pytest.from_fixture("keyed_api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: Any) -> None:
    case.call_and_validate(**CHECKS)


@keyed_schema.parametrize()
@settings(
    max_examples=max(EXAMPLES // 5, 3), deadline=None, suppress_health_check=list(HealthCheck)
)
def test_with_api_keys_every_operation_demands_one(case: Any) -> None:
    """schemathesis' ignored_auth check resends each request without the key and with a
    wrong one, and expects 401."""
    case.call_and_validate(headers=KEY_HEADERS, **CHECKS)
