"""Router's HTTP API: directories, decisions with their reasons, escalations, referral queues and the
coordinators' feed (Server-Sent Events, resumable with Last-Event-ID)."""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlmodel import Session

from services.router import decisions, directories, feed, reads, referrals
from services.router.batch import RoutingBatch
from services.router.context import RouterContext
from services.router.errors import DecisionNotFound, DirectoryNotFound, NotYourFeed, NotYourQueue
from services.router.models import (
    DecisionPublic,
    DirectoryPublic,
    EscalationCreate,
    FeedEntry,
    FeedEntryPublic,
    FeedPage,
    ReferralPublic,
    TransitionCreate,
)
from shared.api import PrincipalDep, RuntimeDep, context_of, in_transaction
from shared.auth import Principal, Scope, require_any
from shared.problems import problem_responses
from shared.runtime import Runtime

router = APIRouter(prefix="/v1")

RouterContextDep = Annotated[RouterContext, Depends(context_of(RouterContext))]

KEEP_ALIVE_S = 15.0
FEED_POLL_S = 0.5


@router.get(
    "/directories/{municipality_code}",
    tags=["directory"],
    response_model=DirectoryPublic,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_directory(municipality_code: str, runtime: RuntimeDep, principal: PrincipalDep) -> DirectoryPublic:
    """The directory (areas, agencies), rules and deadlines in force for a municipality."""
    require_any(principal, Scope.admin, Scope.operator, Scope.coordinator)
    _require_tenant(principal, municipality_code)

    def work(session: Session) -> DirectoryPublic:
        row = directories.active_version(session, municipality_code)
        if row is None:
            raise DirectoryNotFound(municipality_code)
        return DirectoryPublic.model_validate(row.model_dump())

    return await in_transaction(runtime, work)


def _require_tenant(principal: Principal, municipality_code: str) -> None:
    """Another tenant's directory answers exactly as one that does not exist."""
    if not principal.serves(municipality_code):
        raise DirectoryNotFound(municipality_code)


@router.put(
    "/directories/{municipality_code}",
    tags=["directory"],
    response_model=DirectoryPublic,
    responses=problem_responses(401, 403, 404, 422),
)
async def put_directory(
    municipality_code: str,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    body: Annotated[dict[str, Any], Body(description="the directory file's shape: municipality, agencies, rules")],
) -> DirectoryPublic:
    """Replace a municipality's directory (admins): a new version, in force from now; past decisions keep theirs."""
    require_any(principal, Scope.admin)
    _require_tenant(principal, municipality_code)

    def work(session: Session) -> DirectoryPublic:
        source = f"admin:{principal.agency_id}"
        row = directories.replace_directory(session, municipality_code, body, source=source)
        return DirectoryPublic.model_validate(row.model_dump())

    return await in_transaction(runtime, work)


@router.get(
    "/directories/{municipality_code}/versions",
    tags=["directory"],
    response_model=list[DirectoryPublic],
    responses=problem_responses(401, 403, 404, 422),
)
async def list_directory_versions(
    municipality_code: str, runtime: RuntimeDep, principal: PrincipalDep
) -> list[DirectoryPublic]:
    """Every version of a municipality's directory, the one in force first: a past decision names its own."""
    require_any(principal, Scope.admin, Scope.operator)
    _require_tenant(principal, municipality_code)

    def work(session: Session) -> list[DirectoryPublic]:
        rows = directories.list_versions(session, municipality_code)
        return [DirectoryPublic.model_validate(r.model_dump()) for r in rows]

    return await in_transaction(runtime, work)


@router.get(
    "/cases/{case_id}/decision",
    tags=["routing"],
    response_model=DecisionPublic,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_decision(case_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> DecisionPublic:
    """The decision in force for a case, with the rule and legal basis of each part.

    Operators of the case's municipality and the case's owner (the lead) read it whole; an agency
    engaged on the case reads its own engagement (`view: partner`); to anyone else the case does not exist.
    """
    [decision] = await _read_decisions(runtime, principal, case_id, in_force_only=True)
    return decision


@router.get(
    "/cases/{case_id}/decisions",
    tags=["routing"],
    response_model=list[DecisionPublic],
    responses=problem_responses(401, 403, 404, 422),
)
async def list_decisions(case_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> list[DecisionPublic]:
    """Every decision of a case, first first (escalations and returns add one each), read as the decision is."""
    return await _read_decisions(runtime, principal, case_id, in_force_only=False)


async def _read_decisions(
    runtime: Runtime, principal: Principal, case_id: str, *, in_force_only: bool
) -> list[DecisionPublic]:
    require_any(principal, Scope.coordinator, Scope.operator)

    def work(session: Session) -> list[DecisionPublic] | None:
        return reads.read_decisions(session, case_id=case_id, principal=principal, in_force_only=in_force_only)

    # A read is a release: its ledger row is committed with it, a refusal too (so the 404 is raised after).
    found = await in_transaction(runtime, work, stages_events=True)
    if found is None:
        raise DecisionNotFound(case_id)
    return found


@router.post(
    "/cases/{case_id}/escalations",
    tags=["routing"],
    status_code=201,
    response_model=DecisionPublic,
    responses=problem_responses(401, 403, 404, 422),
)
async def escalate(
    case_id: str, body: EscalationCreate, runtime: RuntimeDep, principal: PrincipalDep, ctx: RouterContextDep
) -> DecisionPublic:
    """Ask for backup (a tier-1 place → tier 2), prefecture support (the lead → tier 3), or return the case
    to the community (the lead → 見守り); each is recorded as a new decision."""

    def work(batch: RoutingBatch) -> DecisionPublic:
        return decisions.escalate(batch, case_id=case_id, kind=body.kind, principal=principal, ctx=ctx)

    return await in_transaction(runtime, work, stages_events=True)


@router.get(
    "/referrals", tags=["referrals"], response_model=list[ReferralPublic], responses=problem_responses(401, 403, 422)
)
async def list_referrals(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    agency_id: str | None = None,
    case_id: str | None = None,
    status: str | None = None,
) -> list[ReferralPublic]:
    """Referrals in an agency's queue (yours, or any for operators) where you serve, optionally of a case or status.

    A case under 利用停止 is in no agency's queue until it is lifted (operators still see it)."""
    require_any(principal, Scope.coordinator, Scope.operator)
    if not principal.has(Scope.operator):
        if agency_id not in (None, principal.agency_id):
            raise NotYourQueue("coordinators read their own agency's referrals")
        agency_id = principal.agency_id

    def work(session: Session) -> list[ReferralPublic]:
        rows = referrals.list_referrals(
            session,
            agency_id=agency_id,
            case_id=case_id,
            status=status,
            municipalities=reads.served_by(principal),
            hide_restricted=not principal.has(Scope.operator),
        )
        return [ReferralPublic.model_validate(r.model_dump()) for r in rows]

    return await in_transaction(runtime, work)


@router.post(
    "/referrals/{referral_id}/transitions",
    tags=["referrals"],
    response_model=ReferralPublic,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def move_referral(
    referral_id: str, body: TransitionCreate, runtime: RuntimeDep, principal: PrincipalDep, ctx: RouterContextDep
) -> ReferralPublic:
    """Accept, reject (with a coded reason: it is re-routed), start, hold (見守り), complete, fail or cancel."""
    require_any(principal, Scope.coordinator, Scope.operator)

    def work(batch: RoutingBatch) -> ReferralPublic:
        referral = referrals.transition(batch, referral_id=referral_id, body=body, principal=principal, ctx=ctx)
        return ReferralPublic.model_validate(referral.model_dump())

    return await in_transaction(runtime, work, stages_events=True)


def _feed_agency(principal: Principal, agency_id: str | None) -> str:
    require_any(principal, Scope.coordinator, Scope.operator)
    if agency_id is None or agency_id == principal.agency_id:
        return principal.agency_id
    if not principal.has(Scope.operator):
        raise NotYourFeed("an agency reads only its own feed")
    return agency_id


def _public_entry(entry: FeedEntry) -> FeedEntryPublic:
    return FeedEntryPublic.model_validate({**entry.model_dump(), "id": entry.sequence})


@router.get("/feed/entries", tags=["feed"], response_model=FeedPage, responses=problem_responses(401, 403, 422))
async def feed_page(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    agency_id: str | None = None,
) -> FeedPage:
    """Your agency's feed as pages: entries after the cursor `after`, oldest first.

    An entry names only the issue tags your agency was engaged for (the case's owner: every tag), and
    only entries of the municipalities your credential serves are shown.
    """
    agency = _feed_agency(principal, agency_id)

    def work(session: Session) -> FeedPage:
        entries = feed.feed_entries(
            session, agency, after=after, limit=limit, municipalities=reads.served_by(principal)
        )
        public = [_public_entry(e) for e in entries]
        return FeedPage(entries=public, next_after=public[-1].id if public else after)

    return await in_transaction(runtime, work)


@router.get(
    "/feed",
    tags=["feed"],
    response_class=StreamingResponse,
    responses={
        200: {"description": "Server-Sent Events: one event per feed entry", "content": {"text/event-stream": {}}},
        **problem_responses(401, 403, 422),
    },
)
async def feed_stream(
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", pattern=r"^\d{1,18}$")] = None,
    agency_id: str | None = None,
) -> StreamingResponse:
    """Your agency's routed referrals as they happen; reconnect with Last-Event-ID to resume without gaps."""
    agency = _feed_agency(principal, agency_id)
    cursor = int(last_event_id) if last_event_id else 0
    municipalities = reads.served_by(principal)

    async def events() -> AsyncIterator[str]:
        position = cursor
        quiet_s = 0.0
        yield "retry: 2000\n\n"
        while not await request.is_disconnected():

            def batch(session: Session, after: int = position) -> list[FeedEntryPublic]:
                rows = feed.feed_entries(session, agency, after=after, limit=100, municipalities=municipalities)
                return [_public_entry(e) for e in rows]

            entries = await in_transaction(runtime, batch)
            for entry in entries:
                data = json.dumps(entry.model_dump(mode="json"), ensure_ascii=False)
                yield f"id: {entry.id}\nevent: {entry.kind}\ndata: {data}\n\n"
                position = entry.id
            if entries:
                quiet_s = 0.0
                continue
            await asyncio.sleep(FEED_POLL_S)
            quiet_s += FEED_POLL_S
            if quiet_s >= KEEP_ALIVE_S:
                quiet_s = 0.0
                yield ": keep-alive\n\n"

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
