"""rectification notices and their steps

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.store.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _time(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, hub.store.models.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("notice_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("finding", sa.Text(), nullable=False),
        _time("deadline"),
        sa.Column("officer", sa.JSON(), nullable=False),
        sa.Column("item", sa.JSON(), nullable=True),
        sa.Column("terms", sa.JSON(), nullable=False),
        _time("issued_at"),
        _time("updated_at"),
        _time("closed_at", nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("overdue_published", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("notice_id"),
    )
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notices_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_notices_deadline"), ["deadline"], unique=False)

    op.create_table(
        "notice_steps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("notice_id", sa.String(length=64), nullable=False),
        _time("at"),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("by", sa.String(length=128), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("notice_steps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notice_steps_notice_id"), ["notice_id"], unique=False)


def downgrade() -> None:
    op.drop_table("notice_steps")
    op.drop_table("notices")
