"""Exactly-once by position: the consumer's position per topic-partition, and a bounded window of ids

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 02:00:00.000000

`consumer_position` holds, per topic-partition, the next offset to apply, written in the same transaction
as the effects (shared/inbox.py). `processed_event` keeps the ids of the events applied lately, pruned
past the dedup window (an index on `processed_at` for that), and `kept` marks replayed dead letters,
whose ids outlive it. The table starts empty: until a partition has a stored position, its records are
recognised by their ids, as before.

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
        "consumer_position",
        sa.Column("consumer", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("topic", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "topic", "partition"),
        schema="router",
    )
    with op.batch_alter_table("processed_event", schema="router") as batch_op:
        batch_op.add_column(sa.Column("kept", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index(
        op.f("ix_router_processed_event_processed_at"),
        "processed_event",
        ["processed_at"],
        unique=False,
        schema="router",
    )
