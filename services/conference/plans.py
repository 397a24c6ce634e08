"""The 支援プラン of a tier-2/3 case: versions drafted by the lead (the first pre-filled from the case),
approved by a 支援決定, revised with a reason; the monitorings (モニタリング) and evaluations (評価)
recorded against a version; who reads a plan, on which basis, each read on the disclosure ledger.

Goals and notes are free text that may name people: they stay in conference. The events carry a plan's
shape (main agency, roles, how many goals, dates) and whether a monitoring was on time.
"""

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlmodel import Session, col, select

from services.conference.config import MunicipalityConference
from services.conference.errors import (
    NotEngaged,
    NotOnThePlan,
    PlanNotApproved,
    PlanNotForThisCase,
    PlanNotFound,
    PlanReasonRequired,
)
from services.conference.life import ENDED
from services.conference.models import (
    CaseState,
    ConferenceOutbox,
    MonitoringCreate,
    MonitoringPublic,
    OverdueMonitoring,
    PlanCreate,
    PlanMonitoring,
    PlanPublic,
    SupportPlan,
)
from services.conference.publishing import SOURCE, stage
from services.conference.releases import referral_of
from services.conference.scheduling import business_days_after
from shared.calendar import JST
from shared.disclosure import stage_disclosure
from shared.events import (
    DisclosureBasis,
    Envelope,
    MonitoringDue,
    MonitoringRecorded,
    PlanStatus,
    SupportPlanChanged,
)
from shared.ids import new_id


def list_plans(session: Session, case_id: str) -> list[SupportPlan]:
    """Every version of the case's plan, oldest first."""
    query = select(SupportPlan).where(SupportPlan.case_id == case_id).order_by(col(SupportPlan.version))
    return list(session.exec(query).all())


def get_plan(session: Session, case_id: str, version: int) -> SupportPlan:
    """One version of the case's plan; PlanNotFound when it has no such version."""
    plan = session.get(SupportPlan, (case_id, version))
    if plan is None:
        raise PlanNotFound(case_id, version)
    return plan


def latest_version(session: Session, case_id: str) -> int | None:
    """The number of the case's newest plan version, whatever its status; None without a plan."""
    versions = list_plans(session, case_id)
    return versions[-1].version if versions else None


def draft(
    session: Session,
    config: MunicipalityConference,
    state: CaseState,
    body: PlanCreate,
    *,
    by: str,
    now: datetime | None = None,
) -> SupportPlan:
    """Draft the next version of the case's plan; what the body leaves out comes from the version before.

    Version 1 is pre-filled from the case: a role for every engaged agency (its agency type, to be
    rewritten), the case's lead as 主担当, the municipality's monitoring interval and first evaluation.
    A later version says why it was made.
    """
    if state.tier < 2:
        raise PlanNotForThisCase(f"case {state.case_id} is tier {state.tier}: a 支援プラン is for tier-2/3 cases")
    # A case whose coordination ended has no plan to draft: a new contact reopens it first.
    if state.life_state in ENDED:
        raise PlanNotForThisCase(
            f"coordination of case {state.case_id} has ended ({state.life_state}): a new contact reopens it"
        )
    at = now or datetime.now(UTC)
    _lock(session, state.case_id)
    versions = list_plans(session, state.case_id)
    previous = versions[-1] if versions else None
    if previous is not None and body.reason is None:
        raise PlanReasonRequired()
    settings = config.settings.plans
    plan = SupportPlan(
        case_id=state.case_id,
        version=previous.version + 1 if previous else 1,
        plan_id=previous.plan_id if previous else new_id(),
        municipality_code=state.municipality_code,
        goals=body.goals if body.goals is not None else (list(previous.goals) if previous else []),
        roles=body.roles if body.roles is not None else _default_roles(config, state, previous),
        main_agency=body.main_agency or (previous.main_agency if previous else state.lead or by),
        monitoring_interval_days=body.monitoring_interval_days
        or (previous.monitoring_interval_days if previous else settings.monitoring_interval_days),
        next_evaluation=body.next_evaluation
        or (
            previous.next_evaluation
            if previous
            else at.astimezone(JST).date() + timedelta(days=settings.evaluation_after_days)
        ),
        created_by=by,
        reason=body.reason,
        created_at=at,
    )
    # A plan names only agencies with a part in the case: they are the ones who read it.
    outside = sorted({*plan.roles, plan.main_agency} - _on_the_case(state))
    if outside:
        raise NotEngaged(outside)
    session.add(plan)
    _publish(session, plan, by=by, at=at)
    return plan


def _lock(session: Session, case_id: str) -> None:
    """Hold the case's row until the transaction ends: two drafts at once would both take the same next
    version, two approvals at once would both leave their version approved (`to_approve` takes it
    before it reads the versions `approve` then changes)."""
    session.exec(select(CaseState.case_id).where(CaseState.case_id == case_id).with_for_update()).first()


def _default_roles(config: MunicipalityConference, state: CaseState, previous: SupportPlan | None) -> dict[str, str]:
    """The roles of the version before, and for each engaged agency without one its agency type."""
    roles = dict(previous.roles) if previous else {}
    for agency_id in state.engaged:
        if agency_id not in roles:
            agency = config.directory.find_agency(agency_id)
            roles[agency_id] = agency.type if agency is not None else ""
    return roles


def _on_the_case(state: CaseState) -> set[str]:
    return {*state.engaged, *([state.lead] if state.lead else [])}


def to_approve(session: Session, case_id: str, *, version: int | None, seen: int | None) -> SupportPlan:
    """The version a 支援決定 approves: the one it names, else the newest draft after the approved version
    (and not newer than the version the meeting saw, when it saw one)."""
    _lock(session, case_id)
    versions = list_plans(session, case_id)
    if version is not None:
        plan = next((p for p in versions if p.version == version), None)
        if plan is None:
            raise PlanNotFound(case_id, version)
        if plan.status == "superseded":
            raise PlanNotApproved(f"支援プラン version {version} of case {case_id} was superseded")
        return plan
    approved = max((p.version for p in versions if p.status == "approved"), default=0)
    drafts = [
        p for p in versions if p.status == "drafted" and p.version > approved and (seen is None or p.version <= seen)
    ]
    if not drafts:
        raise PlanNotFound(case_id, None)
    return drafts[-1]


def approve(
    session: Session,
    plan: SupportPlan,
    *,
    meeting_id: str,
    decision_id: int | None,
    by: str,
    now: datetime | None = None,
) -> None:
    """Approve the version (the 支援決定): the one approved before it is superseded. An approved version
    stays as it is."""
    if plan.status == "approved":
        return
    at = now or datetime.now(UTC)
    for previous in list_plans(session, plan.case_id):
        if previous.status == "approved":
            previous.status, previous.superseded_at = "superseded", at
            session.add(previous)
            # Published first: a consumer keyed on the plan sees the old version end before the new one starts.
            _publish(session, previous, by=by, at=at)
    plan.status, plan.approved_at = "approved", at
    plan.approved_at_meeting, plan.approved_by_decision = meeting_id, decision_id
    session.add(plan)
    _publish(session, plan, by=by, at=at)


def _publish(session: Session, plan: SupportPlan, *, by: str, at: datetime) -> None:
    stage(
        session,
        plan.municipality_code,
        plan.case_id,
        SupportPlanChanged(
            case_id=plan.case_id,
            plan_id=plan.plan_id,
            version=plan.version,
            status=cast(PlanStatus, plan.status),
            main_agency=plan.main_agency,
            roles=plan.roles,
            goals=len(plan.goals),
            monitoring_interval_days=plan.monitoring_interval_days,
            next_evaluation=plan.next_evaluation,
            changed_by=by,
            reason=plan.reason,
            approved_at_meeting=plan.approved_at_meeting,
            changed_at=at,
        ),
    )


def record_monitoring(
    session: Session,
    state: CaseState,
    plan: SupportPlan,
    body: MonitoringCreate,
    *,
    by: str,
    now: datetime | None = None,
) -> PlanMonitoring:
    """Record a monitoring or an evaluation of the plan version in force, and whether it was on time.

    A monitoring is due `monitoring_interval_days` business days after the approval or the version's
    last monitoring; an evaluation on or before the plan's next evaluation day.
    """
    if by not in {plan.main_agency, *_on_the_case(state)}:
        raise NotOnThePlan()
    approved_at = plan.approved_at
    if plan.status != "approved" or approved_at is None:
        raise PlanNotApproved(f"支援プラン version {plan.version} is {plan.status}: monitor the version in force")
    at = now or datetime.now(UTC)
    if body.kind == "monitoring":
        # The clock starts at the approval and again at each monitoring of the version.
        monitored = _monitorings(session, plan.case_id, plan.version)
        start = monitored[-1].recorded_at if monitored else approved_at
        due_at = business_days_after(start, plan.monitoring_interval_days)
        row = PlanMonitoring(
            case_id=plan.case_id,
            plan_version=plan.version,
            kind=body.kind,
            note=body.note,
            recorded_by=by,
            recorded_at=at,
            due_at=due_at,
            on_time=at <= due_at,
        )
        for overdue in _open_overdue(session, plan.case_id, plan.version):
            overdue.resolved_at = at
            session.add(overdue)
    else:
        row = PlanMonitoring(
            case_id=plan.case_id,
            plan_version=plan.version,
            kind=body.kind,
            note=body.note,
            recorded_by=by,
            recorded_at=at,
            due_on=plan.next_evaluation,
            on_time=at.astimezone(JST).date() <= plan.next_evaluation,
        )
    session.add(row)
    session.flush()
    stage(
        session,
        plan.municipality_code,
        plan.case_id,
        MonitoringRecorded(
            case_id=plan.case_id,
            plan_id=plan.plan_id,
            plan_version=plan.version,
            kind=body.kind,
            recorded_by=by,
            recorded_at=at,
            due_at=row.due_at or row.due_on,
            on_time=row.on_time,
        ),
    )
    return row


def monitorings_of(session: Session, plan: SupportPlan) -> list[PlanMonitoring]:
    """The monitorings and evaluations of a plan version, in the order recorded."""
    query = (
        select(PlanMonitoring)
        .where(PlanMonitoring.case_id == plan.case_id, PlanMonitoring.plan_version == plan.version)
        .order_by(col(PlanMonitoring.recorded_at), col(PlanMonitoring.id))
    )
    return list(session.exec(query).all())


def public(session: Session, plan: SupportPlan) -> PlanPublic:
    """A plan version as its readers see it, with its monitorings."""
    return PlanPublic.model_validate(
        {
            **plan.model_dump(),
            "monitorings": [MonitoringPublic.model_validate(m.model_dump()) for m in monitorings_of(session, plan)],
        }
    )


def read_basis(
    session: Session, state: CaseState, agency_id: str, *, operator: bool
) -> tuple[DisclosureBasis, str | None] | None:
    """On what basis the agency reads the case's plan: the live 本人同意 when there is one, else its
    engagement (its referral; the case for a lead that holds none); an operator's operation; None:
    it has no part in the case."""
    if agency_id in _on_the_case(state):
        if state.consents:
            return "consent", state.consents[0]
        return "engagement", referral_of(session, state.case_id, agency_id) or state.case_id
    if operator:
        return "operator", None
    return None


def record_read(
    session: Session,
    state: CaseState,
    recipient: str,
    fields: Iterable[str],
    basis: tuple[DisclosureBasis, str | None] | None,
) -> None:
    """Stage the ledger row of a plan read (or a refused one: `basis` None)."""
    stage_disclosure(
        session,
        ConferenceOutbox,
        source=SOURCE,
        municipality_code=state.municipality_code,
        case_id=state.case_id,
        recipient=recipient,
        channel="plan",
        fields=fields,
        basis=basis[0] if basis is not None else "none",
        basis_ref=basis[1] if basis is not None else None,
        released=basis is not None,
    )


def apply_monitoring_due(session: Session, envelope: Envelope[MonitoringDue]) -> None:
    """Keep each overdue monitoring (the router's timer), for the 推進会議 agenda to count until one is
    recorded; a reminder is the 主担当's, on its feed."""
    data = envelope.data
    if data.stage != "overdue":
        return
    if session.get(OverdueMonitoring, (data.case_id, data.plan_version, data.due_at)) is not None:
        return  # the timer fired again for the same due moment (after a restart, say)
    session.add(
        OverdueMonitoring(
            case_id=data.case_id,
            plan_version=data.plan_version,
            due_at=data.due_at,
            municipality_code=envelope.municipalitycode,
            noticed_at=envelope.time,
            # A monitoring recorded against this due day (or a later one) before the timer heard of it
            # settled it already.
            resolved_at=_settled_at(session, data),
            event_id=envelope.id,
        )
    )


def _settled_at(session: Session, data: MonitoringDue) -> datetime | None:
    due_day = data.due_at.astimezone(JST).date()
    for monitoring in _monitorings(session, data.case_id, data.plan_version):
        if monitoring.due_at is not None and monitoring.due_at.astimezone(JST).date() >= due_day:
            return monitoring.recorded_at
    return None


def _monitorings(session: Session, case_id: str, version: int) -> list[PlanMonitoring]:
    query = select(PlanMonitoring).where(
        PlanMonitoring.case_id == case_id, PlanMonitoring.plan_version == version, PlanMonitoring.kind == "monitoring"
    )
    return list(session.exec(query.order_by(col(PlanMonitoring.recorded_at))).all())


def _open_overdue(session: Session, case_id: str, version: int) -> list[OverdueMonitoring]:
    query = select(OverdueMonitoring).where(
        OverdueMonitoring.case_id == case_id,
        OverdueMonitoring.plan_version == version,
        col(OverdueMonitoring.resolved_at).is_(None),
    )
    return list(session.exec(query).all())


def open_overdue_monitorings(session: Session, municipality_code: str) -> list[OverdueMonitoring]:
    """The municipality's overdue monitorings not yet recorded, of plan versions still in force."""
    query = (
        select(OverdueMonitoring)
        .join(
            SupportPlan,
            (col(SupportPlan.case_id) == col(OverdueMonitoring.case_id))
            & (col(SupportPlan.version) == col(OverdueMonitoring.plan_version)),
        )
        .where(
            OverdueMonitoring.municipality_code == municipality_code,
            col(OverdueMonitoring.resolved_at).is_(None),
            SupportPlan.status == "approved",
        )
    )
    return list(session.exec(query).all())
