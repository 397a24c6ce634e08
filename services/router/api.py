"""Router's HTTP API: decisions with their reasons, and agencies' referral queues."""

import anyio
from fastapi import APIRouter

from services.router import service
from services.router.models import DecisionPublic, ReferralPublic
from shared import db
from shared.api import PrincipalDep, RuntimeDep, require_any
from shared.auth import Scope
from shared.problems import Problem, problem_responses

router = APIRouter(prefix="/v1", tags=["routing"])


@router.get("/cases/{case_id}/decision", response_model=DecisionPublic, responses=problem_responses(401, 403, 404, 422))
async def get_decision(case_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> DecisionPublic:
    """The routing decision of a case, with the rule and legal basis of each part (coordinators, operators)."""
    require_any(principal, Scope.coordinator, Scope.operator)

    def work() -> DecisionPublic | None:
        with db.transaction(runtime.engine) as session:
            row = service.get_decision(session, case_id)
            return None if row is None else DecisionPublic(**row.model_dump())

    decision = await anyio.to_thread.run_sync(work)
    if decision is None:
        raise Problem(404, "decision-not-found", f"case {case_id} has no routing decision (yet)")
    return decision


@router.get("/referrals", response_model=list[ReferralPublic], responses=problem_responses(401, 403, 422))
async def list_referrals(
    runtime: RuntimeDep, principal: PrincipalDep, agency_id: str | None = None, case_id: str | None = None
) -> list[ReferralPublic]:
    """Referrals in an agency's queue (your own, or any for operators), optionally of one case."""
    require_any(principal, Scope.coordinator, Scope.operator)
    if not principal.has(Scope.operator):
        if agency_id not in (None, principal.agency_id):
            raise Problem(403, "not-your-queue", "coordinators read their own agency's referrals")
        agency_id = principal.agency_id

    def work() -> list[ReferralPublic]:
        with db.transaction(runtime.engine) as session:
            rows = service.list_referrals(session, agency_id=agency_id, case_id=case_id)
            return [ReferralPublic(**r.model_dump()) for r in rows]

    return await anyio.to_thread.run_sync(work)
