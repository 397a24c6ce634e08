"""The household's requests under 個人情報保護法 (利用停止 first); the case's 利用停止 in effect

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 22:10:00.000000

`subject_request` records each request with who asked (a code), who recorded it and its outcome;
`case.use_restricted_since` says a 利用停止 is in effect. Both start empty.

Forward-only: there is no downgrade; to go back, restore a backup.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "subject_request",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("requested_by", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("close_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["intake.case.id"]),
        sa.PrimaryKeyConstraint("id"),
        schema="intake",
    )
    op.create_index(op.f("ix_intake_subject_request_case_id"), "subject_request", ["case_id"], unique=False, schema="intake")
    with op.batch_alter_table("case", schema="intake") as batch_op:
        batch_op.add_column(sa.Column("use_restricted_since", sa.DateTime(timezone=True), nullable=True))
