"""Conference's logic: a case meeting for every tier-2 and tier-3 decision.

The first slot is the next business day at 10:00 (Japan time) within a deadline set by urgency. The
full slot finder (business hours, holidays, bookings) replaces `first_slot` in the conference issue.
"""

import uuid
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from services.conference.models import ConferenceOutbox, Meeting
from shared import outbox
from shared.events import ConferenceScheduled, Envelope, RoutingDecided, new_event

SOURCE = "/marugoto/conference"
JST = ZoneInfo("Asia/Tokyo")
MEETING_TIME = time(10, 0)
DEADLINE_BUSINESS_DAYS = {"urgent": 2, "soon": 5, "routine": 10}


def add_business_days(day: date, count: int) -> date:
    """`day` moved forward by `count` weekdays (Saturday and Sunday skipped)."""
    while count > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            count -= 1
    return day


def first_slot(decided_at: datetime) -> datetime:
    """The next business day at 10:00 JST after the decision."""
    day = add_business_days(decided_at.astimezone(JST).date(), 1)
    return datetime.combine(day, MEETING_TIME, tzinfo=JST)


def deadline_for(decided_at: datetime, urgency: str) -> datetime:
    """End of the last business day by which the case meeting must be held."""
    day = add_business_days(decided_at.astimezone(JST).date(), DEADLINE_BUSINESS_DAYS.get(urgency, 10))
    return datetime.combine(day, time(18, 0), tzinfo=JST)


def schedule_case_meeting(session: Session, envelope: Envelope[RoutingDecided]) -> Meeting | None:
    """Schedule the case meeting a tier-2/3 decision needs (once per case); None for tier 1."""
    decision = envelope.data
    if decision.tier == 1:
        return None
    existing = session.exec(
        select(Meeting).where(Meeting.case_id == decision.case_id, Meeting.kind == "case_meeting")
    ).first()
    if existing is not None:
        return existing
    participants = list(dict.fromkeys(e.agency_id for e in decision.engaged))
    meeting = Meeting(
        id=str(uuid.uuid4()),
        case_id=decision.case_id,
        municipality_code=envelope.municipalitycode,
        kind="case_meeting",
        tier=decision.tier,
        starts_at=first_slot(decision.decided_at),
        deadline=deadline_for(decision.decided_at, decision.urgency),
        participants=participants,
    )
    session.add(meeting)
    event = ConferenceScheduled(
        meeting_id=meeting.id,
        case_id=meeting.case_id,
        kind="case_meeting",
        tier=decision.tier,
        starts_at=meeting.starts_at,
        deadline=meeting.deadline,
        participants=participants,
    )
    outbox.stage(
        session,
        ConferenceOutbox,
        new_event(event, source=SOURCE, subject=meeting.case_id, municipality_code=envelope.municipalitycode),
    )
    return meeting


def list_meetings(session: Session, *, case_id: str | None = None) -> list[Meeting]:
    """Meetings, optionally of one case, earliest first."""
    query = select(Meeting).order_by(Meeting.starts_at)  # type: ignore[arg-type]
    if case_id is not None:
        query = query.where(Meeting.case_id == case_id)
    return list(session.exec(query).all())
