"""Hypothesis strategies of the records the edges render (the JSON and Thrift shapes' tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from galaxy_express.inbox.records import InboxItem
from galaxy_express.packages.records import Content, PackageRecord
from galaxy_express.tasks.records import TaskRecord

texts = st.text(max_size=12)
zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)), None]
)


@st.composite
def any_instants(draw: st.DrawFn) -> datetime:
    """Aware any_instants of any zone, with and without microseconds (0 is left out of
    the text), across the range a stored instant can have."""
    naive = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
    if draw(st.booleans()):
        naive = naive.replace(microsecond=0)
    zone = draw(zones) or UTC
    return naive.replace(tzinfo=zone)


packages = st.builds(
    PackageRecord,
    texts,
    texts,
    texts,
    texts,
    any_instants(),
    st.none() | st.builds(Content, texts, texts),
    texts,
    st.none() | texts,
    any_instants(),
)
tasks = st.builds(
    TaskRecord,
    texts,
    texts,
    st.none() | texts,
    texts,
    st.none() | any_instants(),
    any_instants(),
    any_instants(),
    st.none() | any_instants(),
    st.none() | any_instants(),
    st.lists(texts, max_size=4).map(tuple),
    st.none() | texts,
    st.none() | texts,
)
inbox_items = st.builds(
    InboxItem, packages, st.sampled_from(["inbox", "trash", "spam"]), st.none() | any_instants()
)
