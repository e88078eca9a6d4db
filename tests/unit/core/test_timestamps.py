"""``parse_timestamp`` of RFC 3339 text: exactly what the general parse gave.

Its UTC forms (``Z``, ``z``, no offset) skip the offset check and the fraction's
padding; any text must still give the same instant, or the same refusal, as
the parse before those shortcuts (``_general``, kept here as it was).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from galaxy_express.core.validation import EARLIEST, LATEST, parse_timestamp

_RFC3339_RE = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


def _general(text: str) -> datetime:
    """The parse of a string before the UTC shortcuts (range checks included)."""
    match = _RFC3339_RE.fullmatch(text)
    if not match:
        raise ValueError("must be an RFC 3339 timestamp such as 2142-01-01T12:00:00Z")
    date, time, fraction, offset = match.groups()
    micros = (fraction or ".0")[1:7].ljust(6, "0")
    if offset in (None, "Z", "z"):
        offset = "+00:00"
    try:
        instant = datetime.fromisoformat(f"{date}T{time}.{micros}{offset}")
    except ValueError:
        raise ValueError("is not a real date and time") from None
    if abs(instant.utcoffset().total_seconds()) >= 24 * 3600:  # type: ignore[union-attr]
        raise ValueError("has an offset beyond 24 hours")
    try:
        instant = instant.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range") from None
    if not EARLIEST <= instant <= LATEST:
        raise ValueError("out of range")
    return instant


def _two(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda n: f"{n:02d}")


_texts = st.builds(
    lambda year, month, day, sep, hour, minute, second, fraction, offset: (
        f"{year:04d}-{month}-{day}{sep}{hour}:{minute}:{second}{fraction}{offset}"
    ),
    st.sampled_from([1969, 1970, 2026, 2142, 9999]),
    _two(0, 13),
    _two(0, 32),
    st.sampled_from(["T", "t", " "]),
    _two(0, 24),
    _two(0, 60),
    _two(0, 60),
    st.sampled_from(["", ".", ".5", ".123456", ".1234567", ".000001"]),
    st.sampled_from(["", "Z", "z", "+00:00", "-00:00", "+05:30", "-23:59", "+24:00", "+99:99"]),
)


def _outcome(parse: object, text: str) -> object:
    try:
        return parse(text)  # type: ignore[operator]
    except ValueError as error:
        return type(error), "out of range" if "between" in str(error) else str(error)


@given(_texts)
def test_a_text_parses_or_is_refused_as_the_general_parse_does(text: str) -> None:
    parsed = _outcome(parse_timestamp, text)
    assert parsed == _outcome(_general, text)
    if isinstance(parsed, datetime):
        assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2142-01-01T12:00:00Z", datetime(2142, 1, 1, 12, tzinfo=UTC)),
        ("2142-01-01 12:00:00.5", datetime(2142, 1, 1, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2142-01-01T12:00:00+01:00", datetime(2142, 1, 1, 11, tzinfo=UTC)),
    ],
)
def test_common_forms_give_their_utc_instant(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected
