"""Operations endpoints: health, a no-op ping, the OpenAPI document and its explorer."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pyramid.request import Request
from pyramid.response import Response

from galaxy_express.core.health import check_health
from galaxy_express.core.validation import QueryModel
from galaxy_express.http.auth import EXPLORER_ASSETS
from galaxy_express.http.openapi import build_document
from galaxy_express.http.web import Api, context_of, json_response, query_as

# baseplate's IsHealthyProbe, by name (lower-cased) or by number: baseplate-healthcheck asks
# `/health?type=2` for liveness.
_PROBES = {"1": "readiness", "2": "liveness", "3": "startup"}


class HealthQuery(QueryModel):
    type: Literal["readiness", "liveness", "startup", "1", "2", "3"] = "readiness"

    @property
    def probe(self) -> str:
        return _PROBES.get(self.type, self.type)


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    # Readiness (and startup) answers name each dependency; liveness answers omit them.
    database: Literal["ok", "unavailable"] | None = None
    redis: Literal["ok", "unavailable"] | None = None


api = Api(tag="operations")
_PONG = {"pong": True}
_ALIVE = {"status": "ok"}


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
    query=HealthQuery,
    responses={200: HealthOut},
    description=(
        "Readiness (the default): 200 when the database and Redis answer, else 503 naming "
        "what is down (`database` or `redis`). `?type=liveness` (or baseplate's probe number, "
        "`2`) answers 200 "
        '`{"status": "ok"}` whenever the process serves, without asking its dependencies, '
        "so a Redis outage does not get healthy workers restarted."
    ),
    errors=(422,),
)
def health(request: Request) -> Response:
    if query_as(request, HealthQuery).probe == "liveness":
        return json_response(_ALIVE)
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
        "benchmark compares the real operations against. Liveness checks use "
        "/health?type=liveness."
    ),
)
def ping(request: Request) -> Response:
    return json_response(_PONG)


@api.operation("GET", "/openapi.json", summary="This OpenAPI document", responses={200: None})
def openapi_document(request: Request) -> Response:
    settings = context_of(request).settings
    return json_response(_document(api_keys=bool(settings.api_keys or settings.scoped_keys)))


@api.operation("GET", "/docs", summary="An explorer for this API", responses={200: None})
def docs(request: Request) -> Response:
    return Response(_DOCS_PAGE, content_type="text/html", charset="utf-8")


@api.operation(
    "GET", "/docs/static/{asset}", summary="The explorer's static files", responses={200: None}
)
def docs_asset(request: Request) -> Response:
    from galaxy_express.core.errors import NotFound

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
    from galaxy_express.http.auth import OPEN_PATHS
    from galaxy_express.http.views import domain_apis

    operations = [
        op for api in domain_apis() for op in api.operations if not op.path.startswith("/docs")
    ]
    return build_document(
        operations,
        title="Galaxy Express",
        version="1.0.0",
        api_keys=api_keys,
        open_paths=OPEN_PATHS,
    )
