"""Operations endpoints: health, a no-op ping, the OpenAPI document and its explorer."""

from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pyramid.request import Request
from pyramid.response import Response

from galaxy_express.auth import EXPLORER_ASSETS
from galaxy_express.delivery.schemas import HealthOut
from galaxy_express.health import check_health
from galaxy_express.openapi import build_document
from galaxy_express.web import Api, context_of, json_response

api = Api(tag="operations")
_PONG = {"pong": True}


class PingOut(BaseModel):
    pong: Literal[True]


# Swagger UI 5 (reads OpenAPI 3.1), committed from npm's swagger-ui-dist so /docs
# works offline; static/swagger-ui/README.md says how to update it.
SWAGGER_UI_VERSION = "5.35.0"
_SWAGGER_UI_DIR = Path(__file__).resolve().parent / "static" / "swagger-ui"
_ASSET_TYPES = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "application/javascript"}
assert set(_ASSET_TYPES) == set(EXPLORER_ASSETS)

# persistAuthorization keeps a key entered in "Authorize" across reloads.
_DOCS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Galaxy Express API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui",
  deepLinking: true, persistAuthorization: true});</script>
</body></html>"""


@api.operation(
    "GET",
    "/health",
    summary="Health of the service and its dependencies",
    responses={200: HealthOut},
    description="503 names what is down (`database` or `redis`).",
)
def health(request: Request) -> Response:
    state = check_health(context_of(request))
    body = {
        "status": "ok" if state.healthy else "unavailable",
        "database": "ok" if state.database else "unavailable",
        "redis": "ok" if state.redis else "unavailable",
    }
    headers = {} if state.healthy else {"Retry-After": "5"}
    return json_response(body, 200 if state.healthy else 503, headers=headers)


@api.operation(
    "GET",
    "/ping",
    summary="A no-op answer from the server itself",
    responses={200: PingOut},
    description=(
        "Touches neither the database nor Redis: the ceiling of the HTTP stack, which the "
        "benchmark compares the real operations against. Use /health for liveness checks."
    ),
)
def ping(request: Request) -> Response:
    return json_response(_PONG)


@api.operation("GET", "/openapi.json", summary="This OpenAPI document", responses={200: None})
def openapi_document(request: Request) -> Response:
    return json_response(_document(api_keys=bool(context_of(request).settings.api_keys)))


@api.operation("GET", "/docs", summary="An explorer for this API", responses={200: None})
def docs(request: Request) -> Response:
    return Response(_DOCS_PAGE, content_type="text/html", charset="utf-8")


@api.operation(
    "GET", "/docs/static/{asset}", summary="The explorer's static files", responses={200: None}
)
def docs_asset(request: Request) -> Response:
    from galaxy_express.errors import NotFound

    asset = request.matchdict["asset"]
    if asset not in _ASSET_TYPES:
        raise NotFound(f"no asset {asset!r}")
    return Response(
        body=_asset(asset),
        content_type=_ASSET_TYPES[asset],
        charset="utf-8",
        cache_control=f"public, max-age={24 * 3600}",
    )


@functools.cache
def _asset(name: str) -> bytes:
    return (_SWAGGER_UI_DIR / name).read_bytes()


@functools.cache
def _document(api_keys: bool = False) -> dict[str, Any]:
    from galaxy_express import DOMAIN_VIEWS
    from galaxy_express.auth import OPEN_PATHS

    operations = [
        op
        for name in DOMAIN_VIEWS
        for op in importlib.import_module(name).api.operations
        if not op.path.startswith("/docs")
    ]
    return build_document(
        operations,
        title="Galaxy Express",
        version="1.0.0",
        api_keys=api_keys,
        open_paths=OPEN_PATHS,
    )
