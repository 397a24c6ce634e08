"""Intake's logic: open a case for a consultation and stage the event, in one transaction."""

import uuid
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from services.intake.models import Case, ConsultationCreate, ConsultationRecord, IntakeOutbox
from shared import outbox
from shared.consultation import Consultation
from shared.events import ConsultationReceived, new_event

SOURCE = "/marugoto/intake"


def submit(session: Session, *, body: ConsultationCreate, submitted_by: str) -> ConsultationRecord:
    """Open a case for a new consultation and stage `consultation.received` in the same transaction."""
    now = datetime.now(UTC)
    consultation = Consultation.model_validate(body.model_dump(exclude={"municipality_code"}))
    case = Case(
        id=str(uuid.uuid4()), municipality_code=body.municipality_code, submitted_by=submitted_by, opened_at=now
    )
    record = ConsultationRecord(
        id=str(uuid.uuid4()), case_id=case.id, received_at=now, body=consultation.model_dump_json()
    )
    session.add(case)
    session.add(record)
    event = ConsultationReceived(
        case_id=case.id,
        consultation_id=record.id,
        submitted_by=submitted_by,
        received_at=now,
        consultation=consultation,
    )
    outbox.stage(
        session,
        IntakeOutbox,
        new_event(event, source=SOURCE, subject=case.id, municipality_code=body.municipality_code),
    )
    return record


def get_case(session: Session, case_id: str) -> tuple[Case, list[str]] | None:
    """A case and the ids of its consultations, or None."""
    case = session.get(Case, case_id)
    if case is None:
        return None
    query = (
        select(ConsultationRecord.id)
        .where(ConsultationRecord.case_id == case_id)
        .order_by(col(ConsultationRecord.received_at))
    )
    return case, list(session.exec(query).all())
