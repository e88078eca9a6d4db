"""inbox listing indexes and spam reports

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 16:06:07.831435
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import galaxy_express.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LISTING_ORDER = ["timestamp", "package_id"]
UNREAD = "read_at IS NULL"
READ = "read_at IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "spam_reports",
        sa.Column("sender_id", sa.String(length=128), nullable=False),
        sa.Column("recipient_id", sa.String(length=128), nullable=False),
        sa.Column("package_id", sa.String(length=128), nullable=False),
        sa.Column("reported_at", galaxy_express.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sender_id", "recipient_id", name=op.f("pk_spam_reports")),
    )
    with op.batch_alter_table("inbox_entries", schema=None) as batch_op:
        for name, where in (("ix_inbox_entries_unread", UNREAD), ("ix_inbox_entries_read", READ)):
            batch_op.create_index(
                name,
                ["recipient_id", "folder", *LISTING_ORDER],
                unique=False,
                sqlite_where=sa.text(where),
                postgresql_where=sa.text(where),
            )
        batch_op.create_index(
            "ix_inbox_entries_sender",
            ["recipient_id", "folder", "sender_id", *LISTING_ORDER],
            unique=False,
        )
        batch_op.create_index(
            "ix_inbox_entries_type",
            ["recipient_id", "folder", "package_type", *LISTING_ORDER],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("inbox_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_entries_type")
        batch_op.drop_index("ix_inbox_entries_sender")
        batch_op.drop_index("ix_inbox_entries_read")
        batch_op.drop_index("ix_inbox_entries_unread")
    op.drop_table("spam_reports")
