"""The metrics tables as the models defined them when migrations began.

Revision ID: 0001
Revises:
Create Date: 2026-12-01 22:29:03.638572

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
        "case_fact",
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pathway", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=True),
        sa.Column("found_by", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("submitted_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("tier", sa.Integer(), nullable=True),
        sa.Column("decision_sequence", sa.Integer(), nullable=False),
        sa.Column("first_accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("case_id"),
        schema="metrics",
    )
    op.create_index(
        op.f("ix_metrics_case_fact_municipality_code"),
        "case_fact",
        ["municipality_code"],
        unique=False,
        schema="metrics",
    )

    op.create_table(
        "contact_fact",
        sa.Column("contact_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pathway", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("found_by", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("opening", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("contact_id"),
        schema="metrics",
    )
    op.create_index(
        op.f("ix_metrics_contact_fact_case_id"), "contact_fact", ["case_id"], unique=False, schema="metrics"
    )
    op.create_index(
        op.f("ix_metrics_contact_fact_municipality_code"),
        "contact_fact",
        ["municipality_code"],
        unique=False,
        schema="metrics",
    )

    op.create_table(
        "decision_fact",
        sa.Column("decision_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("patterns", sa.JSON(), nullable=False),
        sa.Column("resource_gaps", sa.JSON(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("decision_id"),
        schema="metrics",
    )
    op.create_index(
        op.f("ix_metrics_decision_fact_case_id"), "decision_fact", ["case_id"], unique=False, schema="metrics"
    )
    op.create_index(
        op.f("ix_metrics_decision_fact_municipality_code"),
        "decision_fact",
        ["municipality_code"],
        unique=False,
        schema="metrics",
    )

    op.create_table(
        "manual_value",
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("fiscal_year", sa.Integer(), nullable=False),
        sa.Column("indicator", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("entered_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("municipality_code", "fiscal_year", "indicator"),
        schema="metrics",
    )

    op.create_table(
        "meeting_fact",
        sa.Column("meeting_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("tier", sa.Integer(), nullable=True),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("starts_at_as_of", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attendance", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("meeting_id"),
        schema="metrics",
    )
    op.create_index(
        op.f("ix_metrics_meeting_fact_municipality_code"),
        "meeting_fact",
        ["municipality_code"],
        unique=False,
        schema="metrics",
    )

    op.create_table(
        "processed_event",
        sa.Column("consumer", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
        schema="metrics",
    )

    op.create_table(
        "referral_fact",
        sa.Column("referral_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("agency_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("tier", sa.Integer(), nullable=True),
        sa.Column("rule_id", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("overdue_stages", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("referral_id"),
        schema="metrics",
    )
    op.create_index(
        op.f("ix_metrics_referral_fact_case_id"), "referral_fact", ["case_id"], unique=False, schema="metrics"
    )
    op.create_index(
        op.f("ix_metrics_referral_fact_municipality_code"),
        "referral_fact",
        ["municipality_code"],
        unique=False,
        schema="metrics",
    )

    op.create_table(
        "target",
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("fiscal_year", sa.Integer(), nullable=False),
        sa.Column("indicator", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("set_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("municipality_code", "fiscal_year", "indicator"),
        schema="metrics",
    )
