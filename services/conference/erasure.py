"""消去 at conference: intake's CaseErased makes conference drop its copies of the case's sensitive data.

The area and issue tags of the case's consultations, its plans' goals and revision reasons, the notes of
their monitorings, the roles written in its meetings' decisions and the minutes of its meetings are
emptied. That the meetings were held, by whom, and what kind of decision they took stay: the counts of
the 推進会議 and the indicators rest on them. The process forgets the case's key.
"""

import structlog
from sqlmodel import Session, col, update

from services.conference.models import CaseDecision, CaseIntake, Meeting, PlanMonitoring, SupportPlan
from shared.case_keys import CaseKeys
from shared.events import CaseErased, Envelope

log = structlog.get_logger()


def apply_case_erased(session: Session, envelope: Envelope[CaseErased], *, keys: CaseKeys | None) -> None:
    """Drop conference's copies of an erased case's sensitive fields."""
    case_id = envelope.data.case_id
    if keys is not None:
        keys.forget(case_id)
    session.exec(update(CaseIntake).where(col(CaseIntake.case_id) == case_id).values(area="", issues=[]))
    session.exec(update(SupportPlan).where(col(SupportPlan.case_id) == case_id).values(goals=[], reason=None))
    session.exec(update(PlanMonitoring).where(col(PlanMonitoring.case_id) == case_id).values(note=""))
    session.exec(update(CaseDecision).where(col(CaseDecision.case_id) == case_id).values(roles={}))
    session.exec(update(Meeting).where(col(Meeting.case_id) == case_id).values(minutes=None))
    log.info("case_erased", case_id=case_id, reason=envelope.data.reason)
