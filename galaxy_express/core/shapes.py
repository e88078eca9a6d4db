"""A shape stated once: a record dataclass, from which its renderings follow.

A record (``records.py`` of a domain) lists its fields once. Its JSON, its
Thrift struct's fields and its OpenAPI model are derived from that list here,
so adding a field to the record is the one edit (the table and the IDL aside:
those are the stored and the published contract, changed on purpose).
"""

from __future__ import annotations

import dataclasses
import operator
import types
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
        return record_json(value)
    return value


def record_json(record: Any) -> dict[str, Any]:
    """The record as JSON shows it: ``field_values(record, json_value)``, faster.

    A list answer renders this for every record it holds (50 packages a page),
    where the generic walk (a ``json_value`` per field, dispatching on each
    value's type) was a fifth of the request's CPU. The record's field types
    say once which fields can need converting; the others are copied as they are.
    """
    render = _JSON_RENDERERS.get(type(record))
    if render is None:
        render = _JSON_RENDERERS[type(record)] = _json_renderer(type(record))
    return render(record)


def _json_renderer(record_type: type) -> Callable[[Any], dict[str, Any]]:
    names = field_names(record_type)
    # attrgetter of several names gives a tuple of their values, of one name the value.
    getter: Callable[[Any], Any] = operator.attrgetter(*names)
    values_of: Callable[[Any], Any] = getter if len(names) > 1 else lambda record: (getter(record),)
    hints = typing.get_type_hints(record_type)
    converted = tuple(
        (name, _json_converter(hints[name])) for name in names if not _holds_plain(hints[name])
    )

    def render(record: Any) -> dict[str, Any]:
        values = dict(zip(names, values_of(record), strict=True))
        for name, convert in converted:
            value = values[name]
            if value is not None:
                values[name] = convert(value)
        return values

    return render


def _holds_plain(hint: Any) -> bool:
    """Whether a field of this type only ever holds values JSON shows as they are."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return all(_holds_plain(arg) for arg in typing.get_args(hint))
    return hint in PLAIN_TYPES


def _json_converter(hint: Any) -> Callable[[Any], Any]:
    """How to show a field's value (never None) in JSON: instants directly, the rest as
    ``json_value`` does."""
    if hint is datetime or hint == datetime | None:
        return to_rfc3339
    return json_value


_JSON_RENDERERS: dict[type, Callable[[Any], dict[str, Any]]] = {}


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
