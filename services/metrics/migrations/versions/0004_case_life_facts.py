"""Facts of a case's life after routing: 支援プラン versions, monitorings, 終結/見守り, 転居

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-22 10:00:00.000000

`plan_version_fact` (a plan version's drafting, approval — the 支援決定 — and supersession),
`monitoring_fact` (each monitoring or evaluation, and whether on time), `case_life_fact` (each change
of a case's life: closed, watching, reopened, active) and `transfer_fact` (each 転居) hold the facts of
SupportPlanChanged, MonitoringRecorded, CaseLifeChanged and CaseTransferred. The tables start empty;
`marugoto metrics rebuild` fills them from the topics.

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


def _index(table: str, column: str) -> None:
    op.create_index(op.f(f"ix_metrics_{table}_{column}"), table, [column], unique=False, schema="metrics")


def upgrade() -> None:
    op.create_table(
        "plan_version_fact",
        sa.Column("plan_version_id", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("plan_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("drafted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_at_meeting", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("plan_version_id"),
        schema="metrics",
    )
    _index("plan_version_fact", "case_id")
    _index("plan_version_fact", "municipality_code")

    op.create_table(
        "monitoring_fact",
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("plan_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("plan_version", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("on_time", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
        schema="metrics",
    )
    _index("monitoring_fact", "case_id")
    _index("monitoring_fact", "municipality_code")

    op.create_table(
        "case_life_fact",
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("main_agency", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("watch_until", sa.Date(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
        schema="metrics",
    )
    _index("case_life_fact", "case_id")
    _index("case_life_fact", "municipality_code")

    op.create_table(
        "transfer_fact",
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("to_case_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("from_municipality", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("to_municipality", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=True),
        sa.Column("transferred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
        schema="metrics",
    )
    _index("transfer_fact", "from_municipality")
    _index("transfer_fact", "to_municipality")
