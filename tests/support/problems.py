"""The one check of an RFC 9457 problem answer (WebTest responses)."""

from __future__ import annotations

from typing import Any

PROBLEM = "application/problem+json"


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """``response`` is a problem+json answer of ``status`` (naming ``field`` when given);
    its body."""
    assert response.status_int == status, response.text
    assert response.content_type == PROBLEM
    body: dict[str, Any] = response.json
    assert set(body) == {"type", "title", "status", "detail", "errors"}, body
    assert body["status"] == status
    if field is not None:
        assert field in [error["field"] for error in body["errors"]], body
    return body
