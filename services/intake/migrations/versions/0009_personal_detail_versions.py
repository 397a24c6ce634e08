"""訂正: each correction of a member's personal details, as a version with who, why and the previous values

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 01:10:00.000000

`personal_detail_version` keeps one row per correction: the case and member position, the version it
made (the details as submitted are version 1), the fields it changed, their previous values as the
ciphertexts `member.personal` held, who corrected, the reason code, the household's request and a note
kept in intake. It starts empty.

Forward-only: there is no downgrade; to go back, restore a backup.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "personal_detail_version",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("previous", sa.JSON(), nullable=False),
        sa.Column("corrected_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["intake.case.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "position", "version"),
        schema="intake",
    )
    op.create_index(
        op.f("ix_intake_personal_detail_version_case_id"),
        "personal_detail_version",
        ["case_id"],
        unique=False,
        schema="intake",
    )
