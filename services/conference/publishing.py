"""What conference publishes: each event staged in its outbox, in the caller's transaction."""

from sqlmodel import Session

from services.conference.models import ConferenceOutbox
from shared import outbox
from shared.events import Envelope, EventData, new_event

SOURCE = "/marugoto/conference"


def stage(session: Session, municipality_code: str, subject: str, data: EventData) -> Envelope[EventData]:
    """Stage `data` for publication once the transaction commits; the relay publishes it."""
    event = new_event(data, source=SOURCE, subject=subject, municipality_code=municipality_code)
    outbox.stage(session, ConferenceOutbox, event)
    return event
