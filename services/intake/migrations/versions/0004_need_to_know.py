"""Need-to-know: possible same households, the disclosure ledger, the 支援会議 roster, referral versions

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 15:04:23.189690

The disclosure ledger is append-only, as the audit log is: on PostgreSQL a trigger refuses UPDATE
and DELETE. Engagements learnt before this revision get version 0, which any later change overrides.

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
    op.create_table(
        "disclosure",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("recipient", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("basis", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("basis_ref", sa.Text(), nullable=True),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("released_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema="intake",
    )
    with op.batch_alter_table("disclosure", schema="intake") as batch_op:
        batch_op.create_index(batch_op.f("ix_intake_disclosure_case_id"), ["case_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # The ledger answers a 開示請求: nobody may rewrite or remove what was disclosed.
        op.execute(
            "CREATE FUNCTION intake.disclosure_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'disclosure is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER disclosure_append_only BEFORE UPDATE OR DELETE ON intake.disclosure "
            "FOR EACH ROW EXECUTE FUNCTION intake.disclosure_append_only()"
        )

    op.create_table(
        "household_match",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("matched_case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("decided_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        schema="intake",
    )
    with op.batch_alter_table("household_match", schema="intake") as batch_op:
        batch_op.create_index(batch_op.f("ix_intake_household_match_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_intake_household_match_matched_case_id"), ["matched_case_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_intake_household_match_municipality_code"), ["municipality_code"], unique=False
        )

    op.create_table(
        "support_meeting_member",
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("agency_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("member_from", sa.Date(), nullable=False),
        sa.Column("member_until", sa.Date(), nullable=True),
        sa.Column("confidentiality_acknowledged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.PrimaryKeyConstraint("municipality_code", "agency_id"),
        schema="intake",
    )

    with op.batch_alter_table("engagement", schema="intake") as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="0"))
    # The default only fills the existing rows; the model sets the value of every new one.
    with op.batch_alter_table("engagement", schema="intake") as batch_op:
        batch_op.alter_column("version", server_default=None)
