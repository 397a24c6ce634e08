"""Router's logic: decisions and their reasons, referrals through their lifecycle, re-routing and
deadlines, so that no case is ever left without an owner (no たらい回し).

Functions take an open session and run inside the caller's transaction; events are staged in the
outbox of that same transaction.
"""

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import event, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from services.router import rules as routing
from services.router.models import (
    CaseFacts,
    DecisionPublic,
    DirectoryVersion,
    FeedCounter,
    FeedEntry,
    Referral,
    ReferralPublic,
    ReferralTransition,
    RouterOutbox,
    RoutingDecision,
    Timer,
    TransitionCreate,
)
from shared import bulk, db, outbox
from shared.auth import Principal, Scope
from shared.calendar import BusinessHours
from shared.consultation import ConsultationSummary
from shared.consumer import PermanentEventError
from shared.db import TransactionState
from shared.directory import Agency, Directory, DirectoryError, UnknownArea, load_directory
from shared.disclosure import stage_disclosure
from shared.events import (
    AgencyFeedEntry,
    ConsultationReceived,
    Envelope,
    EventData,
    ReferralOverdue,
    ReferralRequested,
    ReferralStatus,
    ReferralStatusChanged,
    RoutingDecided,
    new_event,
)
from shared.ids import new_id
from shared.problems import Problem

SOURCE = "/marugoto/router"
DecisionKind = Literal["initial", "backup", "prefecture_support", "return_to_community"]

# FHIR Task states; each maps to the states it may move to.
TRANSITIONS: dict[str, frozenset[str]] = {
    "requested": frozenset({"received", "accepted", "rejected", "cancelled"}),
    "received": frozenset({"accepted", "rejected", "cancelled"}),
    "accepted": frozenset({"in_progress", "completed", "cancelled"}),
    "in_progress": frozenset({"on_hold", "completed", "failed", "cancelled"}),
    "on_hold": frozenset({"in_progress", "completed", "failed", "cancelled"}),
    "rejected": frozenset(),
    "completed": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}
REJECT_REASONS = frozenset({"out_of_scope", "no_capacity", "not_in_service_area", "conflict_of_interest", "other"})
CLOSE_REASONS = frozenset(
    {"goals_met", "moved_away", "declined_by_person", "handed_over", "no_contact", "deceased", "duplicate", "other"}
)
# Referrals the lead holds as the case's owner of last resort: it may not reject them.
LAST_RESORT_RULES = frozenset({routing.LEAD.id, routing.REROUTE_TO_LEAD.id, routing.ESCALATION.id})
AWAITING = frozenset({"requested", "received"})
LIVE = frozenset({"requested", "received", "accepted", "in_progress", "on_hold"})
# What a feed entry tells its agency, on HTTP and Kafka alike (names for the disclosure ledger).
FEED_ENTRY_FIELDS = (
    "referral_id", "case_id", "kind", "status", "tier", "agency_type", "rule_id", "issues", "area", "deadline", "at",
)  # fmt: skip


class UnknownMunicipality(PermanentEventError):
    """A consultation for a municipality the router has no directory for."""


class UnroutableConsultation(PermanentEventError):
    """A consultation the rules cannot place (e.g. an area not in the municipality's tree)."""


class NoOwner(UnroutableConsultation):
    """The rules engaged no agency; directory validation makes this unreachable, this is the safety net."""


# --- configuration: directories, rules and deadlines per municipality [LOCAL] ------------------


class RoutingDeadlines(BaseModel):
    """The `routing:` section of a directory file: opening hours and referral deadlines."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    business_hours: BusinessHours = BusinessHours()
    reminder_after_business_hours: float = Field(default=8, gt=0)
    escalate_after_business_hours: float = Field(default=16, gt=0)


@dataclass(frozen=True)
class MunicipalityConfig:
    """A municipality's directory, rules and deadlines, as one directory version."""

    version: str
    directory: Directory
    rules: routing.RuleSet
    deadlines: RoutingDeadlines


@dataclass(frozen=True)
class Clock:
    """Turns business hours into moments: a real calendar, or (tests, demos) a shortened wall clock."""

    business_hour_s: float = 3600.0
    wall: bool = False

    def after(self, start: datetime, business_hours: float, hours: BusinessHours) -> datetime:
        """The moment `business_hours` after `start`."""
        if self.wall:
            return start + timedelta(seconds=business_hours * self.business_hour_s)
        return hours.add(start, business_hours * self.business_hour_s / 3600.0)


def body_version(body: Mapping[str, Any]) -> str:
    """A short content hash of a directory body (directory, rules and deadlines together)."""
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def parse_config(body: Mapping[str, Any]) -> MunicipalityConfig:
    """Validate a directory body (the scenario-file shape, plus `routing:`); raises DirectoryError."""
    directory = load_directory(body)
    try:
        rules = routing.RuleSet.from_mapping(body)
        deadlines = RoutingDeadlines.model_validate(body.get("routing") or {})
    except ValueError as error:
        raise DirectoryError(str(error)) from None
    routing.check_owners(directory, rules)
    return MunicipalityConfig(version=body_version(body), directory=directory, rules=rules, deadlines=deadlines)


def store_directory(session: Session, body: Mapping[str, Any], *, source: str, activate: bool) -> DirectoryVersion:
    """Record a directory version (validated); activate it if asked or if it is new."""
    config = parse_config(body)
    code = config.directory.municipality.code
    row = session.get(DirectoryVersion, (code, config.version))
    if row is None:
        row = DirectoryVersion(municipality_code=code, version=config.version, body=dict(body), source=source)
        session.add(row)
    elif activate:
        row.activated_at = datetime.now(UTC)
        session.add(row)
    return row


def seed_directories(session: Session, bodies: Mapping[str, Mapping[str, Any]]) -> None:
    """Record the configured files' directories; a file that changed becomes the version in force."""
    for body in bodies.values():
        store_directory(session, body, source="file", activate=False)


def active_version_id(session: Session, municipality_code: str) -> str | None:
    """The version id of the directory in force for a municipality (without reading its body)."""
    query = (
        select(DirectoryVersion.version)
        .where(DirectoryVersion.municipality_code == municipality_code)
        .order_by(col(DirectoryVersion.activated_at).desc())
    )
    return session.exec(query).first()


def active_version(session: Session, municipality_code: str) -> DirectoryVersion | None:
    """The directory version in force for a municipality."""
    query = (
        select(DirectoryVersion)
        .where(DirectoryVersion.municipality_code == municipality_code)
        .order_by(col(DirectoryVersion.activated_at).desc())
    )
    return session.exec(query).first()


_VERSIONS_IN_FORCE: TransactionState[dict[str, str | None]] = TransactionState("router_versions_in_force", dict)


class ConfigCache:
    """Parsed configurations by version (a version's content never changes)."""

    def __init__(self) -> None:
        self._by_version: dict[tuple[str, str], MunicipalityConfig] = {}

    def active(self, session: Session, municipality_code: str) -> MunicipalityConfig:
        """The configuration in force, or UnknownMunicipality.

        The version in force is read once per transaction (a batch of consultations is decided with
        one directory), and a version's body is parsed once per process.
        """
        in_force = _VERSIONS_IN_FORCE.get(session)
        if municipality_code not in in_force:
            in_force[municipality_code] = active_version_id(session, municipality_code)
        version = in_force[municipality_code]
        if version is None:
            raise UnknownMunicipality(f"no directory for municipality {municipality_code}")
        key = (municipality_code, version)
        if key not in self._by_version:
            row = session.exec(
                select(DirectoryVersion).where(
                    DirectoryVersion.municipality_code == municipality_code, DirectoryVersion.version == version
                )
            ).one()
            self._by_version[key] = parse_config(row.body)
        return self._by_version[key]


@dataclass(frozen=True)
class Context:
    """What routing needs besides the session: configurations and the clock."""

    configs: ConfigCache
    clock: Clock


# --- the first decision -----------------------------------------------------------------------


_DECIDED_BEFORE: TransactionState[set[str]] = TransactionState("router_decided_before", set)
_DECIDED: TransactionState[dict[str, DecisionPublic]] = TransactionState("router_decided", dict)


def prepare_batch(session: Session, envelopes: Sequence[Envelope[Any]]) -> None:
    """Find in one query which of a batch's consultations were decided before (redeliveries, replays).

    Without it each consultation would ask on its own, and each such query would first write the rows
    staged so far: the batch would be written in as many small pieces as it has consultations.
    """
    case_ids = {e.data.case_id for e in envelopes if isinstance(e.data, ConsultationReceived)}
    found = _DECIDED_BEFORE.get(session)  # made even when empty: the batch has been prepared
    found.update(db.present(session, col(RoutingDecision.case_id), case_ids))


def _decided_before(session: Session, case_id: str) -> RoutingDecision | None:
    prepared = _DECIDED_BEFORE.peek(session)
    if prepared is not None and case_id not in prepared:
        return None  # prepare_batch found no decision for it
    return latest_decision(session, case_id)


@dataclass(frozen=True, slots=True)
class NewCase:
    """A case's facts as just recorded in this transaction (the row waits in the bulk rows)."""

    case_id: str
    municipality_code: str
    submitted_by: str
    consultation: dict[str, Any]
    received_at: datetime


CaseView = CaseFacts | NewCase
"""A case's facts, stored (ORM) or recorded in this transaction."""

ReferralView = Referral | ReferralPublic
"""A referral, stored (ORM) or requested in this transaction."""


def route(session: Session, envelope: Envelope[ConsultationReceived], ctx: Context) -> DecisionPublic:
    """Decide the case of a received consultation and request its referrals."""
    received = envelope.data
    # Decisions of this transaction (a batch) are not written yet: they are found here, and the query
    # for earlier ones need not write them, so a batch's rows are written together at its commit.
    decided = _DECIDED.get(session)
    if received.case_id in decided:
        return decided[received.case_id]
    with session.no_autoflush:
        existing = _decided_before(session, received.case_id)
    if existing is not None:
        return DecisionPublic.model_validate(existing.model_dump())
    config = ctx.configs.active(session, envelope.municipalitycode)
    try:
        decision = routing.decide(received.consultation, config.directory, config.rules)
    except UnknownArea as error:
        raise UnroutableConsultation(str(error)) from error
    # New rows of a batch are inserted in bulk (shared.bulk): nothing in the batch updates them.
    facts = NewCase(
        **bulk.add_row(
            session,
            CaseFacts,
            case_id=received.case_id,
            municipality_code=envelope.municipalitycode,
            submitted_by=received.submitted_by,
            consultation=received.consultation.model_dump(mode="json"),
            received_at=received.received_at,
        )
    )
    decided[received.case_id] = _record_decision(
        session, ctx, config, facts, decision, kind="initial", requested_by=None, previous=None
    )
    return decided[received.case_id]


def _record_decision(
    session: Session,
    ctx: Context,
    config: MunicipalityConfig,
    facts: CaseView,
    decision: routing.Decision,
    *,
    kind: DecisionKind,
    requested_by: str | None,
    previous: RoutingDecision | None,
) -> DecisionPublic:
    if not decision.engaged:
        # Never store a decision that leaves the case without an owner: it is dead-lettered (or refused)
        # with the reason, so an operator fixes the directory and replays it.
        raise NoOwner(
            f"no agency may take case {facts.case_id}: the rules engaged none under directory {config.version} "
            f"of {facts.municipality_code}; fix the directory, then replay"
        )
    now = datetime.now(UTC)
    values = bulk.add_row(
        session,
        RoutingDecision,
        id=new_id(),
        case_id=facts.case_id,
        sequence=(previous.sequence + 1) if previous else 1,
        kind=kind,
        requested_by=requested_by,
        municipality_code=facts.municipality_code,
        tier=decision.tier,
        lead=decision.lead,
        patterns=[p.model_dump() for p in decision.patterns],
        engaged=[e.model_dump() for e in decision.engaged],
        excluded=[e.model_dump() for e in decision.excluded],
        resource_gaps=[g.model_dump() for g in decision.resource_gaps],
        directory_version=config.version,
        decided_at=now,
    )
    row = DecisionPublic.model_construct(**values)
    _stage(
        session,
        facts,
        RoutingDecided(
            case_id=facts.case_id,
            decision_id=row.id,
            sequence=row.sequence,
            kind=kind,
            tier=decision.tier,
            patterns=decision.pattern_ids,
            lead=decision.lead,
            engaged=[e.model_dump() for e in decision.engaged],
            resource_gaps=decision.gap_types,
            directory_version=config.version,
            urgency=facts.consultation.get("urgency", "routine"),
            decided_at=now,
        ),
    )
    # A later decision adds the agencies not already on the case; those already there keep their referral.
    live = {r.agency_id for r in referrals_of_case(session, facts.case_id) if r.status in LIVE} if previous else set()
    for engagement in decision.engaged:
        if engagement.agency_id not in live:
            agency = config.directory.agency(engagement.agency_id)
            _refer(
                session,
                ctx,
                config,
                facts,
                row,
                agency,
                rule=engagement.rule_id,
                basis=engagement.legal_basis,
                tags=engagement.tags,
            )
    return row


def _refer(
    session: Session,
    ctx: Context,
    config: MunicipalityConfig,
    facts: CaseView,
    decision: RoutingDecision | DecisionPublic,
    agency: Agency,
    *,
    rule: str,
    basis: str,
    tags: Sequence[str],
    replaces: str | None = None,
) -> ReferralPublic:
    now = datetime.now(UTC)
    hours = config.deadlines.business_hours
    deadline = ctx.clock.after(now, config.deadlines.escalate_after_business_hours, hours)
    values = bulk.add_row(
        session,
        Referral,
        id=new_id(),
        case_id=facts.case_id,
        decision_id=decision.id,
        municipality_code=facts.municipality_code,
        agency_id=agency.id,
        agency_type=agency.type,
        tier=decision.tier,
        rule_id=rule,
        legal_basis=basis,
        replaces_referral_id=replaces,
        requested_at=now,
        deadline=deadline,
        updated_at=now,
        tags=list(tags),
        version=1,
    )
    referral = ReferralPublic.model_construct(**{name: values[name] for name in ReferralPublic.model_fields})
    reminder = ctx.clock.after(now, config.deadlines.reminder_after_business_hours, hours)
    bulk.add_row(session, Timer, referral_id=referral.id, kind="reminder", due_at=reminder)
    bulk.add_row(session, Timer, referral_id=referral.id, kind="escalation", due_at=deadline)
    _stage(
        session,
        facts,
        ReferralRequested(
            referral_id=referral.id,
            case_id=facts.case_id,
            decision_id=decision.id,
            agency_id=agency.id,
            agency_type=agency.type,
            tier=decision.tier,
            rule_id=rule,
            legal_basis=basis,
            requested_at=now,
            replaces_referral_id=replaces,
            deadline=deadline,
            tags=list(tags),
        ),
    )
    _feed(session, config, facts, referral, "referral_requested")
    return referral


def _stage(session: Session, facts: CaseView, data: EventData, *, subject: str | None = None) -> None:
    event = new_event(data, source=SOURCE, subject=subject or facts.case_id, municipality_code=facts.municipality_code)
    outbox.stage(session, RouterOutbox, event)


def _feed(
    session: Session,
    config: MunicipalityConfig,
    facts: CaseView,
    referral: ReferralView,
    kind: Literal["referral_requested", "status_changed", "reminder", "escalated"],
) -> None:
    """Add an entry to the referral's agency's feed (and its Kafka feed, keyed by agency), numbered at commit."""
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
    # The FeedEntry row, but for its sequence: numbered when the transaction commits (_number_feed_entries).
    entry = {
        "agency_id": referral.agency_id,
        "referral_id": referral.id,
        "case_id": referral.case_id,
        "municipality_code": facts.municipality_code,
        "kind": kind,
        "body": {**shown, "deadline": referral.deadline.isoformat() if referral.deadline else None},
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
    _pending_feed(session).append(_PendingFeedEntry(entry=entry, facts=facts, published=published))
    stage_disclosure(
        session,
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


def is_owner(referral: ReferralView) -> bool:
    """True for a referral that makes its agency the case's owner, who sees the whole household."""
    # Both must hold: a partner's referral with its tags lost sees no tag rather than every one.
    return not referral.tags and referral.rule_id in routing.OWNER_RULES


@dataclass(frozen=True)
class _PendingFeedEntry:
    entry: dict[str, Any]
    facts: CaseView
    published: dict[str, Any]


# Held per transaction, so that the entries of a rolled-back one never reach a later commit.
_PENDING_FEED: TransactionState[list[_PendingFeedEntry]] = TransactionState("router_pending_feed", list)


def _pending_feed(session: Session) -> list[_PendingFeedEntry]:
    if not event.contains(session, "before_commit", _number_feed_entries):
        event.listen(session, "before_commit", _number_feed_entries)
    return _PENDING_FEED.get(session)


def _number_feed_entries(session: Session) -> None:
    """Give the transaction's feed entries their agencies' next sequence numbers, just before it commits.

    The counter row of each agency stays locked until the commit, so the agency's entries become
    visible in sequence order: a reader that has seen entry n has seen every entry below n (an
    autoincrement id gave no such promise: a lower id could still be uncommitted). Locking at the
    very end keeps the lock short, and locking agencies in id order means two transactions that
    feed the same agencies never wait on each other in a cycle.
    """
    waiting = _PENDING_FEED.peek(session)
    if not waiting:
        return
    pending = list(waiting)
    waiting.clear()
    session.flush()  # every other row lock of the transaction is taken before the first counter lock
    bulk.flush_rows(session)
    for agency_id in sorted({item.entry["agency_id"] for item in pending}):
        mine = [item for item in pending if item.entry["agency_id"] == agency_id]
        last = _reserve_sequences(session, agency_id, len(mine))
        for sequence, item in enumerate(mine, start=last - len(mine) + 1):
            bulk.add_row(session, FeedEntry, sequence=sequence, **item.entry)
            _stage(session, item.facts, AgencyFeedEntry(entry_id=sequence, **item.published), subject=agency_id)
    session.flush()
    bulk.flush_rows(session)  # the commit has begun: rows added now would wait for the next statement


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


# --- reading ----------------------------------------------------------------------------------


def served_by(principal: Principal) -> frozenset[str] | None:
    """The municipalities a credential reaches, or None when it reaches every one (the platform scope)."""
    return None if principal.has(Scope.platform) else principal.municipalities


def latest_decision(session: Session, case_id: str) -> RoutingDecision | None:
    """The decision in force for a case (the last one)."""
    query = (
        select(RoutingDecision).where(RoutingDecision.case_id == case_id).order_by(col(RoutingDecision.sequence).desc())
    )
    return session.exec(query).first()


def decisions_of_case(session: Session, case_id: str) -> list[RoutingDecision]:
    """All decisions of a case, first first."""
    query = select(RoutingDecision).where(RoutingDecision.case_id == case_id).order_by(col(RoutingDecision.sequence))
    return list(session.exec(query).all())


def referrals_of_case(session: Session, case_id: str) -> list[Referral]:
    """A case's referrals, oldest first."""
    query = select(Referral).where(Referral.case_id == case_id).order_by(col(Referral.requested_at), col(Referral.id))
    return list(session.exec(query).all())


def list_referrals(
    session: Session,
    *,
    agency_id: str | None = None,
    case_id: str | None = None,
    status: str | None = None,
    municipalities: frozenset[str] | None = None,
) -> list[Referral]:
    """Referrals of an agency's queue or of a case, oldest first; only of `municipalities` when given."""
    query = select(Referral).order_by(col(Referral.requested_at), col(Referral.id))
    if agency_id is not None:
        query = query.where(Referral.agency_id == agency_id)
    if case_id is not None:
        query = query.where(Referral.case_id == case_id)
    if status is not None:
        query = query.where(Referral.status == status)
    if municipalities is not None:
        query = query.where(col(Referral.municipality_code).in_(municipalities))
    return list(session.exec(query).all())


def feed_entries(
    session: Session, agency_id: str, *, after: int, limit: int, municipalities: frozenset[str] | None = None
) -> list[FeedEntry]:
    """An agency's feed entries after a cursor (a sequence number), in order; only of `municipalities` when given."""
    query = (
        select(FeedEntry)
        .where(FeedEntry.agency_id == agency_id, col(FeedEntry.sequence) > after)
        .order_by(col(FeedEntry.sequence))
        .limit(limit)
    )
    if municipalities is not None:
        query = query.where(col(FeedEntry.municipality_code).in_(municipalities))
    return list(session.exec(query).all())


# --- who reads a decision, and what ---------------------------------------------------------------

# An agency whose referral is live or was completed takes part in the case; a rejected, failed or
# cancelled (e.g. superseded) one no longer does.
TAKES_PART = LIVE | {"completed"}
DECISION_FIELDS = tuple(DecisionPublic.model_fields)
# What a partner does not learn: why the case is what it is, who else was left out or is missing.
PARTNER_WITHHELD = frozenset({"patterns", "excluded", "resource_gaps"})


@dataclass(frozen=True)
class DecisionAccess:
    """What a reader may see of a case's decisions, and the legal basis of the release (開示の根拠)."""

    view: Literal["full", "partner"]
    basis: Literal["operator", "engagement"]
    basis_ref: str | None
    referrals: tuple[Referral, ...]  # the reader's own referrals on the case, live ones first


def decision_access(
    session: Session, principal: Principal, in_force: RoutingDecision | DecisionPublic
) -> DecisionAccess | None:
    """How `principal` may read a case's decisions, or None when the case is none of its business."""
    if not principal.serves(in_force.municipality_code):
        return None
    if principal.has(Scope.operator):
        return DecisionAccess(view="full", basis="operator", basis_ref=None, referrals=())
    mine = sorted(
        (
            r
            for r in referrals_of_case(session, in_force.case_id)
            if r.agency_id == principal.agency_id and r.status in TAKES_PART
        ),
        key=lambda r: r.status not in LIVE,
    )
    if not mine:
        return None
    owning = [r for r in mine if is_owner(r)]
    if owning or in_force.lead == principal.agency_id:
        return DecisionAccess(view="full", basis="engagement", basis_ref=(owning or mine)[0].id, referrals=tuple(mine))
    return DecisionAccess(view="partner", basis="engagement", basis_ref=mine[0].id, referrals=tuple(mine))


def read_decisions(
    session: Session, *, case_id: str, principal: Principal, in_force_only: bool
) -> list[DecisionPublic] | None:
    """A case's decisions (or the one in force) as `principal` may see them, each read in the disclosure
    ledger; None when the answer is 404, as for a case that does not exist."""
    decisions = decisions_of_case(session, case_id)
    if not decisions:
        return None  # nothing to record: without a case there is no municipality to keep the row under
    in_force = decisions[-1]
    access = decision_access(session, principal, in_force)
    _record_decision_read(session, in_force, principal.agency_id, access)
    if access is None:
        return None
    shown = [in_force] if in_force_only else decisions
    return [_view(session, d, access, principal.agency_id, in_force=d is in_force) for d in shown]


def _view(
    session: Session,
    decision: RoutingDecision | DecisionPublic,
    access: DecisionAccess,
    agency_id: str,
    *,
    in_force: bool,
) -> DecisionPublic:
    full = DecisionPublic.model_validate({**decision.model_dump(), "view": "full"})
    if access.view == "full":
        return full
    own = [e for e in full.engaged if e.get("agency_id") == agency_id]
    if not own:
        # A re-routed or escalated referral stems from a decision that names another agency, and a later
        # decision may not name the partner at all: the decision in force still shows why it is there.
        origin = [r for r in access.referrals if in_force or r.decision_id == decision.id]
        own = [_engagement_of(session, origin[0])] if origin else []
    hidden: dict[str, Any] = {name: [] for name in PARTNER_WITHHELD}
    return full.model_copy(update={**hidden, "engaged": own, "view": "partner"})


def _engagement_of(session: Session, referral: Referral) -> dict[str, Any]:
    """The engagement a referral carries out: as its decision recorded it, or as the referral says."""
    origin = session.get(RoutingDecision, referral.decision_id)
    for entry in origin.engaged if origin else []:
        if entry.get("agency_id") == referral.agency_id and entry.get("rule_id") == referral.rule_id:
            return entry
    return {
        "agency_id": referral.agency_id,
        "agency_type": referral.agency_type,
        "rule_id": referral.rule_id,
        "legal_basis": referral.legal_basis,
        "reason": "; ".join(f"tag {tag} → {referral.agency_type}" for tag in referral.tags),
        "tags": list(referral.tags),
    }


def _record_decision_read(
    session: Session, decision: RoutingDecision | DecisionPublic, reader: str, access: DecisionAccess | None
) -> None:
    if access is None:
        fields: Sequence[str] = DECISION_FIELDS
    elif access.view == "partner":
        fields = [name for name in DECISION_FIELDS if name not in PARTNER_WITHHELD]
    else:
        fields = DECISION_FIELDS
    stage_disclosure(
        session,
        RouterOutbox,
        source=SOURCE,
        municipality_code=decision.municipality_code,
        case_id=decision.case_id,
        recipient=reader,
        channel="decision_read",
        fields=fields,
        basis=access.basis if access else "none",
        basis_ref=access.basis_ref if access else None,
        released=access is not None,
    )


# --- the referral lifecycle -------------------------------------------------------------------

# Moves that end a referral without handing it on (a rejection re-routes it, so the case keeps an owner).
CLOSING = frozenset({"cancelled", "completed", "failed"})
# Who closes a referral the escalation timer superseded (ReferralTransition.changed_by).
TIMER_ACTOR = "router:escalation"


def transition(
    session: Session, *, referral_id: str, body: TransitionCreate, principal: Principal, ctx: Context
) -> Referral:
    """Move a referral to its next state; a rejection re-routes it so the case keeps an owner."""
    # The row lock orders this move against the escalation timer firing on the same referral: whichever
    # comes second sees the status the first one left.
    referral = _locked_referral(session, referral_id)
    if referral is None or not _knows_of_case(session, principal, referral):
        # To a stranger the referral (and so its case) does not exist.
        raise Problem(404, "referral-not-found", f"no referral {referral_id}")
    facts = session.get(CaseFacts, referral.case_id)
    assert facts is not None, "a referral always belongs to a routed case"
    decision = latest_decision(session, referral.case_id)
    is_lead = decision is not None and decision.lead == principal.agency_id
    if body.to == "cancelled":
        if not (is_lead or principal.has(Scope.operator)):
            raise Problem(403, "not-the-lead", "only the case's lead (協働の中核) or an operator cancels a referral")
    elif principal.agency_id != referral.agency_id:
        raise Problem(403, "not-your-referral", "only the agency a referral is addressed to moves it")
    if body.to not in TRANSITIONS[referral.status]:
        raise Problem(
            409,
            "illegal-transition",
            f"a referral that is {referral.status} cannot become {body.to}",
            allowed=sorted(TRANSITIONS[referral.status]),
        )
    if body.to == "rejected" and referral.rule_id in LAST_RESORT_RULES:
        # A rejection re-routes to the next agency of the rejected one's type: for the lead that would
        # hand work meant for another type to whatever agency shares the lead's type.
        raise Problem(
            409, "lead-cannot-reject", "the lead (協働の中核) cannot reject its case; hand it over by a new decision"
        )
    _check_reason(body)
    config = ctx.configs.active(session, referral.municipality_code)
    leads = {config.directory.municipality.lead, decision.lead if decision else None}
    if body.to in CLOSING and referral.agency_id in leads and not _others_live(session, referral):
        raise Problem(
            409,
            "last-open-referral",
            "this is the lead's (協働の中核) referral and the case's last open one: closing it would leave the "
            "case without an owner; return it to the community or hand it over by a new decision first",
        )
    _change_status(
        session, config, facts, referral, to=body.to, reason=body.reason_code, note=body.note, by=principal.agency_id
    )
    if body.to == "rejected":
        _reroute(session, ctx, config, facts, referral)
    return referral


def _locked_referral(session: Session, referral_id: str) -> Referral | None:
    """The referral as last committed, its row locked until the transaction ends (PostgreSQL)."""
    query = (
        select(Referral).where(Referral.id == referral_id).with_for_update().execution_options(populate_existing=True)
    )
    return session.exec(query).first()


def _knows_of_case(session: Session, principal: Principal, referral: Referral) -> bool:
    """True for an operator of the case's municipality, or an agency with any referral on the case."""
    if not principal.serves(referral.municipality_code):
        return False
    if principal.has(Scope.operator) or principal.agency_id == referral.agency_id:
        return True
    query = select(Referral.id).where(Referral.case_id == referral.case_id, Referral.agency_id == principal.agency_id)
    return session.exec(query.limit(1)).first() is not None


def _others_live(session: Session, referral: Referral) -> bool:
    return any(r.id != referral.id and r.status in LIVE for r in referrals_of_case(session, referral.case_id))


def _change_status(
    session: Session,
    config: MunicipalityConfig,
    facts: CaseFacts,
    referral: Referral,
    *,
    to: ReferralStatus,
    reason: str | None,
    note: str | None,
    by: str,
) -> None:
    """Record one move of a referral: its row and version, the transition, the event and the feed entry."""
    previous = referral.status
    now = datetime.now(UTC)
    referral.status = to
    referral.status_reason = reason
    referral.updated_at = now
    referral.version += 1
    session.add(referral)
    session.add(
        ReferralTransition(
            referral_id=referral.id,
            from_status=previous,
            to_status=to,
            reason_code=reason,
            note=note,
            changed_by=by,
            at=now,
        )
    )
    _stage(
        session,
        facts,
        ReferralStatusChanged(
            referral_id=referral.id,
            case_id=referral.case_id,
            agency_id=referral.agency_id,
            from_status=previous,
            to_status=to,
            reason_code=reason,
            changed_by=by,
            changed_at=now,
            version=referral.version,
        ),
    )
    _feed(session, config, facts, referral, "status_changed")


def _check_reason(body: TransitionCreate) -> None:
    codes = REJECT_REASONS if body.to == "rejected" else CLOSE_REASONS
    if body.to in {"rejected", "completed", "failed", "cancelled"} and body.reason_code not in codes:
        raise Problem(
            422,
            "reason-required",
            f"a referral becomes {body.to} only with a reason code",
            errors=[
                {
                    "field": "reason_code",
                    "label": "理由コード",
                    "message": f"one of: {', '.join(sorted(codes))}",
                    "type": "value_error",
                }
            ],
        )


def _reroute(
    session: Session, ctx: Context, config: MunicipalityConfig, facts: CaseFacts, rejected: Referral
) -> ReferralPublic:
    """The next eligible agency of the same type, or else the lead, takes the rejected referral over."""
    consultation = ConsultationSummary.model_validate(facts.consultation)
    tried = {r.agency_id for r in referrals_of_case(session, facts.case_id) if r.agency_type == rejected.agency_type}
    decision = session.get(RoutingDecision, rejected.decision_id)
    assert decision is not None
    candidates = routing.alternatives(
        consultation, config.directory, config.rules, rejected.agency_type, excluding=tried
    )
    if candidates:
        # The next agency of the type does the same work, so it learns the same tags and no more.
        rule, agency, tags = routing.REROUTE, candidates[0], list(rejected.tags)
    else:
        rule, agency, tags = routing.REROUTE_TO_LEAD, config.directory.agency(config.directory.municipality.lead), []
    return _refer(
        session,
        ctx,
        config,
        facts,
        decision,
        agency,
        rule=rule.id,
        basis=rule.legal_basis,
        tags=tags,
        replaces=rejected.id,
    )


def fire_due_timers(session: Session, ctx: Context, *, now: datetime | None = None, limit: int = 100) -> int:
    """Send the reminders and escalations that are due; returns how many timers fired."""
    moment = now or datetime.now(UTC)
    query = (
        select(Timer)
        .where(col(Timer.fired_at).is_(None), col(Timer.due_at) <= moment)
        .order_by(col(Timer.due_at), col(Timer.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    timers = list(session.exec(query).all())
    for timer in timers:
        timer.fired_at = moment
        session.add(timer)
        # Waits for an accept of the same referral in flight, then sees it accepted (see transition).
        referral = _locked_referral(session, timer.referral_id)
        if referral is None or referral.status not in AWAITING:
            continue  # accepted, rejected or closed in time: nothing to chase
        facts = session.get(CaseFacts, referral.case_id)
        assert facts is not None
        config = ctx.configs.active(session, referral.municipality_code)
        lead = config.directory.municipality.lead
        escalate = timer.kind == "escalation" and referral.agency_id != lead
        _stage(
            session,
            facts,
            ReferralOverdue(
                referral_id=referral.id,
                case_id=referral.case_id,
                agency_id=referral.agency_id,
                stage="escalation" if timer.kind == "escalation" else "reminder",
                due_at=timer.due_at,
                escalated_to=lead if escalate else None,
            ),
        )
        _feed(session, config, facts, referral, "reminder" if timer.kind == "reminder" else "escalated")
        if escalate:
            decision = session.get(RoutingDecision, referral.decision_id)
            assert decision is not None
            _refer(
                session,
                ctx,
                config,
                facts,
                decision,
                config.directory.agency(lead),
                rule=routing.ESCALATION.id,
                basis=routing.ESCALATION.legal_basis,
                tags=[],
                replaces=referral.id,
            )
            # The lead has taken the work over: the silent agency's referral ends, and its access with it.
            _change_status(
                session, config, facts, referral, to="cancelled", reason="superseded", note=None, by=TIMER_ACTOR
            )
    return len(timers)


# --- escalation on request --------------------------------------------------------------------


def escalate(
    session: Session, *, case_id: str, kind: DecisionKind, principal: Principal, ctx: Context
) -> DecisionPublic:
    """Record a new decision on request: backup (→ tier 2), prefecture support (→ tier 3), or return (見守り).

    Returns the new decision as the asker may read it (recorded in the disclosure ledger).
    """
    facts = session.get(CaseFacts, case_id)
    current = latest_decision(session, case_id)
    not_routed = Problem(404, "case-not-routed", f"case {case_id} has no routing decision (yet)")
    if facts is None or current is None or decision_access(session, principal, current) is None:
        raise not_routed  # also to an agency with no part in the case: it does not learn that it exists
    config = ctx.configs.active(session, facts.municipality_code)
    consultation = ConsultationSummary.model_validate(facts.consultation)
    lead = config.directory.municipality.lead
    on_case = {r.agency_id for r in referrals_of_case(session, case_id) if r.status in LIVE}
    operator = principal.has(Scope.operator)
    if kind == "backup":
        asker = config.directory.find_agency(principal.agency_id)
        is_place = asker is not None and routing.TIER1_PLACE_ROLE in asker.roles and asker.id in on_case
        if not (is_place or operator):
            raise Problem(403, "not-a-tier1-place", "backup is asked by the tier-1 place on the case (指針 第二の4)")
        decision = routing.decide_backup(consultation, config.directory, config.rules)
    else:
        if not (principal.agency_id == lead or operator):
            raise Problem(403, "not-the-lead", "only the lead (協働の中核) asks for this")
        if kind == "prefecture_support":
            decision = routing.decide_prefecture_support(consultation, config.directory, config.rules)
        else:
            decision = routing.decide_return_to_community(consultation, config.directory, config.rules)
    try:
        recorded = _record_decision(
            session, ctx, config, facts, decision, kind=kind, requested_by=principal.agency_id, previous=current
        )
    except NoOwner as error:
        raise Problem(409, "no-owner", str(error)) from None
    access = decision_access(session, principal, recorded)
    _record_decision_read(session, recorded, principal.agency_id, access)
    if access is None:
        raise not_routed  # unreachable: new decisions only add agencies; rolls the decision back regardless
    return _view(session, recorded, access, principal.agency_id, in_force=True)
