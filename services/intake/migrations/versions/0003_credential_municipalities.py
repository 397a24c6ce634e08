"""Credentials name the municipalities (tenants) they serve

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 15:20:00.000000

A credential issued before this revision served every municipality; it now serves none until an
operator issues it again with `marugoto agencies add --municipalities …`, so no tenant is reached by
a credential that was never meant for it.

Forward-only: there is no downgrade; to go back, restore a backup.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agency_credential", schema="intake") as batch_op:
        batch_op.add_column(sa.Column("municipalities", sa.JSON(), nullable=False, server_default="[]"))
    # The default only fills the existing rows; the model sets the value of every new one.
    with op.batch_alter_table("agency_credential", schema="intake") as batch_op:
        batch_op.alter_column("municipalities", server_default=None)
