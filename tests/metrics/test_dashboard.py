"""The operators' dashboard in real headless Chromium: the page draws exactly the API's numbers.

Needs Debian's `chromium` and `chromium-driver` (/usr/bin/chromium, /usr/bin/chromedriver) and the
`selenium` package; it installs nothing, and fails (never skips) when one of them is missing.
"""

import base64
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.routing import NoMatchFound

from services.metrics import dashboard
from shared.auth import Scope
from shared.embedded_broker import free_port
from shared.settings import Settings
from tests.chromium import start_chromium

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

MUNICIPALITY = "242080"
CHARTS = ("chart-routes", "chart-tiers", "chart-meetings", "chart-time-to-accept", "chart-endings", "chart-targets")
MEETING_INDICATORS = ("OPS-MEETINGS-HELD", "M5", "M13")
SCREENSHOT_COPY = Path("/tmp/marugoto-dashboard.png")


# --- the browser and the server ---------------------------------------------------------------------


@pytest.fixture
def browser(tmp_path: Path) -> Iterator["WebDriver"]:
    """Headless Chromium through chromedriver, both Debian's; Selenium Manager never downloads anything."""
    driver = start_chromium(tmp_path / "chromium-profile", width=1280, height=1800)
    try:
        yield driver
    finally:
        driver.quit()


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """`app` under uvicorn on a free TCP port of 127.0.0.1, in a background thread (lifespan included)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            pytest.fail("the app did not start serving (see the log above)")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def with_dashboard(app: FastAPI) -> FastAPI:
    """`app` serving the dashboard: include the router unless the app already does."""
    try:
        app.url_path_for("metrics_dashboard")
    except NoMatchFound:
        app.include_router(dashboard.router)
    return app


def navigate(driver: "WebDriver", url: str) -> None:
    """Go to `url`; a change of fragment only reloads the data, so the previous outcome is cleared first."""
    driver.execute_script(
        "if (document.body) { delete document.body.dataset.ready; delete document.body.dataset.error; }"
    )
    driver.get(url)


def open_dashboard(driver: "WebDriver", url: str, *, timeout_s: float = 30) -> None:
    """Open `url` and wait until the page says it drew everything; fail with its own message if it could not."""
    from selenium.webdriver.support.ui import WebDriverWait

    navigate(driver, url)
    WebDriverWait(driver, timeout_s).until(
        lambda d: d.execute_script("return document.body.dataset.ready === 'true' || 'error' in document.body.dataset")
    )
    error = driver.execute_script("return document.body.dataset.error || null")
    if error:
        pytest.fail(f"the dashboard reported an error: {error}\nconsole: {console_log(driver)}")


def wait_for_error(driver: "WebDriver", url: str, *, timeout_s: float = 30) -> str:
    """Open `url` and return the error the page shows."""
    from selenium.webdriver.support.ui import WebDriverWait

    navigate(driver, url)
    WebDriverWait(driver, timeout_s).until(
        lambda d: d.execute_script("return 'error' in document.body.dataset && !document.body.dataset.ready")
    )
    message: str = driver.execute_script("return document.body.dataset.error")
    assert driver.find_element("id", "error").text == message, "the error is shown, not only recorded"
    return message


def shown_values(driver: "WebDriver") -> dict[str, Any]:
    """Each chart's numbers as the page drew them (`data-values` of its canvas)."""
    from selenium.webdriver.common.by import By

    return {
        chart: json.loads(driver.find_element(By.CSS_SELECTOR, f"#{chart} canvas").get_attribute("data-values") or "")
        for chart in CHARTS
    }


def chart_states(driver: "WebDriver") -> dict[str, str]:
    from selenium.webdriver.common.by import By

    return {chart: driver.find_element(By.ID, chart).get_attribute("data-state") or "" for chart in CHARTS}


def expected_values(report: dict[str, Any]) -> dict[str, Any]:
    """What each chart must show, from the API's report, by the rules the page states."""
    by_id = {indicator["id"]: indicator for indicator in report["indicators"]}
    routes = by_id.get("R10") or by_id.get("M8")
    time_to_accept = (by_id.get("OPS-TIME-TO-ACCEPT") or {}).get("by_dimension", {})
    return {
        "chart-routes": routes["by_dimension"] if routes else {},
        "chart-tiers": by_id["OPS-DECISIONS"]["by_dimension"] if "OPS-DECISIONS" in by_id else {},
        "chart-meetings": {i: by_id[i]["value"] for i in MEETING_INDICATORS if i in by_id},
        "chart-time-to-accept": {k: time_to_accept[k] for k in ("p50", "p90") if k in time_to_accept},
        "chart-endings": by_id["CASES-ENDED"]["by_dimension"] if "CASES-ENDED" in by_id else {},
        "chart-targets": {
            i["id"]: {"value": i["value"], "target": i["target"]}
            for i in report["indicators"]
            if isinstance(i.get("target"), int | float)
        },
    }


def console_log(driver: "WebDriver") -> list[dict[str, Any]]:
    """The entries of the page's console (Selenium leaves `get_log` untyped)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return entries


def assert_no_console_errors(driver: "WebDriver") -> None:
    """No script error, CSP violation or failed load in the page's console."""
    severe = [entry for entry in console_log(driver) if entry.get("level") == "SEVERE"]
    assert not severe, severe


def assert_token_stays_out_of_urls(driver: "WebDriver", token: str) -> None:
    """The token went in the Authorization header only: not in any request's URL, nor left in the address bar."""
    requested: list[str] = driver.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
    assert any("/v1/indicators?" in url for url in requested), requested
    assert not any(token in url for url in requested), requested
    assert token not in driver.current_url


def screenshot(driver: "WebDriver", path: Path, copy_to: Path) -> None:
    """A screenshot of the whole page (not only the window), also copied where a person can look at it."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 10_000, "the screenshot has content"
    shutil.copyfile(path, copy_to)


# --- the real metrics service ------------------------------------------------------------------------


def seed(settings: Settings, year: int) -> None:
    """Three cases (two 当事者, one 行政), three decisions, two acceptances and one case meeting; c2's plan
    approved and evaluated once on time and once late, c2 ended under 見守り and c3 ended as refused.

    Through the service's own event application (`service.count`), straight into the metrics
    database: what the consumers would do on receiving these events, without the broker.
    """
    from services.metrics import service
    from shared import db
    from shared.consultation import ConsultationSummary
    from shared.events import (
        AttendanceRecord,
        CaseLifeChanged,
        ConferenceHeld,
        ConsultationReceived,
        EventData,
        MonitoringRecorded,
        ReferralStatusChanged,
        RoutingDecided,
        SupportPlanChanged,
        new_event,
    )
    from shared.vocabulary import ClosureReason, FoundBy, Pathway

    start = datetime(year, 4, 10, 1, 0, tzinfo=UTC)  # 10:00 JST on 10 April: inside the fiscal year
    cases = [("c1", Pathway.self_, 1, 6), ("c2", Pathway.self_, 2, 30), ("c3", Pathway.government, 2, None)]
    events: list[tuple[str, EventData]] = []
    for n, (case_id, pathway, tier, hours_to_accept) in enumerate(cases):
        received = start + timedelta(days=n)
        summary = ConsultationSummary(
            area="chiiki-01",
            pathway=pathway,
            found_by=FoundBy.window,
            household=[{"relation": "self", "issues": ["poverty"]}],
        )
        events.append(
            (
                case_id,
                ConsultationReceived(
                    case_id=case_id,
                    consultation_id=f"{case_id}-0",
                    submitted_by="nabari-houkatsu",  # the general window, which M8 counts (seed L1954)
                    received_at=received,
                    consultation=summary,
                ),
            )
        )
        events.append(
            (
                case_id,
                RoutingDecided(
                    case_id=case_id,
                    decision_id=f"{case_id}-d1",
                    tier=tier,
                    patterns=[],
                    lead=None,
                    engaged=[],
                    resource_gaps=[],
                    directory_version="test",
                    urgency="routine",
                    decided_at=received + timedelta(minutes=5),
                ),
            )
        )
        if hours_to_accept is not None:
            events.append(
                (
                    case_id,
                    ReferralStatusChanged(
                        referral_id=f"{case_id}-r1",
                        case_id=case_id,
                        agency_id="nabari-chiiki-houkatsu",
                        from_status="received",
                        to_status="accepted",
                        reason_code=None,
                        changed_by="nabari-chiiki-houkatsu",
                        changed_at=received + timedelta(hours=hours_to_accept),
                    ),
                )
            )
    events.append(
        (
            "c2",
            ConferenceHeld(
                meeting_id="m1",
                case_id="c2",
                kind="case_meeting",
                held_at=start + timedelta(days=5),
                attendance=[
                    AttendanceRecord(participant="agency-a", kind="agency", sector="welfare", attended=True),
                    AttendanceRecord(participant="agency-b", kind="agency", sector="welfare", attended=True),
                    AttendanceRecord(
                        participant="housing-division", kind="municipal_division", sector="non_welfare", attended=True
                    ),
                ],
            ),
        )
    )
    events.append(
        (
            "c2",
            SupportPlanChanged(
                case_id="c2",
                plan_id="plan-c2",
                version=1,
                status="approved",
                main_agency="agency-a",
                roles={"agency-a": "主担当", "agency-b": "就労"},
                goals=2,
                monitoring_interval_days=20,
                next_evaluation=(start + timedelta(days=60)).date(),
                changed_by="lead",
                approved_at_meeting="plan-meeting-1",
                changed_at=start + timedelta(days=7),
            ),
        )
    )
    for days, on_time in ((30, True), (60, False)):
        events.append(
            (
                "c2",
                MonitoringRecorded(
                    case_id="c2",
                    plan_id="plan-c2",
                    plan_version=1,
                    kind="evaluation",
                    recorded_by="agency-a",
                    recorded_at=start + timedelta(days=days),
                    on_time=on_time,
                ),
            )
        )
    for case_id, state, reason in (
        ("c2", "watching", ClosureReason.goals_met),
        ("c3", "closed", ClosureReason.refused),
    ):
        events.append(
            (
                case_id,
                CaseLifeChanged(
                    case_id=case_id,
                    state=state,
                    reason=reason,
                    main_agency="agency-a",
                    changed_at=start + timedelta(days=90),
                ),
            )
        )
    engine = db.make_engine(settings, "metrics")
    try:
        for subject, data in events:
            with db.transaction(engine, service.FactBatch) as session:
                service.count(session, new_event(data, source="/test", subject=subject, municipality_code=MUNICIPALITY))
    finally:
        engine.dispose()


def test_dashboard_draws_the_metrics_api_numbers_in_chromium(
    settings: Settings,
    bearer: Callable[..., dict[str, str]],
    browser: "WebDriver",
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    from services.cli import upgrade_databases
    from services.metrics.app import create
    from services.metrics.service import fiscal_year

    year = fiscal_year(datetime.now(UTC))
    upgrade_databases(settings, ["metrics"])
    seed(settings, year)
    operator = bearer("dashboard-operator", Scope.operator)
    token = operator["Authorization"].removeprefix("Bearer ")

    with serving(with_dashboard(create(settings))) as base:
        target = httpx.put(
            f"{base}/v1/municipalities/{MUNICIPALITY}/fiscal-years/{year}/targets/M8",
            json={"value": 4, "reason": "実施計画の目標"},
            headers=operator,
        )
        assert target.status_code == 204, target.text
        page = httpx.get(f"{base}/dashboard")
        assert page.status_code == 200 and '<html lang="ja">' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert httpx.get(f"{base}/dashboard/static/chart.umd.js").status_code == 200
        api = httpx.get(f"{base}/v1/indicators", params={"municipality": MUNICIPALITY}, headers=operator)
        assert api.status_code == 200, api.text
        report = api.json()

        open_dashboard(browser, f"{base}/dashboard#token={token}&municipality={MUNICIPALITY}")

        shown = shown_values(browser)
        assert shown == expected_values(report), "every chart draws the API's numbers"
        # …and those are the seeded ones: 2 当事者 + 1 行政, tiers 1/2/2, one case meeting with two
        # agencies and a non-welfare division, acceptance after 6 and 30 hours, a target of 4 for M8.
        assert shown["chart-routes"] == {"self": 2, "government": 1}
        by_id = {i["id"]: i for i in report["indicators"]}
        routes = by_id.get("R10") or by_id["M8"]  # as the page picks it
        assert (routes["labels"]["self"], routes["labels"]["government"]) == ("当事者", "行政")
        drawn = browser.find_element(By.CSS_SELECTOR, "#chart-routes canvas").get_attribute("textContent")
        assert drawn == "、".join(f"{routes['labels'][k]}: {n:g}件" for k, n in routes["by_dimension"].items())
        assert shown["chart-tiers"] == {"tier1": 1, "tier2": 2}
        assert shown["chart-meetings"] == {"OPS-MEETINGS-HELD": 1, "M5": 1, "M13": 1}
        if shown["chart-time-to-accept"]:
            assert shown["chart-time-to-accept"] == {"p50": 6, "p90": 30}
        assert shown["chart-endings"] == {"goals_met": 1, "refused": 1}
        assert shown["chart-targets"]["M8"] == {"value": 3, "target": 4}

        # Intake routes over time: each month's new cases by route, as the API reports that month.
        monthly = json.loads(
            browser.find_element(By.CSS_SELECTOR, "#chart-routes-monthly canvas").get_attribute("data-values") or ""
        )
        for month in (4, 5, 6, 7, 8, 9, 10, 11, 12, 1, 2, 3):
            month_report = httpx.get(
                f"{base}/v1/indicators",
                params={"municipality": MUNICIPALITY, "fiscal_year": year, "month": month},
                headers=operator,
            ).json()
            [m8] = [i for i in month_report["indicators"] if i["id"] == "M8"]
            assert monthly[str(month)] == m8["by_dimension"], month
        assert sum(sum(routes.values()) for routes in monthly.values()) == 3, "all three seeded cases, by month"
        assert all(state == "drawn" for chart, state in chart_states(browser).items() if shown[chart]), chart_states(
            browser
        )

        rows = browser.find_elements(By.CSS_SELECTOR, "#indicator-table tbody tr")
        assert [row.get_attribute("data-indicator") for row in rows] == [i["id"] for i in report["indicators"]]
        headings = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#indicator-table thead th")]
        assert headings[:3] == ["ID", "指標名", "値"]
        if any("target" in i for i in report["indicators"]):
            assert "目標" in headings
        m8 = browser.find_element(By.CSS_SELECTOR, '#indicator-table tr[data-indicator="M8"]')
        assert "総合相談窓口での相談受付数（実件数）" in m8.text and "3" in m8.text

        def value_cell(indicator: str) -> str:
            row = browser.find_element(By.CSS_SELECTOR, f'#indicator-table tr[data-indicator="{indicator}"]')
            return str(row.find_elements(By.TAG_NAME, "td")[2].text)

        # The case-life indicators: one 支援決定, evaluations half on time (a percent), one case under 見守り.
        assert [value_cell(i) for i in ("JUSO-SUPPORT-DECISIONS", "JUSO-EVALUATIONS-ON-TIME", "CASES-WATCHING")] == [
            "1",
            "50%",
            "1",
        ]

        assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ja"
        text = browser.find_element(By.TAG_NAME, "body").text
        for japanese in ("成果把握項目ダッシュボード", report["fiscal_year_label"], "相談受付経路", "指標一覧"):
            assert japanese in text
        municipality = browser.find_element(By.ID, "municipality").text
        assert MUNICIPALITY in municipality and (report.get("municipality_name") or "") in municipality
        assert_token_stays_out_of_urls(browser, token)
        assert_no_console_errors(browser)
        screenshot(browser, tmp_path / "dashboard.png", SCREENSHOT_COPY)


# --- every optional part, against a stand-in API -----------------------------------------------------

STUB_TOKEN = "stub-operator-token"
BARE_TOKEN = "stub-token-of-a-bare-report"
STUB_REPORT: dict[str, Any] = {
    "municipality_code": MUNICIPALITY,
    "municipality_name": "名張市",
    "fiscal_year": 2026,
    "fiscal_year_label": "令和8年度 (FY2026)",
    "month": 5,
    "tier": None,
    "indicators": [
        {
            "id": "M8",
            "name_ja": "総合相談窓口での相談受付数（実件数）",
            "name_en": "Consultations received: distinct cases",
            "value": 10.0,
            "by_dimension": {"self": 10.0},
            "target": 40.0,
            "attainment": 25.0,
            "target_revisions": [
                {"value": 45.0, "set_by": "agency-x", "set_at": "2026-06-01T01:00:00Z", "reason": "補正予算"}
            ],
        },
        {
            "id": "R10",
            "name_ja": "相談受付経路別の事例数・割合",
            "name_en": "Cases by intake route",
            "value": 20.0,
            "by_dimension": {"family_or_community": 8.0, "self": 12.0},
            "shares": {"family_or_community": 40.0, "self": 60.0},
            # A label the page cannot know itself: it shows what the API says.
            "labels": {"family_or_community": "家族・地域（スタブ）", "self": "当事者（スタブ）"},
            "target": None,
            "attainment": None,
        },
        {
            "id": "OPS-DECISIONS",
            "name_ja": "振り分け決定件数（層別）",
            "name_en": "Routing decisions by tier",
            "value": 9.0,
            "by_dimension": {"tier1": 5.0, "tier2": 3.0, "tier3": 1.0},
        },
        {
            "id": "OPS-MEETINGS-HELD",
            "name_ja": "会議の開催回数",
            "name_en": "Meetings held",
            "value": 4.0,
            "by_dimension": {"case_meeting": 3.0, "promotion_meeting": 1.0},
            "target": 6.0,
            "attainment": 66.7,
        },
        {
            "id": "M5",
            "name_ja": "福祉分野以外の部門の相談支援包括化に係る会議等への出席回数",
            "name_en": "Attendances of municipal divisions outside welfare",
            "value": 2.0,
            "by_dimension": {"case_meeting": 2.0},
        },
        {
            "id": "OPS-TIME-TO-ACCEPT",
            "name_ja": "初回受諾までの時間（時間）",
            "name_en": "Hours from consultation to first acceptance",
            "value": 12.5,
            "by_dimension": {"p50": 12.5, "p90": 40.25},
        },
        {
            "id": "CASES-ENDED",
            "name_ja": "終結したケース数（理由別）",
            "name_en": "Cases ended (終結) by reason",
            "unit": "count",
            "value": 5.0,
            "by_dimension": {"goals_met": 3.0, "moved_away": 2.0},
        },
        {
            "id": "JUSO-EVALUATIONS-ON-TIME",
            "name_ja": "期限内に評価された支援プランの割合（%）",
            "name_en": "Plan evaluations on time (%)",
            "unit": "percent",
            "value": 66.7,
            "by_dimension": {"late": 1.0, "on_time": 2.0},
        },
        {
            "id": "M3",
            "name_ja": "関係機関の情報共有ルール・ツール等の整備件数",
            "name_en": "Information-sharing rules and tools",
            "value": None,
            "by_dimension": {},
        },
    ],
}
# No target, no attainment, none of the charts' indicators: every chart must say it has nothing.
BARE_REPORT: dict[str, Any] = {
    "municipality_code": MUNICIPALITY,
    "fiscal_year": 2026,
    "fiscal_year_label": "令和8年度 (FY2026)",
    "indicators": [
        {
            "id": "M8-延べ",
            "name_ja": "総合相談窓口での相談受付数（延べ件数）",
            "name_en": "",
            "value": 0,
            "by_dimension": {},
        }
    ],
}


def stub_api(queries: list[str]) -> FastAPI:
    """The dashboard and a stand-in `GET /v1/indicators` that records each query and checks the bearer."""
    app = FastAPI()

    @app.get("/v1/indicators")
    async def indicators(request: Request) -> JSONResponse:
        queries.append(request.url.query)
        authorization = request.headers.get("authorization")
        if authorization == f"Bearer {BARE_TOKEN}":
            return JSONResponse(BARE_REPORT)
        if authorization != f"Bearer {STUB_TOKEN}":
            return JSONResponse({"title": "Unauthorized", "detail": "invalid token"}, status_code=401)
        return JSONResponse(STUB_REPORT)

    return with_dashboard(app)


def test_dashboard_draws_every_optional_chart_and_says_what_is_wrong(browser: "WebDriver", tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    queries: list[str] = []
    with serving(stub_api(queries)) as base:
        open_dashboard(
            browser, f"{base}/dashboard#token={STUB_TOKEN}&municipality={MUNICIPALITY}&fiscal_year=2026&month=5"
        )

        assert queries == [f"municipality={MUNICIPALITY}&fiscal_year=2026&month=5"], "no token in the query"
        shown = shown_values(browser)
        assert shown == expected_values(STUB_REPORT)
        assert shown["chart-routes"] == {"family_or_community": 8, "self": 12}, "R10 before M8"
        assert shown["chart-meetings"] == {"OPS-MEETINGS-HELD": 4, "M5": 2}, "M13 absent: left out"
        assert shown["chart-time-to-accept"] == {"p50": 12.5, "p90": 40.25}
        assert shown["chart-endings"] == {"goals_met": 3, "moved_away": 2}
        assert shown["chart-targets"] == {
            "M8": {"value": 10, "target": 40},
            "OPS-MEETINGS-HELD": {"value": 4, "target": 6},
        }
        assert set(chart_states(browser).values()) == {"drawn"}

        headings = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#indicator-table thead th")]
        assert headings == ["ID", "指標名", "値", "目標", "達成率"]
        m8 = [td.text for td in browser.find_elements(By.CSS_SELECTOR, '#indicator-table tr[data-indicator="M8"] td')]
        assert m8 == ["M8", "総合相談窓口での相談受付数（実件数）", "10", "40（改定: 45）", "25%"]
        revised = browser.find_element(By.CSS_SELECTOR, '#indicator-table tr[data-indicator="M8"] td.revised')
        assert "agency-x" in (revised.get_attribute("title") or "") and "補正予算" in (
            revised.get_attribute("title") or ""
        )
        routes_text = browser.find_element(By.CSS_SELECTOR, "#chart-routes canvas").get_attribute("textContent")
        assert routes_text == "家族・地域（スタブ）: 8件、当事者（スタブ）: 12件", "the API's labels"
        on_time = browser.find_elements(
            By.CSS_SELECTOR, '#indicator-table tr[data-indicator="JUSO-EVALUATIONS-ON-TIME"] td'
        )
        assert on_time[2].text == "66.7%", "a percent is shown as one"
        m3 = [td.text for td in browser.find_elements(By.CSS_SELECTOR, '#indicator-table tr[data-indicator="M3"] td')]
        assert m3[2:] == ["—", "—", "—"], "a missing value, target and attainment are shown as such"
        assert browser.find_element(By.ID, "municipality").text == "名張市（242080）"
        assert browser.find_element(By.ID, "fiscal-year").text == "令和8年度 (FY2026)"
        assert browser.find_element(By.ID, "month").text == "5月"
        assert_token_stays_out_of_urls(browser, STUB_TOKEN)
        assert_no_console_errors(browser)
        screenshot(browser, tmp_path / "dashboard-all-charts.png", Path("/tmp/marugoto-dashboard-all-charts.png"))

        # A report without any of the charts' indicators, targets or attainments: drawn as "nothing".
        open_dashboard(browser, f"{base}/dashboard#token={BARE_TOKEN}&municipality={MUNICIPALITY}")
        assert shown_values(browser) == expected_values(BARE_REPORT) == {chart: {} for chart in CHARTS}
        assert set(chart_states(browser).values()) == {"empty"}
        assert "指標 R10 / M8 はレポートにありません" in browser.find_element(By.ID, "chart-routes").text
        assert "指標 CASES-ENDED はレポートにありません" in browser.find_element(By.ID, "chart-endings").text
        headings = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#indicator-table thead th")]
        assert headings == ["ID", "指標名", "値"], "no target columns when the report has none"
        assert browser.find_element(By.ID, "month-row").is_displayed() is False
        assert_no_console_errors(browser)

        # A token the API refuses, and no municipality at all: the page says what is wrong, in Japanese.
        refused = wait_for_error(browser, f"{base}/dashboard#token=wrong&municipality={MUNICIPALITY}")
        assert "アクセストークンが無効" in refused
        unscoped = wait_for_error(browser, f"{base}/dashboard#token={STUB_TOKEN}")
        assert "市町村コード" in unscoped


async def test_dashboard_page_and_assets_over_http() -> None:
    """Without a browser: the page's security headers, and only the static folder's own files are served."""
    transport = httpx.ASGITransport(app=with_dashboard(FastAPI()))
    async with httpx.AsyncClient(transport=transport, base_url="http://metrics") as client:
        page = await client.get("/dashboard")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert '<html lang="ja">' in page.text and "成果把握項目ダッシュボード" in page.text
        assert "cdn" not in page.text.lower() and "https://" not in page.text, "everything is served locally"
        for name in ("dashboard.js", "dashboard.css", "chart.umd.js", "chart.js.LICENSE.md"):
            asset = await client.get(f"/dashboard/static/{name}")
            assert asset.status_code == 200, name
            assert asset.headers["x-content-type-options"] == "nosniff"
        chart = await client.get("/dashboard/static/chart.umd.js")
        assert "Chart.js v4" in chart.text[:200]
        again = await client.get("/dashboard/static/chart.umd.js", headers={"If-None-Match": chart.headers["etag"]})
        assert again.status_code == 304
        for outside in ("../dashboard.py", "..%2Fdashboard.py", "%2e%2e", ".hidden", "missing.js"):
            assert (await client.get(f"/dashboard/static/{outside}")).status_code == 404, outside
        schema = await client.get("/openapi.json")
        assert "/dashboard" not in schema.text, "not part of the API's schema"
