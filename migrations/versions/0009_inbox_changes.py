"""inbox change feed: per-recipient sequences, change events, delivered_seq

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 02:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import galaxy_express.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbox_sequences",
        sa.Column("recipient_id", sa.String(length=128), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("pruned_through", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("recipient_id", name=op.f("pk_inbox_sequences")),
    )
    op.create_table(
        "inbox_changes",
        sa.Column("recipient_id", sa.String(length=128), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("package_id", sa.String(length=128), nullable=False),
        sa.Column("at", galaxy_express.db.UTCDateTime(), nullable=False),
        sa.Column("from_folder", sa.String(length=8), nullable=True),
        sa.Column("to_folder", sa.String(length=8), nullable=True),
        sa.PrimaryKeyConstraint("recipient_id", "seq", name=op.f("pk_inbox_changes")),
    )
    op.create_index("ix_inbox_changes_at", "inbox_changes", ["at"], unique=False)
    # Entries delivered before the feed existed get seq 0: before every change, so
    # a bulk action by filter (up_to_seq >= 0) always includes them.
    with op.batch_alter_table("inbox_entries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("delivered_seq", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("inbox_entries", schema=None) as batch_op:
        batch_op.drop_column("delivered_seq")
    op.drop_index("ix_inbox_changes_at", table_name="inbox_changes")
    op.drop_table("inbox_changes")
    op.drop_table("inbox_sequences")
