"""Aggregates the two databases spell differently, as one SQLAlchemy construct each."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal


class joined_strings(FunctionElement):  # noqa: N801 (a SQL function, named as func.* are)
    """The group's strings joined by ``separator``, in no particular order; NULL for
    no rows: ``group_concat`` on SQLite, ``string_agg`` on PostgreSQL.

    ``separator`` is written into the SQL as a literal: a constant of the code
    (never a value of a request), without quotes or percent signs.
    """

    type = String()  # type: ignore[assignment]  # (the stubs' type of the attribute is off)
    inherit_cache = True
    name = "joined_strings"

    def __init__(self, column: Any, separator: str) -> None:
        if not separator or set(separator) & {"'", "%", "\\"}:
            raise ValueError(f"not a separator this writes as a literal: {separator!r}")
        self.separator = separator
        super().__init__(column)

    # The separator is part of the SQL, so of the statement's cache key too.
    _traverse_internals = [
        *FunctionElement._traverse_internals,  # type: ignore[attr-defined]
        ("separator", InternalTraversal.dp_string),
    ]


def _joined(function: str) -> Any:
    def compile_it(element: joined_strings, compiler: Any, **kw: Any) -> str:
        return f"{function}({compiler.process(element.clauses, **kw)}, '{element.separator}')"

    return compile_it


compiles(joined_strings, "sqlite")(_joined("group_concat"))
compiles(joined_strings, "postgresql")(_joined("string_agg"))
