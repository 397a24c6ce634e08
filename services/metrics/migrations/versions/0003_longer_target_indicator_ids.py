"""Targets take indicator ids longer than 20 characters

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-15 10:00:00.000000

Ids such as JUSO-SUPPORT-MEETINGS (支援会議の開催回数) and OPS-DEADLINE-BREACHES have 21 characters:
a target set for one of them did not fit `target.indicator`. Municipalities running the
重層的支援体制整備事業 set targets for the meetings they hold in their 実施計画 (Art. 106-5), so the
column takes 40. Manual values keep 20: their ids are the catalog's short ones.

Forward-only: there is no downgrade; to go back, restore a backup.
"""

from collections.abc import Sequence

import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("target", schema="metrics") as batch_op:
        batch_op.alter_column(
            "indicator",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=20),
            type_=sqlmodel.sql.sqltypes.AutoString(length=40),
            existing_nullable=False,
        )
