"""Shared parts of the Thrift edge: error translation, idempotency keys, time conversion."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar, cast

from baseplate.thrift.ttypes import Error
from thrift.TSerialization import deserialize, serialize

from galaxy_express.core import clock
from galaxy_express.core import idempotency as rules
from galaxy_express.core.errors import FieldError, InvalidInput, ServiceError, outage_of
from galaxy_express.core.shapes import PLAIN_TYPES, field_names, holds_plain, kind_of
from galaxy_express.core.validation import EARLIEST, LATEST
from galaxy_express.db import idempotency as keys
from galaxy_express.db.unit_of_work import request_transaction
from galaxy_express.thrift.gen import GalaxyExpress

KEY_FIELD = "idempotency_key"

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


def keyed_methods() -> frozenset[str]:
    """The methods taking an ``idempotency_key`` (an argument, or a field of their
    request struct): every mutating method, read from the generated code."""
    names = set()
    for attribute in vars(GalaxyExpress):
        if attribute.endswith("_args"):
            specs = [spec for spec in getattr(GalaxyExpress, attribute).thrift_spec if spec]
            structs = [spec[3][0] for spec in specs if isinstance(spec[3], list | tuple)]
            if any(spec[2] == KEY_FIELD for spec in specs) or any(
                KEY_FIELD in _field_names(struct) for struct in structs
            ):
                names.add(attribute.removesuffix("_args"))
    return frozenset(names)


def answer_idempotently(cls: C) -> C:
    """Wrap every method taking an ``idempotency_key`` so that repeats under a key get
    the first answer (as ``http.web.keyed`` does for HTTP; the same store and rules)."""
    for name in keyed_methods():
        setattr(cls, name, _keyed(name, getattr(cls, name)))
    return cls


def _keyed(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(method)
    key_of = _key_reader(signature)
    result_type = getattr(GalaxyExpress, f"{name}_result")
    scope = rules.scope_of("THRIFT", name, None)

    @functools.wraps(method)
    def wrapper(self: Any, context: Any, *args: Any) -> Any:
        raw_key = key_of(args)
        if raw_key is None:
            return method(self, context, *args)
        arguments = signature.bind(self, context, *args).arguments
        key = rules.parse_key(raw_key, KEY_FIELD)
        fingerprint = rules.fingerprint(
            {k: _plain(v) for k, v in arguments.items() if k not in ("self", "context", KEY_FIELD)}
        )
        failure: ServiceError | None = None
        with request_transaction(context.db) as session:
            stored = keys.claim(session, scope, key, f"thrift {name}", fingerprint, KEY_FIELD)
            if stored is not None:
                return _replayed(result_type(), stored)
            try:
                value = method(self, context, *args)
            except Exception as exc:
                failure = exc if isinstance(exc, ServiceError) else outage_of(exc)
                if failure is None:
                    raise
                if rules.is_kept(failure.status):
                    answer = result_type(error=_as_thrift_error(failure))
                    keys.record(
                        session, scope, key, rules.Answer(failure.status, serialize(answer))
                    )
                else:
                    keys.release(session, scope, key)
            else:
                answer = result_type(success=value) if hasattr(result_type(), "success") else None
                body = b"" if answer is None else serialize(answer)
                keys.record(session, scope, key, rules.Answer(200, body))
        if failure is not None:
            raise failure
        return value

    return wrapper


def _key_reader(signature: inspect.Signature) -> Callable[[tuple[Any, ...]], str | None]:
    """How to read a call's key from its arguments (those after ``self`` and the context):
    its own argument, or the field of a request struct.

    Found once per method: binding every call's arguments to the signature, and
    asking the context (whose missing attributes baseplate looks up among its
    clients) for a key it never has, cost more than the rest of the wrapper.
    """
    names = list(signature.parameters)[2:]
    if KEY_FIELD in names:
        position = names.index(KEY_FIELD)
        return lambda args: cast(str | None, args[position]) if len(args) > position else None

    def key_of_a_struct(args: tuple[Any, ...]) -> str | None:
        for value in args:
            key = getattr(value, KEY_FIELD, None)
            if key is not None:
                return cast(str, key)
        return None

    return key_of_a_struct


def _replayed(result: Any, stored: rules.Answer) -> Any:
    if not stored.body:
        return None
    deserialize(result, stored.body)
    if getattr(result, "error", None) is not None:
        raise result.error
    value = result.success
    if hasattr(value, "replayed"):
        value.replayed = True
    return value


def _field_names(struct: type) -> set[str]:
    return {spec[2] for spec in getattr(struct, "thrift_spec", ()) or () if spec}


def _plain(value: Any) -> Any:
    """A Thrift value as JSON-able data (structs as their fields, the key left out)."""
    if hasattr(value, "thrift_spec"):
        names = _field_names(type(value)) - {KEY_FIELD}
        return {name: _plain(getattr(value, name)) for name in sorted(names)}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _as_thrift_error(exc: ServiceError) -> Error:
    return Error(
        code=exc.status,
        message=exc.detail,
        details={e.field: e.message for e in exc.errors},
        retryable=exc.status == 503,
    )


# The range of instants in milliseconds, converted once rather than on every call.
_EARLIEST_MILLIS = clock.to_millis(EARLIEST)
_LATEST_MILLIS = clock.to_millis(LATEST)


def to_instant(millis: int | None, field: str) -> datetime | None:
    """Thrift's i64 milliseconds as an instant, or ``InvalidInput`` when out of range."""
    if millis is None:
        return None
    if not _EARLIEST_MILLIS <= millis <= _LATEST_MILLIS:
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


def struct_builder(
    record_type: type,
    struct_type: type,
    nested: Mapping[type, Callable[[Any], Any]] | None = None,
    extra: tuple[str, ...] = (),
) -> Callable[..., Any]:
    """The Thrift struct of a record, its fields as ``thrift_value`` gives them, as one
    generated function: ``build(record, *extra)``, each ``extra`` name one more field
    of the struct. For an inbox item's package (``extra`` its mailbox's fields)::

        def build(r, folder, is_read, read_at):
            return struct(package_id=r.package_id, ..., timestamp=millis(r.timestamp),
                          content=None if (v1 := r.content) is None else n1(v1), ...,
                          folder=folder, is_read=is_read, read_at=read_at)

    A list answer builds 50: the generic walk (``field_values`` and a
    ``thrift_value`` call per field, dispatching on each value's type) was most of a
    ``list_inbox`` call's own CPU. ``nested``: the builders of the records a field
    holds (a package's content); any other type goes through ``thrift_value``.
    """
    hints = typing.get_type_hints(record_type)
    names: dict[str, Any] = {
        "struct": struct_type,
        "millis": clock.to_millis,
        "thrift_value": thrift_value,
    }
    arguments = [
        f"{name}={_thrift_expression(f'r.{name}', hints[name], names, nested or {})}"
        for name in field_names(record_type)
    ]
    arguments += [f"{name}={name}" for name in extra]
    parameters = ", ".join(["r", *extra])
    source = f"def build({parameters}):\n    return struct({', '.join(arguments)})\n"
    exec(compile(source, f"<{struct_type.__name__} of {record_type.__qualname__}>", "exec"), names)
    build: Callable[..., Any] = names["build"]
    return build


def _thrift_expression(
    value: str, hint: Any, names: dict[str, Any], nested: Mapping[type, Callable[[Any], Any]]
) -> str:
    """An expression of ``value`` (of type ``hint``) as a Thrift field holds it."""
    if holds_plain(hint):
        return value
    optional, kind = kind_of(hint)
    if kind is datetime:
        converter = "millis"
    elif kind is tuple or typing.get_origin(kind) is tuple:
        converter = "list"
    elif kind in nested:
        converter = f"n{len(names)}"
        names[converter] = nested[kind]
    else:
        return f"thrift_value({value})"
    if not optional:
        return f"{converter}({value})"
    bound = f"v{len(names)}"  # named once (a walrus): the attribute read once
    names[bound] = None
    return f"(None if ({bound} := {value}) is None else {converter}({bound}))"


def set_fields(**fields: Any) -> dict[str, Any]:
    """The fields a Thrift struct has set: unset optional fields arrive as None and are
    left out, so the request model's defaults apply to them."""
    return {name: value for name, value in fields.items() if value is not None}
