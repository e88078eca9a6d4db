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
