"""A shape stated once: a record dataclass, from which its renderings follow.

A record (``records.py`` of a domain) lists its fields once. Its JSON, its
Thrift struct's fields and its OpenAPI model are derived from that list here,
so adding a field to the record is the one edit (the table and the IDL aside:
those are the stored and the published contract, changed on purpose).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, create_model

from galaxy_express.core.clock import to_rfc3339

Model = TypeVar("Model", bound=BaseModel)


def field_values(record: Any, convert: Callable[[Any], Any]) -> dict[str, Any]:
    """The record's fields by name, in declaration order, each value through ``convert``."""
    return {name: convert(getattr(record, name)) for name in field_names(type(record))}


def field_names(record_type: type) -> tuple[str, ...]:
    # Cached: dataclasses.fields() rebuilds its tuple on every call, and this runs
    # for every package and task an answer renders.
    names = _FIELD_NAMES.get(record_type)
    if names is None:
        names = _FIELD_NAMES[record_type] = tuple(f.name for f in dataclasses.fields(record_type))
    return names


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


# Values JSON and Thrift hold as they are: checked first, they are most fields.
PLAIN_TYPES = frozenset({str, int, bool, float, type(None)})


def json_value(value: Any) -> Any:
    """A record value as JSON shows it: instants in RFC 3339, tuples as lists, nested
    records as objects."""
    if type(value) in PLAIN_TYPES:
        return value
    if isinstance(value, datetime):
        return to_rfc3339(value)
    if isinstance(value, tuple):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return field_values(value, json_value)
    return value


def shaped_like(
    record_type: type, *, types: Mapping[str, Any] | None = None
) -> Callable[[type[Model]], type[Model]]:
    """Give the decorated OpenAPI model the record's fields and types, in order, all required.

    The model is declared as an empty class (so type checkers and subclasses see
    a class) and comes back filled. ``types`` narrows a field's documented type
    (a nested record's own model, a status's allowed values) where the record
    holds a plainer one.
    """
    hints = typing.get_type_hints(record_type)
    overrides = types or {}
    fields: dict[str, Any] = {
        field.name: (overrides.get(field.name, hints[field.name]), ...)
        for field in dataclasses.fields(record_type)
    }

    def fill(model: type[Model]) -> type[Model]:
        return create_model(model.__name__, __base__=model, __module__=model.__module__, **fields)

    return fill
