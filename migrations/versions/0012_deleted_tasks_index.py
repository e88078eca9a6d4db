"""ix_tasks_deleted_at over deleted tasks only, so the task list's planner keeps its listing index

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 18:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_DELETED = sa.text("deleted_at IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_tasks_deleted_at", table_name="tasks")
    op.create_index(
        "ix_tasks_deleted_at",
        "tasks",
        ["deleted_at"],
        unique=False,
        sqlite_where=_DELETED,
        postgresql_where=_DELETED,
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_deleted_at", table_name="tasks")
    op.create_index("ix_tasks_deleted_at", "tasks", ["deleted_at"], unique=False)
