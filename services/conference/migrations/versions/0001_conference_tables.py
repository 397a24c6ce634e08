"""The conference tables as the models defined them when migrations began.

Revision ID: 0001
Revises:
Create Date: 2026-12-01 22:29:02.103237

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
        "attendance",
        sa.Column("meeting_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("participant", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("sector", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("attended", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("meeting_id", "participant"),
        schema="conference",
    )

    op.create_table(
        "booking_lock",
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("municipality_code"),
        schema="conference",
    )

    op.create_table(
        "case_decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meeting_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("plan_status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("lead_agency", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("next_review", sa.Date(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        schema="conference",
    )
    op.create_index(
        op.f("ix_conference_case_decision_case_id"), "case_decision", ["case_id"], unique=False, schema="conference"
    )
    op.create_index(
        op.f("ix_conference_case_decision_meeting_id"),
        "case_decision",
        ["meeting_id"],
        unique=False,
        schema="conference",
    )

    op.create_table(
        "case_state",
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("lead", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("urgency", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("engaged", sa.JSON(), nullable=False),
        sa.Column("decision_sequence", sa.Integer(), nullable=False),
        sa.Column("routed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("difficult_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consents", sa.JSON(), nullable=False),
        sa.Column("source_events", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("case_id"),
        schema="conference",
    )
    op.create_index(
        op.f("ix_conference_case_state_municipality_code"),
        "case_state",
        ["municipality_code"],
        unique=False,
        schema="conference",
    )

    op.create_table(
        "meeting",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=True),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("participants", sa.JSON(), nullable=False),
        sa.Column("withdrawn", sa.JSON(), nullable=False),
        sa.Column("room_id", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("needs_attention", sa.Boolean(), nullable=False),
        sa.Column("blockers", sa.JSON(), nullable=False),
        sa.Column("status_reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("minutes", sa.Text(), nullable=True),
        sa.Column("agenda", sa.JSON(), nullable=True),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema="conference",
    )
    op.create_index(op.f("ix_conference_meeting_case_id"), "meeting", ["case_id"], unique=False, schema="conference")
    op.create_index(op.f("ix_conference_meeting_kind"), "meeting", ["kind"], unique=False, schema="conference")
    op.create_index(
        op.f("ix_conference_meeting_municipality_code"),
        "meeting",
        ["municipality_code"],
        unique=False,
        schema="conference",
    )
    op.create_index(
        op.f("ix_conference_meeting_starts_at"), "meeting", ["starts_at"], unique=False, schema="conference"
    )

    op.create_table(
        "network_member",
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("agency_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("agency_type", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("municipality_code", "agency_id"),
        schema="conference",
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
        schema="conference",
    )
    op.create_index(
        op.f("ix_conference_outbox_published_at"), "outbox", ["published_at"], unique=False, schema="conference"
    )

    op.create_table(
        "processed_event",
        sa.Column("consumer", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
        schema="conference",
    )

    op.create_table(
        "resource_gap",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("partner_type", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema="conference",
    )
    op.create_index(
        op.f("ix_conference_resource_gap_municipality_code"),
        "resource_gap",
        ["municipality_code"],
        unique=False,
        schema="conference",
    )
