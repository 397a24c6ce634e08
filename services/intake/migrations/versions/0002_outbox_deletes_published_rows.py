"""The outbox keeps only rows still to publish: drop published_at

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 06:44:04.737569

The relay now deletes a row once the broker acknowledges it (shared/outbox.py). Rows published
before this revision are deleted here, or the relay would publish them all again.

Forward-only: there is no downgrade; to go back, restore a backup.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute('DELETE FROM "intake".outbox WHERE published_at IS NOT NULL')
    with op.batch_alter_table("outbox", schema="intake") as batch_op:
        batch_op.drop_index(batch_op.f("ix_intake_outbox_published_at"))
        batch_op.drop_column("published_at")
