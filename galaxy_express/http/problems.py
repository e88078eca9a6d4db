"""How the HTTP edge answers failures: every error is problem+json.

Service errors keep their status; Pyramid's own (no route, wrong method)
become problems too; anything unexpected is logged and answered with a bare
500 that leaks no trace, SQL or path.
"""

from __future__ import annotations

import logging
import sys
from typing import Any
from urllib.parse import unquote_to_bytes

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPException
from pyramid.request import Request
from pyramid.response import Response

from galaxy_express.core import errors
from galaxy_express.http.web import problem_response

logger = logging.getLogger(__name__)

_UNEXPECTED = "an unexpected error occurred; it was logged"


class UnexpectedHTTPError(errors.ServiceError):
    """A Pyramid HTTP exception raised outside our views (keeps its status)."""

    slug = "http-error"


def include(config: Configurator) -> None:
    config.add_view(_service_error, context=errors.ServiceError)
    config.add_view(_http_exception, context=HTTPException)
    config.add_view(_unexpected_error, context=Exception)
    config.add_notfound_view(_not_found)


def guard(app: Any) -> Any:
    """The outermost WSGI layer: answers what Pyramid can't even decode, and
    anything that escapes Pyramid, as problems (never a bare server page)."""

    return _Guarded(app)


class _Guarded:
    """The guard around Pyramid's app; other attributes (``baseplate``, ``registry``,
    which baseplate-shell and tests read) are the app's own."""

    def __init__(self, app: Any) -> None:
        self._app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not _decodable(environ):
            error = errors.MalformedRequest("the path or query string is not UTF-8")
            return problem_response(error)(environ, start_response)
        try:
            return self._app(environ, start_response)
        except Exception:
            logger.exception("unexpected error outside the views")
            response = problem_response(errors.ServiceError(_UNEXPECTED))
            return response(environ, _with_exc_info(start_response, sys.exc_info()))


def _decodable(environ: dict[str, Any]) -> bool:
    """Whether the path (already unquoted, as latin-1) and the query are UTF-8."""
    path = environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    # ASCII is UTF-8, and a query without escapes unquotes to itself: the usual
    # request needs neither the encoding nor the unquoting.
    if path.isascii() and query.isascii() and "%" not in query:
        return True
    try:
        path.encode("latin-1").decode("utf-8")
        unquote_to_bytes(query.replace("+", " ")).decode("utf-8")
    except UnicodeError:
        return False
    return True


def _with_exc_info(start_response: Any, exc_info: Any) -> Any:
    def start(status: str, headers: list[tuple[str, str]]) -> Any:
        return start_response(status, headers, exc_info)

    return start


def _service_error(exc: errors.ServiceError, request: Request) -> Response:
    return problem_response(exc)


def _http_exception(exc: HTTPException, request: Request) -> Response:
    error = UnexpectedHTTPError(exc.explanation or exc.title)
    error.status, error.title = exc.code, exc.title
    return problem_response(error)


def _unexpected_error(exc: Exception, request: Request) -> Response:
    outage = errors.outage_of(exc)
    if outage is not None:
        logger.warning("%s %s: %s", request.method, request.path_info, outage.detail)
        return problem_response(outage)
    logger.exception("unexpected error in %s %s", request.method, request.path_info)
    return problem_response(errors.ServiceError(_UNEXPECTED))


def _not_found(request: Request) -> Response:
    return problem_response(errors.NotFound(f"no resource at {request.path}"))
