"""Operations endpoints: health, a no-op ping, the OpenAPI document and its explorer."""

from __future__ import annotations

import functools
import importlib
from typing import Any, Literal

from pydantic import BaseModel
from pyramid.request import Request
from pyramid.response import Response

from galaxy_express.delivery.schemas import HealthOut, HealthQuery
from galaxy_express.health import check_health
from galaxy_express.openapi import build_document
from galaxy_express.web import Api, context_of, json_response, query_as

api = Api(tag="operations")
_PONG = {"pong": True}


class PingOut(BaseModel):
    pong: Literal[True]


_DOCS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Galaxy Express API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script>
</body></html>"""


@api.operation(
    "GET",
    "/health",
    summary="Health of the service and its dependencies",
    responses={200: HealthOut},
    query=HealthQuery,
    errors=(422,),
    description=(
        "Readiness (the default): 503 names what is down (`database` or `redis`). "
        "`type=liveness` answers 200 whenever the process serves, asking no dependency, "
        "so a Redis or database outage never gets healthy workers restarted."
    ),
)
def health(request: Request) -> Response:
    if query_as(request, HealthQuery).type == "liveness":
        return json_response({"status": "ok"}, 200)
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
    from swagger_ui_bundle import swagger_ui_path

    from galaxy_express.errors import NotFound

    asset = request.matchdict["asset"]
    if asset not in ("swagger-ui.css", "swagger-ui-bundle.js"):
        raise NotFound(f"no asset {asset!r}")
    content_type = "text/css" if asset.endswith(".css") else "application/javascript"
    with open(f"{swagger_ui_path}/{asset}", "rb") as asset_file:
        return Response(body=asset_file.read(), content_type=content_type, charset="utf-8")


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
