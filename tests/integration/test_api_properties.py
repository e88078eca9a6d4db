"""Property-based API tests: schemathesis against the service's own /openapi.json.

Every operation the document declares (whatever domain adds it) is called with
generated requests, valid and invalid, against the WSGI app in-process with a
real SQLite database and real Redis. Beside schemathesis' own checks (no 5xx,
status codes, content types, headers and bodies as documented, invalid data
refused), every error must be problem+json that leaks nothing internal.

``GE_API_EXAMPLES`` sets the examples per operation (default 25; CI keeps it
small so the whole suite stays fast, a nightly run can raise it). Generation is
derandomized, so `make test` and CI judge the same requests every run;
``GE_API_RANDOM=1`` explores new ones (and prints how to reproduce a failure).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import schemathesis
import webtest
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from galaxy_express.http.app import make_wsgi_app
from galaxy_express.http.views import domain_apis
from tests.conftest import load_app_config

pytestmark = pytest.mark.slow  # starts processes or runs many generated cases

EXAMPLES = int(os.environ.get("GE_API_EXAMPLES", "25"))
DERANDOMIZE = os.environ.get("GE_API_RANDOM") != "1"
PROBLEM_FIELDS = {"type", "title", "status", "detail", "errors"}
# What an answer must never show: traces, SQL, driver names, file paths.
LEAKS = re.compile(
    r"Traceback|File \"|\.py\b|/work/|/usr/|site-packages|sqlalchemy|psycopg|sqlite3?\b"
    r"|\bSELECT\b|\bINSERT\b|\bUPDATE\b.+\bSET\b|\bDELETE FROM\b|Exception|Error\(",
    re.IGNORECASE,
)


API_KEY = "fuzz-key"
KEY_HEADERS = {"Authorization": f"Bearer {API_KEY}"}


# The second passes (PostgreSQL, API keys) skip schemathesis' coverage phase, whose
# boundary cases cost the same whatever the examples and are run on SQLite already.
QUICK = schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": False}}})


# Operations whose answer is a stream that does not end (Server-Sent Events): documented,
# but a fuzzer reading their answer would wait forever. Their refusals are tested in
# test_inbox_stream.py.
STREAMING = [op.name for api in domain_apis() for op in api.operations if op.streams]


def config_for(database_url: str, redis_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return load_app_config(
        **{"db.url": database_url, "redis.url": redis_url, "reports.dir": str(tmp_path / "r")},
        **extra,
    )


@pytest.fixture
def api_schema(sqlite_url: str, redis_url: str, tmp_path: Path) -> Any:
    """The document, and the app it describes, on SQLite."""
    app = make_wsgi_app(config_for(sqlite_url, redis_url, tmp_path))
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


@pytest.fixture
def postgres_api_schema(postgres_database: str, redis_url: str, tmp_path: Path) -> Any:
    """The same on PostgreSQL (fewer examples: the database rarely changes an answer)."""
    from tests.conftest import _empty_tables

    _empty_tables(postgres_database)
    app = make_wsgi_app(config_for(postgres_database, redis_url, tmp_path))
    return schemathesis.openapi.from_wsgi("/openapi.json", app, config=QUICK)


@pytest.fixture
def keyed_api_schema(sqlite_url: str, redis_url: str, tmp_path: Path) -> Any:
    """The same with API keys on: the document declares them, the app demands them.

    The document offers two alternative headers; schemathesis reads alternatives as
    if both were required, so it is shown the bearer one only (test_auth.py covers
    X-API-Key).
    """
    config = config_for(sqlite_url, redis_url, tmp_path, **{"auth.api_keys": f"k,{API_KEY}"})
    app = webtest.TestApp(make_wsgi_app(config))
    document = app.get("/openapi.json", headers=KEY_HEADERS).json
    assert {"bearerKey": []} in document["security"]
    document["security"] = [{"bearerKey": []}]
    loaded = schemathesis.openapi.from_dict(document, config=QUICK)
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


MIN_ECHO = 4  # shorter strings are letters of words, not echoes


def errors_leak_nothing(ctx: Any, response: Any, case: Any) -> None:
    """No stack trace, SQL, driver or file path in any error answer.

    What the request itself said (an id such as "x.py" echoed in a 404) is not a leak.
    Only echoes of 4 characters or more are struck out: a generated "e" must not
    erase the letters of "Exception" and blind the check.
    """
    if response.status_code < 400:
        return
    text = response.content.decode("utf-8", "replace")
    echoed = _strings(case.path_parameters, case.query, case.body)
    for said in sorted((s for s in echoed if len(s) >= MIN_ECHO), key=len, reverse=True):
        text = text.replace(said, "")
    leak = LEAKS.search(text)
    assert leak is None, f"the answer leaks {leak.group(0)!r}: {response.content[:500]!r}"


def _strings(*values: Any) -> set[str]:
    found: set[str] = set()
    for value in values:
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, dict):
            found |= _strings(*value.keys(), *value.values())
        elif isinstance(value, list):
            found |= _strings(*value)
    return found


def valid_data_is_accepted(ctx: Any, response: Any, case: Any) -> None:
    """schemathesis' positive_data_acceptance, except for rules across fields.

    A JSON Schema describes each field; a rule between fields (two fields that
    must agree, a start before an end) is not in it, so a request valid field
    by field may still be refused, with a 422 naming the whole body.
    """
    if response.status_code == 422:
        problem = json.loads(response.content)
        # An Idempotency-Key an earlier generated request used with another body:
        # whether a key is taken is state, which no schema can say either.
        if problem["type"].endswith("idempotency-key-reused"):
            return
        fields = {error["field"] for error in problem["errors"]}
        # A cursor is opaque: only one the service handed out is valid, which
        # no schema can say.
        if fields in ({"body"}, {"cursor"}):
            return
    positive_data_acceptance(ctx, response, case)


def invalid_data_is_refused(ctx: Any, response: Any, case: Any) -> None:
    """schemathesis' negative_data_rejection, judged on the request actually sent.

    A case made invalid only in its query or headers can serialize to a valid
    request: an undocumented query parameter whose generated value is null or an
    empty list is left out of the URL, and an extra header is no error (proxies add
    them). Such a case reached the service valid, so accepting it is right; one
    whose URL or documented headers really are invalid must still be refused.
    """
    if (
        200 <= response.status_code < 300
        and _only_query_or_headers_negated(case)
        and _sent_parameters_are_valid(case, response.request)
    ):
        return
    negative_data_rejection(ctx, response, case)


def _only_query_or_headers_negated(case: Any) -> bool:
    components = case.meta.components if case.meta is not None else {}
    negated = {location.name for location, meta in components.items() if meta.mode.is_negative}
    return bool(negated) and negated <= {"QUERY", "HEADER"}


def _sent_parameters_are_valid(case: Any, request: Any) -> bool:
    documented = {(p.location.name, p.name.lower()): p for p in case.operation.iter_parameters()}
    query = parse_qsl(urlsplit(request.url).query, keep_blank_values=True)
    sent = [("QUERY", name, value) for name, value in query]
    sent += [("HEADER", name, value) for name, value in request.headers.items()]
    names = [(location, name.lower()) for location, name, _ in sent]
    if len(names) != len(set(names)):
        return False  # a parameter given twice: which one counts is the service's guess
    for location, name, value in sent:
        parameter = documented.get((location, name.lower()))
        if parameter is None:
            if location == "QUERY":
                return False  # an undocumented name that did reach the service
            continue
        if not _a_reading_is_valid(case, parameter.definition["schema"], value):
            return False
    return True


def _a_reading_is_valid(case: Any, schema: Any, text: str) -> bool:
    """Whether the text, read as a string, an integer or a boolean, fits the schema."""
    readings: list[Any] = [text]
    if re.fullmatch(r"-?[0-9]+", text):
        readings.append(int(text))
    if text in ("true", "false"):
        readings.append(text == "true")
    validator = case.operation.schema.adapter.jsonschema_validator_cls(schema)
    return any(validator.is_valid(reading) for reading in readings)


CHECKS: dict[str, Any] = {
    "excluded_checks": [positive_data_acceptance, negative_data_rejection],
    "additional_checks": [
        errors_are_problems,
        errors_leak_nothing,
        valid_data_is_accepted,
        invalid_data_is_refused,
    ],
}
FEW = max(EXAMPLES // 5, 3)
# Excluded here, on the lazy schemas: they pass their own filters to the fixture's schema.
schema = schemathesis.pytest.from_fixture("api_schema").exclude(operation_id=STREAMING)
postgres_schema = schemathesis.pytest.from_fixture("postgres_api_schema").exclude(
    operation_id=STREAMING
)
keyed_schema = schemathesis.pytest.from_fixture("keyed_api_schema").exclude(operation_id=STREAMING)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=DERANDOMIZE,
)
def test_every_operation_answers_as_documented(case: Any) -> None:
    case.call_and_validate(**CHECKS)


@pytest.mark.postgresql
@postgres_schema.parametrize()
@settings(
    max_examples=FEW,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=DERANDOMIZE,
)
def test_every_operation_answers_as_documented_on_postgresql(case: Any) -> None:
    case.call_and_validate(**CHECKS)


@keyed_schema.parametrize()
@settings(
    max_examples=FEW,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=DERANDOMIZE,
)
def test_with_api_keys_every_operation_demands_one(case: Any) -> None:
    """schemathesis' ignored_auth check resends each request without the key and with a
    wrong one, and expects 401."""
    case.call_and_validate(headers=KEY_HEADERS, **CHECKS)
