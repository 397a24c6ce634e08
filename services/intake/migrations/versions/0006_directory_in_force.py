"""The directory in force per municipality, from the router's DirectoryPublished; the case's directory version

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 20:00:00.000000

`directory_in_force` holds the latest version the router published for each municipality, so a restart
keeps a change made through its admin API. `case.directory_version` names the directory a consultation's
area was accepted under; cases opened before this revision have none.

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


def upgrade() -> None:
    op.create_table(
        "directory_in_force",
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("version", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("municipality_code"),
        schema="intake",
    )
    with op.batch_alter_table("case", schema="intake") as batch_op:
        batch_op.add_column(sa.Column("directory_version", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))

