"""users and tasks

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 16:07:53.469359
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import galaxy_express.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LIVE = sa.text("deleted_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("created_at", galaxy_express.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_index("ix_users_created_at_id", "users", ["created_at", "id"])
    # Usernames are unique regardless of case (autogenerate can't see expression indexes).
    op.create_index("uq_users_username_lower", "users", [sa.text("lower(username)")], unique=True)

    op.create_table(
        "tasks",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expires_at", galaxy_express.db.UTCDateTime(), nullable=True),
        sa.Column("no_expiry", sa.SmallInteger(), nullable=False),
        sa.Column("expiry_key", galaxy_express.db.UTCDateTime(), nullable=False),
        sa.Column("created_at", galaxy_express.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", galaxy_express.db.UTCDateTime(), nullable=False),
        sa.Column("completed_at", galaxy_express.db.UTCDateTime(), nullable=True),
        sa.Column("deleted_at", galaxy_express.db.UTCDateTime(), nullable=True),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("owner_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_tasks")),
        sa.UniqueConstraint("external_id", name=op.f("uq_tasks_external_id")),
        sa.UniqueConstraint("id", name=op.f("uq_tasks_id")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_tasks_live_created",
        "tasks",
        ["created_at", "seq"],
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    op.create_index(
        "ix_tasks_live_expiry",
        "tasks",
        ["no_expiry", "expiry_key", "seq"],
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    op.create_index(
        "ix_tasks_live_expiry_desc",
        "tasks",
        ["no_expiry", sa.text("expiry_key DESC"), sa.text("seq DESC")],
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    op.create_index(op.f("ix_tasks_owner_id"), "tasks", ["owner_id"])

    op.create_table(
        "task_assignees",
        sa.Column("task_id", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("assigned_at", galaxy_express.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_task_assignees_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_task_assignees_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", "user_id", name=op.f("pk_task_assignees")),
    )
    op.create_index("ix_task_assignees_user_id_task_id", "task_assignees", ["user_id", "task_id"])


def downgrade() -> None:
    op.drop_index("ix_task_assignees_user_id_task_id", table_name="task_assignees")
    op.drop_table("task_assignees")
    op.drop_index("ix_tasks_owner_id", table_name="tasks")
    op.drop_index("ix_tasks_live_expiry_desc", table_name="tasks")
    op.drop_index("ix_tasks_live_expiry", table_name="tasks")
    op.drop_index("ix_tasks_live_created", table_name="tasks")
    op.drop_table("tasks")
    op.drop_index("uq_users_username_lower", table_name="users")
    op.drop_index("ix_users_created_at_id", table_name="users")
    op.drop_table("users")
