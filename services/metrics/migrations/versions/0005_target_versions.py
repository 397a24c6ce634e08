"""Targets keep every version: who set each, when and why

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-29 10:00:00.000000

A target (目標) is set for a fiscal year before it begins (seed L3331, L3469) and the year is reported
against it; a later change was an overwrite that left no trace. `target` now holds one row per version
(`version` joins the primary key) with the `reason` for it, required by the service once the year has
begun. The rows already stored become version 1 with no reason: they are kept as they were set.

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


def upgrade() -> None:
    with op.batch_alter_table("target", schema="metrics") as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(
            sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False, server_default="")
        )
        # SQLite's batch copy takes the new key in place of the old one, which it knows by no name.
        if op.get_bind().dialect.name != "sqlite":
            batch_op.drop_constraint("target_pkey", type_="primary")
        batch_op.create_primary_key("target_pkey", ["municipality_code", "fiscal_year", "indicator", "version"])
    # The defaults only fill the existing rows; the service sets both on every new one.
    with op.batch_alter_table("target", schema="metrics") as batch_op:
        batch_op.alter_column("version", server_default=None)
        batch_op.alter_column("reason", server_default=None)
