"""Targets (目標) are set for a fiscal year before it begins and the year is reported against them (seed
L3331, L3469); a later change is a new version, with who made it, when and why, and the report shows
both the target in force when the year began and each revision."""

import csv
import io
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlmodel import select

from services.metrics import service
from services.metrics.app import create
from services.metrics.models import Target
from shared import db, migrations
from shared.auth import Scope
from shared.calendar import JST
from shared.settings import Settings
from tests.metrics.test_meeting_kinds import NABARI, engine, hold, two_towns  # noqa: F401

YEAR = 2024
BEFORE_THE_YEAR = datetime(2024, 3, 15, 10, 0, tzinfo=JST)
LAST_MOMENT_BEFORE = datetime(2024, 3, 31, 23, 59, tzinfo=JST)
FIRST_MOMENT = datetime(2024, 4, 1, 0, 0, tzinfo=JST)
REVISED_AT = datetime(2024, 10, 1, 9, 0, tzinfo=JST)


def set_target(engine: Engine, value: float, by: str, at: datetime, reason: str = "") -> None:  # noqa: F811
    with db.transaction(engine) as session:
        service.set_target(
            session, code=NABARI, year=YEAR, indicator="OPS-MEETINGS-HELD", value=value, by=by, reason=reason, now=at
        )


def test_a_reason_is_required_from_the_first_moment_of_the_year(engine: Engine) -> None:  # noqa: F811
    set_target(engine, 8, "planner", LAST_MOMENT_BEFORE)  # 23:59 JST on 31 March: still in advance
    with pytest.raises(service.TargetReasonRequired):
        set_target(engine, 9, "planner", FIRST_MOMENT)
    with pytest.raises(service.TargetReasonRequired):
        set_target(engine, 9, "planner", FIRST_MOMENT, reason="  ")
    set_target(engine, 9, "planner", FIRST_MOMENT, reason="補正予算")
    with db.snapshot(engine) as session:
        stored = sorted((t.version, t.value, t.reason) for t in session.exec(select(Target)))
    assert stored == [(1, 8, ""), (2, 9, "補正予算")], "the first version is kept"


async def test_a_target_changed_after_the_year_began_shows_both_values_with_its_author_and_reason(
    two_towns: Settings,  # noqa: F811
    engine: Engine,  # noqa: F811
    bearer: Callable[..., dict[str, str]],
) -> None:
    """Done-when 5 of issue 24: the report is against the target set in advance; the revision is beside it."""
    hold(engine, NABARI, {"case_meeting": 3, "support_meeting": 2})
    set_target(engine, 4, "planner-a", BEFORE_THE_YEAR)
    set_target(engine, 10, "planner-a", LAST_MOMENT_BEFORE)  # a change before the year: the one in force
    set_target(engine, 6, "planner-b", REVISED_AT, reason="会議の統合により見直し")
    operator = bearer("operator", Scope.operator, municipalities=(NABARI,))
    app = create(two_towns)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://m") as client:
        query: dict[str, str | int] = {"municipality": NABARI, "fiscal_year": YEAR}
        report = (await client.get("/v1/indicators", params=query, headers=operator)).json()
        exported = (await client.get("/v1/indicators/export.csv", params=query, headers=operator)).content

    [held] = [i for i in report["indicators"] if i["id"] == "OPS-MEETINGS-HELD"]
    assert (held["value"], held["target"], held["attainment"]) == (5, 10, 50.0), "against the target set in advance"
    [revision] = held["target_revisions"]
    assert (revision["value"], revision["set_by"], revision["reason"]) == (6, "planner-b", "会議の統合により見直し")
    assert datetime.fromisoformat(revision["set_at"]) == REVISED_AT
    assert held["labels"] == {"case_meeting": "ケース会議", "support_meeting": "支援会議"}

    row = csv_row(exported, "OPS-MEETINGS-HELD")
    assert (row["目標値"], row["実績値"], row["達成率(%)"]) == ("10", "5", "50.0")
    assert row["目標の改定"] == "2024-10-01 6（planner-b、理由: 会議の統合により見直し）"


async def test_over_http_a_target_for_a_year_begun_needs_a_reason_and_one_in_advance_does_not(
    two_towns: Settings,  # noqa: F811
    engine: Engine,  # noqa: F811
    bearer: Callable[..., dict[str, str]],
) -> None:
    operator = bearer("operator", Scope.operator, municipalities=(NABARI,))
    next_year = service.fiscal_year(datetime.now(JST)) + 1
    app = create(two_towns)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://m") as client:

        async def put(year: int, body: dict[str, Any]) -> httpx.Response:
            path = f"/v1/municipalities/{NABARI}/fiscal-years/{year}/targets/M8"
            return await client.put(path, json=body, headers=operator)

        refused = await put(YEAR, {"value": 40})
        assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"].endswith("/target-reason-required")
        assert (await put(YEAR, {"value": 40, "reason": "年度途中の設定"})).status_code == 204
        assert (await put(next_year, {"value": 30})).status_code == 204, "in advance: no reason needed"
        assert (await put(next_year, {"value": 35})).status_code == 204
        query: dict[str, str | int] = {"municipality": NABARI, "fiscal_year": next_year}
        ahead = (await client.get("/v1/indicators", params=query, headers=operator)).json()
        query["fiscal_year"] = YEAR
        begun = (await client.get("/v1/indicators", params=query, headers=operator)).json()

    [m8] = [i for i in ahead["indicators"] if i["id"] == "M8"]
    assert (m8["target"], m8["target_revisions"]) == (35, []), "the last change before the year is in force"
    [m8] = [i for i in begun["indicators"] if i["id"] == "M8"]
    assert m8["target"] == 40 and m8["target_revisions"] == [], "set only once the year had begun: that one"


def csv_row(body: bytes, indicator: str) -> dict[str, str]:
    lines = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    return dict(zip(lines[1], next(row for row in lines[2:] if row[0] == indicator), strict=True))


def test_the_migration_keeps_the_targets_set_before_it_as_their_first_version(settings: Settings) -> None:
    """Revision 0005: a target stored before versions is version 1, with no reason, as it was set."""
    engine = db.make_engine(settings, "metrics")  # noqa: F811
    try:
        migrations.upgrade(engine, "metrics", "0004")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO metrics.target (municipality_code, fiscal_year, indicator, value, set_by, set_at) "
                    "VALUES (:code, 2024, 'M8', 40, 'planner', '2024-03-01 00:00:00+00')"
                ),
                {"code": NABARI},
            )
        migrations.upgrade(engine, "metrics")
        with db.transaction(engine) as session:
            service.set_target(
                session, code=NABARI, year=2024, indicator="M8", value=45, by="lead", reason="見直し", now=REVISED_AT
            )
        with db.snapshot(engine) as session:
            stored = sorted((t.indicator, t.version, t.value, t.set_by, t.reason) for t in session.exec(select(Target)))
    finally:
        engine.dispose()
    assert stored == [("M8", 1, 40, "planner", ""), ("M8", 2, 45, "lead", "見直し")], "a revision follows it"
