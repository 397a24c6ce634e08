"""Metrics' HTTP API: indicators, manual values, targets and exports."""

from datetime import UTC, datetime
from typing import Annotated

import anyio
from fastapi import APIRouter, Path, Query, Response

from services.metrics import exports, service
from services.metrics.models import IndicatorReport, ManualValue, Target, ValueIn
from shared import db
from shared.api import PrincipalDep, RuntimeDep, require_any, require_municipality
from shared.auth import Principal, Scope
from shared.problems import Problem, problem_responses
from shared.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["indicators"])

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
    runtime: Runtime, municipality: str, fiscal_year: int | None, month: int | None, tier: int | None
) -> IndicatorReport:
    year = fiscal_year if fiscal_year is not None else service.fiscal_year(datetime.now(UTC))
    rules, name = runtime.state["rules"].get(municipality, (service.Rules(), None))

    def work() -> IndicatorReport:
        with db.snapshot(runtime.engine) as session:
            return service.report(
                session,
                municipality_code=municipality,
                year=year,
                month=month,
                tier=tier,
                rules=rules,
                municipality_name=name,
            )

    return await anyio.to_thread.run_sync(work)


@router.get("/indicators", response_model=IndicatorReport, responses=problem_responses(401, 403, 404, 422))
async def indicators(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    municipality: Municipality,
    fiscal_year: FiscalYear = None,
    month: Month = None,
    tier: TierFilter = None,
) -> IndicatorReport:
    """The indicators of a municipality for a fiscal year (年度), optionally one month or tier (operators)."""
    require_any(principal, Scope.operator)
    require_municipality(principal, municipality, what="municipality")
    return await _report(runtime, municipality, fiscal_year, month, tier)


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
    require_municipality(principal, municipality, what="municipality")
    report = await _report(runtime, municipality, fiscal_year, month, tier)
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
    require_municipality(principal, code, what="municipality")


async def _set(
    runtime: Runtime,
    principal: Principal,
    model: type[ManualValue] | type[Target],
    code: str,
    year: int,
    indicator: str,
    body: ValueIn,
) -> None:
    def work() -> None:
        with db.transaction(runtime.engine) as session:
            service.set_value(
                session,
                model,
                code=code,
                year=year,
                indicator=indicator,
                value=body.value,
                by=principal.agency_id,
                note=body.note,
            )

    await anyio.to_thread.run_sync(work)


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
    if indicator not in service.MANUAL_IDS:
        raise Problem(
            422,
            "not-a-manual-indicator",
            f"{indicator} is computed from events; enter one of {sorted(service.MANUAL_IDS)}",
        )
    await _set(runtime, principal, ManualValue, code, year, indicator, body)
    return Response(status_code=204)


@router.put(
    "/municipalities/{code}/fiscal-years/{year}/targets/{indicator}",
    status_code=204,
    responses=problem_responses(401, 403, 404, 422),
)
async def put_target(
    code: Code, year: Year, indicator: str, body: ValueIn, runtime: RuntimeDep, principal: PrincipalDep
) -> Response:
    """Set a target for an indicator and fiscal year in advance (実施要領 3(6))."""
    _may_enter(principal, code)
    await _set(runtime, principal, Target, code, year, indicator, body)
    return Response(status_code=204)
