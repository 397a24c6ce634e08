"""Contacts with new facts and 転居: the case's urgency in force, transfer links, consents covering a municipality

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 19:00:00.000000

A case opened before this revision takes its opening consultation's urgency: contacts before it never
changed the urgency (their own was not published), so that is the urgency in force. Consents given
before it cover no municipality, so no personal details follow a household that moves under them.

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
    with op.batch_alter_table("case", schema="intake") as batch_op:
        batch_op.add_column(
            sa.Column("urgency", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False, server_default="routine")
        )
        batch_op.add_column(sa.Column("transferred_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("transferred_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))
        batch_op.add_column(sa.Column("transfer_reason", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True))
        batch_op.add_column(
            sa.Column("transferred_to_municipality", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=True)
        )
        batch_op.add_column(
            sa.Column("transferred_to_case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True)
        )
        batch_op.add_column(
            sa.Column("transferred_from_case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True)
        )
        batch_op.add_column(
            sa.Column("transferred_from_municipality", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=True)
        )
    opening_urgency = (
        "facts ->> 'urgency'" if op.get_bind().dialect.name == "postgresql" else "json_extract(facts, '$.urgency')"
    )
    op.execute(
        f'UPDATE intake."case" SET urgency = COALESCE((SELECT {opening_urgency} FROM intake.contact '
        "WHERE contact.case_id = \"case\".id AND contact.kind = 'opening'), 'routine')"
    )
    # The default only filled the existing rows; the model sets the value of every new one.
    with op.batch_alter_table("case", schema="intake") as batch_op:
        batch_op.alter_column("urgency", server_default=None)

    with op.batch_alter_table("consent", schema="intake") as batch_op:
        batch_op.add_column(sa.Column("municipalities", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("consent", schema="intake") as batch_op:
        batch_op.alter_column("municipalities", server_default=None)
