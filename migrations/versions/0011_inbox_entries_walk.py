"""the whole mailbox in the listing order, for bulk actions that name no folder

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 07:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_inbox_entries_walk",
        "inbox_entries",
        ["recipient_id", "timestamp", "package_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_inbox_entries_walk", table_name="inbox_entries")
