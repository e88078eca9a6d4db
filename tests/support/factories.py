"""Factories: ids, instants, request bodies, packages sent through a service or the app,
and rows read back directly."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, select, text

from galaxy_express.bootstrap import make_baseplate
from galaxy_express.core.validation import validate
from galaxy_express.delivery import service as delivery
from galaxy_express.delivery.commands import SendPackage
from galaxy_express.delivery.models import Package
from galaxy_express.inbox.models import InboxEntry, SpamReport

EPOCH = datetime(2142, 1, 1, tzinfo=UTC)
"""A fixed point of the service's future: test data never collides with today's."""


def new_id(prefix: str = "id") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def instants(
    start: datetime = EPOCH, unit: timedelta = timedelta(seconds=1)
) -> Callable[[float], datetime]:
    """An ``at(n)``: the instant ``n`` units after ``start`` (each module picks its own
    start and unit, e.g. ``at = instants(T0, timedelta(minutes=1))``)."""

    def at(count: float) -> datetime:
        return start + count * unit

    return at


at = instants()
"""``at(seconds)``: seconds after EPOCH."""


def send_body(**fields: Any) -> dict[str, Any]:
    """A valid ``POST /v1/packages`` body with a fresh id; ``fields`` override."""
    return {
        "timestamp": "2142-01-01T12:00:00Z",
        "sender_id": "earth-1",
        "recipient_id": "mars-1",
        "package_id": new_id("pkg"),
        "package_type": "personal",
        "content": {"subject": "Hello", "body": "from Earth"},
    } | fields


def send(
    context: Any,
    recipient_id: str,
    *,
    sender_id: str = "sender",
    package_type: str = "personal",
    timestamp: datetime | None = None,
    package_id: str | None = None,
) -> str:
    """Send one package through the delivery service; its id."""
    package_id = package_id or new_id("p")
    command = validate(
        SendPackage,
        {
            "timestamp": (timestamp or at(0)).isoformat(),
            "sender_id": sender_id,
            "recipient_id": recipient_id,
            "package_id": package_id,
            "package_type": package_type,
        },
    )
    delivery.send_package(context, command)
    return package_id


def send_over_http(
    testapp: Any,
    recipient_id: str,
    *,
    second: int = 0,
    sender_id: str = "sender",
    package_type: str = "personal",
    package_id: str | None = None,
    status: int = 201,
) -> str:
    """Send one package through the HTTP app (201 expected); its id."""
    package_id = package_id or new_id("p")
    testapp.post_json(
        "/v1/packages",
        {
            "timestamp": f"2142-01-01T00:00:{second:02d}Z",
            "sender_id": sender_id,
            "recipient_id": recipient_id,
            "package_id": package_id,
            "package_type": package_type,
            "content": {"subject": "hi", "body": "from Mars"},
        },
        status=status,
    )
    return package_id


THRIFT_EPOCH_MS = 5_600_000_000_000
"""Thrift sends' default timestamp (milliseconds), in the service's future as EPOCH is."""


def send_over_thrift(
    client: Any,
    recipient_id: str,
    *,
    offset_ms: int = 0,
    sender_id: str = "sender",
    package_type: str = "personal",
    package_id: str | None = None,
) -> str:
    """Send one package through a Thrift client; its id."""
    from galaxy_express.thrift.gen import ttypes

    request = ttypes.SendPackageRequest(
        timestamp=THRIFT_EPOCH_MS + offset_ms,
        sender_id=sender_id,
        recipient_id=recipient_id,
        package_id=package_id or new_id("p"),
        package_type=package_type,
    )
    client.send_package(request)
    return str(request.package_id)


def delivered_webhook(app: Any, external_id: str) -> int:
    """A task webhook received over HTTP (unsigned: no secret in tests); its delivery log id."""
    event = {
        "event": "created",
        "timestamp": "2142-05-01T11:00:00Z",
        "metadata": {
            "userId": "crew-1",
            "id": external_id,
            "content": "Fix the airlock",
            "isCompleted": False,
        },
    }
    app.post_json("/v1/webhooks/tasks", event, status=201)
    log = app.get(f"/v1/webhooks/deliveries?external_id={external_id}", status=200)
    return int(log.json["items"][0]["id"])


@contextmanager
def service_context(app_config: Mapping[str, str]) -> Iterator[Any]:
    """A context of its own (own session), e.g. for one greenlet or one setting."""
    baseplate, _ = make_baseplate(app_config)
    with baseplate.server_context("test") as context:
        yield context


def entries_of(database_url: str, recipient_id: str) -> dict[str, tuple[str, datetime | None]]:
    """A recipient's mailbox rows as {package_id: (folder, read_at)}, read directly."""
    engine = create_engine(database_url, future=True)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(InboxEntry.package_id, InboxEntry.folder, InboxEntry.read_at).where(
                    InboxEntry.recipient_id == recipient_id
                )
            ).all()
    finally:
        engine.dispose()
    return {package_id: (folder, read_at) for package_id, folder, read_at in rows}


def spam_report_rows(database_url: str) -> set[tuple[str, str, str]]:
    """Every stored spam report as (sender, recipient, first package)."""
    engine = create_engine(database_url, future=True)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(SpamReport.sender_id, SpamReport.recipient_id, SpamReport.package_id)
            ).all()
    finally:
        engine.dispose()
    return {(sender, recipient, package) for sender, recipient, package in rows}


def fill_mailbox(session: Any, recipient_id: str, count: int) -> None:
    """``count`` packages and their entries, written directly (volume, not delivery):
    a third personal, two in five in the trash, half of them read."""
    rows = []
    for i in range(count):
        package_id = f"{recipient_id}-{i:05d}"
        common: dict[str, Any] = {
            "package_id": package_id,
            "recipient_id": recipient_id,
            "sender_id": f"s{i % 2}",
            "package_type": "marketing" if i % 3 else "personal",
            "timestamp": at(i // 2),
        }
        session.add(Package(**common, status="delivered", processed_at=at(0)))
        rows.append(
            InboxEntry(
                **common,
                folder="trash" if i % 5 < 2 else "inbox",
                read_at=at(0) if i % 2 else None,
            )
        )
    session.flush()
    session.add_all(rows)
    session.commit()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE inbox_entries"))
        session.commit()
