"""Need to know: who takes part in a meeting, on what basis it reads the meeting's record, and the
disclosure ledger's row of each such read (or refusal)."""

from collections.abc import Iterable

from sqlmodel import Session, col, select

from services.conference.models import (
    CaseIntake,
    CaseReferral,
    CaseState,
    ConferenceOutbox,
    DecisionPublic,
    Meeting,
    RosterMember,
)
from services.conference.publishing import SOURCE
from services.conference.roster import current_member, local_today
from shared.disclosure import stage_disclosure
from shared.events import LIVE_REFERRAL_STATUSES, DisclosureBasis


def takes_part(session: Session, meeting: Meeting, agency_id: str) -> bool:
    """True for an agency invited to the meeting (and not withdrawn), and for the lead of its case; for a
    支援会議, only an invited agency that is a member of its roster today."""
    if meeting.kind == "support_meeting":
        return agency_id in meeting.participants and (
            current_member(session, meeting.municipality_code, agency_id, local_today()) is not None
        )
    if agency_id in meeting.participants:
        return True
    state = session.get(CaseState, meeting.case_id) if meeting.case_id is not None else None
    return state is not None and state.lead == agency_id


def participant_basis(session: Session, meeting: Meeting, agency_id: str) -> tuple[DisclosureBasis, str]:
    """What a release of a meeting about a case to one of its participants rests on, by kind: the roster
    entry of a 支援会議 member, the live 本人同意 of a 重層的支援会議's case, else the agency's engagement
    (its referral; the meeting itself for a lead that holds none)."""
    if meeting.kind == "support_meeting":
        entry = session.get(RosterMember, (meeting.municipality_code, agency_id))
        return "support_meeting", entry.roster_ref if entry is not None else meeting.id
    state = session.get(CaseState, meeting.case_id) if meeting.case_id is not None else None
    if meeting.kind == "plan_meeting" and state is not None and state.consents:
        return "consent", state.consents[0]
    referral = referral_of(session, meeting.case_id, agency_id) if meeting.case_id is not None else None
    return "engagement", referral or meeting.id


def referral_of(session: Session, case_id: str, agency_id: str) -> str | None:
    """The agency's referral on the case, a live one first: what its part in the case rests on."""
    query = select(CaseReferral).where(CaseReferral.case_id == case_id, CaseReferral.agency_id == agency_id)
    referrals = sorted(
        session.exec(query).all(), key=lambda r: (r.status in LIVE_REFERRAL_STATUSES, r.version), reverse=True
    )
    return referrals[0].referral_id if referrals else None


def release_basis(
    session: Session, meeting: Meeting, agency_id: str, *, operator: bool
) -> tuple[DisclosureBasis, str | None] | None:
    """The legal basis on which the agency reads the meeting, with what it rests on; None: it has no part in it.

    An agency's part is its place among the participants (see `participant_basis`); an operator reads
    as the operator of its municipalities, except a 支援会議, which only its members read.
    """
    if takes_part(session, meeting, agency_id):
        return participant_basis(session, meeting, agency_id)
    if operator and meeting.kind != "support_meeting":
        return "operator", None
    # A 支援会議's papers are closed to all but its members (Art. 106-6), operators included.
    return None


def record_read(
    session: Session,
    meeting: Meeting,
    recipient: str,
    fields: Iterable[str],
    basis: tuple[DisclosureBasis, str | None] | None,
) -> None:
    """Stage the ledger row of a case meeting's record read (or refused: `basis` None); a 推進会議 has no case."""
    if meeting.case_id is None:
        return
    stage_disclosure(
        session,
        ConferenceOutbox,
        source=SOURCE,
        municipality_code=meeting.municipality_code,
        case_id=meeting.case_id,
        recipient=recipient,
        channel="meeting_record",
        fields=fields,
        basis=basis[0] if basis is not None else "none",
        basis_ref=basis[1] if basis is not None else None,
        released=basis is not None,
    )


def privacy_note(session: Session, meeting: Meeting) -> str:
    """What the meeting may show of the case's people: never personal details here, whether consent
    exists, and for a 支援会議 the basis its members share on."""
    if meeting.case_id is None:
        return "no case: no personal details"
    state = session.get(CaseState, meeting.case_id)
    intake = session.get(CaseIntake, meeting.case_id)
    reached = "" if intake is None or intake.contact == "reached" else "（本人未接触）"
    if meeting.kind == "support_meeting":
        return (
            f"支援会議 (社会福祉法第106条の6){reached}: members share without 本人同意 and keep it secret; "
            "personal details are read at intake with basis=support_meeting, not here"
        )
    if state is None or not state.consents:
        return f"本人同意 not given{reached}: the case is discussed without personal details"
    return "本人同意 given: engaged agencies read personal details at intake, not here"


def case_basis(
    session: Session, case_id: str, agency_id: str, *, operator: bool
) -> tuple[DisclosureBasis, str | None] | None:
    """The basis on which the agency learns of a case decided at a 推進会議: its part in that case, or operation."""
    if operator:
        return "operator", None
    query = select(CaseReferral.referral_id).where(
        CaseReferral.case_id == case_id,
        CaseReferral.agency_id == agency_id,
        col(CaseReferral.status).in_(LIVE_REFERRAL_STATUSES | {"completed"}),
    )
    if (referral := session.exec(query).first()) is not None:
        return "engagement", referral
    state = session.get(CaseState, case_id)
    return ("engagement", case_id) if state is not None and state.lead == agency_id else None


def shown_decisions(
    session: Session, meeting: Meeting, decisions: list[DecisionPublic], agency_id: str, *, operator: bool
) -> list[DecisionPublic]:
    """The decisions of a meeting's record this reader may see, each release of a 推進会議's on the ledger.

    A case meeting is read only by those with a part in its case. The 推進会議 meets the whole network,
    so a decision it records about a case goes only to the case's lead and engaged agencies, and operators.
    """
    if meeting.case_id is not None:
        return decisions
    shown = []
    for decision in decisions:
        basis = case_basis(session, decision.case_id, agency_id, operator=operator)
        if basis is None:
            continue
        stage_disclosure(
            session,
            ConferenceOutbox,
            source=SOURCE,
            municipality_code=meeting.municipality_code,
            case_id=decision.case_id,
            recipient=agency_id,
            channel="meeting_record",
            fields=DecisionPublic.model_fields,
            basis=basis[0],
            basis_ref=basis[1],
        )
        shown.append(decision)
    return shown
