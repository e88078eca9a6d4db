"""Helpers for the inbox tests: sending packages, extra contexts, reading rows."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, select

from galaxy_express.bootstrap import make_baseplate
from galaxy_express.core.validation import validate
from galaxy_express.delivery import service as delivery
from galaxy_express.delivery.commands import SendPackage
from galaxy_express.inbox.models import InboxEntry, SpamReport
from tests.conftest import new_id

EPOCH = datetime(2142, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """An instant ``seconds`` after a fixed point of the service's future."""
    return EPOCH + timedelta(seconds=seconds)


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
