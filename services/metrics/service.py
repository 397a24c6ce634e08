"""Metrics' logic: events become facts (idempotently, in any order), and a report gathers the facts of
a municipality and fiscal year (年度) and computes the indicators over them (`indicators`)."""

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any, TypeVar, cast

from sqlalchemy import inspect as sa_inspect
from sqlmodel import Session, SQLModel, col, select

from services.metrics.indicators import ENDED, MANUAL, Facts, Rules, compute
from services.metrics.labels import labels_of
from services.metrics.models import (
    CaseFact,
    CaseLifeFact,
    ContactFact,
    DecisionFact,
    HouseholdLinkFact,
    IndicatorReport,
    IndicatorValue,
    ManualValue,
    MeetingFact,
    MonitoringFact,
    PlanVersionFact,
    ReferralFact,
    Target,
    TargetRevision,
    TransferFact,
)
from shared.calendar import JST
from shared.db import rows_with
from shared.errors import Invalid
from shared.events import (
    CaseLifeChanged,
    CaseTransferred,
    ConferenceCancelled,
    ConferenceHeld,
    ConferenceRescheduled,
    ConferenceScheduled,
    ConsultationReceived,
    ContactRecorded,
    Envelope,
    EventData,
    HouseholdLinked,
    MonitoringRecorded,
    ReferralOverdue,
    ReferralRequested,
    ReferralStatusChanged,
    RoutingDecided,
    SupportPlanChanged,
)
from shared.uow import UnitOfWork
from shared.vocabulary import FoundBy, Pathway

# 和暦 eras by the calendar year they began: a fiscal year takes the era of its April (平成31年4月 was
# still 平成, but the 年度 that began then is by custom called 令和元年度, as 改元 came on 1 May 2019).
ERAS = ((2019, "令和"), (1989, "平成"))
PREFETCH_CHUNK = 1000  # keys per IN list (well under SQLite's and PostgreSQL's parameter limits)
NEVER = datetime.max.replace(tzinfo=UTC)  # a case whose consultation has not arrived sorts last


def fiscal_year(moment: datetime) -> int:
    """The Japanese fiscal year (April–March) of a moment, in Japan time."""
    local = moment.astimezone(JST)
    return local.year if local.month >= 4 else local.year - 1


def fiscal_year_label(year: int) -> str:
    """E.g. 2025 → '令和7年度 (FY2025)', 2018 → '平成30年度 (FY2018)'; before 平成, the Western year only."""
    for first, era in ERAS:
        if year >= first:
            number = year - first + 1
            return f"{era}{'元' if number == 1 else number}年度 (FY{year})"
    return f"{year}年度 (FY{year})"


FactKey = tuple[type[SQLModel], str]


class FactBatch(UnitOfWork):
    """Metrics' unit of work: a batch of events becoming facts, with the facts it has read or made."""

    # The batch's facts by model and key: stored ones (ORM objects) and new ones (drafts), as `_fact` found them.
    made: dict[FactKey, SQLModel]
    # Keys that `prefetch` found missing in the database: `_fact` makes them without asking again.
    absent: set[FactKey]

    def reset(self) -> None:
        super().reset()
        self.made = {}
        self.absent = set()


def count(batch: FactBatch, envelope: Envelope[EventData]) -> None:
    """Record what an event says as facts; the same event twice changes nothing."""
    data, code = envelope.data, envelope.municipalitycode
    match data:
        case ConsultationReceived():
            case = _case(batch, data.case_id, code)
            consultation = data.consultation
            case.received_at, case.submitted_by = data.received_at, data.submitted_by
            case.pathway, case.found_by = consultation.pathway.value, consultation.found_by.value
            _contact(
                batch,
                data.consultation_id,
                data.case_id,
                code,
                data.received_at,
                consultation.pathway,
                consultation.found_by,
                True,
            )
        case ContactRecorded():
            _contact(batch, data.contact_id, data.case_id, code, data.received_at, data.pathway, data.found_by, False)
        case RoutingDecided():
            _put(
                batch,
                DecisionFact,
                data.decision_id,
                case_id=data.case_id,
                municipality_code=code,
                tier=data.tier,
                kind=data.kind,
                patterns=list(data.patterns),
                resource_gaps=list(data.resource_gaps),
                decided_at=data.decided_at,
            )
            case = _case(batch, data.case_id, code)
            if data.sequence >= case.decision_sequence:
                case.tier, case.decision_sequence = data.tier, data.sequence
        case ReferralRequested():
            referral = _referral(batch, data.referral_id, data.case_id, code)
            referral.agency_id, referral.tier, referral.rule_id = data.agency_id, data.tier, data.rule_id
            referral.requested_at = data.requested_at
        case ReferralStatusChanged():
            referral = _referral(batch, data.referral_id, data.case_id, code)
            if _later_change(referral, data):
                referral.status, referral.status_at = data.to_status, data.changed_at
                referral.version = max(referral.version, data.version)
            if data.to_status == "accepted":
                case = _case(batch, data.case_id, code)
                if case.first_accepted_at is None or data.changed_at < case.first_accepted_at:
                    case.first_accepted_at = data.changed_at
        case ReferralOverdue():
            referral = _referral(batch, data.referral_id, data.case_id, code)
            referral.overdue_stages = sorted({*referral.overdue_stages, data.stage})
        case ConferenceScheduled():
            meeting = _meeting(batch, data.meeting_id, code, data.kind, data.case_id)
            meeting.tier, meeting.scheduled_at = data.tier, envelope.time
            _set_start(meeting, data.starts_at, envelope.time)
        case ConferenceRescheduled():
            meeting = _meeting(batch, data.meeting_id, code, data.kind, data.case_id)
            _set_start(meeting, data.starts_at, envelope.time)
        case ConferenceCancelled():
            meeting = _meeting(batch, data.meeting_id, code, data.kind, data.case_id)
            meeting.cancelled_at = envelope.time
        case ConferenceHeld():
            meeting = _meeting(batch, data.meeting_id, code, data.kind, data.case_id)
            meeting.held_at = data.held_at
            meeting.attendance = [a.model_dump() for a in data.attendance]
        case HouseholdLinked():
            link = _fact(
                batch,
                HouseholdLinkFact,
                data.match_id,
                case_id=data.case_id,
                linked_case_id=data.linked_case_id,
                municipality_code=code,
                linked=data.linked,
                decided_at=data.decided_at,
            )
            if data.decided_at >= link.decided_at:
                link.linked, link.decided_at = data.linked, data.decided_at
        case SupportPlanChanged():
            plan = _fact(
                batch,
                PlanVersionFact,
                _plan_version_key(data),
                plan_id=data.plan_id,
                version=data.version,
                case_id=data.case_id,
                municipality_code=code,
            )
            match data.status:
                case "drafted":
                    plan.drafted_at = _earliest(plan.drafted_at, data.changed_at)
                case "approved":
                    if plan.approved_at is None or data.changed_at < plan.approved_at:
                        plan.approved_at, plan.approved_at_meeting = data.changed_at, data.approved_at_meeting
                case "superseded":
                    plan.superseded_at = _earliest(plan.superseded_at, data.changed_at)
        case MonitoringRecorded():
            _put(
                batch,
                MonitoringFact,
                envelope.id,
                case_id=data.case_id,
                municipality_code=code,
                plan_id=data.plan_id,
                plan_version=data.plan_version,
                kind=data.kind,
                recorded_at=data.recorded_at,
                on_time=data.on_time,
            )
        case CaseLifeChanged():
            _put(
                batch,
                CaseLifeFact,
                envelope.id,
                case_id=data.case_id,
                municipality_code=code,
                state=data.state,
                reason=data.reason.value if data.reason is not None else None,
                main_agency=data.main_agency,
                watch_until=data.watch_until,
                changed_at=data.changed_at,
            )
        case CaseTransferred():
            within = data.to_case_id is not None
            _put(
                batch,
                TransferFact,
                envelope.id,
                case_id=data.case_id,
                to_case_id=data.to_case_id,
                from_municipality=data.from_municipality,
                to_municipality=data.to_municipality if within else None,
                transferred_at=data.transferred_at,
            )


def _plan_version_key(data: SupportPlanChanged) -> str:
    return f"{data.plan_id}/v{data.version}"


def _earliest(kept: datetime | None, new: datetime) -> datetime:
    # A status reached twice (a redelivery, a repeated change) dates from its first time, in any order.
    return new if kept is None else min(kept, new)


def _later_change(referral: ReferralFact, data: ReferralStatusChanged) -> bool:
    """True when the change comes after the one the fact holds, so its status is the referral's now.

    The outbox may publish a change committed late after a later one, and instances' clocks differ,
    so versions order a referral's changes; changes of before versions (0) fall back to their times.
    """
    if data.version and referral.version:
        return data.version > referral.version
    return referral.status_at is None or data.changed_at >= referral.status_at


def _set_start(meeting: MeetingFact, starts_at: datetime | None, as_of: datetime) -> None:
    # The two topics are read independently, so the latest published time wins, not the last delivered.
    if meeting.starts_at_as_of is None or as_of >= meeting.starts_at_as_of:
        meeting.starts_at, meeting.starts_at_as_of = starts_at, as_of


def _contact(
    batch: FactBatch,
    contact_id: str,
    case_id: str,
    code: str,
    at: datetime,
    pathway: Pathway,
    found_by: FoundBy,
    opening: bool,
) -> None:
    _put(
        batch,
        ContactFact,
        contact_id,
        case_id=case_id,
        municipality_code=code,
        received_at=at,
        pathway=pathway.value,
        found_by=found_by.value,
        opening=opening,
    )


def _case(batch: FactBatch, case_id: str, code: str) -> CaseFact:
    return _fact(batch, CaseFact, case_id, municipality_code=code)


def _referral(batch: FactBatch, referral_id: str, case_id: str, code: str) -> ReferralFact:
    return _fact(batch, ReferralFact, referral_id, case_id=case_id, municipality_code=code)


def _meeting(batch: FactBatch, meeting_id: str, code: str, kind: str, case_id: str | None) -> MeetingFact:
    return _fact(batch, MeetingFact, meeting_id, municipality_code=code, kind=kind, case_id=case_id)


FactT = TypeVar("FactT", bound=SQLModel)


def _put(batch: FactBatch, model: type[SQLModel], key: str, **values: Any) -> None:
    """Store the fact with these values under `key`, replacing the one this transaction or the database had."""
    kept = _fact(batch, model, key, **values)
    for name, value in values.items():
        setattr(kept, name, value)


def _fact(batch: FactBatch, model: type[FactT], key: str, **new: Any) -> FactT:
    """The fact with this key, whether made earlier in this transaction, stored, or new (made of `new`).

    A batch of events is applied in one transaction; looking a fact up must not flush the facts the
    batch made before it, and a fact made earlier in the batch is not yet in the database, so the
    batch keeps its own index of them. Facts that `prefetch` read (or found missing) for the
    batch are not asked for again. A stored fact is the ORM's object, and what is set on it is
    written at the commit. A new fact is a draft (`UnitOfWork.add_draft`) with the model's fields as
    attributes, inserted with the batch's other new facts at the commit: a batch makes thousands, and
    an ORM object for each would cost more than the counting itself.
    """
    found = batch.made.get((model, key))
    if found is None:
        if (model, key) not in batch.absent:
            with batch.no_autoflush:
                found = batch.get(model, key)
        if found is None:
            key_name = sa_inspect(model).primary_key[0].key
            # A draft reads and sets the same fields as the model, so it stands in for one.
            found = cast(SQLModel, batch.add_draft(model, **{key_name: key}, **new))
        batch.made[(model, key)] = found
    return found  # type: ignore[return-value]


def _fact_keys(envelope: Envelope[Any]) -> Iterator[tuple[type[SQLModel], str]]:
    """The facts `count` reads for an event, by model and key."""
    data = envelope.data
    match data:
        case ConsultationReceived():
            yield CaseFact, data.case_id
            yield ContactFact, data.consultation_id
        case ContactRecorded():
            yield ContactFact, data.contact_id
        case RoutingDecided():
            yield DecisionFact, data.decision_id
            yield CaseFact, data.case_id
        case ReferralRequested() | ReferralOverdue():
            yield ReferralFact, data.referral_id
        case ReferralStatusChanged():
            yield ReferralFact, data.referral_id
            if data.to_status == "accepted":
                yield CaseFact, data.case_id
        case ConferenceScheduled() | ConferenceRescheduled() | ConferenceCancelled() | ConferenceHeld():
            yield MeetingFact, data.meeting_id
        case HouseholdLinked():
            yield HouseholdLinkFact, data.match_id
        case SupportPlanChanged():
            yield PlanVersionFact, _plan_version_key(data)
        case MonitoringRecorded():
            yield MonitoringFact, envelope.id
        case CaseLifeChanged():
            yield CaseLifeFact, envelope.id
        case CaseTransferred():
            yield TransferFact, envelope.id


def prefetch(batch: FactBatch, envelopes: Sequence[Envelope[Any]]) -> None:
    """Read a batch's facts with one query per kind, instead of one query per event and fact.

    Found facts join the batch's index (see `_fact`); the keys not found are remembered as new,
    so `count` makes them without asking the database again.
    """
    wanted: dict[type[SQLModel], set[str]] = {}
    for envelope in envelopes:
        for model, key in _fact_keys(envelope):
            wanted.setdefault(model, set()).add(key)
    made, absent = batch.made, batch.absent
    with batch.no_autoflush:
        for model, keys in wanted.items():
            key_column = sa_inspect(model).primary_key[0]
            unknown = sorted(k for k in keys if (model, k) not in made)
            for start in range(0, len(unknown), PREFETCH_CHUNK):
                chunk = unknown[start : start + PREFETCH_CHUNK]
                found = {getattr(row, key_column.key): row for row in rows_with(batch, model, key_column, chunk)}
                made.update(((model, k), row) for k, row in found.items())
                absent.update((model, k) for k in chunk if k not in found)


@dataclass(frozen=True)
class Window:
    """The period a report covers: a fiscal year, or one month of it, in Japan time."""

    start: datetime
    end: datetime

    def __contains__(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end


def window(year: int, month: int | None) -> Window:
    """The fiscal year (or the month of it) as UTC bounds."""
    if month is None:
        start, end = (year, 4), (year + 1, 4)
    else:
        calendar_year = year if month >= 4 else year + 1
        start = (calendar_year, month)
        end = (calendar_year + (month == 12), month % 12 + 1)
    return Window(
        datetime.combine(datetime(start[0], start[1], 1), time(), tzinfo=JST).astimezone(UTC),
        datetime.combine(datetime(end[0], end[1], 1), time(), tzinfo=JST).astimezone(UTC),
    )


def _facts(session: Session, code: str, year: int, span: Window, tier: int | None) -> Facts:
    def of(model: Any, moment: Callable[[Any], datetime | None]) -> list[Any]:
        rows: list[Any] = list(session.exec(select(model).where(model.municipality_code == code)).all())
        return [row for row in rows if moment(row) in span]

    year_end = window(year, None).end
    every_case = list(session.exec(select(CaseFact).where(CaseFact.municipality_code == code)))
    tiers = {c.case_id: c.tier for c in every_case}
    links = session.exec(
        select(HouseholdLinkFact).where(HouseholdLinkFact.municipality_code == code, col(HouseholdLinkFact.linked))
    )
    household = households(every_case, links)

    def in_tier(case_id: str | None, own: int | None = None) -> bool:
        return tier is None or (own if own is not None else tiers.get(case_id or "")) == tier

    cases = [
        c
        for c in every_case
        if c.received_at in span and in_tier(c.case_id, c.tier) and household.get(c.case_id, c.case_id) == c.case_id
    ]
    contacts = [c for c in of(ContactFact, lambda r: r.received_at) if in_tier(c.case_id)]
    decisions = [d for d in of(DecisionFact, lambda r: r.decided_at) if in_tier(d.case_id, d.tier)]
    referrals = [r for r in of(ReferralFact, lambda r: r.requested_at) if in_tier(r.case_id, r.tier)]
    all_referrals = list(session.exec(select(ReferralFact).where(ReferralFact.municipality_code == code)))
    meetings_all = list(session.exec(select(MeetingFact).where(MeetingFact.municipality_code == code)))
    # A meeting counts once, in the period it takes place (after its latest reschedule), unless cancelled.
    meetings = [
        m
        for m in meetings_all
        if m.cancelled_at is None
        and (m.held_at or m.starts_at or m.scheduled_at) in span
        and in_tier(m.case_id, m.tier)
    ]
    promotion_history = sorted(
        (m for m in meetings_all if m.kind == "promotion_meeting" and m.held_at is not None and m.held_at < year_end),
        key=lambda m: m.held_at or year_end,
    )
    plans = [p for p in of(PlanVersionFact, lambda r: r.approved_at) if in_tier(p.case_id)]
    evaluations = [
        m for m in of(MonitoringFact, lambda r: r.recorded_at) if m.kind == "evaluation" and in_tier(m.case_id)
    ]
    # Each case's life up to the window's end, in order (changes at one instant in the order published:
    # event ids are version 7 UUIDs): what ended within the window, and where each case stood at its end.
    life = sorted(
        (
            change
            for change in session.exec(select(CaseLifeFact).where(CaseLifeFact.municipality_code == code))
            if change.changed_at < span.end and in_tier(change.case_id)
        ),
        key=lambda change: (change.changed_at, change.event_id),
    )
    moved_out = session.exec(
        select(TransferFact).where(TransferFact.from_municipality == code).order_by(col(TransferFact.transferred_at))
    )
    moved_in = session.exec(
        select(TransferFact).where(TransferFact.to_municipality == code).order_by(col(TransferFact.transferred_at))
    )
    return Facts(
        year,
        cases,
        household,
        contacts,
        decisions,
        referrals,
        all_referrals,
        meetings,
        promotion_history,
        approved_plans=plans,
        evaluations=evaluations,
        endings=[change for change in _endings(life) if change.changed_at in span],
        life_at_end=list({change.case_id: change for change in life}.values()),
        transfers_out=[t for t in moved_out if t.transferred_at in span and in_tier(t.case_id)],
        transfers_in=[t for t in moved_in if t.transferred_at in span and in_tier(t.to_case_id)],
        # Every case of the municipality, whenever received: a household seen again in the period is
        # continuing (実件数), and its case says where it came in.
        every_case=[c for c in every_case if in_tier(c.case_id, c.tier)],
    )


def _endings(life: Iterable[CaseLifeFact]) -> Iterator[CaseLifeFact]:
    """The changes of cases' lives (in time order) that were a 終結: from an open case to closed or watching.

    A case whose 見守り later ends (watching, then closed) ended once, when coordination did.
    """
    before: dict[str, str] = {}
    for change in life:
        if change.state in ENDED and before.get(change.case_id) not in ENDED:
            yield change
        before[change.case_id] = change.state


def households(cases: Iterable[CaseFact], links: Iterable[HouseholdLinkFact]) -> dict[str, str]:
    """Each linked case's household, as the case of it received first: that case alone counts in 実件数.

    Links are taken as undirected, so cases linked in a chain (or both ways) make one household.
    """
    parent: dict[str, str] = {}

    def root(case_id: str) -> str:
        while parent.get(case_id, case_id) != case_id:
            case_id = parent[case_id]
        return case_id

    for link in links:
        a, b = root(link.case_id), root(link.linked_case_id)
        if a != b:
            parent[a] = b
    received = {c.case_id: c.received_at for c in cases}
    members: dict[str, list[str]] = {}
    for case_id in parent.keys() | set(parent.values()):
        members.setdefault(root(case_id), []).append(case_id)
    household = {}
    for group in members.values():
        first = min(group, key=lambda c: (received.get(c) or NEVER, c))
        household.update(dict.fromkeys(group, first))
    return household


def report(
    session: Session,
    *,
    municipality_code: str,
    year: int,
    month: int | None = None,
    tier: int | None = None,
    rules: Rules | None = None,
    municipality_name: str | None = None,
) -> IndicatorReport:
    """Every indicator of a municipality for a fiscal year (optionally a month, a tier), with targets."""
    span = window(year, month)
    facts = _facts(session, municipality_code, year, span, tier)
    targets = _targets(session, municipality_code, year)
    manual = {
        m.indicator: m.value
        for m in session.exec(
            select(ManualValue).where(
                ManualValue.municipality_code == municipality_code, ManualValue.fiscal_year == year
            )
        )
    }
    values = [
        IndicatorValue(
            id=i.id,
            name_ja=i.name_ja,
            name_en=i.name_en,
            definition=i.definition,
            source=i.source,
            unit=i.unit,
            value=value,
            by_dimension=breakdown,
            shares=shares,
            applicable=applicable,
        )
        for i, value, breakdown, shares, applicable in compute(facts, rules or Rules(), manual)
    ]
    values += [
        IndicatorValue(
            id=i.id,
            name_ja=i.name_ja,
            name_en=i.name_en,
            definition=i.definition,
            source=i.source,
            unit="as_entered",
            value=manual.get(i.id),
            by_dimension={},
        )
        for i in MANUAL
    ]
    for value in values:
        value.labels = labels_of([*value.by_dimension, *(value.shares or {})])
        versions = targets.get(value.id)
        if versions:
            initial, revisions = _initial_and_revisions(versions, window(year, None).start)
            value.target = target = initial.value
            value.attainment = round(100 * value.value / target, 1) if value.value is not None and target else None
            value.target_revisions = [
                TargetRevision(value=r.value, set_by=r.set_by, set_at=r.set_at, reason=r.reason) for r in revisions
            ]
    return IndicatorReport(
        municipality_code=municipality_code,
        municipality_name=municipality_name,
        fiscal_year=year,
        fiscal_year_label=fiscal_year_label(year),
        month=month,
        tier=tier,
        indicators=values,
        directory_version=rules.directory.version if rules is not None and rules.directory is not None else None,
    )


class TargetReasonRequired(Invalid):
    """A target changed once its fiscal year has begun, without saying why."""

    code = "target-reason-required"

    def __init__(self, indicator: str, year: int) -> None:
        super().__init__(f"{fiscal_year_label(year)} has begun: a change to the target of {indicator} needs a reason")


def _targets(session: Session, code: str, year: int) -> dict[str, list[Target]]:
    """Every version of every target of a municipality and fiscal year, oldest first, by indicator."""
    versions: dict[str, list[Target]] = {}
    query = (
        select(Target)
        .where(Target.municipality_code == code, Target.fiscal_year == year)
        .order_by(col(Target.indicator), col(Target.version))
    )
    for target in session.exec(query):
        versions.setdefault(target.indicator, []).append(target)
    return versions


def _initial_and_revisions(versions: list[Target], start: datetime) -> tuple[Target, list[Target]]:
    """The version in force when the year began (else the first one set), and the versions after it."""
    before = [v for v in versions if v.set_at < start]
    initial = before[-1] if before else versions[0]
    return initial, versions[versions.index(initial) + 1 :]


def set_manual(
    session: Session, *, code: str, year: int, indicator: str, value: float, by: str, note: str = ""
) -> None:
    """Record a manual value (replacing the previous one)."""
    session.merge(
        ManualValue(
            municipality_code=code, fiscal_year=year, indicator=indicator, value=value, note=note, entered_by=by
        )
    )


def set_target(
    session: Session,
    *,
    code: str,
    year: int,
    indicator: str,
    value: float,
    by: str,
    reason: str = "",
    now: datetime | None = None,
) -> Target:
    """Record a new version of a target; once the year has begun it needs a reason (the earlier ones stay)."""
    moment = now or datetime.now(UTC)
    if moment >= window(year, None).start and not reason.strip():
        raise TargetReasonRequired(indicator, year)
    latest = session.exec(
        select(Target)
        .where(Target.municipality_code == code, Target.fiscal_year == year, Target.indicator == indicator)
        .order_by(col(Target.version).desc())
        .limit(1)
    ).first()
    target = Target(
        municipality_code=code,
        fiscal_year=year,
        indicator=indicator,
        version=latest.version + 1 if latest else 1,
        value=value,
        set_by=by,
        set_at=moment,
        reason=reason.strip(),
    )
    session.add(target)
    return target


def wipe(session: Session, tables: Iterable[type]) -> None:
    """Delete every row of the fact tables (before a rebuild)."""
    for table in tables:
        session.exec(table.__table__.delete())  # type: ignore[attr-defined]
