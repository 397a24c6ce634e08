"""Booking a meeting: the first slot every participant can make, the meeting opened there, and the
invitations and announcements that follow it when it opens or changes."""

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from services.conference import slots
from services.conference.config import MunicipalityConference
from services.conference.models import BookingLock, ConferenceOutbox, Meeting
from services.conference.publishing import SOURCE, stage
from services.conference.releases import participant_basis
from shared.calendar import JST, is_closed_day
from shared.disclosure import stage_disclosure
from shared.events import ConferenceRescheduled, ConferenceScheduled, MeetingInvitation, MeetingKind

# A meeting in one of these states holds its slot: its participants and room are booked.
ACTIVE = ("scheduled",)
INVITATION_FIELDS = tuple(MeetingInvitation.model_fields)


def business_days_after(start: datetime, days: int) -> datetime:
    """The end (18:00 JST) of the `days`-th open day after `start`."""
    day = start.astimezone(JST).date()
    while days > 0:
        day += timedelta(days=1)
        if not is_closed_day(day):
            days -= 1
    return datetime.combine(day, time(18, 0), tzinfo=JST)


def find_slot(
    session: Session,
    config: MunicipalityConference,
    *,
    meeting_id: str,
    participants: list[str],
    minutes: int,
    earliest: datetime,
    deadline: datetime,
) -> slots.SlotResult:
    """The first slot from `earliest` that every participant (and a room, where the municipality has
    rooms) can make, with the bookings of every municipality the participants serve held until the
    transaction ends."""
    request = slots.SlotRequest(
        meeting_id=meeting_id,
        participants=participants,
        duration=timedelta(minutes=minutes),
        earliest=earliest,
        deadline=deadline,
        room_needed=bool(config.rooms),
    )
    codes = config.municipalities_of(participants)
    _lock_bookings(session, codes)
    end = slots.search_end(deadline)
    bookings = _bookings(session, start=earliest, end=end, codes=codes, rooms_of=config.code)
    return slots.find_slot(request, config.hours, bookings, config.rooms)


def _lock_bookings(session: Session, municipality_codes: list[str]) -> None:
    """Hold the booking row of each municipality until the transaction ends: the meetings of the agencies
    they share are booked one at a time.

    Reading the bookings and then inserting a meeting is not atomic: two meetings decided at the same
    moment would both find the lead free at 10:00 and both take it. A prefecture-wide agency is booked
    from several municipalities, so every municipality it serves is locked, always in sorted order so two
    bookings never wait on each other. The upsert always writes the row, so on PostgreSQL it takes the
    row lock (as SELECT ... FOR UPDATE would, and it creates the row the first time without a unique-key
    race); on SQLite it takes the database's write lock before the bookings are read, which pysqlite would
    otherwise read outside any transaction.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = datetime.now(UTC)
    for code in sorted(municipality_codes):
        statement = insert(BookingLock).values(municipality_code=code, booked_at=now)
        session.exec(statement.on_conflict_do_update(index_elements=["municipality_code"], set_={"booked_at": now}))


def _bookings(
    session: Session, *, start: datetime, end: datetime, codes: list[str], rooms_of: str
) -> list[slots.Booking]:
    """The bookings in the municipalities `codes` that overlap [start, end): only those can stand in the
    way of a slot found there. Rooms are a municipality's own: only `rooms_of`'s meetings book them, so
    another municipality's "room-1" is another room."""
    meetings = session.exec(
        select(Meeting).where(
            col(Meeting.municipality_code).in_(codes),
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
        if meeting.room_id and meeting.municipality_code == rooms_of:
            booked.append(
                slots.Booking(
                    participant=slots.ROOM_PREFIX + meeting.room_id, start=meeting.starts_at, end=meeting.ends_at
                )
            )
    return booked


def open_meeting(
    session: Session,
    result: slots.SlotResult,
    *,
    meeting_id: str,
    kind: MeetingKind,
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
    stage(
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
    invite(session, meeting, participants, "invited")
    return meeting


def invite(session: Session, meeting: Meeting, agencies: Iterable[str], status: str) -> None:
    """Send each agency its invitation (or its update); one naming a case is a release of the case, on
    the basis its meeting's kind gives the agency.

    An agency withdrawn from a 支援会議 has left its roster: the notice names the meeting, not the case.
    """
    for agency_id in agencies:
        case_id = None if meeting.kind == "support_meeting" and status == "withdrawn" else meeting.case_id
        if case_id is not None:
            basis, basis_ref = participant_basis(session, meeting, agency_id)
            stage_disclosure(
                session,
                ConferenceOutbox,
                source=SOURCE,
                municipality_code=meeting.municipality_code,
                case_id=case_id,
                recipient=agency_id,
                channel="meeting_invitation",
                fields=INVITATION_FIELDS,
                basis=basis,
                basis_ref=basis_ref,
            )
        stage(
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
                case_id=case_id,
            ),
        )


def announce_change(session: Session, meeting: Meeting, *, reason: str) -> None:
    """Publish that a meeting moved or its invitation list changed."""
    stage(
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
