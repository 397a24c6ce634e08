"""Topic names, defined once. One event type per topic; the message key is the case id."""

CONSULTATION_RECEIVED = "marugoto.consultation.received"
CONTACT_RECORDED = "marugoto.contact.recorded"
CONSENT_GIVEN = "marugoto.consent.given"
CONSENT_REVOKED = "marugoto.consent.revoked"
ROUTING_DECIDED = "marugoto.routing.decided"
REFERRAL_REQUESTED = "marugoto.referral.requested"
REFERRAL_STATUS_CHANGED = "marugoto.referral.status_changed"
REFERRAL_OVERDUE = "marugoto.referral.overdue"
# Keyed by agency id (not case id): an agency's integration follows only its own referrals.
AGENCY_FEED = "marugoto.agency.feed"
CONFERENCE_SCHEDULED = "marugoto.conference.scheduled"
CONFERENCE_RESCHEDULED = "marugoto.conference.rescheduled"
CONFERENCE_CANCELLED = "marugoto.conference.cancelled"
CONFERENCE_HELD = "marugoto.conference.held"
CONFERENCE_DECISION_RECORDED = "marugoto.conference.decision_recorded"
# Keyed by agency id: each invited agency follows its own invitations.
CONFERENCE_INVITATION = "marugoto.conference.invitation"
# Every release of case information to an agency (the disclosure ledger), keyed by case id.
DISCLOSURE_RECORDED = "marugoto.disclosure.recorded"
HOUSEHOLD_LINKED = "marugoto.household.linked"
# The 支援会議 roster of each municipality (Art. 106-6), keyed by municipality code.
SUPPORT_MEETING_ROSTER = "marugoto.support_meeting.roster"
# A case's life after routing: its 支援プラン, monitoring, 終結/見守り/reopening, and 転居.
PLAN_CHANGED = "marugoto.plan.changed"
MONITORING_DUE = "marugoto.plan.monitoring_due"
MONITORING_RECORDED = "marugoto.plan.monitoring_recorded"
CASE_LIFE_CHANGED = "marugoto.case.life_changed"
CASE_TRANSFERRED = "marugoto.case.transferred"
# 利用停止 (APPI): the household asked that its data stop being used and shared, or the stop was lifted.
USE_RESTRICTION_CHANGED = "marugoto.case.use_restriction"
# 訂正 (APPI): a member's personal details were corrected; one event per agency that received the old value,
# keyed by agency id. Field names only, never values.
PERSONAL_DETAILS_CORRECTED = "marugoto.case.personal_details_corrected"
# 消去: a case was erased (retention or request) and its key destroyed; every service drops its copies.
CASE_ERASED = "marugoto.case.erased"
# Each municipality's directory version in force, keyed by municipality code.
DIRECTORY_PUBLISHED = "marugoto.directory.published"

EVENT_TOPICS = (
    CONSULTATION_RECEIVED,
    CONTACT_RECORDED,
    CONSENT_GIVEN,
    CONSENT_REVOKED,
    ROUTING_DECIDED,
    REFERRAL_REQUESTED,
    REFERRAL_STATUS_CHANGED,
    REFERRAL_OVERDUE,
    AGENCY_FEED,
    CONFERENCE_SCHEDULED,
    CONFERENCE_RESCHEDULED,
    CONFERENCE_CANCELLED,
    CONFERENCE_HELD,
    CONFERENCE_DECISION_RECORDED,
    CONFERENCE_INVITATION,
    DISCLOSURE_RECORDED,
    HOUSEHOLD_LINKED,
    SUPPORT_MEETING_ROSTER,
    PLAN_CHANGED,
    MONITORING_DUE,
    MONITORING_RECORDED,
    CASE_LIFE_CHANGED,
    CASE_TRANSFERRED,
    USE_RESTRICTION_CHANGED,
    CASE_ERASED,
    PERSONAL_DETAILS_CORRECTED,
    DIRECTORY_PUBLISHED,
)


def dead_letter_topic(topic: str) -> str:
    """Where a message of `topic` that can never be applied is parked, with its reason."""
    return f"{topic}.dlq"


ALL_TOPICS = EVENT_TOPICS + tuple(dead_letter_topic(t) for t in EVENT_TOPICS)

# How long each topic keeps its records (Kafka's `retention.ms`; -1 keeps them for ever). The event
# topics are the system's log: `marugoto metrics rebuild` and a consumer group without committed offsets
# read them from the beginning, so they are kept (they carry no personal details). The notifications for
# agencies' integrations, and the dead letters (until an operator replays them), are kept for a while.
# No topic is compacted: records are keyed by case (or agency) id and every one of them is an event, not
# the latest state of its key, so compaction would drop a case's history.
DAY_MS = 86_400_000
RETAIN_FOREVER = -1
NOTIFICATION_RETENTION_MS = 30 * DAY_MS
DEAD_LETTER_RETENTION_MS = 90 * DAY_MS
_NOTIFICATIONS = (AGENCY_FEED, CONFERENCE_INVITATION)


def retention_ms(topic: str) -> int:
    """How long `topic` (without prefix) keeps its records, in milliseconds (-1: for ever)."""
    if topic.endswith(".dlq"):
        return DEAD_LETTER_RETENTION_MS
    if topic in _NOTIFICATIONS:
        return NOTIFICATION_RETENTION_MS
    if topic in EVENT_TOPICS:
        return RETAIN_FOREVER
    raise KeyError(f"not a Marugoto topic: {topic}")
