"""Any meeting, case meeting or 推進会議: finding it, listing it, moving or cancelling it, and recording
that it was held and what it decided."""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from services.conference.config import MunicipalityConference
from services.conference.errors import CaseNotFound, CaseRequired, MeetingNotFound, MeetingNotScheduled, WrongCase
from services.conference.models import Attendance, AttendanceCreate, CaseDecision, CaseState, DecisionCreate, Meeting
from services.conference.publishing import stage
from services.conference.releases import takes_part
from services.conference.scheduling import announce_change, find_slot, invite
from shared.events import ConferenceCancelled, ConferenceDecisionRecorded, ConferenceHeld


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
    session: Session, meeting: Meeting, body: AttendanceCreate, *, agenda: dict[str, Any] | None = None
) -> Meeting:
    """The meeting was held: record who attended (and the minutes) and publish it."""
    if meeting.status != "scheduled":
        raise MeetingNotScheduled(f"attendance of a {meeting.status} meeting is already settled")
    now = datetime.now(UTC)
    for record in body.attendance:
        session.add(Attendance(meeting_id=meeting.id, **record.model_dump()))
    meeting.status = "held"
    meeting.minutes = body.minutes
    if agenda is not None:
        meeting.agenda = agenda
    meeting.updated_at = now
    session.add(meeting)
    stage(
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
        raise CaseRequired()
    state = session.get(CaseState, case_id)
    if state is not None and state.municipality_code != meeting.municipality_code:
        # Another municipality's case does not exist for this one's meetings.
        raise CaseNotFound(case_id, meeting.municipality_code)
    if meeting.case_id is not None and body.case_id not in (None, meeting.case_id):
        raise WrongCase(meeting.case_id)
    approves_here = meeting.kind == "promotion_meeting" or not config.settings.promotion_meeting.approves_plans
    decision = CaseDecision(
        meeting_id=meeting.id,
        case_id=case_id,
        plan_status="approved" if body.plan_approved and approves_here else "drafted",
        lead_agency=body.lead_agency,
        roles=body.roles,
        next_review=body.next_review,
    )
    event = stage(
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
