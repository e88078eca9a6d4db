"""Shared parts of the Thrift edge: error translation and time conversion."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from baseplate.thrift.ttypes import Error

from galaxy_express.core import clock
from galaxy_express.core.errors import FieldError, InvalidInput, ServiceError, outage_of
from galaxy_express.core.shapes import PLAIN_TYPES
from galaxy_express.core.validation import EARLIEST, LATEST

C = TypeVar("C", bound=type)


def translate_service_errors(cls: C) -> C:
    """Wrap every public handler method so a ``ServiceError`` reaches the client as
    ``baseplate.Error`` with the HTTP status as its code and the field errors as details."""
    for name, method in inspect.getmembers(cls, inspect.isfunction):
        if not name.startswith("_"):
            setattr(cls, name, _translating(method))
    return cls


def _translating(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except ServiceError as exc:
            raise _as_thrift_error(exc) from None
        except Exception as exc:
            outage = outage_of(exc)
            if outage is None:
                raise
            raise _as_thrift_error(outage) from None

    return wrapper


def _as_thrift_error(exc: ServiceError) -> Error:
    return Error(
        code=exc.status,
        message=exc.detail,
        details={e.field: e.message for e in exc.errors},
        retryable=exc.status == 503,
    )


def to_instant(millis: int | None, field: str) -> datetime | None:
    """Thrift's i64 milliseconds as an instant, or ``InvalidInput`` when out of range."""
    if millis is None:
        return None
    if not clock.to_millis(EARLIEST) <= millis <= clock.to_millis(LATEST):
        raise InvalidInput(
            f"{field} is out of range", (FieldError(field, "must be between 1970 and 9999"),)
        )
    return clock.from_millis(millis)


def to_millis(instant: datetime | None) -> int | None:
    return None if instant is None else clock.to_millis(instant)


def thrift_value(value: Any) -> Any:
    """A record value as a Thrift field holds it: instants in milliseconds, tuples as lists."""
    if type(value) in PLAIN_TYPES:
        return value
    if isinstance(value, datetime):
        return clock.to_millis(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def set_fields(**fields: Any) -> dict[str, Any]:
    """The fields a Thrift struct has set: unset optional fields arrive as None and are
    left out, so the request model's defaults apply to them."""
    return {name: value for name, value in fields.items() if value is not None}
