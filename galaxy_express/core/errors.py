"""The one error hierarchy.

Services raise these; each edge translates them: Pyramid into RFC 9457
problem+json answers, Thrift into ``baseplate.Error`` with the same status as
its ``code``. Nothing here knows about either edge.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

MAX_FIELD_ERRORS = 20


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class ServiceError(Exception):
    """Base of every error a client may see; ``status`` is its HTTP status."""

    status = 500
    title = "Internal Server Error"
    slug = "internal"

    def __init__(self, detail: str, errors: tuple[FieldError, ...] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors

    @property
    def type_uri(self) -> str:
        return f"urn:galaxy-express:problem:{self.slug}"


class MalformedRequest(ServiceError):
    status = 400
    title = "Malformed request"
    slug = "malformed-request"


class Unauthorized(ServiceError):
    status = 401
    title = "Unauthorized"
    slug = "unauthorized"


class Forbidden(ServiceError):
    """The key is valid but its scopes don't cover this (see access.py)."""

    status = 403
    title = "Forbidden"
    slug = "forbidden"


class NotFound(ServiceError):
    status = 404
    title = "Not found"
    slug = "not-found"


class MethodNotAllowed(ServiceError):
    status = 405
    title = "Method not allowed"
    slug = "method-not-allowed"


class NotAcceptable(ServiceError):
    """406: the client accepts none of the media types the operation answers with."""

    status = 406
    title = "Not acceptable"
    slug = "not-acceptable"


class RequestTimeout(ServiceError):
    """The request's head or body did not arrive in time (the connection is closed)."""

    status = 408
    title = "Request timeout"
    slug = "request-timeout"


class Conflict(ServiceError):
    status = 409
    title = "Conflict"
    slug = "conflict"


class ResyncRequired(ServiceError):
    """410: the changes after the client's ``since`` were partly pruned; list again."""

    status = 410
    title = "Resync required"
    slug = "resync-required"


class PayloadTooLarge(ServiceError):
    status = 413
    title = "Payload too large"
    slug = "payload-too-large"


class UriTooLong(ServiceError):
    status = 414
    title = "URI too long"
    slug = "uri-too-long"


class HeaderFieldsTooLarge(ServiceError):
    status = 431
    title = "Request header fields too large"
    slug = "header-fields-too-large"


class InvalidInput(ServiceError):
    """422; at most ``MAX_FIELD_ERRORS`` field errors are kept, the detail counts the rest,
    so a body of thousands of bad keys can't make an answer larger than itself."""

    status = 422
    title = "Invalid input"
    slug = "invalid-input"

    def __init__(self, detail: str, errors: tuple[FieldError, ...] = ()) -> None:
        more = len(errors) - MAX_FIELD_ERRORS
        if more > 0:
            detail = f"{detail} ({more} more field errors not listed)"
        super().__init__(detail, errors[:MAX_FIELD_ERRORS])
        self.more_errors = max(more, 0)


class IdempotencyKeyReused(ServiceError):
    """An ``Idempotency-Key`` already answered a different request (nothing was done)."""

    status = 422
    title = "Idempotency key reused"
    slug = "idempotency-key-reused"


class DependencyUnavailable(ServiceError):
    """A database or Redis is down or busy; the client should retry later."""

    status = 503
    title = "Service unavailable"
    slug = "dependency-unavailable"

    def __init__(self, detail: str, retry_after_seconds: int = 1) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds


def outage_of(exc: BaseException) -> DependencyUnavailable | None:
    """The 503 an exception from a dependency amounts to, when it says the dependency is down.

    The database's outages are mapped where transactions are opened (db.unit_of_work);
    this catches Redis wherever a service touches it.
    """
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
        return DependencyUnavailable("Redis is unavailable; retry later")
    return None
