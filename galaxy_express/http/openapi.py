"""The OpenAPI 3.1 document, built from the operations the domains declare.

Request and response schemas come from the same pydantic models that validate
requests, so the document says exactly what the service accepts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from galaxy_express.core import idempotency
from galaxy_express.core.validation import ID_MAX_LENGTH, ID_PATTERN
from galaxy_express.http.web import PROBLEM_JSON, Operation, takes_idempotency_key

_PATH_PARAM = re.compile(r"{(\w+)}")

_ERROR_DESCRIPTIONS = {
    400: "Malformed request: the head, path, query or body can't be read",
    401: "Missing or wrong credentials or signature",
    403: "The API key's scopes do not cover this (scoped keys, auth.keys)",
    404: "Unknown resource",
    406: "The Accept header accepts none of the operation's media types",
    408: "The head or body arrived too slowly (the connection is closed)",
    409: "Conflict with the stored state",
    410: "Gone: what was asked for was pruned (the problem's type says what to do)",
    413: "Body over 64 KiB",
    414: "Request line over the server's limit (8,190 bytes by default)",
    422: "Well-formed but invalid",
    431: "A header line, the number of headers or the whole head over the server's limits",
    503: "A dependency is down; retry after the Retry-After header's seconds",
}

# What the HTTP server itself answers, before any operation runs: every operation may get them.
SERVER_ERRORS = frozenset({400, 408, 414, 431})

PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "errors"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


# When API keys are configured (galaxy_express/http/auth.py): either header will do.
SECURITY_SCHEMES = {
    "bearerKey": {"type": "http", "scheme": "bearer", "description": "An API key as a bearer"},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def build_document(
    operations: Iterable[Operation],
    *,
    title: str,
    version: str,
    api_keys: bool = False,
    open_paths: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The document; with ``api_keys`` every operation outside ``open_paths`` needs a key."""
    operations = list(operations)
    components: dict[str, Any] = {
        "schemas": {**_component_schemas(operations), "Problem": PROBLEM_SCHEMA}
    }
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        spec = _operation(op)
        if api_keys:
            _require_key(spec, is_open=op.path in open_paths)
        paths.setdefault(op.path, {})[op.method.lower()] = spec
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Interplanetary package delivery. Errors are RFC 9457 problem+json.",
        },
        "paths": paths,
        "components": components,
    }
    if api_keys:
        components["securitySchemes"] = SECURITY_SCHEMES
        document["security"] = [{name: []} for name in SECURITY_SCHEMES]
    return document


def _require_key(spec: dict[str, Any], *, is_open: bool) -> None:
    if is_open:
        spec["security"] = []
        return
    for status in (401, 403):
        spec["responses"][str(status)] = {
            "description": _ERROR_DESCRIPTIONS[status],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }


def _component_schemas(operations: list[Operation]) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Any]] = []
    for op in operations:
        if op.body is not None:
            models.append((op.body, "validation"))
        models.extend((m, "serialization") for m in op.responses.values() if m is not None)
    unique = list(dict.fromkeys(models))
    _, schema = models_json_schema(unique, ref_template="#/components/schemas/{model}")
    return {name: _explicit_keys(model) for name, model in schema.get("$defs", {}).items()}


def _explicit_keys(schema: Any) -> Any:
    """Spell a map over an enum of keys (``dict[Literal[...], V]``) as named properties.

    The same set of objects, but every tool understands ``properties`` while some
    (schemathesis among them) generate keys that ``propertyNames`` forbids.
    """
    if isinstance(schema, list):
        return [_explicit_keys(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: _explicit_keys(value) for key, value in schema.items()}
    names = schema.get("propertyNames", {})
    values = schema.get("additionalProperties")
    if isinstance(values, dict) and "enum" in names and "properties" not in schema:
        schema.pop("propertyNames")
        schema["properties"] = dict.fromkeys(names["enum"], values)
        schema["additionalProperties"] = False
    return schema


IDEMPOTENCY_KEY_PARAMETER = {
    "name": idempotency.KEY_HEADER,
    "in": "header",
    "required": False,
    "description": (
        "Makes the request safe to repeat: the first answer (status, body, Location) is "
        "stored with its effects and kept for idempotency.retention_days (30 by default); "
        "the same key with the same request (after normalising, as for package retries) "
        "gets it again with `Idempotent-Replayed: true`, even when the repeats race; the "
        "same key with another body is 422 (`type` ending in `idempotency-key-reused`). "
        "Refusals before the operation ran (400, 413, 415, 422 from validation) are not "
        "stored, so the key may be reused once the request is fixed. Scoped to the method, "
        "the path and the API key."
    ),
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": idempotency.MAX_KEY_LENGTH,
        "pattern": "^[!-~]+$",
    },
}
REPLAYED_HEADER = {
    "description": "`true` when this is the stored first answer to the Idempotency-Key",
    "schema": {"type": "string", "enum": ["true"]},
}
_REUSED_KEY = (
    "; or an Idempotency-Key already used for a different request "
    "(`type` ending in `idempotency-key-reused`, nothing done)"
)


def _operation(op: Operation) -> dict[str, Any]:
    keyed = takes_idempotency_key(op)
    idempotency_parameters = [IDEMPOTENCY_KEY_PARAMETER] if keyed else []
    spec: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": _path_parameters(op)
        + _query_parameters(op.query)
        + [dict(parameter) for parameter in op.header_parameters]
        + idempotency_parameters,
        "responses": _responses(op, keyed),
    }
    if op.description:
        spec["description"] = op.description
    if op.body is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{op.body.__name__}"}}
            },
        }
    return spec


def _path_parameters(op: Operation) -> list[dict[str, Any]]:
    id_schema = {
        "type": "string",
        "minLength": 1,
        "maxLength": ID_MAX_LENGTH,
        "pattern": ID_PATTERN,
    }
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": dict(op.path_schemas.get(name, id_schema)),
        }
        for name in _PATH_PARAM.findall(op.path)
    ]


def _query_parameters(query: type[BaseModel] | None) -> list[dict[str, Any]]:
    if query is None:
        return []
    schema = query.model_json_schema()
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        prop = _without_null({k: v for k, v in prop.items() if k not in ("title", "default")})
        parameters.append(
            {"name": name, "in": "query", "required": name in required, "schema": prop}
        )
    return parameters


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent rather than null, so drop the null branch."""
    branches = [b for b in prop.get("anyOf", []) if b != {"type": "null"}]
    if "anyOf" not in prop:
        return prop
    rest = {k: v for k, v in prop.items() if k != "anyOf"}
    return {**rest, **branches[0]} if len(branches) == 1 else {**rest, "anyOf": branches}


def _responses(op: Operation, keyed: bool) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, model in op.responses.items():
        entry: dict[str, Any] = {"description": "Success" if status < 300 else "See body"}
        if model is not None:
            entry["content"] = {
                op.media_type: {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            }
        elif op.streams and status < 300:
            entry["content"] = {op.media_type: {"schema": {"type": "string"}}}
        if op.headers and status < 300:
            entry["headers"] = {name: dict(header) for name, header in op.headers.items()}
        responses[str(status)] = entry
    errors = set(op.errors) | SERVER_ERRORS | {503} | ({422} if keyed else set())
    for status in sorted(errors):
        description = _ERROR_DESCRIPTIONS.get(status, "Error")
        responses[str(status)] = {
            "description": description + (_REUSED_KEY if keyed and status == 422 else ""),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    if keyed:
        for code, entry in responses.items():
            if idempotency.is_kept(int(code)):
                entry.setdefault("headers", {})[idempotency.REPLAYED_HEADER] = REPLAYED_HEADER
    return responses
