"""GET /ping: the no-op route the benchmark measures the HTTP stack's ceiling with."""

from __future__ import annotations

import webtest

from galaxy_express.http.app import make_wsgi_app


def test_ping_answers_pong(testapp) -> None:
    response = testapp.get("/ping")

    assert response.status_int == 200
    assert response.content_type == "application/json"
    assert response.json == {"pong": True}


def test_ping_answers_while_redis_is_down(app_config) -> None:
    # Nothing listens on port 1: /health would answer 503, /ping touches no dependency.
    app_config["redis.url"] = "redis://127.0.0.1:1/0"
    app = webtest.TestApp(make_wsgi_app(app_config))

    assert app.get("/health", expect_errors=True).status_int == 503
    assert app.get("/ping").json == {"pong": True}


def test_ping_is_documented(testapp) -> None:
    document = testapp.get("/openapi.json").json

    assert "/ping" in document["paths"]
    assert "get" in document["paths"]["/ping"]


def test_liveness_answers_while_redis_is_down_and_readiness_does_not(app_config) -> None:
    app_config["redis.url"] = "redis://127.0.0.1:1/0"
    app = webtest.TestApp(make_wsgi_app(app_config))

    assert app.get("/health?type=liveness").json == {"status": "ok"}
    assert app.get("/health?type=2").json == {"status": "ok"}, "as baseplate-healthcheck asks"
    readiness = app.get("/health?type=readiness", expect_errors=True)
    assert (readiness.status_int, readiness.json["redis"]) == (503, "unavailable")
    assert app.get("/health?type=sideways", expect_errors=True).status_int == 422


def test_liveness_is_documented(testapp) -> None:
    health = testapp.get("/openapi.json").json["paths"]["/health"]["get"]
    (probe,) = [p for p in health["parameters"] if p["name"] == "type"]
    assert probe["in"] == "query"
    assert "liveness" in probe["schema"]["enum"]
