"""The HTTP edge's shared parts: declaring operations, reading JSON, rendering.

Each domain's ``views.py`` declares its operations on an ``Api`` with
``@api.operation(...)``; that one declaration adds the Pyramid route and view
and the operation's OpenAPI entry, so the document can't drift from the routes.
It also puts every mutating operation under /v1/ behind ``Idempotency-Key``
(``keyed``), so a new route takes the header without a line of its own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl

from pydantic import BaseModel
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response
from webob.request import DisconnectionError

from galaxy_express.core import errors
from galaxy_express.core import idempotency as rules
from galaxy_express.core.context import ServiceContext
from galaxy_express.core.shapes import json_text
from galaxy_express.core.validation import parse_json, validate
from galaxy_express.db import idempotency as keys
from galaxy_express.db.unit_of_work import request_transaction

MAX_BODY_BYTES = 64 * 1024
PROBLEM_JSON = "application/problem+json"
EVENT_STREAM = "text/event-stream"
# Set by the API-key tween (http.auth): a digest naming the caller's key, the
# idempotency keys' scope. Absent while keys are off.
PRINCIPAL_ENVIRON = "galaxy_express.principal"
# The headers of a first answer that its replays repeat.
KEPT_HEADERS = ("Content-Type", "Location", rules.REPLAYED_HEADER)

M = TypeVar("M", bound=BaseModel)
View = Callable[[Request], Response]


@dataclass(frozen=True)
class Operation:
    """One HTTP operation: its route, view and what the OpenAPI document says of it."""

    name: str
    method: str
    path: str
    view: View
    summary: str
    tag: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    responses: Mapping[int, type[BaseModel] | None]
    errors: tuple[int, ...]
    description: str = ""
    # JSON Schemas of path parameters that aren't ids (those are the default).
    path_schemas: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Run when the edge refuses a malformed request before the view runs (a bad
    # Idempotency-Key), for operations that account for every refusal. A reused key's
    # 422 changes nothing, so it is not one.
    on_refusal: Callable[[Request], None] | None = None
    # The success answers' media type: JSON, or a stream (text/event-stream) whose
    # answers are documented but never fuzzed (they don't end).
    media_type: str = "application/json"
    # Request headers the operation reads, as OpenAPI parameter objects.
    header_parameters: tuple[Mapping[str, Any], ...] = ()
    # The largest body the view reads: the edge reads as much for an Idempotency-Key's
    # fingerprint, or a body the view takes (a batch's) would be refused there.
    max_body_bytes: int = MAX_BODY_BYTES

    # Headers of the success answer, for OpenAPI: name -> its schema and description.
    headers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def streams(self) -> bool:
        return self.media_type == EVENT_STREAM


@dataclass
class Api:
    """The operations of one domain, included into the app with ``config.include``."""

    tag: str
    operations: list[Operation] = field(default_factory=list)

    def operation(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        responses: Mapping[int, type[BaseModel] | None],
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        errors: tuple[int, ...] = (),
        description: str = "",
        tag: str | None = None,
        path_schemas: Mapping[str, Mapping[str, Any]] | None = None,
        on_refusal: Callable[[Request], None] | None = None,
        media_type: str = "application/json",
        header_parameters: tuple[Mapping[str, Any], ...] = (),
        headers: Mapping[str, Mapping[str, Any]] | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> Callable[[View], View]:
        """Declare an operation; ``tag`` files it under another domain's heading."""

        def register(view: View) -> View:
            self.operations.append(
                Operation(
                    name=view.__name__,
                    method=method,
                    path=path,
                    view=view,
                    summary=summary,
                    tag=tag or self.tag,
                    body=body,
                    query=query,
                    responses=responses,
                    errors=errors,
                    description=description,
                    path_schemas=path_schemas or {},
                    on_refusal=on_refusal,
                    media_type=media_type,
                    header_parameters=header_parameters,
                    headers=headers or {},
                    max_body_bytes=max_body_bytes,
                )
            )
            return view

        return register

    def includeme(self, config: Configurator) -> None:
        """Each path's routes, then one answering 405 for the path's other methods.

        Pyramid tries routes in the order they were added, so a fixed path
        (``/v1/inbox/{id}/summary``) answers 405 to DELETE rather than falling
        through to a later pattern that also matches it (``/v1/inbox/{id}/{package_id}``).
        """
        methods: dict[str, list[str]] = {}
        for op in self.operations:
            methods.setdefault(op.path, []).append(op.method)
        for index, (path, allowed) in enumerate(methods.items()):
            for op in self.operations:
                if op.path == path:
                    config.add_route(op.name, op.path, request_method=op.method)
                    config.add_view(keyed(op), route_name=op.name)
            name = f"{self.tag}_method_not_allowed_{index}"
            config.add_route(name, path)
            config.add_view(_method_not_allowed_view(allowed), route_name=name)


def _method_not_allowed_view(methods: list[str]) -> View:
    allow = ", ".join(sorted(set(methods)))

    def view(request: Request) -> Response:
        response = problem_response(
            errors.MethodNotAllowed(f"{request.method} is not allowed here; use {allow}")
        )
        response.headers["Allow"] = allow
        return response

    return view


def takes_idempotency_key(op: Operation) -> bool:
    return op.method in rules.MUTATING_METHODS and op.path.startswith("/v1/")


def keyed(op: Operation) -> View:
    """The operation's view, answering repeats under an ``Idempotency-Key`` once.

    Without the header the view runs as it is (a send costs nothing more). With
    it, the key is claimed, the view run and its answer stored in one
    transaction (``request_transaction``: the services' units of work join it).
    """
    if not takes_idempotency_key(op):
        return op.view

    def view(request: Request) -> Response:
        raw_key = request.environ.get(_KEY_ENVIRON)
        if raw_key is None:
            return op.view(request)
        try:
            key = rules.parse_key(raw_key)
            fingerprint = _fingerprint_or_none(op, request)
            if fingerprint is None:
                # Refused before it runs, by the view itself: the key stays free.
                return op.view(request)
            return _answer_once(op, request, key, fingerprint)
        except errors.MalformedRequest:
            if op.on_refusal is not None:
                op.on_refusal(request)
            raise

    view.__name__ = op.view.__name__
    view.__doc__ = op.view.__doc__
    return view


# The Idempotency-Key header as the WSGI environ holds it: looked up there, a send
# without one builds no ``request.headers`` view of the environ to ask it.
_KEY_ENVIRON = "HTTP_" + rules.KEY_HEADER.upper().replace("-", "_")


def _answer_once(op: Operation, request: Request, key: str, fingerprint: str) -> Response:
    """The stored first answer to the key, or the view's, stored with its effects."""
    principal = request.environ.get(PRINCIPAL_ENVIRON)
    scope = rules.scope_of(op.method, request.path_info, principal)
    with request_transaction(context_of(request).db) as session:
        operation = f"{op.method} {request.path_info}"
        stored = keys.claim(session, scope, key, operation, fingerprint)
        if stored is not None:
            return _replay(stored)
        response = _answer_or_problem(op.view, request)
        if rules.is_kept(response.status_code):
            keys.record(session, scope, key, _answer_of(response))
        else:
            keys.release(session, scope, key)
    return response


def _fingerprint_or_none(op: Operation, request: Request) -> str | None:
    try:
        return rules.fingerprint(_normalised_request(op, request))
    except (errors.MalformedRequest, errors.InvalidInput, errors.PayloadTooLarge):
        return None


def _normalised_request(op: Operation, request: Request) -> Any:
    """What a repeat must match: the body as the operation's model reads it (ids as
    strings, timestamps as instants; fields left out stay out, as PATCH needs), and the
    query string. An operation without a body model: a digest of the bytes sent, if any
    (it ignores them, so they must not keep it from running under the key)."""
    body: Any = None
    if op.body is not None:
        raw = read_json_bytes(request, op.max_body_bytes)
        request.body = raw  # read again by the view
        model = validate(op.body, parse_json(raw))
        request.environ[_VALIDATED_BODY] = model  # and not validated again: body_as
        body = model.model_dump(mode="json", exclude_unset=True)
    elif request.content_length:
        body = hashlib.sha256(request.body).hexdigest()
    query = sorted(parse_qsl(request.query_string, keep_blank_values=True, separator="&"))
    return {"body": body, "query": query}


def _answer_or_problem(view: View, request: Request) -> Response:
    """The view's answer, its service errors rendered here so they can be kept too."""
    try:
        return view(request)
    except errors.ServiceError as error:
        return problem_response(error)
    except Exception as error:
        outage = errors.outage_of(error)
        if outage is None:
            raise
        return problem_response(outage)


def _answer_of(response: Response) -> rules.Answer:
    headers = {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}
    return rules.Answer(status=response.status_code, body=response.body, headers=headers)


def _replay(answer: rules.Answer) -> Response:
    response = _PathLocationResponse(status=answer.status, body=answer.body)
    if "Content-Type" not in answer.headers:
        response.headers.pop("Content-Type", None)
    response.headers.update(answer.headers)
    response.headers[rules.REPLAYED_HEADER] = "true"
    return response


def context_of(request: Request) -> ServiceContext:
    """A baseplate Pyramid request is the request's context for the service layer."""
    return cast(ServiceContext, request)


def read_json(request: Request, max_bytes: int = MAX_BODY_BYTES) -> Any:
    """The request's JSON body, or 400/413 problems for what can't be read."""
    return parse_json(read_json_bytes(request, max_bytes))


def read_json_bytes(request: Request, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """The raw bytes of a JSON body (for signatures), checked for size and content type.

    ``max_bytes`` is the 64 KiB of every route but the few that take more (batches).
    """
    length = request.content_length
    if length is not None and length > max_bytes:
        raise errors.PayloadTooLarge(f"the body is over {max_bytes} bytes")
    content_type = (request.content_type or "").lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise errors.MalformedRequest("the body must be JSON (Content-Type: application/json)")
    raw = _body_of(request, length, max_bytes)
    if len(raw) > max_bytes:
        raise errors.PayloadTooLarge(f"the body is over {max_bytes} bytes")
    return raw


def _body_of(request: Request, length: int | None, max_bytes: int) -> bytes:
    """The body's bytes (up to ``max_bytes`` + 1), read once.

    A body of a declared length, not yet buffered (every send's), is read straight
    from the server's input, as WebOb's ``body_file`` reads it: that many bytes,
    and a ``DisconnectionError`` when fewer arrive. WebOb's two file objects
    around the input (a length-limited reader, then a buffered one) and its
    checks of the length, four reads of the header, were a third of the cost
    of parsing the body. A chunked or already buffered body goes WebOb's way.
    """
    if length and not request.is_body_seekable:
        raw: bytes = request.environ["wsgi.input"].read(length)
        if len(raw) < length:
            raise DisconnectionError(
                "The client disconnected while sending the body "
                f"({length - len(raw)} more bytes were expected)"
            )
        return raw
    body: bytes = request.body_file.read(max_bytes + 1)
    return body


def body_as(request: Request, model: type[M], max_bytes: int = MAX_BODY_BYTES) -> M:
    """The body as ``model``, or the problems; read and validated once per request."""
    validated = request.environ.get(_VALIDATED_BODY)
    if type(validated) is model:
        return validated
    return validate(model, read_json(request, max_bytes))


# The body as its operation's model, once the Idempotency-Key's fingerprint read it.
_VALIDATED_BODY = "galaxy_express.validated_body"


def query_as(request: Request, model: type[M]) -> M:
    """Query parameters as ``model``; a parameter given twice is refused.

    The query string is split on ``&`` only: WebOb also splits on ``;``, which
    would cut an opaque value such as a cursor in two.
    """
    params: dict[str, str] = {}
    pairs = parse_qsl(request.query_string, keep_blank_values=True, separator="&")
    for name, value in pairs:
        if name in params:
            raise errors.InvalidInput(
                "a query parameter is repeated", (errors.FieldError(name, "given more than once"),)
            )
        params[name] = value
    return validate(model, params)


class _PathLocationResponse(Response):
    """A response whose ``Location`` stays the path it was given.

    WebOb would make a relative ``Location`` absolute from the request's ``Host``
    header, which the client chooses; RFC 9110 allows a relative reference, so
    the service never builds a URL from ``Host``.
    """

    def _abs_headerlist(self, environ: dict[str, Any]) -> list[tuple[str, str]]:
        return list(self.headerlist)


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return encoded_json_response(json_text(body).encode(), status, headers)


def encoded_json_response(
    body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """An answer whose JSON is already encoded (UTF-8): pages written as text, paced pieces."""
    response = _PathLocationResponse(
        body=body, status=status, content_type="application/json", charset="utf-8"
    )
    if headers:
        response.headers.update(headers)
    return response


def no_content() -> Response:
    return Response(status=204)


def problem_json(error: errors.ServiceError) -> dict[str, Any]:
    """The RFC 9457 body of an error (an answer's, or a batch item's)."""
    return {
        "type": error.type_uri,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "errors": [{"field": e.field, "message": e.message} for e in error.errors],
    }


def problem_response(error: errors.ServiceError) -> Response:
    response = Response(
        body=json.dumps(problem_json(error), ensure_ascii=False).encode(),
        status=error.status,
        content_type=PROBLEM_JSON,
        charset="utf-8",
    )
    if isinstance(error, errors.DependencyUnavailable):
        response.headers["Retry-After"] = str(error.retry_after_seconds)
    return response
