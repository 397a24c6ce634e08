"""Meetings by kind: OPS-MEETINGS-HELD breaks down ケース会議, 支援会議, 重層的支援会議 and 推進会議, and the
支援会議 and 重層的支援会議 held are reported (JUSO-SUPPORT-MEETINGS, JUSO-PLAN-MEETINGS) by the
municipalities running the 重層的支援体制整備事業 in the report's fiscal year, as their directory says
(LAW-2020.md §6); for any other municipality or year they are not applicable, never 0.

Events go through `service.count`, as the consumer applies them; the rules come from the directory
files through `counted_municipalities`, as the running service reads them.
"""

import csv
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import yaml
from sqlalchemy import Engine

from services.cli import upgrade_databases
from services.metrics import service
from services.metrics.app import counted_municipalities, create
from services.metrics.models import IndicatorValue
from shared import db
from shared.auth import Scope
from shared.calendar import JST
from shared.directory import demo_directory_path, load_directory
from shared.events import (
    AttendanceRecord,
    ConferenceCancelled,
    ConferenceHeld,
    ConferenceScheduled,
    EventData,
    MeetingKind,
    new_event,
)
from shared.settings import Settings
from tests.metrics.test_dashboard import browser, open_dashboard, serving, with_dashboard  # noqa: F401

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

NABARI = "242080"  # the demo directory: runs the 事業 from FY2021
NEIGHBOUR = "242081"  # a copy of it that does not run the 事業
YEAR = 2024
IN_YEAR = datetime(YEAR, 6, 10, 1, 0, tzinfo=UTC)  # 10:00 JST, 10 June 2024
JUSO = ("JUSO-SUPPORT-MEETINGS", "JUSO-PLAN-MEETINGS")
# Meetings held in FY2024, by kind: different counts for each, so that no kind passes for another.
NABARI_HELD: dict[MeetingKind, int] = {
    "case_meeting": 4,
    "support_meeting": 3,
    "plan_meeting": 2,
    "promotion_meeting": 1,
}
NEIGHBOUR_HELD: dict[MeetingKind, int] = {
    "case_meeting": 1,
    "support_meeting": 2,
    "plan_meeting": 1,
    "promotion_meeting": 1,
}


@pytest.fixture
def two_towns(settings: Settings, tmp_path: Path) -> Settings:
    """Settings with the demo directory (名張市, 事業 from FY2021) and a neighbour that does not run it."""
    data = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    municipality = {**data["municipality"], "code": NEIGHBOUR, "name": "隣市"}
    del municipality["jusoteki_since_fiscal_year"]
    neighbour = tmp_path / "neighbour.yaml"
    neighbour.write_text(yaml.safe_dump({**data, "municipality": municipality}, allow_unicode=True), encoding="utf-8")
    return settings.model_copy(update={"directory_files": [demo_directory_path(), neighbour]})


@pytest.fixture
def engine(two_towns: Settings) -> Iterator[Engine]:
    upgrade_databases(two_towns, ["metrics"])
    engine = db.make_engine(two_towns, "metrics")
    yield engine
    engine.dispose()


def held(meeting_id: str, kind: MeetingKind, at: datetime) -> ConferenceHeld:
    attended = [AttendanceRecord(participant="nabari-houkatsu", kind="agency", sector="welfare", attended=True)]
    case_id = None if kind == "promotion_meeting" else f"case-{meeting_id}"
    return ConferenceHeld(meeting_id=meeting_id, case_id=case_id, kind=kind, held_at=at, attendance=attended)


def count(engine: Engine, code: str, *events: EventData) -> None:
    for data in events:
        subject = getattr(data, "meeting_id", "x")
        with db.transaction(engine, service.FactBatch) as session:
            service.count(session, new_event(data, source="/test", subject=subject, municipality_code=code))


def hold(engine: Engine, code: str, by_kind: dict[MeetingKind, int], at: datetime = IN_YEAR) -> None:
    """Hold `by_kind[kind]` meetings of each kind, a day apart from `at`."""
    count(
        engine,
        code,
        *(
            held(f"{code}-{kind}-{n}", kind, at + timedelta(days=n))
            for kind, times in by_kind.items()
            for n in range(times)
        ),
    )


def report(settings: Settings, engine: Engine, code: str, year: int = YEAR) -> dict[str, IndicatorValue]:
    """The report of `code` for `year`, under the rules the service reads from the directory files."""
    counted = counted_municipalities(settings)[code]
    with db.snapshot(engine) as session:
        found = service.report(
            session, municipality_code=code, year=year, rules=counted.rules, municipality_name=counted.name
        )
    return {i.id: i for i in found.indicators}


def test_a_municipality_running_the_jigyo_reports_its_support_and_plan_meetings_and_another_does_not(
    two_towns: Settings, engine: Engine
) -> None:
    hold(engine, NABARI, NABARI_HELD)
    hold(engine, NEIGHBOUR, NEIGHBOUR_HELD)
    # A 支援会議 only scheduled, and one scheduled then cancelled: neither was held.
    for meeting_id in ("later", "dropped"):
        count(
            engine,
            NABARI,
            ConferenceScheduled(
                meeting_id=meeting_id,
                case_id="case-x",
                kind="support_meeting",
                tier=2,
                starts_at=IN_YEAR + timedelta(days=30),
                deadline=None,
                participants=["nabari-houkatsu"],
            ),
        )
    count(
        engine, NABARI, ConferenceCancelled(meeting_id="dropped", case_id="case-x", kind="support_meeting", reason="x")
    )

    nabari = report(two_towns, engine, NABARI)
    support, plan = nabari["JUSO-SUPPORT-MEETINGS"], nabari["JUSO-PLAN-MEETINGS"]
    assert (support.applicable, support.value, support.by_dimension) == (True, 3, {"support_meeting": 3})
    assert (plan.applicable, plan.value, plan.by_dimension) == (True, 2, {"plan_meeting": 2})
    assert support.name_ja == "支援会議の開催回数" and plan.name_ja == "重層的支援会議の開催回数"
    assert "対象外" not in support.definition

    neighbour = report(two_towns, engine, NEIGHBOUR)
    for indicator in JUSO:
        shown = neighbour[indicator]
        assert (shown.applicable, shown.value, shown.by_dimension) == (False, None, {}), "not a misleading 0"
        assert "対象外" in shown.definition and "重層的支援体制整備事業を実施していない" in shown.definition
    assert all(i.applicable for i in neighbour.values() if not i.id.startswith("JUSO-")), (
        "only the 事業's own indicators (its meetings, and its plans: test_case_life.py) depend on it"
    )

    # Every kind held, in both towns, whether or not they run the 事業.
    for values, expected in ((nabari, NABARI_HELD), (neighbour, NEIGHBOUR_HELD)):
        meetings = values["OPS-MEETINGS-HELD"]
        assert (meetings.value, meetings.by_dimension) == (sum(expected.values()), expected)
        assert meetings.definition.startswith("ケース会議・支援会議・重層的支援会議・推進会議")


def test_a_fiscal_year_before_the_jigyo_began_is_not_applicable(two_towns: Settings, engine: Engine) -> None:
    """名張市 runs the 事業 from FY2021: a 支援会議 on 31 March 2021 (FY2020) is not reported as one."""
    last_night_of_fy2020 = datetime(2021, 3, 31, 23, 30, tzinfo=JST)
    first_morning_of_fy2021 = datetime(2021, 4, 1, 9, 0, tzinfo=JST)
    count(
        engine,
        NABARI,
        held("before", "support_meeting", last_night_of_fy2020),
        held("from", "support_meeting", first_morning_of_fy2021),
        held("plan-from", "plan_meeting", first_morning_of_fy2021),
    )

    before = report(two_towns, engine, NABARI, 2020)
    for indicator in JUSO:
        shown = before[indicator]
        assert (shown.applicable, shown.value) == (False, None), indicator
        assert "2021年度から" in shown.definition
    assert before["OPS-MEETINGS-HELD"].by_dimension == {"support_meeting": 1}, "still held, as an operational count"

    first = report(two_towns, engine, NABARI, 2021)
    assert (first["JUSO-SUPPORT-MEETINGS"].applicable, first["JUSO-SUPPORT-MEETINGS"].value) == (True, 1)
    assert (first["JUSO-PLAN-MEETINGS"].applicable, first["JUSO-PLAN-MEETINGS"].value) == (True, 1)


def csv_rows(body: bytes) -> dict[str, dict[str, str]]:
    """The export's rows by indicator id, each by its Japanese header."""
    lines = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    return {row[0]: dict(zip(lines[1], row, strict=True)) for row in lines[2:]}


async def test_the_report_over_http_and_the_csv_export_carry_them(
    two_towns: Settings, engine: Engine, bearer: Callable[..., dict[str, str]]
) -> None:
    hold(engine, NABARI, NABARI_HELD)
    hold(engine, NEIGHBOUR, NEIGHBOUR_HELD)
    operator = bearer("operator", Scope.operator, municipalities=(NABARI, NEIGHBOUR))
    app = create(two_towns)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://m") as client:

        async def get(path: str, code: str) -> httpx.Response:
            response = await client.get(path, params={"municipality": code, "fiscal_year": YEAR}, headers=operator)
            assert response.status_code == 200, response.text
            return response

        # A target from the 実施計画 (Art. 106-5) for the 支援会議; its id is longer than the catalog's.
        for code in (NABARI, NEIGHBOUR):
            put = await client.put(
                f"/v1/municipalities/{code}/fiscal-years/{YEAR}/targets/JUSO-SUPPORT-MEETINGS",
                json={"value": 6, "reason": "実施計画の目標"},  # the year has begun: a reason is required
                headers=operator,
            )
            assert put.status_code == 204, put.text
        api = {
            code: {i["id"]: i for i in (await get("/v1/indicators", code)).json()["indicators"]}
            for code in (NABARI, NEIGHBOUR)
        }
        exported = {
            code: csv_rows((await get("/v1/indicators/export.csv", code)).content) for code in (NABARI, NEIGHBOUR)
        }

    support = api[NABARI]["JUSO-SUPPORT-MEETINGS"]
    assert (support["applicable"], support["value"], support["target"], support["attainment"]) == (True, 3, 6, 50.0)
    assert (api[NABARI]["JUSO-PLAN-MEETINGS"]["applicable"], api[NABARI]["JUSO-PLAN-MEETINGS"]["value"]) == (True, 2)
    for indicator in JUSO:
        shown = api[NEIGHBOUR][indicator]
        assert (shown["applicable"], shown["value"], shown["attainment"]) == (False, None, None), indicator
    assert api[NEIGHBOUR]["JUSO-SUPPORT-MEETINGS"]["target"] == 6, "the target stays, with nothing to attain"
    for code, expected in ((NABARI, NABARI_HELD), (NEIGHBOUR, NEIGHBOUR_HELD)):
        assert api[code]["OPS-MEETINGS-HELD"]["by_dimension"] == expected

    row = exported[NABARI]["JUSO-SUPPORT-MEETINGS"]
    assert (row["指標名"], row["目標値"], row["実績値"], row["達成率(%)"]) == ("支援会議の開催回数", "6", "3", "50.0")
    assert (row["支援会議"], row["支援会議（%）"], row["その他の内訳"]) == ("3", "100", "")
    assert exported[NABARI]["JUSO-PLAN-MEETINGS"]["実績値"] == "2"
    for indicator in JUSO:
        row = exported[NEIGHBOUR][indicator]
        assert (row["実績値"], row["達成率(%)"]) == ("", "") and set(list(row.values())[8:]) == {""}, "blank, not 0"
        assert "対象外" in row["定義"], "the row says why it is blank"
    meetings = exported[NABARI]["OPS-MEETINGS-HELD"]
    assert meetings["実績値"] == "10"
    kinds = ("ケース会議", "重層的支援会議", "推進会議", "支援会議")
    assert [meetings[kind] for kind in kinds] == ["4", "2", "1", "3"]
    assert [meetings[kind + "（%）"] for kind in kinds] == ["40", "20", "10", "30"]


def test_the_dashboard_shows_not_applicable_where_the_jigyo_is_not_run(
    two_towns: Settings,
    engine: Engine,
    bearer: Callable[..., dict[str, str]],
    browser: "WebDriver",  # noqa: F811
) -> None:
    from selenium.webdriver.common.by import By

    hold(engine, NABARI, NABARI_HELD)
    hold(engine, NEIGHBOUR, NEIGHBOUR_HELD)
    operator = bearer("dashboard-operator", Scope.operator, municipalities=(NABARI, NEIGHBOUR))
    token = operator["Authorization"].removeprefix("Bearer ")

    def value_cells(base: str, code: str) -> dict[str, str]:
        open_dashboard(browser, f"{base}/dashboard#token={token}&municipality={code}&fiscal_year={YEAR}&month=6")
        cells = {}
        for indicator in (*JUSO, "OPS-MEETINGS-HELD"):
            row = browser.find_element(By.CSS_SELECTOR, f'#indicator-table tr[data-indicator="{indicator}"]')
            cells[indicator] = row.find_elements(By.TAG_NAME, "td")[2].text
        return cells

    with serving(with_dashboard(create(two_towns))) as base:
        # June 2024: every meeting of the fixtures was held within its first weeks.
        assert value_cells(base, NABARI) == {
            "JUSO-SUPPORT-MEETINGS": "3",
            "JUSO-PLAN-MEETINGS": "2",
            "OPS-MEETINGS-HELD": "10",
        }
        assert value_cells(base, NEIGHBOUR) == {
            "JUSO-SUPPORT-MEETINGS": "対象外",
            "JUSO-PLAN-MEETINGS": "対象外",
            "OPS-MEETINGS-HELD": "5",
        }


def test_whether_a_municipality_runs_the_jigyo_is_part_of_its_directory_version() -> None:
    data = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    running = load_directory(data)
    assert running.municipality.jusoteki_since_fiscal_year == 2021
    later = load_directory({**data, "municipality": {**data["municipality"], "jusoteki_since_fiscal_year": 2023}})
    not_running = {**data["municipality"]}
    del not_running["jusoteki_since_fiscal_year"]
    versions = {running.version, later.version, load_directory({**data, "municipality": not_running}).version}
    assert len(versions) == 3, "decisions name a directory version that tells whether and since when it runs the 事業"
