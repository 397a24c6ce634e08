"""The 相談支援包括化推進会議 of each municipality's network: convened on demand, or kept scheduled as a
series at the municipality's cadence."""

from collections.abc import Mapping
from datetime import UTC, date, datetime

from sqlmodel import Session, col, select

from services.conference.config import MunicipalityConference, PromotionMeetingConfig
from services.conference.models import Meeting, NetworkMember
from services.conference.scheduling import announce_change, business_days_after, find_slot, invite, open_meeting
from shared.calendar import JST
from shared.ids import new_id


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
    participants = _network(session, config)
    now = datetime.now(UTC)
    earliest = max(not_before or now, now)
    meeting_id = new_id()
    promotion = config.settings.promotion_meeting
    result = find_slot(
        session,
        config,
        meeting_id=meeting_id,
        participants=participants,
        minutes=promotion.duration_minutes,
        earliest=earliest,
        deadline=business_days_after(earliest, 20),
    )
    title = "相談支援包括化推進会議" + (f"（{promotion.reuses}を活用）" if promotion.reuses else "")
    return open_meeting(
        session,
        result,
        meeting_id=meeting_id,
        kind="promotion_meeting",
        municipality_code=code,
        title=title,
        participants=participants,
    )


def keep_series_scheduled(session: Session, configs: Mapping[str, MunicipalityConference]) -> int:
    """Schedule the next 推進会議 of each municipality with a cadence and none upcoming, and invite to the
    upcoming ones the agencies that joined the network since they were booked; how many meetings were
    scheduled or changed (each has events for the relay to publish)."""
    changed = 0
    for code, config in configs.items():
        promotion = config.settings.promotion_meeting
        upcoming = session.exec(
            select(Meeting).where(
                Meeting.municipality_code == code,
                Meeting.kind == "promotion_meeting",
                Meeting.status == "scheduled",
            )
        ).all()
        for meeting in upcoming:
            changed += bool(invite_new_members(session, meeting, config))
        if upcoming:
            continue
        last = last_held_promotion_meeting(session, code)
        # The series runs on the municipality's calendar: a meeting at 08:30 JST on the 1st is still the
        # previous day in UTC.
        after = (last.starts_at if last and last.starts_at else datetime.now(UTC)).astimezone(JST).date()
        first_day = next_series_date(promotion, after)
        if first_day is None:
            continue
        start = datetime.combine(first_day, datetime.min.time(), tzinfo=JST)
        schedule_promotion_meeting(session, config, not_before=start)
        changed += 1
    return changed


def invite_new_members(session: Session, meeting: Meeting, config: MunicipalityConference) -> list[str]:
    """Invite to a scheduled 推進会議 the network's agencies it does not invite yet; those invited.

    A series meeting is booked months ahead, often before most agencies have joined: the 推進会議 is
    the whole network, so each agency that joins by then is invited too.
    """
    joined = set(_network(session, config)) - set(meeting.participants)
    if not joined:
        return []
    added = sorted(joined)
    meeting.participants = sorted({*meeting.participants, *added})
    meeting.sequence += 1
    meeting.updated_at = datetime.now(UTC)
    session.add(meeting)
    announce_change(session, meeting, reason="agencies joined the network")
    invite(session, meeting, added, "invited")
    return added


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


def _network(session: Session, config: MunicipalityConference) -> list[str]:
    """Who a 推進会議 invites: every agency of the municipality's network and the lead."""
    query = select(NetworkMember.agency_id).where(NetworkMember.municipality_code == config.code)
    return sorted({*session.exec(query).all(), config.directory.municipality.lead})
