"""The intake tables as the models defined them when migrations began.

Revision ID: 0001
Revises:
Create Date: 2026-12-01 22:28:59.334614

Forward-only: there is no downgrade; to go back, restore a backup.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agency_credential",
        sa.Column("agency_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("secret_hash", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("agency_id"),
        schema="intake",
    )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("agency_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema="intake",
    )
    op.create_index(op.f("ix_intake_audit_log_agency_id"), "audit_log", ["agency_id"], unique=False, schema="intake")
    op.create_index(op.f("ix_intake_audit_log_case_id"), "audit_log", ["case_id"], unique=False, schema="intake")
    if op.get_bind().dialect.name == "postgresql":
        # The audit log refuses UPDATE and DELETE, whoever asks.
        op.execute(
            "CREATE FUNCTION intake.audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON intake.audit_log "
            "FOR EACH ROW EXECUTE FUNCTION intake.audit_log_append_only()"
        )

    op.create_table(
        "case",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("submitted_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=True),
        sa.Column("decision_sequence", sa.Integer(), nullable=True),
        sa.Column("lead", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("patterns", sa.JSON(), nullable=False),
        sa.Column("resource_gaps", sa.JSON(), nullable=False),
        sa.Column("possible_duplicates", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema="intake",
    )
    op.create_index(
        op.f("ix_intake_case_municipality_code"), "case", ["municipality_code"], unique=False, schema="intake"
    )
    op.create_index(op.f("ix_intake_case_submitted_by"), "case", ["submitted_by"], unique=False, schema="intake")

    op.create_table(
        "engagement",
        sa.Column("referral_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("agency_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("agency_type", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("referral_id"),
        schema="intake",
    )
    op.create_index(op.f("ix_intake_engagement_agency_id"), "engagement", ["agency_id"], unique=False, schema="intake")
    op.create_index(op.f("ix_intake_engagement_case_id"), "engagement", ["case_id"], unique=False, schema="intake")

    op.create_table(
        "idempotency_record",
        sa.Column("agency_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("agency_id", "key"),
        schema="intake",
    )

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("topic", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
        schema="intake",
    )
    op.create_index(op.f("ix_intake_outbox_published_at"), "outbox", ["published_at"], unique=False, schema="intake")

    op.create_table(
        "processed_event",
        sa.Column("consumer", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
        schema="intake",
    )

    op.create_table(
        "consent",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("given_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("share_with", sa.JSON(), nullable=False),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("recorded_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("revocation_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["intake.case.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        schema="intake",
    )
    op.create_index(op.f("ix_intake_consent_case_id"), "consent", ["case_id"], unique=False, schema="intake")

    op.create_table(
        "contact",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("submitted_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["intake.case.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        schema="intake",
    )
    op.create_index(op.f("ix_intake_contact_case_id"), "contact", ["case_id"], unique=False, schema="intake")

    op.create_table(
        "member",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("relation", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("age", sa.Integer(), nullable=True),
        sa.Column("issues", sa.JSON(), nullable=False),
        sa.Column("personal", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["intake.case.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        schema="intake",
    )
    op.create_index(op.f("ix_intake_member_case_id"), "member", ["case_id"], unique=False, schema="intake")

    op.create_table(
        "match_key",
        sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("member_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["intake.member.id"],
        ),
        sa.PrimaryKeyConstraint("digest", "member_id"),
        schema="intake",
    )
    op.create_index(op.f("ix_intake_match_key_case_id"), "match_key", ["case_id"], unique=False, schema="intake")
