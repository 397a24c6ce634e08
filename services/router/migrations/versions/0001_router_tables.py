"""The router tables as the models defined them when migrations began.

Revision ID: 0001
Revises:
Create Date: 2026-12-01 22:29:00.817467

Forward-only: there is no downgrade; to go back, restore a backup.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "case_facts",
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("submitted_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("consultation", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("case_id"),
        schema="router",
    )

    op.create_table(
        "decision",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("requested_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("lead", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("patterns", sa.JSON(), nullable=False),
        sa.Column("engaged", sa.JSON(), nullable=False),
        sa.Column("excluded", sa.JSON(), nullable=False),
        sa.Column("resource_gaps", sa.JSON(), nullable=False),
        sa.Column("directory_version", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "sequence"),
        schema="router",
    )
    op.create_index(op.f("ix_router_decision_case_id"), "decision", ["case_id"], unique=False, schema="router")
    op.create_index(
        op.f("ix_router_decision_municipality_code"), "decision", ["municipality_code"], unique=False, schema="router"
    )

    op.create_table(
        "directory_version",
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("version", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("municipality_code", "version"),
        schema="router",
    )

    op.create_table(
        "feed_counter",
        sa.Column("agency_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("last_sequence", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("agency_id"),
        schema="router",
    )

    op.create_table(
        "feed_entry",
        sa.Column("agency_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("referral_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("agency_id", "sequence"),
        schema="router",
    )

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("topic", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
        schema="router",
    )
    op.create_index(op.f("ix_router_outbox_published_at"), "outbox", ["published_at"], unique=False, schema="router")

    op.create_table(
        "processed_event",
        sa.Column("consumer", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
        schema="router",
    )

    op.create_table(
        "referral",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("decision_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("agency_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("agency_type", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("status_reason", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True),
        sa.Column("rule_id", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("legal_basis", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("replaces_referral_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema="router",
    )
    op.create_index(op.f("ix_router_referral_agency_id"), "referral", ["agency_id"], unique=False, schema="router")
    op.create_index(op.f("ix_router_referral_case_id"), "referral", ["case_id"], unique=False, schema="router")

    op.create_table(
        "referral_transition",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("referral_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("from_status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("to_status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("reason_code", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("changed_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema="router",
    )
    op.create_index(
        op.f("ix_router_referral_transition_referral_id"),
        "referral_transition",
        ["referral_id"],
        unique=False,
        schema="router",
    )

    op.create_table(
        "timer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("referral_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        schema="router",
    )
    op.create_index("ix_router_timer_due", "timer", ["fired_at", "due_at"], unique=False, schema="router")
    op.create_index(op.f("ix_router_timer_referral_id"), "timer", ["referral_id"], unique=False, schema="router")
