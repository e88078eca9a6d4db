"""The outermost WSGI layer: what escapes Pyramid still answers a bare problem."""

from __future__ import annotations

from typing import Any

import pytest
import webtest

from galaxy_express.http.problems import guard


def exploding_app(environ: dict[str, Any], start_response: Any) -> Any:
    raise RuntimeError("SELECT * FROM secrets -- /srv/app/galaxy_express/db.py")


def test_an_exception_escaping_the_app_is_a_bare_500(caplog: pytest.LogCaptureFixture) -> None:
    response = webtest.TestApp(guard(exploding_app)).get("/v1/stats", status=500)
    assert response.content_type == "application/problem+json"
    assert response.json == {
        "type": "urn:galaxy-express:problem:internal",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "an unexpected error occurred; it was logged",
        "errors": [],
    }
    assert "SELECT" in caplog.text, "logged, not answered"


def test_an_undecodable_path_never_reaches_the_app() -> None:
    response = webtest.TestApp(guard(exploding_app)).get("/v1/%FF", status=400)
    assert response.json["detail"] == "the path or query string is not UTF-8"
