"""Metrics' HTTP API."""

from datetime import UTC, datetime

import anyio
from fastapi import APIRouter, Query

from services.metrics import service
from services.metrics.models import IndicatorReport
from shared import db
from shared.api import PrincipalDep, RuntimeDep, require_any
from shared.auth import Scope
from shared.problems import problem_responses

router = APIRouter(prefix="/v1", tags=["indicators"])


@router.get("/indicators", response_model=IndicatorReport, responses=problem_responses(401, 403, 422))
async def indicators(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    municipality: str = Query(pattern=r"^\d{6}$", description="全国地方公共団体コード"),
    fiscal_year: int | None = Query(default=None, ge=2000, le=2100, description="April–March; default: current"),
    month: int | None = Query(default=None, ge=1, le=12),
) -> IndicatorReport:
    """The indicators of a municipality for a fiscal year (年度), optionally one month (operators)."""
    require_any(principal, Scope.operator)
    year = fiscal_year if fiscal_year is not None else service.fiscal_year(datetime.now(UTC))

    def work() -> IndicatorReport:
        with db.transaction(runtime.engine) as session:
            return service.report(session, municipality_code=municipality, year=year, month=month)

    return await anyio.to_thread.run_sync(work)
