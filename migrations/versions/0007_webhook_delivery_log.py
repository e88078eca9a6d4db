"""The webhook delivery log: headers (signature redacted), replays, the filter by task.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("headers", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("replay_of", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_webhook_deliveries_external_id", ["external_id", "received_at", "id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_external_id")
        batch_op.drop_column("replay_of")
        batch_op.drop_column("headers")
