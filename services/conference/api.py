"""Conference's HTTP API."""

import anyio
from fastapi import APIRouter, Request

from services.conference import service
from services.conference.models import MeetingPublic
from shared import db
from shared.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["meetings"])


@router.get("/meetings", response_model=list[MeetingPublic])
async def list_meetings(request: Request, case_id: str | None = None) -> list[MeetingPublic]:
    """Scheduled meetings, optionally of one case."""
    runtime: Runtime = request.app.state.runtime

    def work() -> list[MeetingPublic]:
        with db.transaction(runtime.engine) as session:
            return [MeetingPublic(**m.model_dump()) for m in service.list_meetings(session, case_id=case_id)]

    return await anyio.to_thread.run_sync(work)
