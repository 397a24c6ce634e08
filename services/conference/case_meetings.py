"""Case meetings (ケース会議): following each case from its routing decisions, referrals and consent,
and keeping the meeting of every tier-2/3 case scheduled with exactly the agencies engaged on it."""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from services.conference.config import MunicipalityConference, config_of
from services.conference.life import reopen_on_contact
from services.conference.meetings import cancel
from services.conference.models import (
    CaseHandoff,
    CaseIntake,
    CaseReferral,
    CaseState,
    Meeting,
    NetworkMember,
    ResourceGapReport,
)
from services.conference.scheduling import ACTIVE, announce_change, business_days_after, find_slot, invite, open_meeting
from shared.events import (
    LIVE_REFERRAL_STATUSES,
    ConsentGiven,
    ConsentRevoked,
    ConsultationReceived,
    ContactRecorded,
    Envelope,
    ReferralRequested,
    ReferralStatusChanged,
    RoutingDecided,
)
from shared.ids import new_id
from shared.vocabulary import ContactStatus

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
    if decided.kind != "initial":
        # The agencies a later decision brings in take the case over from its lead, or work beside it.
        before = state.lead
        for engaged in decided.engaged:
            if engaged.agency_id not in state.engaged and before is not None and engaged.agency_id != before:
                session.add(
                    CaseHandoff(
                        municipality_code=code,
                        case_id=decided.case_id,
                        kind=decided.kind,
                        from_agency=before,
                        to_agency=engaged.agency_id,
                        at=decided.decided_at,
                        event_id=envelope.id,
                    )
                )
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
    if decided.tier >= 2 and _case_meeting(session, decided.case_id) is None:
        schedule_case_meeting(session, state, config_of(configs, code))
    else:
        for meeting in _following(session, decided.case_id):
            _update_invitees(session, meeting, state)


def apply_referral_requested(session: Session, envelope: Envelope[ReferralRequested]) -> None:
    """A re-routed or escalated referral adds an agency to the case and to its upcoming meeting."""
    data = envelope.data
    referral = session.get(CaseReferral, data.referral_id)
    if referral is None:
        referral = CaseReferral(
            referral_id=data.referral_id,
            case_id=data.case_id,
            agency_id=data.agency_id,
            replaces_referral_id=data.replaces_referral_id,
            status="requested",
            version=1,
        )
        session.add(referral)
        code = envelope.municipalitycode
        if session.get(NetworkMember, (code, data.agency_id)) is None:
            # A re-route or escalation may bring in an agency no decision engaged before: it joins too.
            session.add(
                NetworkMember(
                    municipality_code=code,
                    agency_id=data.agency_id,
                    agency_type=data.agency_type,
                    first_seen_at=data.requested_at,
                    event_id=envelope.id,
                )
            )
        replaced = session.get(CaseReferral, data.replaces_referral_id) if data.replaces_referral_id else None
        if replaced is not None:
            session.add(
                CaseHandoff(
                    municipality_code=code,
                    case_id=data.case_id,
                    kind="reroute",
                    from_agency=replaced.agency_id,
                    to_agency=data.agency_id,
                    at=data.requested_at,
                    event_id=envelope.id,
                )
            )
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


def apply_consultation_received(session: Session, envelope: Envelope[ConsultationReceived]) -> None:
    """Keep what the case's meetings need of its consultation: contact, area, issue tags, 制度の狭間."""
    data = envelope.data
    if session.get(CaseIntake, data.case_id) is not None:
        return
    consultation = data.consultation
    session.add(
        CaseIntake(
            case_id=data.case_id,
            municipality_code=envelope.municipalitycode,
            area=consultation.area,
            issues=sorted({str(tag) for member in consultation.household for tag in member.issues}),
            services_fit=consultation.existing_services_fit,
            contact=str(consultation.contact),
            received_at=data.received_at,
        )
    )


def apply_contact_recorded(session: Session, envelope: Envelope[ContactRecorded]) -> None:
    """A later contact that reached the person ends the case's `not_yet_reached` state (it never returns);
    one on a closed or watched case reopens it (`life.reopen_on_contact`)."""
    data = envelope.data
    intake = session.get(CaseIntake, data.case_id)
    if intake is not None and data.contact == ContactStatus.reached and intake.contact != ContactStatus.reached:
        intake.contact = ContactStatus.reached
        session.add(intake)
    reopen_on_contact(session, envelope)


def apply_consent(session: Session, envelope: Envelope[ConsentGiven] | Envelope[ConsentRevoked]) -> None:
    """Track whether the case has a live consent to share (shown on its meetings); a 重層的支援会議 still to
    come is cancelled when the last consent is revoked, as it shares only with consent."""
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
    if live:
        return
    for meeting in _following(session, data.case_id):
        if meeting.kind == "plan_meeting":
            cancel(session, meeting, reason="本人同意が撤回された: 支援会議で検討する")


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


def _following(session: Session, case_id: str) -> list[Meeting]:
    """The case's meetings still to come whose invitation lists follow its agencies: its case meeting and
    its 重層的支援会議 (a 支援会議's follow its roster instead)."""
    query = select(Meeting).where(
        Meeting.case_id == case_id,
        col(Meeting.kind).in_(("case_meeting", "plan_meeting")),
        col(Meeting.status).in_(ACTIVE),
    )
    return list(session.exec(query.order_by(col(Meeting.id))).all())


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
    for meeting in _following(session, case_id):
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
