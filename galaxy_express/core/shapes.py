"""A shape stated once: a record dataclass, from which its renderings follow.

A record (``records.py`` of a domain) lists its fields once. Its JSON, its
Thrift struct's fields and its OpenAPI model are derived from that list here,
so adding a field to the record is the one edit (the table and the IDL aside:
those are the stored and the published contract, changed on purpose).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from json.encoder import encode_basestring
from typing import Any, TypeVar

from pydantic import BaseModel, create_model

from galaxy_express.core.clock import to_rfc3339
from galaxy_express.core.pagination import Page

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

    A list answer renders this for every record it holds (50 packages a page).
    The generic walk (a ``json_value`` per field, dispatching on each value's
    type) was a fifth of the request's CPU, and a loop over a plan of the
    fields still a sixth; each record type now gets a function of its own,
    generated once from its field list and field types (``_json_renderer``).
    """
    return json_renderer(type(record))(record)


def json_renderer(record_type: type) -> Callable[[Any], dict[str, Any]]:
    """``record_json`` of records of this one type: what a list renders each of its
    records with, without finding the type's function again for each."""
    render = _JSON_RENDERERS.get(record_type)
    if render is None:
        render = _JSON_RENDERERS[record_type] = _json_renderer(record_type)
    return render


def _json_renderer(record_type: type) -> Callable[[Any], dict[str, Any]]:
    """``record_type``'s rendering as one generated function: a dict display of its
    fields, each value converted as its declared type says (``_json_expression``),
    nested records inlined. For a package::

        def render(r):
            return {"package_id": r.package_id, ..., "timestamp": to_rfc3339(r.timestamp),
                    "content": None if (v1 := r.content) is None
                    else {"subject": v1.subject, "body": v1.body}, ...}
    """
    names = {"to_rfc3339": to_rfc3339, "json_value": json_value}
    source = f"def render(r):\n    return {_json_display('r', record_type, names)}\n"
    exec(compile(source, f"<record_json of {record_type.__qualname__}>", "exec"), names)
    render: Callable[[Any], dict[str, Any]] = names["render"]
    return render


def _json_display(
    value: str, record_type: type, names: dict[str, Any], outer: tuple[type, ...] = ()
) -> str:
    """A dict display of the record ``value`` (an expression) as JSON shows it;
    ``outer``: the records it is nested in (one holding its own type is not inlined)."""
    hints = typing.get_type_hints(record_type)
    inside = (*outer, record_type)
    items = (
        f"{name!r}: {_json_expression(f'{value}.{name}', hints[name], names, inside)}"
        for name in field_names(record_type)
    )
    return "{" + ", ".join(items) + "}"


def _json_expression(value: str, hint: Any, names: dict[str, Any], outer: tuple[type, ...]) -> str:
    """An expression of ``value`` (of type ``hint``) as ``json_value`` shows it: plain
    values as they are, instants through ``to_rfc3339``, tuples as lists, nested
    records as their dict display; any other type through ``json_value`` itself."""
    if holds_plain(hint):
        return value
    optional, kind = kind_of(hint)
    if kind is None:
        return f"json_value({value})"
    if optional:
        # Named once (a walrus): the attribute is read once, as the generic walk reads it.
        bound = f"v{len(names)}"
        names[bound] = None  # reserves the name: the next one is another
        converted = _converted(bound, kind, names, outer)
        return f"(None if ({bound} := {value}) is None else {converted})"
    return _converted(value, kind, names, outer)


def _converted(value: str, kind: Any, names: dict[str, Any], outer: tuple[type, ...]) -> str:
    """``value`` (never None) of type ``kind`` as ``json_value`` shows it."""
    if kind is datetime:
        return f"to_rfc3339({value})"
    if kind is tuple or typing.get_origin(kind) is tuple:
        return f"list({value})"
    if isinstance(kind, type) and dataclasses.is_dataclass(kind) and kind not in outer:
        return _json_display(value, kind, names, outer)
    return f"json_value({value})"


def kind_of(hint: Any) -> tuple[bool, Any]:
    """Whether ``hint`` is optional (``X | None``), and its one other type (``X``, or
    ``hint`` itself); None for that when it is a union of several."""
    args = typing.get_args(hint)
    optional = (isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union) and (
        type(None) in args
    )
    others = [arg for arg in args if arg is not type(None)] if optional else [hint]
    return optional, others[0] if len(others) == 1 else None


def holds_plain(hint: Any) -> bool:
    """Whether a field of this type only ever holds values JSON shows as they are."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return all(holds_plain(arg) for arg in typing.get_args(hint))
    return hint in PLAIN_TYPES


_JSON_RENDERERS: dict[type, Callable[[Any], dict[str, Any]]] = {}


# The text of every JSON answer (``http.web.json_response``): compact, non-ASCII as is.
json_text: Callable[[Any], str] = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def json_text_renderer(record_type: type) -> Callable[[Any], str]:
    """``json_text(record_json(record))`` of records of this type, the same text made
    directly: for the lists whose pages are written as text (``page_json_text``).

    Encoding a page of 50 tasks' dicts was a third of the page's CPU: a dict to
    build per record, then every key encoded again and every value dispatched
    on its type. Here each key is written into the function once, and each
    value encoded as its declared type says (``_text_expression``).
    """
    render = _JSON_TEXT_RENDERERS.get(record_type)
    if render is None:
        render = _JSON_TEXT_RENDERERS[record_type] = _json_text_renderer(record_type)
    return render


def page_json_text(page: Page[Any], render: Callable[[Any], str]) -> str:
    """A page's JSON text, ``{"items": [...], "next_cursor": ...}``, each item by ``render``."""
    items = ",".join([render(item) for item in page.items])
    return f'{{"items":[{items}],"next_cursor":{json_text(page.next_cursor)}}}'


def _json_text_renderer(record_type: type, outer: tuple[type, ...] = ()) -> Callable[[Any], str]:
    """The generated function of ``json_text_renderer``: one f-string. For a task::

        def render(r):
            return f'{"id":{string(r.id)},...,"completed_at":{"null" if (v1 := r.completed_at)
                is None else QUOTE + to_rfc3339(v1) + QUOTE},...}'

    (its literal braces doubled in the source). ``outer``: the records it is nested
    in, as in ``_json_display``.
    """
    names: dict[str, Any] = {
        "string": encode_basestring,
        "to_rfc3339": to_rfc3339,
        "QUOTE": '"',
        "json_text": json_text,
        "json_value": json_value,
    }
    hints = typing.get_type_hints(record_type)
    inside = (*outer, record_type)
    pieces = []
    for position, name in enumerate(field_names(record_type)):
        key = ("{" if position == 0 else ",") + json_text(name) + ":"
        expression = _text_expression(f"r.{name}", hints[name], names, inside)
        pieces.append(key.replace("{", "{{") + "{" + expression + "}")
    body = "".join(pieces) + "}}" if pieces else "{{}}"
    if "'" in body or "\\" in body:  # field names are identifiers: never
        raise ValueError(f"not a literal this writes: {body!r}")
    source = f"def render(r):\n    return f'{body}'\n"
    exec(compile(source, f"<json_text of {record_type.__qualname__}>", "exec"), names)
    render: Callable[[Any], str] = names["render"]
    return render


def _text_expression(value: str, hint: Any, names: dict[str, Any], outer: tuple[type, ...]) -> str:
    """An expression of ``value`` (of type ``hint``) as ``json_text(json_value(value))``.

    Strings through the encoder's own string escaping, instants quoted (RFC 3339
    needs no escapes), tuples of strings as arrays, nested records by their own
    text renderer; any other type the general way.
    """
    optional, kind = kind_of(hint)
    if not optional:
        return _text_of(value, kind, names, outer)
    bound = f"v{len(names)}"  # named once (a walrus), as in _json_expression
    names[bound] = None
    return f'"null" if ({bound} := {value}) is None else {_text_of(bound, kind, names, outer)}'


def _text_of(value: str, kind: Any, names: dict[str, Any], outer: tuple[type, ...]) -> str:
    """``value`` (never None) of type ``kind`` as JSON text."""
    if isinstance(kind, type) and dataclasses.is_dataclass(kind) and kind not in outer:
        # A package's content: its own generated function, called (not the general
        # way, which builds its dict and encodes that).
        nested = f"t{len(names)}"
        names[nested] = _json_text_renderer(kind, outer)
        return f"{nested}({value})"
    if kind is str:
        return f"string({value})"
    if kind is datetime:
        return f"QUOTE + to_rfc3339({value}) + QUOTE"
    if typing.get_origin(kind) is tuple and typing.get_args(kind) == (str, Ellipsis):
        return f'"[" + ",".join(map(string, {value})) + "]"'
    return f"json_text(json_value({value}))"


_JSON_TEXT_RENDERERS: dict[type, Callable[[Any], str]] = {}


def record_builder(record_type: type, arguments: tuple[str, ...] = ()) -> Callable[..., Any]:
    """A record built from a row, faster: ``build(row, *values)`` gives the record whose
    fields named in ``arguments`` are those values, in that order, and every other
    field the row's attribute of the same name. For a task (``("assignee_ids",)``)::

        def build(row, assignee_ids):
            record = new(TaskRecord)
            set_attribute(record, "__dict__", {"id": row.id, ..., "assignee_ids": assignee_ids})
            return record

    The fields' values are set at once, where a frozen dataclass's ``__init__`` sets
    them one by one (an ``object.__setattr__`` each: half of building a record, and
    a list page builds 50). A dict display with the names written in it costs a
    third less than filling the dict from the names at run time. It checks nothing
    more, so the record may have no ``__post_init__`` and no slots.
    """
    if not dataclasses.is_dataclass(record_type) or hasattr(record_type, "__post_init__"):
        raise TypeError(f"{record_type.__qualname__}: not a dataclass built by its fields alone")
    if hasattr(record_type, "__slots__"):
        raise TypeError(f"{record_type.__qualname__}: a record with slots has no __dict__")
    names = field_names(record_type)
    if unknown := set(arguments) - set(names):
        raise ValueError(f"{record_type.__qualname__} has no field {sorted(unknown)}")
    values = ", ".join(
        f"{name!r}: {name if name in arguments else f'row.{name}'}" for name in names
    )
    source = (
        f"def build(row, {', '.join(arguments)}):\n"
        "    record = new(record_type)\n"
        f"    set_attribute(record, '__dict__', {{{values}}})\n"
        "    return record\n"
    )
    namespace: dict[str, Any] = {
        "new": object.__new__,
        "set_attribute": object.__setattr__,
        "record_type": record_type,
    }
    exec(compile(source, f"<{record_type.__qualname__} from a row>", "exec"), namespace)
    build: Callable[..., Any] = namespace["build"]
    return build


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
