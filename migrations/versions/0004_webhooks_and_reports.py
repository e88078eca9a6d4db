"""webhooks and reports

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 16:19:48.090874
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import galaxy_express.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "external_tasks",
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("task_id", sa.String(length=128), nullable=False),
        sa.Column("last_event_at", galaxy_express.db.UTCDateTime(), nullable=False),
        sa.Column("created_fingerprint", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("external_id", name=op.f("pk_external_tasks")),
        sa.UniqueConstraint("task_id", name=op.f("uq_external_tasks_task_id")),
    )
    op.create_table(
        "report_windows",
        sa.Column("start", galaxy_express.db.UTCDateTime(), nullable=False),
        sa.Column("end", galaxy_express.db.UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=False),
        sa.Column("claimed_at", galaxy_express.db.UTCDateTime(), nullable=False),
        sa.Column("written_at", galaxy_express.db.UTCDateTime(), nullable=True),
        sa.Column("files", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("start", name=op.f("pk_report_windows")),
        sa.UniqueConstraint("end", name=op.f("uq_report_windows_end")),
    )
    op.create_table(
        "seen_webhook_ids",
        sa.Column("webhook_id", sa.String(length=256), nullable=False),
        sa.Column("received_at", galaxy_express.db.UTCDateTime(), nullable=False),
        sa.Column("status_code", sa.SmallInteger(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("webhook_id", name=op.f("pk_seen_webhook_ids")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("received_at", galaxy_express.db.UTCDateTime(), nullable=False),
        sa.Column("webhook_id", sa.String(length=256), nullable=True),
        sa.Column("event", sa.String(length=32), nullable=True),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("event_timestamp", galaxy_express.db.UTCDateTime(), nullable=True),
        sa.Column("status_code", sa.SmallInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_deliveries_received_at", ["received_at"], unique=False)

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index("ix_tasks_completed_at", ["completed_at"], unique=False)
        batch_op.create_index("ix_tasks_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_tasks_deleted_at", ["deleted_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_deleted_at")
        batch_op.drop_index("ix_tasks_created_at")
        batch_op.drop_index("ix_tasks_completed_at")

    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_received_at")

    op.drop_table("webhook_deliveries")
    op.drop_table("seen_webhook_ids")
    op.drop_table("report_windows")
    op.drop_table("external_tasks")
