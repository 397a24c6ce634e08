"""Meeting kinds under the 2020 amendment; what the 推進会議 agenda is built from

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 18:30:00.000000

The 支援会議 roster as intake publishes it; what each case's consultations said (area, issue tags,
制度の狭間, whether the person has been reached); hand-offs between agencies (re-routes and
escalations); decisions of a 重層的支援会議 (支援決定, 終結). Decisions before this revision are plans
(`decision_type` "plan"); a 終結 may leave the next review empty, so it becomes nullable.

Forward-only: there is no downgrade; to go back, restore a backup.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

String = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "roster_member",
        sa.Column("municipality_code", String(length=6), nullable=False),
        sa.Column("agency_id", String(length=100), nullable=False),
        sa.Column("member_from", sa.Date(), nullable=False),
        sa.Column("member_until", sa.Date(), nullable=True),
        sa.Column("roster_ref", String(length=200), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("municipality_code", "agency_id"),
        schema="conference",
    )
    op.create_table(
        "case_intake",
        sa.Column("case_id", String(length=36), nullable=False),
        sa.Column("municipality_code", String(length=6), nullable=False),
        sa.Column("area", String(length=64), nullable=False),
        sa.Column("issues", sa.JSON(), nullable=False),
        sa.Column("services_fit", sa.Boolean(), nullable=False),
        sa.Column("contact", String(length=20), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("case_id"),
        schema="conference",
    )
    op.create_index(
        op.f("ix_conference_case_intake_municipality_code"),
        "case_intake",
        ["municipality_code"],
        unique=False,
        schema="conference",
    )
    op.create_table(
        "case_handoff",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("municipality_code", String(length=6), nullable=False),
        sa.Column("case_id", String(length=36), nullable=False),
        sa.Column("kind", String(length=20), nullable=False),
        sa.Column("from_agency", String(length=100), nullable=False),
        sa.Column("to_agency", String(length=100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema="conference",
    )
    op.create_index(
        op.f("ix_conference_case_handoff_municipality_code"),
        "case_handoff",
        ["municipality_code"],
        unique=False,
        schema="conference",
    )
    with op.batch_alter_table("referral", schema="conference") as batch_op:
        batch_op.add_column(sa.Column("replaces_referral_id", String(length=36), nullable=True))
    with op.batch_alter_table("case_decision", schema="conference") as batch_op:
        batch_op.alter_column("next_review", existing_type=sa.Date(), nullable=True)
        batch_op.add_column(
            sa.Column("decision_type", String(length=20), nullable=False, server_default="plan")
        )
        batch_op.add_column(sa.Column("consent_id", String(length=36), nullable=True))
        batch_op.add_column(sa.Column("plan_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("closure_reason", String(length=20), nullable=True))
        batch_op.add_column(sa.Column("watch", sa.Boolean(), nullable=False, server_default=sa.false()))
    # The defaults filled the rows there were; new rows get theirs from the models, as in every table.
    with op.batch_alter_table("case_decision", schema="conference") as batch_op:
        batch_op.alter_column("decision_type", existing_type=String(length=20), server_default=None)
        batch_op.alter_column("watch", existing_type=sa.Boolean(), server_default=None)
