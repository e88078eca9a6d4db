"""Field types and the one way to validate input, shared by both edges.

Schemas (pydantic models in each domain's ``schemas.py``) are built from these
types, so HTTP and Thrift accept exactly the same values, and the OpenAPI
document describes exactly what is accepted.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetJsonSchemaHandler,
    ValidationError,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from galaxy_express.core.errors import FieldError, InvalidInput, MalformedRequest

# The JSON-schema form (ECMA-262 "$" is the true end); Python matches with
# fullmatch, because Python's "$" also matches before a final newline.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"
ID_MAX_LENGTH = 128
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]*", re.ASCII)
_RFC3339_RE = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})?"
)

MAX_JSON_DEPTH = 32

# The instants the service accepts: anything outside is a client bug, and
# keeping to it means every value fits Thrift's i64 milliseconds and both databases.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
_EARLIEST_SECONDS = int(EARLIEST.timestamp())
_LATEST_SECONDS = int(LATEST.timestamp())
_OUT_OF_RANGE = "must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z"


def parse_id(value: Any) -> str:
    """An id: a string of the id pattern, or a non-negative integer as its decimal string."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("must be a string id or a non-negative integer")
    if not 1 <= len(value) <= ID_MAX_LENGTH:
        raise ValueError(f"must be 1 to {ID_MAX_LENGTH} characters long")
    if not _ID_RE.fullmatch(value):
        raise ValueError(
            "may hold only letters, digits and . _ : @ - and must start with a letter or digit"
        )
    return value


def parse_timestamp(value: Any) -> datetime:
    """An instant: an RFC 3339 string (no offset means UTC) or Unix seconds."""
    if isinstance(value, str):  # what JSON bodies send: asked first
        instant = _parse_rfc3339(value)
    elif isinstance(value, datetime):
        instant = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        # Compared as given: a huge int must not be turned into a float (OverflowError).
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be Unix seconds between 1970 and 9999")
        if not _EARLIEST_SECONDS <= value <= _LATEST_SECONDS:
            raise ValueError("must be Unix seconds between 1970 and 9999")
        instant = datetime.fromtimestamp(value, tz=UTC)
    else:
        raise ValueError("must be an RFC 3339 string or Unix seconds")
    try:
        instant = instant.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00:00-05:00 is in year 10000
        raise ValueError(_OUT_OF_RANGE) from None
    if not EARLIEST <= instant <= LATEST:
        raise ValueError(_OUT_OF_RANGE)
    return instant


def _parse_rfc3339(text: str) -> datetime:
    match = _RFC3339_RE.fullmatch(text)
    if not match:
        raise ValueError("must be an RFC 3339 timestamp such as 2142-01-01T12:00:00Z")
    date, time, fraction, offset = match.groups()
    micros = "000000" if fraction is None else fraction[1:7].ljust(6, "0")
    utc = offset is None or offset in _UTC_OFFSETS
    try:
        instant = datetime.fromisoformat(f"{date}T{time}.{micros}{'+00:00' if utc else offset}")
    except ValueError:
        raise ValueError("is not a real date and time") from None
    # UTC (most instants sent) is no offset to check.
    if not utc and abs(instant.utcoffset().total_seconds()) >= 24 * 3600:  # type: ignore[union-attr]
        raise ValueError("has an offset beyond 24 hours")
    return instant


_UTC_OFFSETS = ("Z", "z")


def check_text(value: str) -> str:
    """Refuse what no database stores faithfully: NUL and lone surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


_ID_SCHEMA = {
    "oneOf": [
        {"type": "string", "minLength": 1, "maxLength": ID_MAX_LENGTH, "pattern": ID_PATTERN},
        {"type": "integer", "minimum": 0, "maximum": 10**ID_MAX_LENGTH - 1},
    ],
}
# The pattern bounds the written year to what is accepted; "format" alone allows year 1.
TIMESTAMP_YEAR_PATTERN = r"^(19[7-9][0-9]|[2-9][0-9]{3})-"
_TIMESTAMP_SCHEMA = {
    "oneOf": [
        {
            "type": "string",
            "format": "date-time",
            "pattern": TIMESTAMP_YEAR_PATTERN,
            "examples": ["2142-01-01T12:00:00Z"],
        },
        {"type": "number", "minimum": 0, "maximum": LATEST.timestamp()},
    ],
    "description": "RFC 3339 (an offset is optional; none means UTC) or Unix seconds",
}

Id = Annotated[str, BeforeValidator(parse_id), WithJsonSchema(_ID_SCHEMA)]


class _DocumentNoNul:
    """Say in the JSON schema what ``check_text`` refuses, so clients and tests know."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        # "not contains NUL" rather than a pattern over the whole string: generators
        # (hypothesis, schemathesis) can't meet a length bound through a pattern.
        schema["not"] = {"pattern": "\u0000"}
        return schema


# Free text; lengths are set where it is used, with pydantic's Field(max_length=...).
Text = Annotated[str, AfterValidator(check_text), _DocumentNoNul()]
Timestamp = Annotated[datetime, BeforeValidator(parse_timestamp), WithJsonSchema(_TIMESTAMP_SCHEMA)]


class RequestModel(BaseModel):
    """A JSON request body: unknown fields and loose types are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class QueryModel(BaseModel):
    """Query-string parameters: strings that pydantic converts (lax).

    An unknown parameter is refused (422), as an unknown body field is: a typo
    such as ``?limt=10`` must not silently list 50.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: Any) -> M:
    """``data`` as a ``model``, or ``InvalidInput`` (422) naming each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput("the request has invalid fields", field_errors(exc)) from None


def field_errors(exc: ValidationError) -> tuple[FieldError, ...]:
    errors = []
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in error["loc"]) or "body"
        message = error["msg"].removeprefix("Value error, ")
        errors.append(FieldError(field=field, message=message))
    return tuple(errors)


def parse_id_or_invalid(value: Any, field: str) -> str:
    """An id from a path or Thrift argument, or ``InvalidInput`` naming ``field``."""
    try:
        return parse_id(value)
    except ValueError as exc:
        raise InvalidInput(f"{field} is not a valid id", (FieldError(field, str(exc)),)) from None


def parse_json(raw: bytes) -> Any:
    """JSON from raw bytes: UTF-8, no NaN or Infinity, nested at most 32 deep (else 400)."""
    try:
        text = raw.decode("utf-8")
        data = _DECODER.decode(text)
    except UnicodeDecodeError:
        raise MalformedRequest("the body is not UTF-8") from None
    except (ValueError, RecursionError):
        raise MalformedRequest("the body is not valid JSON") from None
    # Nesting deeper than the limit takes at least MAX_JSON_DEPTH containers, each
    # opened by a literal "{" or "[": a body with fewer of them (a send has 2) can't
    # be too deep, and counting bytes costs far less than walking the parsed values.
    if _openers(raw) >= MAX_JSON_DEPTH and _depth(data) > MAX_JSON_DEPTH:
        raise MalformedRequest(f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels")
    return data


# JSON Schema counts 7.0 and 1e3 as integers, and the OpenAPI document is JSON Schema: an
# integer-valued number is taken as that int wherever an int (an id, a limit) is allowed.
# Decided on the literal, exactly (a float would round 12345678901234567891.0); past this
# many digits it stays a float, so "1e999999999" cannot make Python build a huge int.
_MAX_INTEGRAL_DIGITS = ID_MAX_LENGTH


def _number(literal: str) -> int | float:
    number = Decimal(literal)
    if number == number.to_integral_value() and number.adjusted() < _MAX_INTEGRAL_DIGITS:
        return int(number)
    return float(literal)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# What json.loads(text, parse_float=..., parse_constant=...) builds on every call (a
# decoder and its C scanner), built once: it holds no state between documents.
_DECODER = json.JSONDecoder(parse_float=_number, parse_constant=_refuse_constant)


def _openers(raw: bytes) -> int:
    """An upper bound on the containers of the JSON in ``raw`` (strings may hold some too)."""
    return raw.count(b"{") + raw.count(b"[")


def _depth(data: Any) -> int:
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
    return deepest
