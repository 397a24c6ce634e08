"""Intake's HTTP API for partner agencies."""

import anyio
from fastapi import APIRouter, Request, status

from services.intake import service
from services.intake.models import CasePublic, ConsultationAccepted, ConsultationCreate
from shared import db
from shared.problems import Problem
from shared.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["consultations"])

# Until agency credentials exist (the intake issue), submissions are attributed to this agency.
ANONYMOUS_AGENCY = "unauthenticated"


@router.post("/consultations", status_code=status.HTTP_202_ACCEPTED, response_model=ConsultationAccepted)
async def submit_consultation(body: ConsultationCreate, request: Request) -> ConsultationAccepted:
    """Submit a consultation about a household; it opens a case and is routed asynchronously."""
    runtime: Runtime = request.app.state.runtime

    def work() -> ConsultationAccepted:
        with db.transaction(runtime.engine) as session:
            record = service.submit(session, body=body, submitted_by=ANONYMOUS_AGENCY)
        return ConsultationAccepted(case_id=record.case_id, consultation_id=record.id, received_at=record.received_at)

    accepted = await anyio.to_thread.run_sync(work)
    runtime.notify_outbox()
    return accepted


@router.get("/cases/{case_id}", response_model=CasePublic)
async def get_case(case_id: str, request: Request) -> CasePublic:
    """A case and its consultations."""
    runtime: Runtime = request.app.state.runtime

    def work() -> CasePublic | None:
        with db.transaction(runtime.engine) as session:
            found = service.get_case(session, case_id)
            if found is None:
                return None
            case, consultations = found
            return CasePublic(**case.model_dump(), consultations=consultations)

    result = await anyio.to_thread.run_sync(work)
    if result is None:
        raise Problem(404, "case-not-found", f"no case {case_id}")
    return result
