"""The reports domain's command: the on-demand report's query.

Both edges build it (HTTP from the query string, Thrift from its struct), so a
request is validated by the same rules whichever way it came.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pydantic import field_validator, model_validator

from galaxy_express.core.validation import Id, QueryModel, Timestamp

# A number as a query string writes it (JSON's number syntax).
# ASCII digits only, matched whole (no final newline).
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
# Long enough for any periodic review; bounds the size of one answer.
MAX_WINDOW = timedelta(days=366)


class ReportQuery(QueryModel):
    user_id: Id
    start: Timestamp
    end: Timestamp

    @field_validator("start", "end", mode="before")
    @classmethod
    def _unix_seconds_from_query(cls, value: Any) -> Any:
        """A query string carries numbers as text: ``1700000000`` is Unix seconds."""
        if isinstance(value, str) and _NUMBER.fullmatch(value):
            return float(value)
        return value

    @model_validator(mode="after")
    def _ordered_and_bounded(self) -> ReportQuery:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > MAX_WINDOW:
            raise ValueError("the window may be at most 366 days long")
        return self
