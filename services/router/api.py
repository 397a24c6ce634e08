"""Router's HTTP API."""

import anyio
from fastapi import APIRouter, Request

from services.router import service
from services.router.models import DecisionPublic, ReferralPublic
from shared import db
from shared.problems import Problem
from shared.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["routing"])


@router.get("/cases/{case_id}/decision", response_model=DecisionPublic)
async def get_decision(case_id: str, request: Request) -> DecisionPublic:
    """The routing decision of a case, with the rule and legal basis of each part."""
    runtime: Runtime = request.app.state.runtime

    def work() -> DecisionPublic | None:
        with db.transaction(runtime.engine) as session:
            row = service.get_decision(session, case_id)
            return None if row is None else DecisionPublic(**row.model_dump())

    decision = await anyio.to_thread.run_sync(work)
    if decision is None:
        raise Problem(404, "decision-not-found", f"case {case_id} has no routing decision (yet)")
    return decision


@router.get("/referrals", response_model=list[ReferralPublic])
async def list_referrals(
    request: Request, agency_id: str | None = None, case_id: str | None = None
) -> list[ReferralPublic]:
    """Referrals in an agency's queue, or of one case."""
    runtime: Runtime = request.app.state.runtime

    def work() -> list[ReferralPublic]:
        with db.transaction(runtime.engine) as session:
            rows = service.list_referrals(session, agency_id=agency_id, case_id=case_id)
            return [ReferralPublic(**r.model_dump()) for r in rows]

    return await anyio.to_thread.run_sync(work)
