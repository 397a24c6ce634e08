"""Cases under 利用停止, kept off every agency's feed and queue until lifted

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 22:15:00.000000

`restricted_case` follows intake's UseRestrictionChanged; it starts empty.

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
    op.create_table(
        "restricted_case",
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("case_id"),
        schema="router",
    )
