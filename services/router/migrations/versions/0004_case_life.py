"""A case's life after routing: what each reassessment changed, contacts kept until their case is routed,
and the monitoring timers of approved plans

Revision ID: 0004
Revises: 0003
Create Date: 2027-01-12 10:00:00.000000

Decisions made before it changed nothing against an earlier one (they were no reassessments): their
`changes` stays NULL.

Forward-only: there is no downgrade; to go back, restore a backup.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("decision", schema="router") as batch_op:
        batch_op.add_column(sa.Column("changes", sa.JSON(), nullable=True))

    op.create_table(
        "pending_contact",
        sa.Column("contact_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("contact", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("contact_id"),
        schema="router",
    )
    op.create_index(
        op.f("ix_router_pending_contact_case_id"), "pending_contact", ["case_id"], unique=False, schema="router"
    )

    op.create_table(
        "monitored_plan",
        sa.Column("plan_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("main_agency", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("interval_days", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("cycle_from", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("plan_id", "version"),
        schema="router",
    )
    op.create_index(
        op.f("ix_router_monitored_plan_case_id"), "monitored_plan", ["case_id"], unique=False, schema="router"
    )

    op.create_table(
        "monitoring_timer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("plan_version", sa.Integer(), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("monitoring_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        schema="router",
    )
    op.create_index(
        "ix_router_monitoring_timer_due", "monitoring_timer", ["fired_at", "due_at"], unique=False, schema="router"
    )
    op.create_index(
        op.f("ix_router_monitoring_timer_case_id"), "monitoring_timer", ["case_id"], unique=False, schema="router"
    )
    op.create_index(
        op.f("ix_router_monitoring_timer_plan_id"), "monitoring_timer", ["plan_id"], unique=False, schema="router"
    )
