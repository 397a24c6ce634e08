"""Referrals with their latest status and version; the patterns of each case's decision in force

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08 10:00:00.000000

`referral` keeps each referral's latest status change, so a change published late never undoes a
later one, and an invitation or a meeting record names the referral it is released on. The 推進会議
agenda counts new difficult cases by pattern instead of naming them; a case followed before this
revision has no patterns until its next routing decision.

Forward-only: there is no downgrade; to go back, restore a backup.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "referral",
        sa.Column("referral_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("agency_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("referral_id"),
        schema="conference",
    )
    op.create_index(op.f("ix_conference_referral_case_id"), "referral", ["case_id"], unique=False, schema="conference")
    with op.batch_alter_table("case_state", schema="conference") as batch_op:
        batch_op.add_column(sa.Column("patterns", sa.JSON(), nullable=False, server_default="[]"))
    # The default only fills the existing rows; the model sets the value of every new one.
    with op.batch_alter_table("case_state", schema="conference") as batch_op:
        batch_op.alter_column("patterns", server_default=None)
