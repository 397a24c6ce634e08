"""Who is a member of a municipality's 支援会議 today, from the roster intake publishes."""

from datetime import date, datetime

from sqlmodel import Session

from services.conference.models import RosterMember
from shared.calendar import JST


def local_today() -> date:
    """Today in Japan, by which roster memberships begin and end."""
    return datetime.now(JST).date()


def current_member(session: Session, municipality_code: str, agency_id: str, today: date) -> RosterMember | None:
    """The agency's membership of the municipality's 支援会議 if it is a member today."""
    entry = session.get(RosterMember, (municipality_code, agency_id))
    if entry is None or entry.member_from > today or (entry.member_until is not None and entry.member_until < today):
        return None
    return entry
