"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24 20:05:58.611060
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.store.models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", hub.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", hub.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", hub.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", hub.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=160), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)

    op.create_table(
        "compliance_snapshots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", hub.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("overall", sa.String(length=16), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("compliance_snapshots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_compliance_snapshots_at"), ["at"], unique=False)

    op.create_table(
        "device_state",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("since", hub.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("last_seen", hub.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("fail_count", sa.Integer(), nullable=False),
        sa.Column("ok_count", sa.Integer(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
    )
    op.create_table(
        "device_state_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("at", hub.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("device_state_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_device_state_changes_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_device_state_changes_device_id"), ["device_id"], unique=False
        )

    op.create_table(
        "event_updates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("update_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", hub.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("event_updates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_updates_event_id"), ["event_id"], unique=False)

    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=8), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("occurred_at", hub.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("received_at", hub.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.JSON(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("device_state", sa.String(length=8), nullable=True),
        sa.Column("dedupe_key", sa.String(length=160), nullable=True),
        sa.Column("test_mode", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_at", hub.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("state_by", sa.String(length=128), nullable=True),
        sa.Column("state_via", sa.String(length=16), nullable=True),
        sa.Column("disposition", sa.String(length=64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("update_seq", sa.Integer(), nullable=False),
        sa.Column("first_published_at", hub.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("receipted_at", hub.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("receipted_by", sa.String(length=128), nullable=True),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
        sa.UniqueConstraint("seq"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_dedupe_key"), ["dedupe_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_device_id"), ["device_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_received_at"), ["received_at"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("topic", sa.String(length=512), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("retain", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=True),
        sa.Column("coalesce_key", sa.String(length=160), nullable=True),
        sa.Column("created_at", hub.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("published_at", hub.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("publish_count", sa.Integer(), nullable=False),
        sa.Column("receipt_required", sa.Boolean(), nullable=False),
        sa.Column("receipted_at", hub.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_coalesce_key"), ["coalesce_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_event_id"), ["event_id"], unique=False)
        batch_op.create_index(
            "ix_outbox_order", ["published_at", "priority", "seq", "id"], unique=False
        )

    op.create_table(
        "probes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("at", hub.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("probes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_probes_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_probes_device_id"), ["device_id"], unique=False)

    op.create_table(
        "records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", hub.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("due_at", hub.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", hub.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", hub.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("rule_id", sa.String(length=32), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_records_kind"), ["kind"], unique=False)

    op.create_table(
        "retained",
        sa.Column("topic", sa.String(length=512), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("updated_at", hub.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("topic"),
    )
    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("taken_at", hub.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_snapshots_event_id"), ["event_id"], unique=False)

    op.create_table(
        "test_mode",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target", sa.String(length=96), nullable=False),
        sa.Column("started_at", hub.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("until", hub.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(length=128), nullable=False),
        sa.Column("ended_at", hub.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("test_mode", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_test_mode_target"), ["target"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("created_at", hub.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", hub.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "video_baselines",
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("learned_at", hub.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("camera_id"),
    )


def downgrade() -> None:
    op.drop_table("video_baselines")
    op.drop_table("users")
    with op.batch_alter_table("test_mode", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_test_mode_target"))

    op.drop_table("test_mode")
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_snapshots_event_id"))

    op.drop_table("snapshots")
    op.drop_table("retained")
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_records_kind"))

    op.drop_table("records")
    with op.batch_alter_table("probes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_probes_device_id"))
        batch_op.drop_index(batch_op.f("ix_probes_at"))

    op.drop_table("probes")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_order")
        batch_op.drop_index(batch_op.f("ix_outbox_event_id"))
        batch_op.drop_index(batch_op.f("ix_outbox_coalesce_key"))

    op.drop_table("outbox")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_received_at"))
        batch_op.drop_index(batch_op.f("ix_events_kind"))
        batch_op.drop_index(batch_op.f("ix_events_device_id"))
        batch_op.drop_index(batch_op.f("ix_events_dedupe_key"))

    op.drop_table("events")
    with op.batch_alter_table("event_updates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_updates_event_id"))

    op.drop_table("event_updates")
    with op.batch_alter_table("device_state_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_state_changes_device_id"))
        batch_op.drop_index(batch_op.f("ix_device_state_changes_at"))

    op.drop_table("device_state_changes")
    op.drop_table("device_state")
    with op.batch_alter_table("compliance_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compliance_snapshots_at"))

    op.drop_table("compliance_snapshots")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))

    op.drop_table("audit_log")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))

    op.drop_table("api_tokens")
