"""支援プラン versions, their monitorings, overdue monitorings; a case's life after routing

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-09 10:00:00.000000

Each version of a case's 支援プラン (goals stay here: they may name people), the monitorings and
evaluations recorded against a version, and the monitorings the router's timers found overdue (counted
on the 推進会議 agenda). A held 重層的支援会議 keeps the plan version it saw. A case keeps its life state
(active, closed, watching, reopened) and where a 転居 took it.

A case whose latest decision before this revision was a 終結 starts closed (or watching, with 見守り),
as the agenda counted it until now.

Forward-only: there is no downgrade; to go back, restore a backup.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

String = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "support_plan",
        sa.Column("case_id", String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("plan_id", String(length=36), nullable=False),
        sa.Column("municipality_code", String(length=6), nullable=False),
        sa.Column("status", String(length=20), nullable=False),
        sa.Column("goals", sa.JSON(), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("main_agency", String(length=100), nullable=False),
        sa.Column("monitoring_interval_days", sa.Integer(), nullable=False),
        sa.Column("next_evaluation", sa.Date(), nullable=False),
        sa.Column("created_by", String(length=100), nullable=False),
        sa.Column("reason", String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_at_meeting", String(length=36), nullable=True),
        sa.Column("approved_by_decision", sa.Integer(), nullable=True),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("case_id", "version"),
        schema="conference",
    )
    op.create_index(
        op.f("ix_conference_support_plan_municipality_code"),
        "support_plan",
        ["municipality_code"],
        unique=False,
        schema="conference",
    )
    op.create_table(
        "plan_monitoring",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", String(length=36), nullable=False),
        sa.Column("plan_version", sa.Integer(), nullable=False),
        sa.Column("kind", String(length=20), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("recorded_by", String(length=100), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("on_time", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema="conference",
    )
    op.create_index(
        op.f("ix_conference_plan_monitoring_case_id"), "plan_monitoring", ["case_id"], unique=False, schema="conference"
    )
    op.create_table(
        "overdue_monitoring",
        sa.Column("case_id", String(length=36), nullable=False),
        sa.Column("plan_version", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("municipality_code", String(length=6), nullable=False),
        sa.Column("noticed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("event_id", String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("case_id", "plan_version", "due_at"),
        schema="conference",
    )
    op.create_index(
        op.f("ix_conference_overdue_monitoring_municipality_code"),
        "overdue_monitoring",
        ["municipality_code"],
        unique=False,
        schema="conference",
    )
    with op.batch_alter_table("meeting", schema="conference") as batch_op:
        batch_op.add_column(sa.Column("plan_version", sa.Integer(), nullable=True))
    with op.batch_alter_table("case_state", schema="conference") as batch_op:
        batch_op.add_column(sa.Column("life_state", String(length=20), nullable=False, server_default="active"))
        batch_op.add_column(sa.Column("life_reason", String(length=20), nullable=True))
        batch_op.add_column(sa.Column("life_main_agency", String(length=100), nullable=True))
        batch_op.add_column(sa.Column("watch_until", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("life_changed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("transferred_to_case", String(length=36), nullable=True))
        batch_op.add_column(sa.Column("transferred_to_municipality", String(length=6), nullable=True))
    # Each case's latest decision, where it is a 終結, sets where its life stands.
    latest = (
        "(SELECT d.{column} FROM conference.case_decision AS d WHERE d.case_id = conference.case_state.case_id "
        "ORDER BY d.recorded_at DESC, d.id DESC LIMIT 1)"
    )
    op.execute(
        "UPDATE conference.case_state SET "
        f"life_state = CASE WHEN {latest.format(column='watch')} THEN 'watching' ELSE 'closed' END, "
        f"life_reason = {latest.format(column='closure_reason')}, "
        f"life_main_agency = {latest.format(column='lead_agency')}, "
        f"watch_until = CASE WHEN {latest.format(column='watch')} THEN {latest.format(column='next_review')} END, "
        f"life_changed_at = {latest.format(column='recorded_at')} "
        f"WHERE {latest.format(column='decision_type')} = 'closure'"
    )
    # The default filled the rows there were; new rows get theirs from the model, as in every table.
    with op.batch_alter_table("case_state", schema="conference") as batch_op:
        batch_op.alter_column("life_state", existing_type=String(length=20), server_default=None)
