"""Need to know: who takes part in a meeting, on what basis it reads the meeting's record, and the
disclosure ledger's row of each such read (or refusal)."""

from collections.abc import Iterable

from sqlmodel import Session, col, select

from services.conference.models import CaseReferral, CaseState, ConferenceOutbox, DecisionPublic, Meeting
from services.conference.publishing import SOURCE
from shared.disclosure import stage_disclosure
from shared.events import LIVE_REFERRAL_STATUSES, DisclosureBasis


def takes_part(session: Session, meeting: Meeting, agency_id: str) -> bool:
    """True for an agency invited to the meeting (and not withdrawn), and for the lead of its case."""
    if agency_id in meeting.participants:
        return True
    state = session.get(CaseState, meeting.case_id) if meeting.case_id is not None else None
    return state is not None and state.lead == agency_id


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

    An agency's part is its engagement on the case (its referral, or the meeting for the lead, who
    may hold none); an operator reads as the operator of its municipalities.
    """
    if takes_part(session, meeting, agency_id):
        referral = referral_of(session, meeting.case_id, agency_id) if meeting.case_id is not None else None
        return "engagement", referral or meeting.id
    if operator:
        return "operator", None
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
    """What the meeting may show of the case's people: never personal details here, and whether consent exists."""
    if meeting.case_id is None:
        return "no case: no personal details"
    state = session.get(CaseState, meeting.case_id)
    if state is None or not state.consents:
        return "本人同意 not given: the case is discussed without personal details"
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
