"""Referral facts keep their version; household links are facts

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-08 10:00:00.000000

A referral's status follows the highest version of its changes (a change published late never
undoes a later one); a referral fact of before this revision has version 0 and keeps following the
changes' times. `household_link_fact` holds the lead's decisions on possible same households, so a
linked case counts once in 実件数. `marugoto metrics rebuild` fills both from the topics.

Forward-only: there is no downgrade; to go back, restore a backup.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("referral_fact", schema="metrics") as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="0"))
    # The default only fills the existing rows; the model sets the value of every new one.
    with op.batch_alter_table("referral_fact", schema="metrics") as batch_op:
        batch_op.alter_column("version", server_default=None)
    op.create_table(
        "household_link_fact",
        sa.Column("match_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("linked_case_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("linked", sa.Boolean(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("match_id"),
        schema="metrics",
    )
    op.create_index(
        op.f("ix_metrics_household_link_fact_municipality_code"),
        "household_link_fact",
        ["municipality_code"],
        unique=False,
        schema="metrics",
    )
