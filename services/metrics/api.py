"""Metrics' HTTP API: indicators, manual values, targets and exports."""

from datetime import UTC, datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Response
from sqlmodel import Session

from services.metrics import exports, service
from services.metrics.context import MetricsContext
from services.metrics.errors import NotAManualIndicator
from services.metrics.indicators import MANUAL_IDS
from services.metrics.models import IndicatorReport, TargetIn, ValueIn
from shared.api import PrincipalDep, RuntimeDep, context_of, in_snapshot, in_transaction
from shared.auth import Principal, Scope, require_any, require_municipality
from shared.problems import problem_responses
from shared.runtime import Runtime

T = TypeVar("T")

router = APIRouter(prefix="/v1", tags=["indicators"])

MetricsContextDep = Annotated[MetricsContext, Depends(context_of(MetricsContext))]
Municipality = Annotated[str, Query(pattern=r"^\d{6}$", description="全国地方公共団体コード")]
FiscalYear = Annotated[int | None, Query(ge=2000, le=2100, description="年度 (April–March); default: current")]
Month = Annotated[int | None, Query(ge=1, le=12)]
TierFilter = Annotated[int | None, Query(ge=1, le=3, description="only cases of this tier")]
Suppress = Annotated[
    int | None,
    Query(
        ge=2,
        le=100,
        description="small-cell suppression: counts of cases below this become 'x', with complementary cells "
        "so that no hidden count can be recovered from its row's total (hours and entered values are kept)",
    ),
]


async def _report(
    runtime: Runtime,
    context: MetricsContext,
    municipality: str,
    fiscal_year: int | None,
    month: int | None,
    tier: int | None,
) -> IndicatorReport:
    year = fiscal_year if fiscal_year is not None else service.fiscal_year(datetime.now(UTC))
    rules, name = context.rules_of(municipality)

    def work(session: Session) -> IndicatorReport:
        return service.report(
            session,
            municipality_code=municipality,
            year=year,
            month=month,
            tier=tier,
            rules=rules,
            municipality_name=name,
        )

    return await in_snapshot(runtime, work)


@router.get("/indicators", response_model=IndicatorReport, responses=problem_responses(401, 403, 404, 422))
async def indicators(
    runtime: RuntimeDep,
    context: MetricsContextDep,
    principal: PrincipalDep,
    municipality: Municipality,
    fiscal_year: FiscalYear = None,
    month: Month = None,
    tier: TierFilter = None,
) -> IndicatorReport:
    """The indicators of a municipality for a fiscal year (年度), optionally one month or tier (operators)."""
    require_any(principal, Scope.operator)
    require_municipality(principal, municipality)
    return await _report(runtime, context, municipality, fiscal_year, month, tier)


@router.get(
    "/indicators/export.{extension}",
    responses={
        200: {"content": {"text/csv": {}, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}},
        **problem_responses(401, 403, 404, 422),
    },
    response_class=Response,
)
async def export(
    runtime: RuntimeDep,
    context: MetricsContextDep,
    principal: PrincipalDep,
    extension: Annotated[str, Path(pattern="^(csv|xlsx)$")],
    municipality: Municipality,
    fiscal_year: FiscalYear = None,
    month: Month = None,
    tier: TierFilter = None,
    suppress_below: Suppress = None,
) -> Response:
    """The annual results report (成果報告) as CSV or Excel, with Japanese headers."""
    require_any(principal, Scope.operator)
    require_municipality(principal, municipality)
    report = await _report(runtime, context, municipality, fiscal_year, month, tier)
    name = f"indicators-{municipality}-{report.fiscal_year}.{extension}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if extension == "csv":
        return Response(exports.to_csv(report, suppress_below), media_type="text/csv; charset=utf-8", headers=headers)
    return Response(
        exports.to_xlsx(report, suppress_below),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers=headers,
    )


def _may_enter(principal: Principal, code: str) -> None:
    """Operators and admins enter values, each only for the municipalities its credential serves."""
    require_any(principal, Scope.operator, Scope.admin)
    require_municipality(principal, code)


async def _set_manual(
    runtime: Runtime, principal: Principal, code: str, year: int, indicator: str, body: ValueIn
) -> None:
    def work(session: Session) -> None:
        service.set_manual(
            session, code=code, year=year, indicator=indicator, value=body.value, by=principal.agency_id, note=body.note
        )

    await in_transaction(runtime, work)


Code = Annotated[str, Path(pattern=r"^\d{6}$")]
Year = Annotated[int, Path(ge=2000, le=2100)]


@router.put(
    "/municipalities/{code}/fiscal-years/{year}/manual/{indicator}",
    status_code=204,
    responses=problem_responses(401, 403, 404, 422),
)
async def put_manual(
    code: Code, year: Year, indicator: str, body: ValueIn, runtime: RuntimeDep, principal: PrincipalDep
) -> Response:
    """Enter a survey-based or master-data indicator (M3, M4, M6, M7, M9, M14, M15, R1–R9, R11–R14)."""
    _may_enter(principal, code)
    if indicator not in MANUAL_IDS:
        raise NotAManualIndicator(indicator, MANUAL_IDS)
    await _set_manual(runtime, principal, code, year, indicator, body)
    return Response(status_code=204)


@router.put(
    "/municipalities/{code}/fiscal-years/{year}/targets/{indicator}",
    status_code=204,
    responses=problem_responses(401, 403, 404, 422),
)
async def put_target(
    code: Code,
    year: Year,
    indicator: Annotated[str, Path(min_length=1, max_length=40)],
    body: TargetIn,
    runtime: RuntimeDep,
    principal: PrincipalDep,
) -> Response:
    """Set a target for an indicator and fiscal year, in advance (実施要領 3(6); seed L3331, L3469).

    Each PUT is a new version and the earlier ones stay: the year is reported against the target in
    force when it began, with every later revision beside it. Once the year has begun a `reason` is
    required (422 `target-reason-required` without one).
    """
    _may_enter(principal, code)

    def work(session: Session) -> None:
        service.set_target(
            session,
            code=code,
            year=year,
            indicator=indicator,
            value=body.value,
            by=principal.agency_id,
            reason=body.reason,
        )

    await in_transaction(runtime, work)
    return Response(status_code=204)
