"""Conference's HTTP API: meetings, attendance and decisions, each case's 支援プラン and its monitoring,
the 推進会議 and its agenda, and each agency's iCalendar feed."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Response
from icalendar import Calendar, Event, vCalAddress
from sqlmodel import Session

from services.conference import meetings, plans, releases
from services.conference.agenda import IndicatorSnapshot, build_agenda, frozen_agenda
from services.conference.config import MunicipalityConference, config_of
from services.conference.context import ConferenceContext
from services.conference.errors import (
    CaseNotFound,
    MeetingNotFound,
    NotAPromotionMeeting,
    NotTheLead,
    NotTheOrganiser,
    NotYourCalendar,
)
from services.conference.kinds import KindPublic, public_kinds, rule_of
from services.conference.life import life_of
from services.conference.models import (
    AttendanceCreate,
    CancelRequest,
    CaseState,
    DecisionCreate,
    Meeting,
    MeetingPublic,
    MonitoringCreate,
    MonitoringPublic,
    PlanCreate,
    PlanMeetingCreate,
    PlanPublic,
    PromotionMeetingCreate,
    RescheduleRequest,
    SupportMeetingCreate,
)
from services.conference.promotion_meetings import schedule_promotion_meeting
from services.conference.support_meetings import schedule_plan_meeting, schedule_support_meeting
from shared.api import PrincipalDep, RuntimeDep, context_of, in_transaction
from shared.auth import Principal, Scope, require_any, require_municipality
from shared.events import DisclosureBasis
from shared.problems import problem_responses
from shared.runtime import Runtime

router = APIRouter(prefix="/v1")

ConferenceContextDep = Annotated[ConferenceContext, Depends(context_of(ConferenceContext))]
# A change to one meeting, given the transaction, the meeting and its municipality's configuration.
Change = Callable[[Session, Meeting, MunicipalityConference], object]


def _public(session: Session, meeting: Meeting, principal: Principal) -> MeetingPublic:
    decisions = releases.shown_decisions(
        session,
        meeting,
        meetings.decisions_of(session, meeting),
        principal.agency_id,
        operator=principal.has(Scope.operator),
    )
    return MeetingPublic.model_validate(
        {
            **meeting.model_dump(),
            "legal_basis": rule_of(meeting.kind).legal_basis,
            "personal_details": releases.privacy_note(session, meeting),
            "attendance": meetings.attendance_of(session, meeting),
            "decisions": decisions,
            "case_life": life_of(session.get(CaseState, meeting.case_id)) if meeting.case_id else None,
        }
    )


def _basis(session: Session, principal: Principal, meeting: Meeting) -> tuple[DisclosureBasis, str | None] | None:
    """On what basis the credential reads the meeting; None: outside its municipalities, or no part in it."""
    if not principal.serves(meeting.municipality_code):
        return None
    return releases.release_basis(session, meeting, principal.agency_id, operator=principal.has(Scope.operator))


def _may_see(session: Session, principal: Principal, meeting: Meeting) -> None:
    # A 403 would tell an agency with no part in the case that the case has a meeting.
    if _basis(session, principal, meeting) is None:
        raise MeetingNotFound(meeting.id)


def _organiser(principal: Principal, meeting: Meeting, config: MunicipalityConference) -> None:
    """The lead (推進員) of the meeting's municipality, or an operator, runs it."""
    require_any(principal, Scope.coordinator, Scope.operator)
    if principal.agency_id != config.directory.municipality.lead and not principal.has(Scope.operator):
        raise NotTheOrganiser()


@router.get(
    "/meetings", tags=["meetings"], response_model=list[MeetingPublic], responses=problem_responses(401, 403, 422)
)
async def list_meetings(
    runtime: RuntimeDep, principal: PrincipalDep, case_id: str | None = None, kind: str | None = None
) -> list[MeetingPublic]:
    """Meetings your agency takes part in (all of their municipalities' for operators), optionally of one case
    or kind."""
    require_any(principal, Scope.coordinator, Scope.operator)
    agency = None if principal.has(Scope.operator) else principal.agency_id

    def work(session: Session) -> list[MeetingPublic]:
        listed = []
        for meeting in meetings.list_meetings(session, case_id=case_id, kind=kind, agency_id=agency):
            basis = _basis(session, principal, meeting)
            if basis is None:
                continue
            public = _public(session, meeting, principal)
            # A listed case meeting is a read of its record like GET /v1/meetings/{id}: on the ledger.
            releases.record_read(session, meeting, principal.agency_id, _released_fields(public), basis)
            listed.append(public)
        return listed

    return await in_transaction(runtime, work, stages_events=True)


@router.get(
    "/meetings/{meeting_id}",
    tags=["meetings"],
    response_model=MeetingPublic,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_meeting(meeting_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> MeetingPublic:
    """A meeting: when, who, why it needs attention (and who blocks it), and what it may show of the case.

    Reading a case meeting's record is a release of the case: the disclosure ledger records it, with
    its basis, and records a refused read too.
    """
    require_any(principal, Scope.coordinator, Scope.operator)

    def work(session: Session) -> MeetingPublic | None:
        meeting = meetings.get_meeting(session, meeting_id)
        basis = _basis(session, principal, meeting)
        if basis is None:
            releases.record_read(session, meeting, principal.agency_id, MeetingPublic.model_fields, None)
            return None
        public = _public(session, meeting, principal)
        releases.record_read(session, meeting, principal.agency_id, _released_fields(public), basis)
        return public

    public = await in_transaction(runtime, work, stages_events=True)
    if public is None:
        # Raised once the refusal is committed to the ledger, and alike to a meeting that does not exist.
        raise MeetingNotFound(meeting_id)
    return public


def _released_fields(public: MeetingPublic) -> list[str]:
    return sorted(public.model_dump(exclude_none=True))


async def _change(
    runtime: Runtime, context: ConferenceContext, meeting_id: str, principal: Principal, change: Change
) -> MeetingPublic:
    """Apply `change` to a meeting the credential may see and runs, and answer with the meeting after it."""

    def work(session: Session) -> MeetingPublic:
        meeting = meetings.get_meeting(session, meeting_id)
        _may_see(session, principal, meeting)
        config = config_of(context.configs, meeting.municipality_code)
        _organiser(principal, meeting, config)
        change(session, meeting, config)
        return _public(session, meeting, principal)

    return await in_transaction(runtime, work, stages_events=True)


@router.post(
    "/meetings/{meeting_id}/reschedule",
    tags=["meetings"],
    response_model=MeetingPublic,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def reschedule(
    meeting_id: str,
    body: RescheduleRequest,
    runtime: RuntimeDep,
    context: ConferenceContextDep,
    principal: PrincipalDep,
) -> MeetingPublic:
    """Move a meeting to the next slot every participant can make, with the reason."""
    return await _change(
        runtime,
        context,
        meeting_id,
        principal,
        lambda s, m, c: meetings.reschedule(s, m, c, reason=body.reason, not_before=body.not_before),
    )


@router.post(
    "/meetings/{meeting_id}/cancel",
    tags=["meetings"],
    response_model=MeetingPublic,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def cancel(
    meeting_id: str, body: CancelRequest, runtime: RuntimeDep, context: ConferenceContextDep, principal: PrincipalDep
) -> MeetingPublic:
    """Cancel a meeting, with the reason."""
    return await _change(
        runtime, context, meeting_id, principal, lambda s, m, c: meetings.cancel(s, m, reason=body.reason)
    )


@router.post(
    "/meetings/{meeting_id}/attendance",
    tags=["meetings"],
    response_model=MeetingPublic,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def record_attendance(
    meeting_id: str,
    body: AttendanceCreate,
    runtime: RuntimeDep,
    context: ConferenceContextDep,
    principal: PrincipalDep,
) -> MeetingPublic:
    """The meeting was held: who attended (agency, or a municipal division outside welfare), frozen in its record.

    An agency's sector is taken from the directory, whatever was posted; a 推進会議 keeps the agenda as
    built at this moment.
    """

    def load(session: Session) -> Meeting:
        meeting = meetings.get_meeting(session, meeting_id)
        _may_see(session, principal, meeting)
        return meeting

    meeting = await in_transaction(runtime, load)
    snapshot, error = (
        await fetch_snapshot(runtime, meeting.municipality_code)
        if meeting.kind == "promotion_meeting"
        else (None, None)
    )

    def hold(session: Session, meeting: Meeting, config: MunicipalityConference) -> Meeting:
        agenda = (
            build_agenda(session, config, meeting, snapshot=snapshot, snapshot_error=error)
            if meeting.kind == "promotion_meeting"
            else None
        )
        return meetings.record_attendance(session, meeting, body, config, agenda=agenda)

    return await _change(runtime, context, meeting_id, principal, hold)


@router.post(
    "/meetings/{meeting_id}/decisions",
    tags=["meetings"],
    status_code=201,
    response_model=MeetingPublic,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def record_decision(
    meeting_id: str,
    body: DecisionCreate,
    runtime: RuntimeDep,
    context: ConferenceContextDep,
    principal: PrincipalDep,
) -> MeetingPublic:
    """Record a held meeting's decision, of a type its kind takes (GET /v1/meeting-kinds): a plan (approved,
    or drafted where the 推進会議 approves; a 支援会議 only drafts), or at a 重層的支援会議 a 支援決定 (with
    the case's live 本人同意, 409 `consent-required` without) or a 終結 (its reason, the 主担当 that keeps
    accompanying, 見守り). A 支援決定 approves the 支援プラン version it names (`plan_version`; by default the
    newest draft the meeting saw; 404 `plan-not-found` without one). A correction is a new decision naming
    the one it `corrects`. 409 on a meeting not held."""
    return await _change(
        runtime,
        context,
        meeting_id,
        principal,
        lambda s, m, c: meetings.record_decision(s, m, body, c, by=principal.agency_id),
    )


@router.get("/meeting-kinds", tags=["meetings"], response_model=list[KindPublic], responses=problem_responses(401, 403))
async def meeting_kinds(principal: PrincipalDep) -> list[KindPublic]:
    """The kinds of meeting: the law each is held under, who may be invited, on what basis its invitation
    and record are released, and the decisions it takes."""
    require_any(principal, Scope.coordinator, Scope.operator)
    return public_kinds()


def _case_organiser(
    session: Session, context: ConferenceContext, principal: Principal, case_id: str
) -> MunicipalityConference:
    """The case's municipality, for its lead (推進員) or an operator of it. Anyone else hears of no case,
    unless it has a part in the case and so knows of it: then it hears that it does not organise."""
    require_any(principal, Scope.coordinator, Scope.operator)
    state = session.get(CaseState, case_id)
    if state is None or not principal.serves(state.municipality_code):
        raise CaseNotFound(case_id)
    config = config_of(context.configs, state.municipality_code)
    if principal.agency_id != config.directory.municipality.lead and not principal.has(Scope.operator):
        if principal.agency_id not in state.engaged:
            raise CaseNotFound(case_id)
        raise NotTheOrganiser()
    return config


@router.post(
    "/support-meetings",
    tags=["meetings"],
    status_code=201,
    response_model=MeetingPublic,
    responses=problem_responses(401, 403, 404, 422),
)
async def convene_support_meeting(
    body: SupportMeetingCreate, runtime: RuntimeDep, context: ConferenceContextDep, principal: PrincipalDep
) -> MeetingPublic:
    """Convene a 支援会議 (社会福祉法第106条の6) about a case, with or without 本人同意, its person reached or
    not: the organiser and the agencies it invites must all be current members of the municipality's
    roster (422 `not-on-roster` otherwise). Each invitation is on the disclosure ledger, on the basis of
    the member's roster entry."""

    def work(session: Session) -> MeetingPublic:
        config = _case_organiser(session, context, principal, body.case_id)
        meeting = schedule_support_meeting(
            session,
            config,
            case_id=body.case_id,
            organiser=principal.agency_id,
            invitees=body.invitees,
            not_before=body.not_before,
        )
        return _public(session, meeting, principal)

    return await in_transaction(runtime, work, stages_events=True)


@router.post(
    "/plan-meetings",
    tags=["meetings"],
    status_code=201,
    response_model=MeetingPublic,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def convene_plan_meeting(
    body: PlanMeetingCreate, runtime: RuntimeDep, context: ConferenceContextDep, principal: PrincipalDep
) -> MeetingPublic:
    """Convene a 重層的支援会議 about a case with a live 本人同意 (409 `consent-required` without one: hold a
    支援会議), among the lead and the agencies engaged on the case; it records the 支援決定 and the 終結."""

    def work(session: Session) -> MeetingPublic:
        config = _case_organiser(session, context, principal, body.case_id)
        meeting = schedule_plan_meeting(session, config, case_id=body.case_id, not_before=body.not_before)
        return _public(session, meeting, principal)

    return await in_transaction(runtime, work, stages_events=True)


@router.post(
    "/cases/{case_id}/plans",
    tags=["plans"],
    status_code=201,
    response_model=PlanPublic,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def draft_plan(
    case_id: str, body: PlanCreate, runtime: RuntimeDep, context: ConferenceContextDep, principal: PrincipalDep
) -> PlanPublic:
    """Draft the next version of a tier-2/3 case's 支援プラン (the lead of its municipality, or an operator).

    Version 1 takes what the body leaves out from the case (a role for each engaged agency, the lead as
    主担当, the municipality's monitoring interval and first evaluation); a later version from the one
    before it, and states its `reason` (422 `plan-reason-required`). Roles and the 主担当 are the case's
    lead or engaged agencies (422 `not-engaged`). It is approved by the 支援決定 of a 重層的支援会議.
    """

    def work(session: Session) -> PlanPublic:
        config = _case_organiser(session, context, principal, case_id)
        state = session.get(CaseState, case_id)
        assert state is not None, "_case_organiser found the case"
        plan = plans.draft(session, config, state, body, by=principal.agency_id)
        return plans.public(session, plan)

    return await in_transaction(runtime, work, stages_events=True)


def _plan_reader(
    session: Session, principal: Principal, case_id: str
) -> tuple[CaseState, tuple[DisclosureBasis, str | None] | None] | None:
    """The case and the basis on which the credential reads its plan (None: no part in it); None: no case."""
    state = session.get(CaseState, case_id)
    if state is None:
        return None
    if not principal.serves(state.municipality_code):
        return state, None
    return state, plans.read_basis(session, state, principal.agency_id, operator=principal.has(Scope.operator))


def _read_plans(
    principal: Principal, case_id: str, version: int | None
) -> Callable[[Session], list[PlanPublic] | None]:
    """The work of a plan read: the versions asked for, the read (or its refusal) on the ledger."""

    def work(session: Session) -> list[PlanPublic] | None:
        reader = _plan_reader(session, principal, case_id)
        if reader is None:
            return None
        state, basis = reader
        if basis is None:
            plans.record_read(session, state, principal.agency_id, PlanPublic.model_fields, None)
            return None
        chosen = plans.list_plans(session, case_id) if version is None else [plans.get_plan(session, case_id, version)]
        shown = [plans.public(session, plan) for plan in chosen]
        if shown:
            released = sorted({field for plan in shown for field in plan.model_dump(exclude_none=True)})
            plans.record_read(session, state, principal.agency_id, released, basis)
        return shown

    return work


@router.get(
    "/cases/{case_id}/plans",
    tags=["plans"],
    response_model=list[PlanPublic],
    responses=problem_responses(401, 403, 404, 422),
)
async def list_plans(case_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> list[PlanPublic]:
    """Every version of the case's 支援プラン, oldest first, with its monitorings: for the case's lead and
    engaged agencies (on the live 本人同意, else their engagement) and operators of its municipality;
    anyone else hears of no case (404). Each read, and each refusal, is on the disclosure ledger."""
    require_any(principal, Scope.coordinator, Scope.operator)
    shown = await in_transaction(runtime, _read_plans(principal, case_id, None), stages_events=True)
    if shown is None:
        raise CaseNotFound(case_id)
    return shown


@router.get(
    "/cases/{case_id}/plans/{version}",
    tags=["plans"],
    response_model=PlanPublic,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_plan(case_id: str, version: int, runtime: RuntimeDep, principal: PrincipalDep) -> PlanPublic:
    """One version of the case's 支援プラン (404 `plan-not-found` when it has none such), read as the list is."""
    require_any(principal, Scope.coordinator, Scope.operator)
    shown = await in_transaction(runtime, _read_plans(principal, case_id, version), stages_events=True)
    if shown is None:
        raise CaseNotFound(case_id)
    return shown[0]


@router.post(
    "/cases/{case_id}/plans/{version}/monitorings",
    tags=["plans"],
    status_code=201,
    response_model=MonitoringPublic,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def record_monitoring(
    case_id: str, version: int, body: MonitoringCreate, runtime: RuntimeDep, principal: PrincipalDep
) -> MonitoringPublic:
    """Record a monitoring (モニタリング) or evaluation (評価) of the plan version in force (409
    `plan-not-approved` otherwise), by its 主担当, the case's lead or an engaged agency (403
    `not-on-the-plan` for an operator); on time or not against the monitoring interval or the next
    evaluation day. The note stays here; the event says only whether it was on time."""
    require_any(principal, Scope.coordinator, Scope.operator)

    def work(session: Session) -> MonitoringPublic:
        reader = _plan_reader(session, principal, case_id)
        if reader is None or reader[1] is None:
            raise CaseNotFound(case_id)
        state = reader[0]
        plan = plans.get_plan(session, case_id, version)
        row = plans.record_monitoring(session, state, plan, body, by=principal.agency_id)
        return MonitoringPublic.model_validate(row.model_dump())

    return await in_transaction(runtime, work, stages_events=True)


@router.post(
    "/promotion-meetings",
    tags=["promotion meeting"],
    status_code=201,
    response_model=MeetingPublic,
    responses=problem_responses(401, 403, 404, 422),
)
async def convene(
    body: PromotionMeetingCreate, runtime: RuntimeDep, context: ConferenceContextDep, principal: PrincipalDep
) -> MeetingPublic:
    """Convene a 相談支援包括化推進会議 of the municipality's network (on demand, or ahead of the series)."""
    require_any(principal, Scope.operator, Scope.coordinator)
    require_municipality(principal, body.municipality_code)

    def work(session: Session) -> MeetingPublic:
        config = config_of(context.configs, body.municipality_code)
        if principal.agency_id != config.directory.municipality.lead and not principal.has(Scope.operator):
            raise NotTheLead()
        meeting = schedule_promotion_meeting(session, config, not_before=body.not_before)
        return _public(session, meeting, principal)

    return await in_transaction(runtime, work, stages_events=True)


@router.get(
    "/promotion-meetings/{meeting_id}/agenda",
    tags=["promotion meeting"],
    responses=problem_responses(401, 403, 404, 422),
)
async def agenda(
    meeting_id: str, runtime: RuntimeDep, context: ConferenceContextDep, principal: PrincipalDep
) -> dict[str, Any]:
    """The agenda by item (ア)–(オ) of 実施要領 3(4)ウ, built from events, each line with its sources; a held
    meeting's is the one frozen when it was held."""
    require_any(principal, Scope.coordinator, Scope.operator)

    def load(session: Session) -> Meeting:
        meeting = meetings.get_meeting(session, meeting_id)
        _may_see(session, principal, meeting)
        if meeting.kind != "promotion_meeting":
            raise NotAPromotionMeeting()
        return meeting

    meeting = await in_transaction(runtime, load)
    frozen = frozen_agenda(meeting)
    if frozen is not None:
        return frozen
    snapshot, error = await fetch_snapshot(runtime, meeting.municipality_code)

    def build(session: Session) -> dict[str, Any]:
        config = config_of(context.configs, meeting.municipality_code)
        return build_agenda(session, config, meeting, snapshot=snapshot, snapshot_error=error)

    return await in_transaction(runtime, build)


async def fetch_snapshot(runtime: Runtime, municipality_code: str) -> tuple[IndicatorSnapshot | None, str | None]:
    """The metrics service's indicators for the municipality, fetched with the service's own credentials."""
    settings = runtime.settings
    if not settings.service_client_id or settings.service_client_secret is None:
        return None, "MARUGOTO_SERVICE_CLIENT_ID / _SECRET are not configured"
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            token = await client.post(
                f"{settings.base_url('intake')}/v1/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": settings.service_client_id,
                    "client_secret": settings.service_client_secret.get_secret_value(),
                },
            )
            token.raise_for_status()
            response = await client.get(
                f"{settings.base_url('metrics')}/v1/indicators",
                params={"municipality": municipality_code},
                headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            )
            response.raise_for_status()
            report: dict[str, Any] = response.json()
            return IndicatorSnapshot(report=report, url=str(response.url), fetched_at=datetime.now(UTC)), None
    except httpx.HTTPError as error:
        return None, f"metrics unavailable: {error!r}"


@router.get(
    "/calendars/{agency_id}.ics",
    tags=["calendar"],
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}, "description": "RFC 5545"}, **problem_responses(401, 403, 422)},
)
async def calendar(agency_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> Response:
    """Your agency's meetings as an iCalendar feed (cancelled ones, and those you were withdrawn from, as
    STATUS:CANCELLED), of the municipalities your credential serves."""
    require_any(principal, Scope.coordinator, Scope.operator)
    if agency_id != principal.agency_id and not principal.has(Scope.operator):
        raise NotYourCalendar()

    def work(session: Session) -> bytes:
        served = [m for m in meetings.calendar_meetings(session, agency_id) if principal.serves(m.municipality_code)]
        return to_ical(agency_id, served)

    body = await in_transaction(runtime, work)
    return Response(body, media_type="text/calendar; charset=utf-8")


def to_ical(agency_id: str, agency_meetings: list[Meeting]) -> bytes:
    """An RFC 5545 calendar of an agency's meetings (no personal details: the case id only).

    A feed is published (METHOD:PUBLISH, RFC 5546), so a meeting that no longer concerns the agency
    stays in it as STATUS:CANCELLED with a higher SEQUENCE: a subscribed client then removes it, where
    a meeting that silently vanished would stay in the client's copy. One calendar has one METHOD, so
    METHOD:CANCEL is not an option for a feed that also carries live meetings.
    """
    cal = Calendar()
    cal.add("prodid", "-//Marugoto//conference//JA")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", f"Marugoto: {agency_id}")
    for meeting in agency_meetings:
        if meeting.starts_at is None or meeting.ends_at is None:
            continue
        event = Event()
        event.add("uid", f"{meeting.id}@marugoto")
        event.add("dtstamp", meeting.updated_at or datetime.now(UTC))
        event.add("dtstart", meeting.starts_at)
        event.add("dtend", meeting.ends_at)
        event.add("summary", meeting.title)
        event.add("sequence", meeting.sequence)
        cancelled = meeting.status == "cancelled" or agency_id in meeting.withdrawn
        event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
        if meeting.case_id is not None:
            # A subscribed calendar is copied to phones and calendar services outside the network: it
            # carries only what the invitation (on the ledger) said — that the agency meets, and when.
            # The case and the other participants are in the meeting record, read through the API.
            event.add("description", f"会議記録: /v1/meetings/{meeting.id}")
            cal.add_component(event)
            continue
        for participant in meeting.participants:
            attendee = vCalAddress(f"urn:x-marugoto:agency:{participant}")
            attendee.params["cn"] = participant
            event.add("attendee", attendee, encode=False)
        cal.add_component(event)
    return bytes(cal.to_ical())
