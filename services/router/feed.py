"""Each agency's feed (the coordinators' view of what was routed to them): entries numbered 1, 2, 3…
per agency in commit order, so a reader resumes from a cursor without gaps, and the same entry on Kafka.

An entry tells its agency only what it needs (minimum necessary): a partner learns the issue tags it
was engaged for, the case's owner the whole household.
"""

from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import exists, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, or_, select

from services.router import rules as routing
from services.router.batch import PendingFeedEntry, RoutingBatch
from services.router.cases import SOURCE, CaseView, ReferralView, is_owner, stage
from services.router.directories import MunicipalityConfig
from services.router.models import FeedCounter, FeedEntry, RestrictedCase, RouterOutbox
from shared.consultation import ConsultationSummary
from shared.disclosure import stage_disclosure
from shared.events import AgencyFeedEntry

FeedEntryKind = Literal[
    "referral_requested",
    "status_changed",
    "reminder",
    "escalated",
    "monitoring_due",
    "monitoring_overdue",
    "use_restricted",
    "use_restriction_lifted",
    "personal_details_corrected",
]
# What a case under 利用停止 still puts on a feed: the lead's notice that it began (and the return of the
# case to its agencies' feeds when it is lifted). Every other entry of such a case is neither written
# nor shown (services/router/restriction.py).
RESTRICTION_NOTICES = frozenset({"use_restricted", "use_restriction_lifted"})
# What a feed entry tells its agency, on HTTP and Kafka alike (names for the disclosure ledger).
FEED_ENTRY_FIELDS = (
    "referral_id", "case_id", "kind", "status", "tier", "agency_type", "rule_id", "issues", "area", "deadline", "at",
)  # fmt: skip


def add_entry(
    batch: RoutingBatch,
    config: MunicipalityConfig,
    facts: CaseView,
    referral: ReferralView,
    kind: FeedEntryKind,
    *,
    deadline: datetime | None = None,
) -> None:
    """Add an entry to the referral's agency's feed (and its Kafka feed, keyed by agency), numbered at commit.

    The entry's deadline is the referral's, unless another is given (a plan's monitoring falling due).
    """
    if kind not in RESTRICTION_NOTICES and batch.get(RestrictedCase, referral.case_id) is not None:
        return  # 利用停止: the case is on no agency's feed until it is lifted
    consultation = ConsultationSummary.model_validate(facts.consultation)
    agency = config.directory.agency(referral.agency_id)
    if routing.is_confidential(consultation, config.rules) and routing.TIER1_PLACE_ROLE in agency.roles:
        # The rules never engage such an agency; this keeps a confidential case off its feed regardless.
        return
    household = sorted({tag.value for member in consultation.household for tag in member.issues})
    # Minimum necessary: a partner learns only the tags it was engaged for, the owner the whole household.
    issues = household if is_owner(referral) else [tag for tag in household if tag in referral.tags]
    # What the entry says of the referral, on the HTTP feed and on Kafka alike.
    shown = {
        "status": referral.status,
        "tier": referral.tier,
        "agency_type": referral.agency_type,
        "rule_id": referral.rule_id,
        "issues": issues,
        "area": consultation.area,
    }
    at = datetime.now(UTC)
    # The FeedEntry row, but for its sequence: numbered when the transaction commits (number_feed_entries).
    entry = {
        "agency_id": referral.agency_id,
        "referral_id": referral.id,
        "case_id": referral.case_id,
        "municipality_code": facts.municipality_code,
        "kind": kind,
        "body": {**shown, "deadline": due.isoformat() if (due := deadline or referral.deadline) else None},
        "at": at,
    }
    published = {
        "agency_id": referral.agency_id,
        "referral_id": referral.id,
        "case_id": referral.case_id,
        "kind": kind,
        **shown,
        "at": at,
    }
    batch.pending_feed.append(PendingFeedEntry(entry=entry, facts=facts, published=published))
    batch.before_commit(number_feed_entries)
    stage_disclosure(
        batch,
        RouterOutbox,
        source=SOURCE,
        municipality_code=facts.municipality_code,
        case_id=referral.case_id,
        recipient=referral.agency_id,
        channel="feed_entry",
        fields=FEED_ENTRY_FIELDS,
        basis="engagement",
        basis_ref=referral.id,
        at=at,
    )


def feed_entries(
    session: Session, agency_id: str, *, after: int, limit: int, municipalities: frozenset[str] | None = None
) -> list[FeedEntry]:
    """An agency's feed entries after a cursor (a sequence number), in order; only of `municipalities` when given.

    The entries of a case under 利用停止 are left out, but for the notices of it.
    """
    restricted = select(RestrictedCase.case_id).where(RestrictedCase.case_id == FeedEntry.case_id)
    query = (
        select(FeedEntry)
        .where(FeedEntry.agency_id == agency_id, col(FeedEntry.sequence) > after)
        .where(or_(~exists(restricted), col(FeedEntry.kind).in_(RESTRICTION_NOTICES)))
        .order_by(col(FeedEntry.sequence))
        .limit(limit)
    )
    if municipalities is not None:
        query = query.where(col(FeedEntry.municipality_code).in_(municipalities))
    return list(session.exec(query).all())


def number_feed_entries(batch: RoutingBatch) -> None:
    """Give the transaction's feed entries their agencies' next sequence numbers, just before it commits.

    The counter row of each agency stays locked until the commit, so the agency's entries become
    visible in sequence order: a reader that has seen entry n has seen every entry below n (an
    autoincrement id makes no such promise: a lower id could still be uncommitted). Locking at the
    very end keeps the lock short, and locking agencies in id order means two transactions that
    feed the same agencies never wait on each other in a cycle.
    """
    pending, batch.pending_feed = batch.pending_feed, []
    if not pending:
        return
    batch.flush()  # every other row lock of the transaction is taken before the first counter lock
    batch.flush_rows()
    for agency_id in sorted({item.entry["agency_id"] for item in pending}):
        mine = [item for item in pending if item.entry["agency_id"] == agency_id]
        last = _reserve_sequences(batch, agency_id, len(mine))
        for sequence, item in enumerate(mine, start=last - len(mine) + 1):
            batch.add_row(FeedEntry, sequence=sequence, **item.entry)
            stage(batch, item.facts, AgencyFeedEntry(entry_id=sequence, **item.published), subject=agency_id)
    batch.flush()


def _reserve_sequences(session: Session, agency_id: str, count: int) -> int:
    """Add `count` to the agency's counter (locking its row until commit); returns the new last sequence."""
    increment = (
        update(FeedCounter)
        .where(col(FeedCounter.agency_id) == agency_id)
        .values(last_sequence=col(FeedCounter.last_sequence) + count)
        .returning(col(FeedCounter.last_sequence))
        # No FeedCounter object is loaded in these transactions: the session's thousands of others
        # need not be searched for one to update.
        .execution_options(synchronize_session=False)
    )
    last = session.exec(increment).scalar_one_or_none()
    if last is None:
        # The agency's first entry: create its counter; a concurrent first writer's row wins harmlessly.
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.exec(insert(FeedCounter).values(agency_id=agency_id, last_sequence=0).on_conflict_do_nothing())
        last = session.exec(increment).scalar_one()
    return int(last)
