"""The inbox's service functions."""

from __future__ import annotations

from sqlalchemy.orm import Session

from galaxy_express.delivery.records import PackageRecord
from galaxy_express.inbox.models import InboxEntry


def place_in_inbox(session: Session, package: PackageRecord) -> None:
    """Put a just-delivered package in its recipient's inbox (caller's transaction)."""
    session.add(
        InboxEntry(
            package_id=package.package_id,
            recipient_id=package.recipient_id,
            sender_id=package.sender_id,
            package_type=package.package_type,
            timestamp=package.timestamp,
            folder="inbox",
            read_at=None,
        )
    )
