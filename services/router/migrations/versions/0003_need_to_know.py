"""Referrals carry the tags they were engaged for and a version; feed entries carry their municipality

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 16:00:00.000000

Existing rows are filled in as the new code would have written them: a referral's version is 1 plus
its recorded moves; a partner's tags are read back from the reasons its decision recorded ("tag X →
type"), a re-routed referral's from the referral it replaced, and the case's owners keep none (the
whole picture). A feed entry gets its case's municipality, and a partner's entries lose the tags it
was not engaged for, so that reading a feed again releases no more than its agency needs to know.

Forward-only: there is no downgrade; to go back, restore a backup.
"""

import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# services/router/rules.OWNER_RULES as of this revision (a migration does not import the code it outlives).
OWNER_RULES = {"lead", "tier1_place", "general_window", "return_to_community", "reroute_to_lead", "escalation"}
TAG_IN_REASON = re.compile(r"tag (\w+) → ")

referral = sa.table(
    "referral",
    sa.column("id"),
    sa.column("decision_id"),
    sa.column("municipality_code"),
    sa.column("agency_id"),
    sa.column("rule_id"),
    sa.column("replaces_referral_id"),
    sa.column("requested_at"),
    sa.column("tags", sa.JSON),
    sa.column("version", sa.Integer),
    schema="router",
)
transition = sa.table("referral_transition", sa.column("referral_id"), schema="router")
decision = sa.table("decision", sa.column("id"), sa.column("engaged", sa.JSON), schema="router")
feed_entry = sa.table(
    "feed_entry",
    sa.column("agency_id"),
    sa.column("sequence"),
    sa.column("referral_id"),
    sa.column("municipality_code"),
    sa.column("body", sa.JSON),
    schema="router",
)


def upgrade() -> None:
    with op.batch_alter_table("referral", schema="router") as batch_op:
        batch_op.add_column(sa.Column("tags", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    with op.batch_alter_table("feed_entry", schema="router") as batch_op:
        batch_op.add_column(
            sa.Column(
                "municipality_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False, server_default=""
            )
        )
    bind = op.get_bind()
    moves = sa.select(sa.func.count()).where(transition.c.referral_id == referral.c.id).scalar_subquery()
    bind.execute(referral.update().values(version=1 + moves))
    municipality = (
        sa.select(referral.c.municipality_code).where(referral.c.id == feed_entry.c.referral_id).scalar_subquery()
    )
    bind.execute(feed_entry.update().values(municipality_code=sa.func.coalesce(municipality, "")))
    tags = _fill_referral_tags(bind)
    _redact_feed_entries(bind, tags)
    # The defaults only fill the existing rows; the models set the value of every new one.
    with op.batch_alter_table("referral", schema="router") as batch_op:
        batch_op.alter_column("tags", server_default=None)
        batch_op.alter_column("version", server_default=None)
    with op.batch_alter_table("feed_entry", schema="router") as batch_op:
        batch_op.alter_column("municipality_code", server_default=None)


def _fill_referral_tags(bind: sa.Connection) -> dict[str, tuple[str, list[str]]]:
    """Each referral's (rule, tags), written to the rows of partners; owners keep []."""
    engaged: dict[str, list[dict[str, Any]]] = {}
    found: dict[str, tuple[str, list[str]]] = {}
    rows = bind.execute(
        sa.select(
            referral.c.id,
            referral.c.decision_id,
            referral.c.agency_id,
            referral.c.rule_id,
            referral.c.replaces_referral_id,
        ).order_by(referral.c.requested_at, referral.c.id)
    ).all()
    for row in rows:
        if row.rule_id in OWNER_RULES:
            tags: list[str] = []
        elif row.rule_id == "reroute":
            tags = list(found.get(row.replaces_referral_id, ("", []))[1])
        else:
            if row.decision_id not in engaged:
                stored = bind.execute(sa.select(decision.c.engaged).where(decision.c.id == row.decision_id)).scalar()
                engaged[row.decision_id] = list(stored or [])
            reasons = [e.get("reason", "") for e in engaged[row.decision_id] if e.get("agency_id") == row.agency_id]
            tags = list(dict.fromkeys(tag for reason in reasons for tag in TAG_IN_REASON.findall(reason)))
        found[row.id] = (row.rule_id, tags)
        if tags:
            bind.execute(referral.update().where(referral.c.id == row.id).values(tags=tags))
    return found


def _redact_feed_entries(bind: sa.Connection, referrals: dict[str, tuple[str, list[str]]]) -> None:
    """Keep on a partner's entries only the tags it was engaged for (none, if they could not be read back)."""
    rows = bind.execute(
        sa.select(feed_entry.c.agency_id, feed_entry.c.sequence, feed_entry.c.referral_id, feed_entry.c.body)
    ).all()
    for row in rows:
        rule_id, tags = referrals.get(row.referral_id, ("", []))
        if rule_id in OWNER_RULES and not tags:
            continue
        body = dict(row.body or {})
        issues = [tag for tag in body.get("issues", []) if tag in tags]
        if issues == body.get("issues", []):
            continue
        bind.execute(
            feed_entry.update()
            .where(feed_entry.c.agency_id == row.agency_id, feed_entry.c.sequence == row.sequence)
            .values(body={**body, "issues": issues})
        )
