"""A case's life after routing: a 終結 closes it (or leaves it under 見守り with its 主担当), a new contact
on a closed case reopens it (the same case: one 実件数, not two), a 転居 closes it as moved_away.

Each change is kept on the case's `CaseState` and published as `CaseLifeChanged`: a state and a coded
reason, never a household's details.
"""

from typing import cast

from sqlmodel import Session

from services.conference.models import CaseDecision, CaseState
from services.conference.publishing import stage
from shared.events import CaseLifeChanged, CaseLifeState, CaseTransferred, ContactRecorded, Envelope
from shared.vocabulary import ClosureReason

# Coordination has ended: a new contact reopens the case.
ENDED = frozenset({"closed", "watching"})


def record_closure(session: Session, state: CaseState | None, municipality_code: str, decision: CaseDecision) -> None:
    """A 終結 decided: closed, or watched (見守り) by its 主担当 until the next check-in."""
    _change(
        session,
        state,
        municipality_code,
        CaseLifeChanged(
            case_id=decision.case_id,
            state="watching" if decision.watch else "closed",
            reason=ClosureReason(decision.closure_reason) if decision.closure_reason else None,
            main_agency=decision.lead_agency,
            watch_until=decision.next_review if decision.watch else None,
            decided_at_meeting=decision.meeting_id,
            changed_at=decision.recorded_at,
        ),
    )


def reopen_on_contact(session: Session, envelope: Envelope[ContactRecorded]) -> None:
    """A contact after the 終結 reopens the case; one recorded before it (delivered late) does not."""
    data = envelope.data
    state = session.get(CaseState, data.case_id)
    if state is None or state.life_state not in ENDED:
        return
    if state.life_changed_at is not None and data.received_at <= state.life_changed_at:
        return
    _change(
        session,
        state,
        state.municipality_code,
        CaseLifeChanged(
            case_id=data.case_id,
            state="reopened",
            main_agency=state.life_main_agency,
            changed_at=data.received_at,
        ),
    )


def apply_case_transferred(session: Session, envelope: Envelope[CaseTransferred]) -> None:
    """転居: the case that moved away is closed as moved_away (unless already closed), and keeps the link.

    No 主担当 stays with a household that left; the receiving municipality's case has its own.
    """
    data = envelope.data
    state = session.get(CaseState, data.case_id)
    if state is not None:
        state.transferred_to_case, state.transferred_to_municipality = data.to_case_id, data.to_municipality
        session.add(state)
        if state.life_state == "closed":
            return
    _change(
        session,
        state,
        envelope.municipalitycode,
        CaseLifeChanged(
            case_id=data.case_id,
            state="closed",
            reason=ClosureReason.moved_away,
            changed_at=data.transferred_at,
        ),
    )


def _change(session: Session, state: CaseState | None, municipality_code: str, change: CaseLifeChanged) -> None:
    """Keep the change on the case conference follows (if it follows it) and publish it."""
    if state is not None:
        state.life_state = change.state
        state.life_reason = change.reason
        state.life_main_agency = change.main_agency
        state.watch_until = change.watch_until
        state.life_changed_at = change.changed_at
        session.add(state)
    stage(session, municipality_code, change.case_id, change)


def life_of(state: CaseState | None) -> CaseLifeState | None:
    """The case's life state as its meetings show it."""
    return cast(CaseLifeState, state.life_state) if state is not None else None
