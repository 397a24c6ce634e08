"""Case meetings (ケース会議): following each case from its routing decisions, referrals and consent,
and keeping the meeting of every tier-2/3 case scheduled with exactly the agencies engaged on it."""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from services.conference.config import MunicipalityConference, config_of
from services.conference.models import CaseReferral, CaseState, Meeting, NetworkMember, ResourceGapReport
from services.conference.scheduling import ACTIVE, announce_change, business_days_after, find_slot, invite, open_meeting
from shared.events import (
    LIVE_REFERRAL_STATUSES,
    ConsentGiven,
    ConsentRevoked,
    Envelope,
    ReferralRequested,
    ReferralStatusChanged,
    RoutingDecided,
)
from shared.ids import new_id

# A referral in one of these ended the agency's part in the case: it leaves the case meeting.
CLOSED = frozenset({"rejected", "cancelled", "failed"})


def apply_routing_decided(
    session: Session, envelope: Envelope[RoutingDecided], configs: Mapping[str, MunicipalityConference]
) -> None:
    """Follow the case; schedule its case meeting (tier 2/3); note new network members and resource gaps."""
    decided = envelope.data
    code = envelope.municipalitycode
    state = session.get(CaseState, decided.case_id)
    if state is None:
        state = CaseState(
            case_id=decided.case_id, municipality_code=code, tier=decided.tier, routed_at=decided.decided_at
        )
    if decided.sequence < state.decision_sequence:
        return
    state.tier = decided.tier
    if decided.tier >= 2 and state.difficult_since is None:
        state.difficult_since = decided.decided_at
    state.lead = decided.lead or state.lead
    state.urgency = decided.urgency
    state.decision_sequence = decided.sequence
    state.patterns = list(decided.patterns)
    state.engaged = sorted(set(state.engaged) | {e.agency_id for e in decided.engaged})
    state.source_events = [*state.source_events, envelope.id]
    session.add(state)
    for gap in decided.resource_gaps:
        session.add(
            ResourceGapReport(
                municipality_code=code,
                case_id=decided.case_id,
                partner_type=gap,
                reported_at=decided.decided_at,
                event_id=envelope.id,
            )
        )
    for engaged in decided.engaged:
        if session.get(NetworkMember, (code, engaged.agency_id)) is None:
            session.add(
                NetworkMember(
                    municipality_code=code,
                    agency_id=engaged.agency_id,
                    agency_type=engaged.agency_type,
                    first_seen_at=decided.decided_at,
                    event_id=envelope.id,
                )
            )
    session.flush()
    if decided.tier >= 2:
        meeting = _case_meeting(session, decided.case_id)
        if meeting is None:
            schedule_case_meeting(session, state, config_of(configs, code))
        else:
            _update_invitees(session, meeting, state)


def apply_referral_requested(session: Session, envelope: Envelope[ReferralRequested]) -> None:
    """A re-routed or escalated referral adds an agency to the case and to its upcoming meeting."""
    data = envelope.data
    referral = session.get(CaseReferral, data.referral_id)
    if referral is None:
        referral = CaseReferral(
            referral_id=data.referral_id, case_id=data.case_id, agency_id=data.agency_id, status="requested", version=1
        )
        session.add(referral)
    # A later change delivered first (a rejection, say) holds: the request does not undo it.
    _engage(session, data.case_id, data.agency_id, engaged=referral.status not in CLOSED)


def apply_referral_status(session: Session, envelope: Envelope[ReferralStatusChanged]) -> None:
    """Keep the referral's latest status; an agency that rejected or was taken off the case leaves its meeting.

    The outbox may publish a change committed late after a later one, so a change older than the one
    held (a lower `version`) is ignored. A change of before versions (`version` 0) is applied as it
    comes and only ever takes an agency off, since its place in the order is unknown.
    """
    data = envelope.data
    referral = session.get(CaseReferral, data.referral_id)
    if referral is None:
        referral = CaseReferral(referral_id=data.referral_id, case_id=data.case_id, agency_id=data.agency_id)
    elif data.version and data.version <= referral.version:
        return
    referral.status, referral.version = data.to_status, max(referral.version, data.version)
    session.add(referral)
    if data.to_status in CLOSED:
        _engage(session, data.case_id, data.agency_id, engaged=False)
    elif data.to_status in LIVE_REFERRAL_STATUSES and data.version:
        _engage(session, data.case_id, data.agency_id, engaged=True)


def apply_consent(session: Session, envelope: Envelope[ConsentGiven] | Envelope[ConsentRevoked]) -> None:
    """Track whether the case has a live consent to share (shown on its meetings)."""
    data = envelope.data
    state = session.get(CaseState, data.case_id)
    if state is None:
        return
    live = set(state.consents)
    if isinstance(data, ConsentGiven):
        live.add(data.consent_id)
    else:
        live.discard(data.consent_id)
    state.consents = sorted(live)
    session.add(state)


def schedule_case_meeting(session: Session, state: CaseState, config: MunicipalityConference) -> Meeting:
    """The case meeting of the lead and the engaged agencies, at the earliest slot before the deadline."""
    now = datetime.now(UTC)
    days = config.settings.deadline_business_days.get(state.urgency, 10)
    deadline = business_days_after(now, days)
    participants = _invitees(state)
    meeting_id = new_id()
    result = find_slot(
        session,
        config,
        meeting_id=meeting_id,
        participants=participants,
        minutes=config.settings.meeting_minutes,
        earliest=now + timedelta(hours=1),
        deadline=deadline,
    )
    return open_meeting(
        session,
        result,
        meeting_id=meeting_id,
        kind="case_meeting",
        municipality_code=state.municipality_code,
        title=f"ケース会議 (tier {state.tier})",
        participants=participants,
        case_id=state.case_id,
        tier=state.tier,
        deadline=deadline,
    )


def _case_meeting(session: Session, case_id: str) -> Meeting | None:
    query = select(Meeting).where(
        Meeting.case_id == case_id, Meeting.kind == "case_meeting", col(Meeting.status).in_(ACTIVE)
    )
    return session.exec(query).first()


def _invitees(state: CaseState) -> list[str]:
    # Exactly the engaged agencies and the lead (推進員).
    return sorted(set(state.engaged) | ({state.lead} if state.lead else set()))


def _engage(session: Session, case_id: str, agency_id: str, *, engaged: bool) -> None:
    """Put the agency on the case (and its upcoming meeting's invitation list), or take it off."""
    state = session.get(CaseState, case_id)
    if state is None or (agency_id in state.engaged) == engaged:
        return
    state.engaged = sorted({*state.engaged, agency_id}) if engaged else [a for a in state.engaged if a != agency_id]
    session.add(state)
    meeting = _case_meeting(session, case_id)
    if meeting is not None:
        _update_invitees(session, meeting, state)


def _update_invitees(session: Session, meeting: Meeting, state: CaseState) -> None:
    """Bring the meeting's invitation list in line with the case's agencies: invite, update, withdraw."""
    invitees = _invitees(state)
    if invitees == sorted(meeting.participants):
        return
    added = set(invitees) - set(meeting.participants)
    removed = set(meeting.participants) - set(invitees)
    meeting.participants = invitees
    meeting.withdrawn = sorted((set(meeting.withdrawn) | removed) - set(invitees))
    meeting.sequence += 1
    meeting.updated_at = datetime.now(UTC)
    session.add(meeting)
    announce_change(session, meeting, reason="invitation list changed with the case's agencies")
    invite(session, meeting, sorted(added), "invited")
    invite(session, meeting, sorted(set(invitees) - added), "updated")
    invite(session, meeting, sorted(removed), "withdrawn")
