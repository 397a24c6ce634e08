"""Topic names, defined once. One event type per topic; the message key is the case id."""

CONSULTATION_RECEIVED = "marugoto.consultation.received"
CONTACT_RECORDED = "marugoto.contact.recorded"
CONSENT_GIVEN = "marugoto.consent.given"
CONSENT_REVOKED = "marugoto.consent.revoked"
ROUTING_DECIDED = "marugoto.routing.decided"
REFERRAL_REQUESTED = "marugoto.referral.requested"
CONFERENCE_SCHEDULED = "marugoto.conference.scheduled"

EVENT_TOPICS = (
    CONSULTATION_RECEIVED,
    CONTACT_RECORDED,
    CONSENT_GIVEN,
    CONSENT_REVOKED,
    ROUTING_DECIDED,
    REFERRAL_REQUESTED,
    CONFERENCE_SCHEDULED,
)


def dead_letter_topic(topic: str) -> str:
    """Where a message of `topic` that can never be applied is parked, with its reason."""
    return f"{topic}.dlq"


ALL_TOPICS = EVENT_TOPICS + tuple(dead_letter_topic(t) for t in EVENT_TOPICS)
