"""seen webhook-ids pruned oldest first

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 03:50:00
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_seen_webhook_ids_received_at"), "seen_webhook_ids", ["received_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_seen_webhook_ids_received_at"), table_name="seen_webhook_ids")
