"""Conference's logic: case meetings for tier-2/3 cases, the 相談支援包括化推進会議 and its agenda,
attendance and decisions. Functions run inside the caller's transaction and stage their events."""

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from services.conference import slots
from services.conference.models import (
    Attendance,
    AttendanceCreate,
    BookingLock,
    CaseDecision,
    CaseReferral,
    CaseState,
    ConferenceOutbox,
    DecisionCreate,
    Meeting,
    NetworkMember,
    ResourceGapReport,
)
from shared import outbox
from shared.calendar import JST, is_closed_day
from shared.directory import Directory, read_directory_files
from shared.disclosure import stage_disclosure
from shared.events import (
    ConferenceCancelled,
    ConferenceDecisionRecorded,
    ConferenceHeld,
    ConferenceRescheduled,
    ConferenceScheduled,
    ConsentGiven,
    ConsentRevoked,
    DisclosureBasis,
    Envelope,
    EventData,
    MeetingInvitation,
    ReferralRequested,
    ReferralStatusChanged,
    RoutingDecided,
    new_event,
)
from shared.ids import new_id
from shared.problems import Problem

SOURCE = "/marugoto/conference"
ACTIVE = ("scheduled",)
LIVE = frozenset({"requested", "received", "accepted", "in_progress", "on_hold"})
# A referral in one of these ended the agency's part in the case: it leaves the case meeting.
CLOSED = frozenset({"rejected", "cancelled", "failed"})
INVITATION_FIELDS = tuple(MeetingInvitation.model_fields)


# --- configuration [LOCAL] ------------------------------------------------------------------------


class PromotionMeetingConfig(BaseModel):
    """How a municipality runs its 推進会議: cadence, the body it reuses, whether it approves plans."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cadence: Literal["every_n_months", "fixed_months", "on_demand"] = "on_demand"
    every_months: int = Field(default=2, ge=1, le=12)  # 盛岡市: every two months
    months: list[int] = Field(default_factory=list)  # 能美市-like fixed months
    reuses: str | None = None  # e.g. 支援調整会議, 地域ケア会議
    approves_plans: bool = False  # 呉市: the case meeting drafts, the 推進会議 approves
    review_after_days: int = Field(default=90, ge=0)
    duration_minutes: int = Field(default=120, ge=15)


class ConferenceSettings(BaseModel):
    """The `conference:` section of a directory file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    meeting_minutes: int = Field(default=60, ge=15, le=480)
    deadline_business_days: dict[str, int] = Field(default_factory=lambda: {"urgent": 2, "soon": 5, "routine": 10})
    rooms: list[dict[str, Any]] = Field(default_factory=list)
    promotion_meeting: PromotionMeetingConfig = PromotionMeetingConfig()


@dataclass(frozen=True)
class MunicipalityConference:
    """A municipality's agencies (with their hours), rooms and meeting rules."""

    directory: Directory
    settings: ConferenceSettings
    hours: Mapping[str, slots.WeeklyHours]
    rooms: tuple[slots.Room, ...]


def load_configs(paths: Iterable[Any]) -> dict[str, MunicipalityConference]:
    """Each configured municipality's conference configuration, from the directory files."""
    configs = {}
    for code, (directory, data) in read_directory_files(paths).items():
        settings = ConferenceSettings.model_validate(data.get("conference") or {})
        hours = {a.id: slots.parse_hours(a.business_hours, slots.DEFAULT_HOURS) for a in directory.agencies}
        rooms = tuple(slots.Room(id=str(r["id"]), capacity=int(r["capacity"])) for r in settings.rooms)
        configs[code] = MunicipalityConference(directory=directory, settings=settings, hours=hours, rooms=rooms)
    return configs


def config_of(configs: Mapping[str, MunicipalityConference], code: str) -> MunicipalityConference:
    config = configs.get(code)
    if config is None:
        raise Problem(422, "unknown-municipality", f"no directory for municipality {code}")
    return config


def business_days_after(start: datetime, days: int) -> datetime:
    """The end (18:00 JST) of the `days`-th open day after `start`."""
    day = start.astimezone(JST).date()
    while days > 0:
        day += timedelta(days=1)
        if not is_closed_day(day):
            days -= 1
    return datetime.combine(day, time(18, 0), tzinfo=JST)


def _stage(session: Session, municipality_code: str, subject: str, data: EventData) -> Envelope[EventData]:
    event = new_event(data, source=SOURCE, subject=subject, municipality_code=municipality_code)
    outbox.stage(session, ConferenceOutbox, event)
    return event


def _invite(session: Session, meeting: Meeting, agencies: Iterable[str], status: str) -> None:
    """Send each agency its invitation (or its update); one for a case meeting is a release of the case."""
    for agency_id in agencies:
        if meeting.case_id is not None:
            stage_disclosure(
                session,
                ConferenceOutbox,
                source=SOURCE,
                municipality_code=meeting.municipality_code,
                case_id=meeting.case_id,
                recipient=agency_id,
                channel="meeting_invitation",
                fields=INVITATION_FIELDS,
                basis="engagement",
                basis_ref=referral_of(session, meeting.case_id, agency_id) or meeting.id,
            )
        _stage(
            session,
            meeting.municipality_code,
            agency_id,
            MeetingInvitation(
                meeting_id=meeting.id,
                agency_id=agency_id,
                kind=meeting.kind,
                status=status,
                starts_at=meeting.starts_at,
                ends_at=meeting.ends_at,
                case_id=meeting.case_id,
            ),
        )


def _lock_bookings(session: Session, municipality_code: str) -> None:
    """Hold the municipality's booking row until the transaction ends: its meetings are booked one at a time.

    Reading the bookings and then inserting a meeting is not atomic: two meetings decided at the same
    moment would both find the lead free at 10:00 and both take it. The upsert always writes the row,
    so on PostgreSQL it takes the row lock (as SELECT ... FOR UPDATE would, and it creates the row the
    first time without a unique-key race); on SQLite it takes the database's write lock before the
    bookings are read, which pysqlite would otherwise read outside any transaction.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = datetime.now(UTC)
    statement = insert(BookingLock).values(municipality_code=municipality_code, booked_at=now)
    session.exec(statement.on_conflict_do_update(index_elements=["municipality_code"], set_={"booked_at": now}))


def _bookings(session: Session, start: datetime, end: datetime) -> list[slots.Booking]:
    """The bookings that overlap [start, end): only those can stand in the way of a slot found there."""
    meetings = session.exec(
        select(Meeting).where(
            col(Meeting.status).in_(ACTIVE),
            col(Meeting.starts_at).is_not(None),
            col(Meeting.starts_at) < end,
            col(Meeting.ends_at) > start,
        )
    ).all()
    booked: list[slots.Booking] = []
    for meeting in meetings:
        if meeting.starts_at is None or meeting.ends_at is None:
            continue
        for participant in meeting.participants:
            booked.append(slots.Booking(participant=participant, start=meeting.starts_at, end=meeting.ends_at))
        if meeting.room_id:
            booked.append(
                slots.Booking(participant=f"room:{meeting.room_id}", start=meeting.starts_at, end=meeting.ends_at)
            )
    return booked


def _find(
    session: Session,
    config: MunicipalityConference,
    *,
    meeting_id: str,
    participants: list[str],
    minutes: int,
    earliest: datetime,
    deadline: datetime,
) -> slots.SlotResult:
    request = slots.SlotRequest(
        meeting_id=meeting_id,
        participants=participants,
        duration=timedelta(minutes=minutes),
        earliest=earliest,
        deadline=deadline,
        room_needed=bool(config.rooms),
    )
    _lock_bookings(session, config.directory.municipality.code)
    bookings = _bookings(session, earliest, slots.search_end(deadline))
    return slots.find_slot(request, config.hours, bookings, config.rooms)


# --- following the cases ------------------------------------------------------------------------


def apply_routing_decided(
    session: Session, envelope: Envelope[RoutingDecided], configs: Mapping[str, MunicipalityConference]
) -> None:
    """Follow the case; schedule its case meeting (tier 2/3); note new network members and resource gaps."""
    decided = envelope.data
    code = envelope.municipalitycode
    state = session.get(CaseState, decided.case_id)
    if state is None:
        state = CaseState(
            case_id=decided.case_id, municipality_code=code, tier=decided.tier, routed_at=decided.decided_at
        )
    if decided.sequence < state.decision_sequence:
        return
    state.tier = decided.tier
    if decided.tier >= 2 and state.difficult_since is None:
        state.difficult_since = decided.decided_at
    state.lead = decided.lead or state.lead
    state.urgency = decided.urgency
    state.decision_sequence = decided.sequence
    state.patterns = list(decided.patterns)
    state.engaged = sorted(set(state.engaged) | {e.agency_id for e in decided.engaged})
    state.source_events = [*state.source_events, envelope.id]
    session.add(state)
    for gap in decided.resource_gaps:
        session.add(
            ResourceGapReport(
                municipality_code=code,
                case_id=decided.case_id,
                partner_type=gap,
                reported_at=decided.decided_at,
                event_id=envelope.id,
            )
        )
    for engaged in decided.engaged:
        if session.get(NetworkMember, (code, engaged.agency_id)) is None:
            session.add(
                NetworkMember(
                    municipality_code=code,
                    agency_id=engaged.agency_id,
                    agency_type=engaged.agency_type,
                    first_seen_at=decided.decided_at,
                    event_id=envelope.id,
                )
            )
    session.flush()
    if decided.tier >= 2:
        meeting = _case_meeting(session, decided.case_id)
        if meeting is None:
            schedule_case_meeting(session, state, config_of(configs, code))
        else:
            _update_invitees(session, meeting, state)


def _case_meeting(session: Session, case_id: str) -> Meeting | None:
    query = select(Meeting).where(
        Meeting.case_id == case_id, Meeting.kind == "case_meeting", col(Meeting.status).in_(ACTIVE)
    )
    return session.exec(query).first()


def _invitees(state: CaseState) -> list[str]:
    # Exactly the engaged agencies and the lead (推進員).
    return sorted(set(state.engaged) | ({state.lead} if state.lead else set()))


def apply_referral_requested(session: Session, data: ReferralRequested) -> None:
    """A re-routed or escalated referral adds an agency to the case and to its upcoming meeting."""
    referral = session.get(CaseReferral, data.referral_id)
    if referral is None:
        referral = CaseReferral(
            referral_id=data.referral_id, case_id=data.case_id, agency_id=data.agency_id, status="requested", version=1
        )
        session.add(referral)
    # A later change delivered first (a rejection, say) holds: the request does not undo it.
    _engage(session, data.case_id, data.agency_id, engaged=referral.status not in CLOSED)


def apply_referral_status(session: Session, data: ReferralStatusChanged) -> None:
    """Keep the referral's latest status; an agency that rejected or was taken off the case leaves its meeting.

    The outbox may publish a change committed late after a later one, so a change older than the one
    held (a lower `version`) is ignored. A change of before versions (`version` 0) is applied as it
    comes and only ever takes an agency off, since its place in the order is unknown.
    """
    referral = session.get(CaseReferral, data.referral_id)
    if referral is None:
        referral = CaseReferral(referral_id=data.referral_id, case_id=data.case_id, agency_id=data.agency_id)
    elif data.version and data.version <= referral.version:
        return
    referral.status, referral.version = data.to_status, max(referral.version, data.version)
    session.add(referral)
    if data.to_status in CLOSED:
        _engage(session, data.case_id, data.agency_id, engaged=False)
    elif data.to_status in LIVE and data.version:
        _engage(session, data.case_id, data.agency_id, engaged=True)


def _engage(session: Session, case_id: str, agency_id: str, *, engaged: bool) -> None:
    """Put the agency on the case (and its upcoming meeting's invitation list), or take it off."""
    state = session.get(CaseState, case_id)
    if state is None or (agency_id in state.engaged) == engaged:
        return
    state.engaged = sorted({*state.engaged, agency_id}) if engaged else [a for a in state.engaged if a != agency_id]
    session.add(state)
    meeting = _case_meeting(session, case_id)
    if meeting is not None:
        _update_invitees(session, meeting, state)


def referral_of(session: Session, case_id: str, agency_id: str) -> str | None:
    """The agency's referral on the case, a live one first: what its part in the case rests on."""
    query = select(CaseReferral).where(CaseReferral.case_id == case_id, CaseReferral.agency_id == agency_id)
    referrals = sorted(session.exec(query).all(), key=lambda r: (r.status in LIVE, r.version), reverse=True)
    return referrals[0].referral_id if referrals else None


def apply_consent(session: Session, data: ConsentGiven | ConsentRevoked) -> None:
    """Track whether the case has a live consent to share (shown on its meetings)."""
    state = session.get(CaseState, data.case_id)
    if state is None:
        return
    live = set(state.consents)
    if isinstance(data, ConsentGiven):
        live.add(data.consent_id)
    else:
        live.discard(data.consent_id)
    state.consents = sorted(live)
    session.add(state)


def _announce_change(session: Session, meeting: Meeting, *, reason: str) -> None:
    """Publish that a meeting moved or its invitation list changed."""
    _stage(
        session,
        meeting.municipality_code,
        meeting.case_id or meeting.id,
        ConferenceRescheduled(
            meeting_id=meeting.id,
            case_id=meeting.case_id,
            kind=meeting.kind,
            starts_at=meeting.starts_at,
            ends_at=meeting.ends_at,
            participants=meeting.participants,
            reason=reason,
            needs_attention=meeting.needs_attention,
            blockers=meeting.blockers,
        ),
    )


def _update_invitees(session: Session, meeting: Meeting, state: CaseState) -> None:
    invitees = _invitees(state)
    if invitees == sorted(meeting.participants):
        return
    added = set(invitees) - set(meeting.participants)
    removed = set(meeting.participants) - set(invitees)
    meeting.participants = invitees
    meeting.withdrawn = sorted((set(meeting.withdrawn) | removed) - set(invitees))
    meeting.sequence += 1
    meeting.updated_at = datetime.now(UTC)
    session.add(meeting)
    _announce_change(session, meeting, reason="invitation list changed with the case's agencies")
    _invite(session, meeting, sorted(added), "invited")
    _invite(session, meeting, sorted(set(invitees) - added), "updated")
    _invite(session, meeting, sorted(removed), "withdrawn")


# --- case meetings --------------------------------------------------------------------------------


def schedule_case_meeting(session: Session, state: CaseState, config: MunicipalityConference) -> Meeting:
    """The case meeting of the lead and the engaged agencies, at the earliest slot before the deadline."""
    now = datetime.now(UTC)
    days = config.settings.deadline_business_days.get(state.urgency, 10)
    deadline = business_days_after(now, days)
    participants = _invitees(state)
    meeting_id = new_id()
    result = _find(
        session,
        config,
        meeting_id=meeting_id,
        participants=participants,
        minutes=config.settings.meeting_minutes,
        earliest=now + timedelta(hours=1),
        deadline=deadline,
    )
    return _open_meeting(
        session,
        result,
        meeting_id=meeting_id,
        kind="case_meeting",
        municipality_code=state.municipality_code,
        title=f"ケース会議 (tier {state.tier})",
        participants=participants,
        case_id=state.case_id,
        tier=state.tier,
        deadline=deadline,
    )


def _open_meeting(
    session: Session,
    result: slots.SlotResult,
    *,
    meeting_id: str,
    kind: Literal["case_meeting", "promotion_meeting"],
    municipality_code: str,
    title: str,
    participants: list[str],
    case_id: str | None = None,
    tier: int | None = None,
    deadline: datetime | None = None,
) -> Meeting:
    """Record a meeting at the slot found, publish it, and invite every participant."""
    meeting = Meeting(
        id=meeting_id,
        kind=kind,
        case_id=case_id,
        municipality_code=municipality_code,
        tier=tier,
        title=title,
        starts_at=result.start,
        ends_at=result.end,
        deadline=deadline,
        participants=participants,
        room_id=result.room_id,
        needs_attention=result.needs_attention,
        blockers=list(result.blockers),
    )
    session.add(meeting)
    _stage(
        session,
        municipality_code,
        case_id or meeting_id,
        ConferenceScheduled(
            meeting_id=meeting_id,
            case_id=case_id,
            kind=kind,
            tier=tier,
            starts_at=meeting.starts_at,
            ends_at=meeting.ends_at,
            deadline=deadline,
            participants=participants,
            needs_attention=meeting.needs_attention,
            blockers=meeting.blockers,
        ),
    )
    _invite(session, meeting, participants, "invited")
    return meeting


def meeting_not_found(meeting_id: str) -> Problem:
    """The 404 of a meeting that does not exist, and of one the reader has no part in: the two look alike."""
    return Problem(404, "meeting-not-found", f"no meeting {meeting_id}")


def get_meeting(session: Session, meeting_id: str) -> Meeting:
    """A meeting, or a 404 problem."""
    meeting = session.get(Meeting, meeting_id)
    if meeting is None:
        raise meeting_not_found(meeting_id)
    return meeting


def takes_part(session: Session, meeting: Meeting, agency_id: str) -> bool:
    """True for an agency invited to the meeting (and not withdrawn), and for the lead of its case."""
    if agency_id in meeting.participants:
        return True
    state = session.get(CaseState, meeting.case_id) if meeting.case_id is not None else None
    return state is not None and state.lead == agency_id


def release_basis(
    session: Session, meeting: Meeting, agency_id: str, *, operator: bool
) -> tuple[DisclosureBasis, str | None] | None:
    """The legal basis on which the agency reads the meeting, with what it rests on; None: it has no part in it.

    An agency's part is its engagement on the case (its referral, or the meeting for the lead, who
    may hold none); an operator reads as the operator of its municipalities.
    """
    if takes_part(session, meeting, agency_id):
        referral = referral_of(session, meeting.case_id, agency_id) if meeting.case_id is not None else None
        return "engagement", referral or meeting.id
    if operator:
        return "operator", None
    return None


def record_read(
    session: Session,
    meeting: Meeting,
    recipient: str,
    fields: Iterable[str],
    basis: tuple[DisclosureBasis, str | None] | None,
) -> None:
    """Stage the ledger row of a case meeting's record read (or refused: `basis` None); a 推進会議 has no case."""
    if meeting.case_id is None:
        return
    stage_disclosure(
        session,
        ConferenceOutbox,
        source=SOURCE,
        municipality_code=meeting.municipality_code,
        case_id=meeting.case_id,
        recipient=recipient,
        channel="meeting_record",
        fields=fields,
        basis=basis[0] if basis is not None else "none",
        basis_ref=basis[1] if basis is not None else None,
        released=basis is not None,
    )


def list_meetings(
    session: Session, *, case_id: str | None = None, kind: str | None = None, agency_id: str | None = None
) -> list[Meeting]:
    """Meetings, earliest first; optionally of one case, of one kind, or that one agency takes part in."""
    query = select(Meeting).order_by(col(Meeting.starts_at), col(Meeting.id))
    if case_id is not None:
        query = query.where(Meeting.case_id == case_id)
    if kind is not None:
        query = query.where(Meeting.kind == kind)
    meetings = list(session.exec(query).all())
    if agency_id is not None:
        meetings = [m for m in meetings if takes_part(session, m, agency_id)]
    return meetings


def calendar_meetings(session: Session, agency_id: str) -> list[Meeting]:
    """An agency's calendar: its meetings, and those it was withdrawn from (shown there as cancelled)."""
    query = select(Meeting).order_by(col(Meeting.starts_at), col(Meeting.id))
    return [m for m in session.exec(query).all() if agency_id in m.participants or agency_id in m.withdrawn]


def privacy_note(session: Session, meeting: Meeting) -> str:
    """What the meeting may show of the case's people: never personal details here, and whether consent exists."""
    if meeting.case_id is None:
        return "no case: no personal details"
    state = session.get(CaseState, meeting.case_id)
    if state is None or not state.consents:
        return "本人同意 not given: the case is discussed without personal details"
    return "本人同意 given: engaged agencies read personal details at intake, not here"


def reschedule(
    session: Session, meeting: Meeting, config: MunicipalityConference, *, reason: str, not_before: datetime | None
) -> Meeting:
    """Move a scheduled meeting to the next slot from `not_before` (default now) clear of the one it leaves.

    The meeting's current slot stays among the bookings on purpose: it is the time that did not work,
    so the search from now would otherwise hand the same slot back.
    """
    if meeting.status != "scheduled":
        raise Problem(409, "meeting-not-scheduled", f"a {meeting.status} meeting cannot be rescheduled")
    now = datetime.now(UTC)
    earliest = max(not_before or now, now)
    deadline = max(meeting.deadline or earliest, earliest + timedelta(days=1))
    minutes = (
        config.settings.promotion_meeting.duration_minutes
        if meeting.kind == "promotion_meeting"
        else config.settings.meeting_minutes
    )
    result = _find(
        session,
        config,
        meeting_id=meeting.id,
        participants=meeting.participants,
        minutes=minutes,
        earliest=earliest,
        deadline=deadline,
    )
    meeting.starts_at, meeting.ends_at, meeting.room_id = result.start, result.end, result.room_id
    meeting.needs_attention, meeting.blockers = result.needs_attention, list(result.blockers)
    meeting.status_reason = reason
    meeting.sequence += 1
    meeting.updated_at = now
    session.add(meeting)
    _announce_change(session, meeting, reason=reason)
    _invite(session, meeting, meeting.participants, "updated")
    return meeting


def cancel(session: Session, meeting: Meeting, *, reason: str) -> Meeting:
    """Cancel a scheduled meeting, with the reason."""
    if meeting.status != "scheduled":
        raise Problem(409, "meeting-not-scheduled", f"a {meeting.status} meeting cannot be cancelled")
    meeting.status = "cancelled"
    meeting.status_reason = reason
    meeting.sequence += 1
    meeting.updated_at = datetime.now(UTC)
    session.add(meeting)
    _stage(
        session,
        meeting.municipality_code,
        meeting.case_id or meeting.id,
        ConferenceCancelled(meeting_id=meeting.id, case_id=meeting.case_id, kind=meeting.kind, reason=reason),
    )
    _invite(session, meeting, meeting.participants, "cancelled")
    return meeting


def record_attendance(
    session: Session, meeting: Meeting, body: AttendanceCreate, *, agenda: dict[str, Any] | None = None
) -> Meeting:
    """The meeting was held: record who attended (and the minutes) and publish it."""
    if meeting.status != "scheduled":
        raise Problem(409, "meeting-not-scheduled", f"attendance of a {meeting.status} meeting is already settled")
    now = datetime.now(UTC)
    for record in body.attendance:
        session.add(Attendance(meeting_id=meeting.id, **record.model_dump()))
    meeting.status = "held"
    meeting.minutes = body.minutes
    if agenda is not None:
        meeting.agenda = agenda
    meeting.updated_at = now
    session.add(meeting)
    _stage(
        session,
        meeting.municipality_code,
        meeting.case_id or meeting.id,
        ConferenceHeld(
            meeting_id=meeting.id,
            case_id=meeting.case_id,
            kind=meeting.kind,
            held_at=meeting.starts_at or now,
            attendance=list(body.attendance),
        ),
    )
    return meeting


def record_decision(
    session: Session, meeting: Meeting, body: DecisionCreate, config: MunicipalityConference
) -> CaseDecision:
    """Record a meeting's decision on a case; where the 推進会議 approves plans, a case meeting only drafts."""
    case_id = meeting.case_id or body.case_id
    if case_id is None:
        raise Problem(422, "case-required", "a 推進会議 decision names its case_id")
    state = session.get(CaseState, case_id)
    if state is not None and state.municipality_code != meeting.municipality_code:
        # Another municipality's case does not exist for this one's meetings.
        raise Problem(404, "case-not-found", f"no case {case_id} in municipality {meeting.municipality_code}")
    if meeting.case_id is not None and body.case_id not in (None, meeting.case_id):
        raise Problem(422, "wrong-case", f"this case meeting is about case {meeting.case_id}")
    approves_here = meeting.kind == "promotion_meeting" or not config.settings.promotion_meeting.approves_plans
    decision = CaseDecision(
        meeting_id=meeting.id,
        case_id=case_id,
        plan_status="approved" if body.plan_approved and approves_here else "drafted",
        lead_agency=body.lead_agency,
        roles=body.roles,
        next_review=body.next_review,
    )
    event = _stage(
        session,
        meeting.municipality_code,
        case_id,
        ConferenceDecisionRecorded(
            meeting_id=meeting.id,
            case_id=case_id,
            plan_status=decision.plan_status,
            lead_agency=decision.lead_agency,
            roles=decision.roles,
            next_review=decision.next_review,
            recorded_at=decision.recorded_at,
        ),
    )
    decision.event_id = event.id
    session.add(decision)
    session.flush()
    return decision


# --- the 相談支援包括化推進会議 ------------------------------------------------------------------------


def last_held_promotion_meeting(session: Session, municipality_code: str) -> Meeting | None:
    """The municipality's latest held 推進会議."""
    query = (
        select(Meeting)
        .where(
            Meeting.municipality_code == municipality_code,
            Meeting.kind == "promotion_meeting",
            Meeting.status == "held",
        )
        .order_by(col(Meeting.starts_at).desc())
    )
    return session.exec(query).first()


def schedule_promotion_meeting(
    session: Session, config: MunicipalityConference, *, not_before: datetime | None
) -> Meeting:
    """Convene the 推進会議 of the network (every networked agency and the lead) at the first common slot."""
    code = config.directory.municipality.code
    members = session.exec(select(NetworkMember.agency_id).where(NetworkMember.municipality_code == code)).all()
    participants = sorted({*members, config.directory.municipality.lead})
    now = datetime.now(UTC)
    earliest = max(not_before or now, now)
    meeting_id = new_id()
    promotion = config.settings.promotion_meeting
    result = _find(
        session,
        config,
        meeting_id=meeting_id,
        participants=participants,
        minutes=promotion.duration_minutes,
        earliest=earliest,
        deadline=business_days_after(earliest, 20),
    )
    title = "相談支援包括化推進会議" + (f"（{promotion.reuses}を活用）" if promotion.reuses else "")
    return _open_meeting(
        session,
        result,
        meeting_id=meeting_id,
        kind="promotion_meeting",
        municipality_code=code,
        title=title,
        participants=participants,
    )


@dataclass(frozen=True)
class IndicatorSnapshot:
    """The metrics service's indicator report as fetched for an agenda.

    It is not an event: its agenda line names no event ids but the report it is (municipality, fiscal
    year, month, tier), where it was fetched from and when, so the figures shown can be traced.
    """

    report: Mapping[str, Any]
    url: str
    fetched_at: datetime


SNAPSHOT_IDENTITY = ("municipality_code", "fiscal_year", "fiscal_year_label", "month", "tier")


def _snapshot_line(snapshot: IndicatorSnapshot) -> dict[str, Any]:
    report = snapshot.report
    fetched = snapshot.fetched_at.astimezone(JST).strftime("%Y-%m-%d %H:%M")
    return {
        "text": f"成果指標のスナップショット（{report.get('fiscal_year_label')}、{fetched} 取得）",
        "source_events": [],
        "source": {
            "kind": "metrics_snapshot",
            "report": {key: report.get(key) for key in SNAPSHOT_IDENTITY},
            "url": snapshot.url,
            "fetched_at": snapshot.fetched_at.isoformat(),
        },
        "detail": dict(report),
    }


def build_agenda(
    session: Session,
    config: MunicipalityConference,
    meeting: Meeting,
    *,
    snapshot: IndicatorSnapshot | None,
    snapshot_error: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The agenda by item of 実施要領 3(4)ウ: agencies new to the network, then counts, then the indicators.

    The 推進会議 is the whole network, so (ウ) and (エ) speak in counts and name no case, nor any event
    that would name one (a routing decision is keyed by its case): case-level items belong to each
    case's own meeting, among the agencies engaged on it.
    """
    moment = now or datetime.now(UTC)
    code = meeting.municipality_code
    previous = last_held_promotion_meeting(session, code)
    since = (
        previous.starts_at
        if previous is not None and previous.starts_at is not None
        else datetime(2000, 1, 1, tzinfo=UTC)
    )
    # Where the counts come from, in place of event ids: this service's records of the municipality.
    counted = {
        "kind": "conference_records",
        "municipality_code": code,
        "since": since.isoformat(),
        "as_of": moment.isoformat(),
    }
    directory = config.directory
    newcomers = session.exec(
        select(NetworkMember)
        .where(NetworkMember.municipality_code == code, col(NetworkMember.first_seen_at) > since)
        .order_by(col(NetworkMember.first_seen_at), col(NetworkMember.agency_id))
    ).all()
    network = [
        _line(
            f"{_name(directory, m.agency_id)}（{m.agency_type}）が連携に参加: 役割の共有",
            {"agency_id": m.agency_id, "agency_type": m.agency_type},
            {**counted, "kind": "network_members"},
        )
        for m in newcomers
    ]
    cases = session.exec(select(CaseState).where(CaseState.municipality_code == code)).all()
    case_ids = {c.case_id for c in cases}
    latest = _latest_decisions(session)
    review_after = timedelta(days=config.settings.promotion_meeting.review_after_days)

    def difficult_since(case: CaseState) -> datetime:
        return case.difficult_since or case.routed_at

    def last_looked_at(case: CaseState) -> datetime:
        decision = latest.get(case.case_id)
        return max(decision.recorded_at, difficult_since(case)) if decision else difficult_since(case)

    difficult = [c for c in cases if c.tier >= 2]
    new_cases = [c for c in difficult if difficult_since(c) > since]
    overdue = [c for c in difficult if last_looked_at(c) < moment - review_after]
    awaiting = [d for d in latest.values() if d.plan_status == "drafted" and d.case_id in case_ids]
    needs = [
        _line(
            f"新たに tier 2/3 となったケース: {len(new_cases)}件{_tier_text(new_cases)}",
            {
                "item": "new_difficult_cases",
                "cases": len(new_cases),
                "by_tier": _by_tier(new_cases),
                "by_pattern": dict(sorted(Counter(p for c in new_cases for p in c.patterns).items())),
            },
            counted,
        ),
        _line(
            f"{review_after.days}日を超えて見直されていないケース: {len(overdue)}件{_tier_text(overdue)}",
            {
                "item": "overdue_reviews",
                "cases": len(overdue),
                "by_tier": _by_tier(overdue),
                "review_after_days": review_after.days,
            },
            counted,
        ),
        _line(
            f"承認待ちの支援プラン: {len(awaiting)}件",
            {"item": "plans_awaiting_approval", "plans": len(awaiting)},
            counted,
        ),
    ]
    gaps = session.exec(
        select(ResourceGapReport).where(
            ResourceGapReport.municipality_code == code, col(ResourceGapReport.reported_at) > since
        )
    ).all()
    gap_cases: dict[str, set[str]] = {}
    for gap in gaps:
        gap_cases.setdefault(gap.partner_type, set()).add(gap.case_id)
    resources = [
        _line(
            f"社会資源の不足: {partner_type}（{len(reporting)}件のケース）",
            {"partner_type": partner_type, "cases": len(reporting)},
            counted,
        )
        for partner_type, reporting in sorted(gap_cases.items())
    ]
    results = (
        [_snapshot_line(snapshot)]
        if snapshot is not None
        else [{"text": f"成果指標を取得できませんでした: {snapshot_error}", "source_events": [], "detail": {}}]
    )
    return {
        "meeting_id": meeting.id,
        "generated_at": moment.isoformat(),
        "since": since.isoformat(),
        "reuses": config.settings.promotion_meeting.reuses,
        "items": {
            "ア_イ": {
                "title": "各相談支援機関の業務内容の理解・具体的な連携方法（新たな参加機関と役割）",
                "lines": network,
            },
            "ウ": {
                "title": "地域住民が抱える福祉ニーズの把握（新規・未見直しケース、承認待ちプランの件数）",
                "lines": needs,
            },
            "エ": {"title": "地域に不足する社会資源（ルーターが報告した不足の件数）", "lines": resources},
            "オ": {"title": "本事業による支援実績の検証（成果指標）", "lines": results},
        },
    }


def _line(text: str, detail: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    # No event ids: those of these records are a case's routing decisions and meeting records.
    return {"text": text, "source_events": [], "source": source, "detail": detail}


def _by_tier(cases: Iterable[CaseState]) -> dict[str, int]:
    return dict(sorted(Counter(f"tier{c.tier}" for c in cases).items()))


def _tier_text(cases: list[CaseState]) -> str:
    tiers = _by_tier(cases)
    return "（" + "、".join(f"tier {k.removeprefix('tier')}: {n}件" for k, n in tiers.items()) + "）" if tiers else ""


def _name(directory: Directory, agency_id: str) -> str:
    agency = directory.find_agency(agency_id)
    return agency.name if agency is not None else agency_id


def _latest_decisions(session: Session) -> dict[str, CaseDecision]:
    """Each case's latest decision: when it was last reviewed, and whether its plan awaits approval."""
    decisions = session.exec(select(CaseDecision).order_by(col(CaseDecision.recorded_at), col(CaseDecision.id)))
    return {decision.case_id: decision for decision in decisions.all()}


def next_series_date(config: PromotionMeetingConfig, after: date) -> date | None:
    """The first day of the month of the next 推進会議 of the series, after `after` (None: on demand)."""
    if config.cadence == "on_demand":
        return None
    if config.cadence == "every_n_months":
        month = after.month - 1 + config.every_months
        return date(after.year + month // 12, month % 12 + 1, 1)
    for offset in range(1, 13):
        month = (after.month - 1 + offset) % 12 + 1
        if month in config.months:
            return date(after.year + (after.month - 1 + offset) // 12, month, 1)
    return None
