"""Retention and erasure: when a case ended (終結) and when it was erased; a deadline on each request

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 01:20:00.000000

`case.closed_at` is the 終結 intake learns from conference's CaseLifeChanged (null while the case is
open or after it reopened); `case.erased_at` and `case.erasure_reason` say that the case's personal
details were erased and why (retention or a 消去 request), and nothing of what was erased.
`subject_request.deadline` is when the answer to a request is due. Existing cases start not closed.

The disclosure ledger stays append-only, with one exception an erasure needs: clearing the free-text
`note` of a row (an emergency release's reason, which may name people). Every other column of a row is
still refused any change, and no row can be deleted.

Forward-only: there is no downgrade; to go back, restore a backup.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("case", schema="intake") as batch_op:
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("erasure_reason", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True)
        )
    with op.batch_alter_table("subject_request", schema="intake") as batch_op:
        batch_op.add_column(sa.Column("deadline", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION intake.disclosure_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN "
            "IF TG_OP = 'UPDATE' AND NEW.note IS NULL AND "
            "(NEW.id, NEW.case_id, NEW.municipality_code, NEW.recipient, NEW.channel, NEW.fields::text, NEW.basis, "
            "NEW.basis_ref, NEW.outcome, NEW.released_by, NEW.at) IS NOT DISTINCT FROM "
            "(OLD.id, OLD.case_id, OLD.municipality_code, OLD.recipient, OLD.channel, OLD.fields::text, OLD.basis, "
            "OLD.basis_ref, OLD.outcome, OLD.released_by, OLD.at) "
            "THEN RETURN NEW; END IF; "
            "RAISE EXCEPTION 'disclosure is append-only (an erasure may only clear a note)'; "
            "END $$"
        )
