"""Conference's HTTP API."""

import anyio
from fastapi import APIRouter

from services.conference import service
from services.conference.models import MeetingPublic
from shared import db
from shared.api import PrincipalDep, RuntimeDep, require_any
from shared.auth import Scope
from shared.problems import problem_responses

router = APIRouter(prefix="/v1", tags=["meetings"])


@router.get("/meetings", response_model=list[MeetingPublic], responses=problem_responses(401, 403, 422))
async def list_meetings(
    runtime: RuntimeDep, principal: PrincipalDep, case_id: str | None = None
) -> list[MeetingPublic]:
    """Scheduled meetings your agency takes part in (all of them for operators), optionally of one case."""
    require_any(principal, Scope.coordinator, Scope.operator)

    def work() -> list[MeetingPublic]:
        with db.transaction(runtime.engine) as session:
            meetings = service.list_meetings(session, case_id=case_id)
            if not principal.has(Scope.operator):
                meetings = [m for m in meetings if principal.agency_id in m.participants]
            return [MeetingPublic(**m.model_dump()) for m in meetings]

    return await anyio.to_thread.run_sync(work)
