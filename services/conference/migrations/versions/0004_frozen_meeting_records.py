"""Held meetings keep their record; a decision may correct an earlier one

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 17:00:00.000000

A held meeting keeps when it was held and the directory version its record saw (its agenda, for a
推進会議, was already a column); a decision that corrects another names it instead of editing it.
Meetings held before this revision have neither: their records say so rather than being rebuilt.

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
    with op.batch_alter_table("meeting", schema="conference") as batch_op:
        batch_op.add_column(sa.Column("held_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("directory_version", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
    with op.batch_alter_table("case_decision", schema="conference") as batch_op:
        batch_op.add_column(sa.Column("corrects", sa.Integer(), nullable=True))
