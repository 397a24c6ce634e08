"""The 支援会議 (Art. 106-6) and the 重層的支援会議: the roster that says who may sit in a 支援会議, and
scheduling either about one case."""

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from sqlmodel import Session, select

from services.conference.config import MunicipalityConference
from services.conference.errors import CaseNotFound, ConsentRequired, NotOnRoster
from services.conference.kinds import rule_of
from services.conference.models import CaseState, Meeting, RosterMember
from services.conference.roster import current_member, local_today
from services.conference.scheduling import announce_change, business_days_after, find_slot, invite, open_meeting
from shared.events import Envelope, MeetingKind, SupportMeetingRosterChanged
from shared.ids import new_id


def apply_roster_changed(session: Session, envelope: Envelope[SupportMeetingRosterChanged]) -> None:
    """Keep the roster; withdraw an agency that is no longer a member from the 支援会議 still to come."""
    data = envelope.data
    code = envelope.municipalitycode
    entry = session.get(RosterMember, (code, data.agency_id))
    if entry is not None and entry.changed_at > data.changed_at:
        return
    entry = entry or RosterMember(
        municipality_code=code,
        agency_id=data.agency_id,
        member_from=data.member_from,
        roster_ref=data.roster_ref,
        changed_at=data.changed_at,
    )
    entry.member_from, entry.member_until = data.member_from, data.member_until
    entry.roster_ref, entry.changed_at = data.roster_ref, data.changed_at
    session.add(entry)
    session.flush()
    withdraw_non_members(session, code, local_today())


def withdraw_non_members(session: Session, municipality_code: str, today: date) -> None:
    """Take every agency that is not a member today off the scheduled 支援会議 of the municipality."""
    upcoming = session.exec(
        select(Meeting).where(
            Meeting.municipality_code == municipality_code,
            Meeting.kind == "support_meeting",
            Meeting.status == "scheduled",
        )
    ).all()
    for meeting in upcoming:
        gone = [a for a in meeting.participants if current_member(session, municipality_code, a, today) is None]
        if not gone:
            continue
        meeting.participants = [a for a in meeting.participants if a not in gone]
        meeting.withdrawn = sorted({*meeting.withdrawn, *gone})
        meeting.sequence += 1
        meeting.updated_at = datetime.now(UTC)
        session.add(meeting)
        announce_change(session, meeting, reason="no longer a member of the 支援会議")
        invite(session, meeting, gone, "withdrawn")


def schedule_support_meeting(
    session: Session,
    config: MunicipalityConference,
    *,
    case_id: str,
    organiser: str,
    invitees: Iterable[str],
    not_before: datetime | None,
    today: date | None = None,
) -> Meeting:
    """A 支援会議 about the case among current roster members only: the organiser and those it invites.

    The case may have no 本人同意 and its person may not have been reached yet: the 支援会議 is where
    that may be discussed (Art. 106-6).
    """
    state = _case(session, config, case_id)
    day = today or local_today()
    participants = sorted({organiser, *invitees})
    outside = [a for a in participants if current_member(session, config.code, a, day) is None]
    if outside:
        raise NotOnRoster(outside, config.code)
    return _schedule(session, config, state, "support_meeting", participants, not_before)


def schedule_plan_meeting(
    session: Session, config: MunicipalityConference, *, case_id: str, not_before: datetime | None
) -> Meeting:
    """A 重層的支援会議 of the agencies the case's plan involves (its lead and engaged agencies), only with
    a live 本人同意: without one, the case is discussed at a 支援会議."""
    state = _case(session, config, case_id)
    if not state.consents:
        raise ConsentRequired(case_id)
    participants = sorted(set(state.engaged) | ({state.lead} if state.lead else set()))
    return _schedule(session, config, state, "plan_meeting", participants, not_before)


def _case(session: Session, config: MunicipalityConference, case_id: str) -> CaseState:
    state = session.get(CaseState, case_id)
    if state is None or state.municipality_code != config.code:
        raise CaseNotFound(case_id, config.code)
    return state


def _schedule(
    session: Session,
    config: MunicipalityConference,
    state: CaseState,
    kind: MeetingKind,
    participants: list[str],
    not_before: datetime | None,
) -> Meeting:
    now = datetime.now(UTC)
    earliest = max(not_before or now, now + timedelta(hours=1))
    days = config.settings.deadline_business_days.get(state.urgency, 10)
    deadline = business_days_after(earliest, days)
    meeting_id = new_id()
    result = find_slot(
        session,
        config,
        meeting_id=meeting_id,
        participants=participants,
        minutes=config.settings.meeting_minutes,
        earliest=earliest,
        deadline=deadline,
    )
    return open_meeting(
        session,
        result,
        meeting_id=meeting_id,
        kind=kind,
        municipality_code=config.code,
        title=rule_of(kind).name,
        participants=participants,
        case_id=state.case_id,
        tier=state.tier,
        deadline=deadline,
    )
