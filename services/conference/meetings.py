"""Any meeting, case meeting or 推進会議: finding it, listing it, moving or cancelling it, and recording
that it was held and what it decided."""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from services.conference import life, plans
from services.conference.config import MunicipalityConference
from services.conference.errors import (
    CaseNotFound,
    CaseRequired,
    ConsentRequired,
    DecisionIncomplete,
    DecisionNotFound,
    DecisionNotOfThisKind,
    MeetingNotFound,
    MeetingNotHeld,
    MeetingNotScheduled,
    PlanNotFound,
    WrongCase,
)
from services.conference.kinds import rule_of
from services.conference.models import (
    Attendance,
    AttendanceCreate,
    CaseDecision,
    CaseState,
    DecisionCreate,
    DecisionPublic,
    Meeting,
    SupportPlan,
)
from services.conference.publishing import stage
from services.conference.releases import takes_part
from services.conference.scheduling import announce_change, find_slot, invite
from shared.directory import Directory
from shared.events import AttendanceRecord, ConferenceCancelled, ConferenceDecisionRecorded, ConferenceHeld


def get_meeting(session: Session, meeting_id: str) -> Meeting:
    """A meeting; MeetingNotFound when there is none."""
    meeting = session.get(Meeting, meeting_id)
    if meeting is None:
        raise MeetingNotFound(meeting_id)
    return meeting


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


def reschedule(
    session: Session, meeting: Meeting, config: MunicipalityConference, *, reason: str, not_before: datetime | None
) -> Meeting:
    """Move a scheduled meeting to the next slot from `not_before` (default now) clear of the one it leaves.

    The meeting's current slot stays among the bookings on purpose: it is the time that did not work,
    so the search from now would otherwise hand the same slot back.
    """
    if meeting.status != "scheduled":
        raise MeetingNotScheduled(f"a {meeting.status} meeting cannot be rescheduled")
    now = datetime.now(UTC)
    earliest = max(not_before or now, now)
    deadline = max(meeting.deadline or earliest, earliest + timedelta(days=1))
    minutes = (
        config.settings.promotion_meeting.duration_minutes
        if meeting.kind == "promotion_meeting"
        else config.settings.meeting_minutes
    )
    result = find_slot(
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
    announce_change(session, meeting, reason=reason)
    invite(session, meeting, meeting.participants, "updated")
    return meeting


def cancel(session: Session, meeting: Meeting, *, reason: str) -> Meeting:
    """Cancel a scheduled meeting, with the reason."""
    if meeting.status != "scheduled":
        raise MeetingNotScheduled(f"a {meeting.status} meeting cannot be cancelled")
    meeting.status = "cancelled"
    meeting.status_reason = reason
    meeting.sequence += 1
    meeting.updated_at = datetime.now(UTC)
    session.add(meeting)
    stage(
        session,
        meeting.municipality_code,
        meeting.case_id or meeting.id,
        ConferenceCancelled(meeting_id=meeting.id, case_id=meeting.case_id, kind=meeting.kind, reason=reason),
    )
    invite(session, meeting, meeting.participants, "cancelled")
    return meeting


def record_attendance(
    session: Session,
    meeting: Meeting,
    body: AttendanceCreate,
    config: MunicipalityConference,
    *,
    agenda: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Meeting:
    """The meeting was held: freeze its record (attendance, minutes, agenda, directory version and, for a
    重層的支援会議, the 支援プラン version before it) and publish it."""
    if meeting.status != "scheduled":
        raise MeetingNotScheduled(f"attendance of a {meeting.status} meeting is already settled")
    held_at = now or datetime.now(UTC)
    attendance = [_with_directory_sector(config.directory, record) for record in body.attendance]
    for record in attendance:
        session.add(Attendance(meeting_id=meeting.id, **record.model_dump()))
    meeting.status = "held"
    meeting.minutes = body.minutes
    meeting.agenda = agenda
    meeting.held_at = held_at
    meeting.directory_version = config.directory.version
    if meeting.kind == "plan_meeting" and meeting.case_id is not None:
        meeting.plan_version = plans.latest_version(session, meeting.case_id)
    meeting.updated_at = held_at
    session.add(meeting)
    stage(
        session,
        meeting.municipality_code,
        meeting.case_id or meeting.id,
        ConferenceHeld(
            meeting_id=meeting.id,
            case_id=meeting.case_id,
            kind=meeting.kind,
            held_at=meeting.starts_at or held_at,
            attendance=attendance,
        ),
    )
    return meeting


def _with_directory_sector(directory: Directory, record: AttendanceRecord) -> AttendanceRecord:
    # The indicators count sectors: an organiser's slip must not move an agency across them.
    agency = directory.find_agency(record.participant) if record.kind == "agency" else None
    return record if agency is None else record.model_copy(update={"sector": agency.sector})


def attendance_of(session: Session, meeting: Meeting) -> list[AttendanceRecord]:
    """Who attended a held meeting, as recorded when it was held."""
    rows = session.exec(
        select(Attendance).where(Attendance.meeting_id == meeting.id).order_by(col(Attendance.participant))
    ).all()
    return [
        AttendanceRecord.model_validate(row.model_dump(include={"participant", "kind", "sector", "attended"}))
        for row in rows
    ]


def decisions_of(session: Session, meeting: Meeting) -> list[DecisionPublic]:
    """A meeting's decisions in the order recorded, corrections included beside what they correct."""
    rows = session.exec(
        select(CaseDecision).where(CaseDecision.meeting_id == meeting.id).order_by(col(CaseDecision.id))
    ).all()
    return [DecisionPublic.model_validate(row.model_dump()) for row in rows]


def record_decision(
    session: Session, meeting: Meeting, body: DecisionCreate, config: MunicipalityConference, *, by: str | None = None
) -> CaseDecision:
    """Record a held meeting's decision on a case, of a type its kind takes (`kinds.KINDS`).

    A plan is approved where the municipality approves plans (a case meeting only drafts where the
    推進会議 approves; a 支援会議, without consent, only drafts). A 支援決定 approves a 支援プラン version
    with the case's live 本人同意 (`plans.to_approve`); where the municipality approves plans at case
    meetings, an approved plan decision with consent approves the newest draft. A 終結 ends coordination
    with its reason, the 主担当 that keeps accompanying and, with 見守り, the next check-in (the case's
    life changes with it). A correction is a new decision naming the one of this meeting it corrects, of
    the same type; the corrected one stays. `by` is who records it (default: the municipality's lead).
    """
    if meeting.status != "held":
        raise MeetingNotHeld(meeting.status)
    rule = rule_of(meeting.kind)
    if body.type not in rule.decisions:
        raise DecisionNotOfThisKind(body.type, rule.name, sorted(rule.decisions))
    _check_complete(body)
    corrected = None
    if body.corrects is not None:
        corrected = session.get(CaseDecision, body.corrects)
        if corrected is None or corrected.meeting_id != meeting.id:
            raise DecisionNotFound(body.corrects)
        if corrected.decision_type != body.type:
            raise DecisionIncomplete(f"decision {corrected.id} is a {corrected.decision_type}: correct it with one")
    case_id = meeting.case_id or body.case_id or (corrected.case_id if corrected else None)
    if case_id is None:
        raise CaseRequired()
    state = session.get(CaseState, case_id)
    if state is not None and state.municipality_code != meeting.municipality_code:
        # Another municipality's case does not exist for this one's meetings.
        raise CaseNotFound(case_id, meeting.municipality_code)
    if meeting.case_id is not None and body.case_id not in (None, meeting.case_id):
        raise WrongCase(meeting.case_id)
    if corrected is not None and case_id != corrected.case_id:
        raise WrongCase(corrected.case_id)
    consent = state.consents[0] if state is not None and state.consents else None
    if body.type == "support_decision" and consent is None:
        raise ConsentRequired(case_id)
    plan_status = _plan_status(meeting, body, config, consent)
    approving = _plan_to_approve(session, meeting, body, config, case_id, plan_status)
    decision = CaseDecision(
        meeting_id=meeting.id,
        case_id=case_id,
        decision_type=body.type,
        plan_status=plan_status,
        lead_agency=body.lead_agency,
        roles=body.roles,
        next_review=body.next_review,
        consent_id=consent if body.type != "plan" else None,
        plan_version=approving.version if approving is not None else None,
        closure_reason=body.closure_reason,
        watch=body.watch,
        corrects=body.corrects,
    )
    event = stage(
        session,
        meeting.municipality_code,
        case_id,
        ConferenceDecisionRecorded(
            meeting_id=meeting.id,
            meeting_kind=rule.kind,
            case_id=case_id,
            decision_type=body.type,
            plan_status="approved" if decision.plan_status == "approved" else "drafted",
            lead_agency=decision.lead_agency,
            roles=decision.roles,
            next_review=decision.next_review,
            recorded_at=decision.recorded_at,
            consent_id=decision.consent_id,
            plan_version=decision.plan_version,
            closure_reason=body.closure_reason,
            watch=decision.watch,
            # The corrected decision's own event: a consumer knows it by that id, not by a row id of ours.
            corrects=corrected.event_id if corrected is not None else None,
        ),
    )
    decision.event_id = event.id
    session.add(decision)
    session.flush()
    recorder = by or config.directory.municipality.lead
    if approving is not None:
        plans.approve(session, approving, meeting_id=meeting.id, decision_id=decision.id, by=recorder)
    if body.type == "closure":
        life.record_closure(session, state, meeting.municipality_code, decision)
    return decision


def _plan_to_approve(
    session: Session,
    meeting: Meeting,
    body: DecisionCreate,
    config: MunicipalityConference,
    case_id: str,
    plan_status: str,
) -> SupportPlan | None:
    """The 支援プラン version the decision approves: a 支援決定's (404 `plan-not-found` without one); where
    plans are approved at case meetings, the newest draft, by a plan decision approved there (with
    consent: see `_plan_status`)."""
    if body.type == "support_decision":
        return plans.to_approve(session, case_id, version=body.plan_version, seen=meeting.plan_version)
    approves_at_case_meeting = config.settings.plans.approved_at == "case_meeting" and meeting.kind == "case_meeting"
    if body.type != "plan" or not approves_at_case_meeting or plan_status != "approved":
        return None
    try:
        return plans.to_approve(session, case_id, version=body.plan_version, seen=None)
    except PlanNotFound:
        if body.plan_version is not None:
            raise
        return None  # a plan decision of a case without a drafted 支援プラン approves only itself


def _check_complete(body: DecisionCreate) -> None:
    """What each type of decision must state, and must not: a 終結 is not a plan, nor a plan a 終結."""
    if body.type == "closure":
        if body.closure_reason is None:
            raise DecisionIncomplete("a 終結 states its reason (closure_reason)")
        if body.watch and body.next_review is None:
            raise DecisionIncomplete("見守り after a 終結 states its next check-in (next_review)")
        return
    if body.closure_reason is not None or body.watch:
        raise DecisionIncomplete("closure_reason and watch belong to a 終結 (type closure)")
    if body.next_review is None:
        raise DecisionIncomplete("a plan or 支援決定 states its next review (next_review)")


def _plan_status(meeting: Meeting, body: DecisionCreate, config: MunicipalityConference, consent: str | None) -> str:
    if body.type != "plan":
        # A 支援決定 is the plan's approval; a 終結 is decided, with nothing left to approve.
        return "approved"
    if meeting.kind == "support_meeting":
        return "drafted"  # without 本人同意, a plan may only be discussed (LAW-2020 §4.6)
    if meeting.kind == "case_meeting" and config.settings.plans.approved_at == "case_meeting" and consent is None:
        return "drafted"  # where case meetings approve plans, they do so with 本人同意 only
    approves_here = meeting.kind == "promotion_meeting" or not config.settings.promotion_meeting.approves_plans
    return "approved" if body.plan_approved and approves_here else "drafted"
