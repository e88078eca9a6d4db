"""converging preferences and task events

Preference updates: an identical repeat is one row (a unique index; existing
repeats are folded into their first row, which changes no judgement, since
repeats merge to what one of them says). Task events: each task's events are
kept so the task can be replayed in their order; the tasks made before this
migration get their history rebuilt from the task as it stands (its creation,
and its deletion when deleted).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 21:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import galaxy_express.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM preference_updates WHERE id NOT IN ("
        " SELECT MIN(id) FROM preference_updates"
        " GROUP BY recipient_id, timestamp, preferences)"
    )
    with op.batch_alter_table("preference_updates", schema=None) as batch_op:
        batch_op.create_index(
            "uq_preference_updates_statement",
            ["recipient_id", "timestamp", "preferences"],
            unique=True,
        )
    task_events = op.create_table(
        "task_events",
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("timestamp", galaxy_express.db.UTCDateTime(), nullable=False),
        sa.Column("rank", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("is_completed", sa.Boolean(), nullable=False),
        sa.Column("content", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint(
            "external_id",
            "timestamp",
            "rank",
            "is_completed",
            "content",
            name=op.f("pk_task_events"),
        ),
    )
    _rebuild_task_histories(task_events)


def _rebuild_task_histories(task_events: sa.Table) -> None:
    external = sa.table("external_tasks", sa.column("external_id"), sa.column("task_id"))
    tasks = sa.table(
        "tasks",
        sa.column("id"),
        sa.column("name"),
        sa.column("status"),
        sa.column("created_at"),
        sa.column("deleted_at"),
    )
    joined = external.join(tasks, tasks.c.id == external.c.task_id)
    columns = ["external_id", "timestamp", "rank", "is_completed", "content"]
    created = sa.select(
        external.c.external_id,
        tasks.c.created_at,
        sa.literal(0),
        sa.case((tasks.c.status == "COMPLETED", sa.true()), else_=sa.false()),
        tasks.c.name,
    ).select_from(joined)
    deleted = (
        sa.select(
            external.c.external_id, tasks.c.deleted_at, sa.literal(2), sa.false(), sa.literal("")
        )
        .select_from(joined)
        .where(tasks.c.deleted_at.is_not(None))
    )
    op.execute(task_events.insert().from_select(columns, created))
    op.execute(task_events.insert().from_select(columns, deleted))


def downgrade() -> None:
    op.drop_table("task_events")
    with op.batch_alter_table("preference_updates", schema=None) as batch_op:
        batch_op.drop_index("uq_preference_updates_statement")
