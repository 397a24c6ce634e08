"""The coordinators' console in real headless Chromium against intake, the router and conference as separate
processes (issue 25): a referral arrives live and is accepted; an unrelated agency learns nothing of a case;
the lead links a possible same household; no serious accessibility violation on the queue and case pages.

Needs Debian's `chromium` and `chromium-driver` and the `selenium` package, as the dashboard's test does.
`MARUGOTO_CONSOLE_SCREENSHOTS=docs` writes the README's screenshots to `docs/console-queue.png` and
`docs/console-case.png` (desk width, 1280×900); otherwise they go to the test's temporary folder.
"""

import asyncio
import base64
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.cli import upgrade_databases
from services.intake import service as intake_service
from services.router import console
from shared import db, problems
from shared.auth import Scope
from shared.embedded_broker import free_port
from shared.settings import Settings
from tests.chromium import start_chromium
from tests.conftest import make_settings, new_database, new_topic_prefix, service_env
from tests.e2e.processes import ServiceProcess
from tests.router.test_console import serving

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
MUNICIPALITY = "242080"
SUBMITTER = "nabari-shakyo"  # 名張市社会福祉協議会: submits the consultations
PARTNER = "nabari-jiritsu"  # 名張市生活支援相談センター: engaged for 生活困窮
UNRELATED = "nabari-kosodate"  # 地域子育て支援拠点 はぐくみ: same municipality, no part in these cases
LEAD = "nabari-houkatsu"  # 協働の中核 (municipality.lead of the demo directory)
CREDENTIALS = {
    SUBMITTER: (Scope.submit, Scope.read_own),
    PARTNER: (Scope.submit, Scope.coordinator, Scope.read_own),
    UNRELATED: (Scope.coordinator, Scope.read_own),
    LEAD: (Scope.submit, Scope.coordinator, Scope.read_own),
    "operator": (Scope.operator, Scope.read_own),
}
WAIT_S = 30.0
NOT_SHOWN = "この事例は表示できません"


def consultation(**first_member: Any) -> dict[str, Any]:
    """A household of two with problems in two members (tier 2): 生活困窮 engages the partner, 教育 another."""
    return {
        "municipality_code": MUNICIPALITY,
        "area": "chiiki-01",
        "pathway": "family_or_community",
        "household": [
            {"relation": "self", "age": 46, "issues": ["poverty", "employment"], **first_member},
            {"relation": "child", "age": 15, "issues": ["education"]},
        ],
    }


# --- the services, the credentials and the browser, once for the module --------------------------------


@dataclass
class Stack:
    """The running services and the agencies' client secrets."""

    services: dict[str, ServiceProcess]
    secrets: dict[str, str]

    @property
    def console(self) -> str:
        return f"{self.services['router'].url}/console"

    def url(self, service: str) -> str:
        return self.services[service].url

    def headers(self, agency: str) -> dict[str, str]:
        """An Authorization header from intake's token endpoint, as the agency's own software would get it."""
        form = {"grant_type": "client_credentials", "client_id": agency, "client_secret": self.secrets[agency]}
        granted = httpx.post(f"{self.url('intake')}/v1/token", data=form, timeout=10)
        assert granted.status_code == 200, granted.text
        return {"Authorization": f"Bearer {granted.json()['access_token']}"}


def issue_credentials(settings: Any) -> dict[str, str]:
    engine = db.make_engine(settings, "intake")
    try:
        with db.transaction(engine) as session:
            return {
                agency: intake_service.issue_credential(
                    session, agency_id=agency, name=agency, scopes=scopes, municipalities=[MUNICIPALITY]
                )
                for agency, scopes in CREDENTIALS.items()
            }
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str, postgres_admin_url: str, secrets_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """intake, conference and the router (which serves the console and reaches the other two) as processes."""
    tmp = tmp_path_factory.mktemp("console")
    with new_database(postgres_admin_url) as database_url:
        prefix = asyncio.run(new_topic_prefix(kafka_bootstrap))
        settings = make_settings(kafka_bootstrap, database_url, prefix, secrets_env, tmp)
        upgrade_databases(settings)
        secrets = issue_credentials(settings)
        env = service_env(settings)
        services = {name: ServiceProcess(name, env, tmp) for name in ("intake", "conference", "router")}
        try:
            services["intake"].start()
            services["conference"].start()
            # The console's pass-through reaches the other services where they listen.
            services["router"].start(
                MARUGOTO_INTAKE_PORT=str(services["intake"].port),
                MARUGOTO_CONFERENCE_PORT=str(services["conference"].port),
            )
            for service in services.values():
                service.wait_ready()
            yield Stack(services, secrets)
        finally:
            for service in services.values():
                service.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator["WebDriver"]:
    """Headless Chromium at a desk's size, through Debian's chromedriver (Selenium Manager downloads nothing)."""
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"), width=1280, height=900)
    # The page itself at exactly a desk's 1280×900, whatever the browser's own frame takes.
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}
    )
    try:
        yield driver
    finally:
        driver.quit()


# --- driving the page -------------------------------------------------------------------------------------


def until(driver: "WebDriver", condition: Callable[["WebDriver"], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    """Poll `condition` (at most every 0.1 s) until it is truthy; fail saying what did not happen."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = condition(driver)
        except (StaleElementReferenceException, WebDriverException):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; page errors: {page_errors(driver)}")
        time.sleep(0.1)


def case_state(driver: "WebDriver") -> str:
    """What the case page shows: loading, shown or hidden (the neutral message)."""
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, "section.case").get_attribute("data-case-state") or ""


def app_state(driver: "WebDriver", name: str) -> str:
    value: str = driver.execute_script(f"return document.querySelector('.app').dataset.{name} || ''")
    return value


def sign_in(driver: "WebDriver", stack: Stack, agency: str, *, live: bool = True) -> None:
    """Open the console afresh (nothing kept from before) and sign in as `agency`; wait for its live queue."""
    from selenium.webdriver.common.by import By

    driver.get(stack.console)
    until(driver, lambda d: d.find_element(By.ID, "client-id").is_displayed(), "the sign-in form")
    assert app_state(driver, "view") == "signin"
    assert "受付一覧" not in driver.find_element(By.TAG_NAME, "main").text, "nothing before sign-in"
    driver.find_element(By.ID, "client-id").send_keys(agency)
    driver.find_element(By.ID, "client-secret").send_keys(stack.secrets[agency])
    driver.find_element(By.ID, "sign-in").click()
    until(driver, lambda d: app_state(d, "view") == "queue", f"the queue of {agency}")
    if live:
        until(driver, lambda d: app_state(d, "connection") == "open", "the feed to connect")
        assert driver.find_element(By.ID, "connection").text == "接続中"


def go(driver: "WebDriver", fragment: str) -> None:
    """Follow an in-page address (`#/…`) without reloading: the token stays in the page's memory."""
    driver.execute_script("window.location.hash = arguments[0]", fragment)


def referral_item(driver: "WebDriver", case_id: str) -> "WebElement | None":
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, f'li.referral:has(a[href="#/cases/{case_id}"])')
    return found[0] if found else None


def confirm(driver: "WebDriver", button: "WebElement") -> None:
    """Press an action's button, check the dialog it opens (modal, focused), and confirm."""
    from selenium.webdriver.common.by import By

    button.click()
    until(driver, lambda d: d.find_element(By.ID, "confirm-dialog").get_attribute("open") is not None, "the dialog")
    inside = driver.execute_script("return document.getElementById('confirm-dialog').contains(document.activeElement)")
    assert inside, "the focus moves into the dialog"
    driver.find_element(By.ID, "dialog-confirm").click()


def page_errors(driver: "WebDriver") -> list[str]:
    """Script errors and CSP violations in the page's console (a 404 the API answered is not one)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [
        str(entry.get("message"))
        for entry in entries
        if entry.get("level") == "SEVERE" and "Failed to load resource" not in str(entry.get("message"))
    ]


def run_axe(driver: "WebDriver") -> list[dict[str, Any]]:
    """axe-core's serious and critical violations of the page as it stands (WCAG 2.0/2.1 A and AA rules)."""
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    driver.set_script_timeout(60)
    result: dict[str, Any] = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const tags = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'];"
        "axe.run(document, {runOnly: {type: 'tag', values: tags}})"
        ".then(r => done({violations: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' '))}))}), e => done({error: String(e)}));"
    )
    assert "error" not in result, result
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


def screenshot(driver: "WebDriver", name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    assert driver.save_screenshot(str(path)), name
    if os.environ.get("MARUGOTO_CONSOLE_SCREENSHOTS") == "docs":
        shutil.copyfile(path, ROOT / "docs" / name)


def submit(stack: Stack, agency: str, body: dict[str, Any]) -> str:
    response = httpx.post(f"{stack.url('intake')}/v1/consultations", json=body, headers=stack.headers(agency))
    assert response.status_code == 202, response.text
    case_id: str = response.json()["case_id"]
    return case_id


def poll(read: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    """Call `read` until it returns something truthy (every 0.2 s)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := read():
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def partner_referral(stack: Stack, case_id: str) -> dict[str, Any]:
    """The partner's one referral on the case; empty while the router has not routed it yet."""
    rows = httpx.get(
        f"{stack.url('router')}/v1/referrals", params={"case_id": case_id}, headers=stack.headers(PARTNER)
    ).json()
    assert len(rows) <= 1, rows
    return dict(rows[0]) if rows else {}


# --- 1. a referral arrives live and is accepted -----------------------------------------------------------


def test_a_partner_sees_a_referral_arrive_live_and_accepts_it(
    stack: Stack, browser: "WebDriver", tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, stack, PARTNER)
    assert browser.find_element(By.CSS_SELECTOR, ".who .agency").text == "名張市生活支援相談センター（nabari-jiritsu）"
    person = f"名張 一郎{uuid.uuid4().hex[:4]}"
    case_id = submit(stack, SUBMITTER, consultation(name=person, birth_date="1980-01-02"))

    # It appears in 新着 without a reload, with what the partner was engaged for and its deadline.
    item = until(browser, lambda d: referral_item(d, case_id), "the referral to appear in the queue")
    assert item.get_attribute("data-status") == "requested"
    assert browser.execute_script("return performance.getEntriesByType('navigation').length") == 1, "no reload"
    new_group = browser.find_element(By.ID, "group-new")
    assert case_id[-8:] in new_group.text
    assert "生活困窮" in item.text and "受諾期限" in item.text
    assert "教育" not in item.text, "only the issues the partner was engaged for"
    until(browser, lambda d: "新しい依頼が届きました" in d.find_element(By.ID, "announcer").text, "the announcement")
    assert browser.find_element(By.ID, "announcer").get_attribute("aria-live") == "polite"

    # Accept it, after the confirmation dialog; it moves to 受諾済み・対応中.
    confirm(browser, item.find_element(By.CSS_SELECTOR, 'button[data-action="accepted"]'))
    until(
        browser,
        lambda d: (found := referral_item(d, case_id)) is not None and found.get_attribute("data-status") == "accepted",
        "the referral to be shown accepted",
    )
    assert case_id[-8:] in browser.find_element(By.ID, "group-accepted").text
    assert case_id[-8:] not in browser.find_element(By.ID, "group-new").text
    assert browser.find_element(By.ID, "confirm-dialog").get_attribute("open") is None

    # The router and the feed agree.
    referral = partner_referral(stack, case_id)
    assert referral["status"] == "accepted"
    entries = httpx.get(f"{stack.url('router')}/v1/feed/entries", headers=stack.headers(PARTNER)).json()["entries"]
    mine = [e for e in entries if e["referral_id"] == referral["id"]]
    assert [(e["kind"], e["body"]["status"]) for e in mine] == [
        ("referral_requested", "requested"),
        ("status_changed", "accepted"),
    ]

    # A refusal is explained in Japanese: the dialog was opened on a state another hand has just changed.
    second = submit(stack, SUBMITTER, consultation())
    item = until(browser, lambda d: referral_item(d, second), "the second referral")
    item.find_element(By.CSS_SELECTOR, 'button[data-action="received"]').click()
    until(browser, lambda d: d.find_element(By.ID, "confirm-dialog").get_attribute("open") is not None, "the dialog")
    moved = httpx.post(
        f"{stack.url('router')}/v1/referrals/{partner_referral(stack, second)['id']}/transitions",
        json={"to": "accepted"},
        headers=stack.headers(PARTNER),
    )
    assert moved.status_code == 200, moved.text
    browser.find_element(By.ID, "dialog-confirm").click()
    error = until(browser, lambda d: d.find_element(By.ID, "dialog-error").text, "the refusal")
    assert error.startswith("現在の状態からはこの操作はできません"), error
    browser.find_element(By.ID, "dialog-cancel").click()
    until(
        browser,
        lambda d: (found := referral_item(d, second)) is not None and found.get_attribute("data-status") == "accepted",
        "the feed to show the other hand's acceptance",
    )

    # A lost connection is resumed from the last entry seen (Last-Event-ID): nothing missed, nothing twice.
    browser.execute_script("Alpine.$data(document.querySelector('.app')).dropConnection()")
    until(browser, lambda d: app_state(d, "connection") == "reconnecting", "再接続中", timeout_s=5)
    assert browser.find_element(By.ID, "connection").text == "再接続中…"
    until(browser, lambda d: app_state(d, "connection") == "open", "the feed to reconnect")
    third = submit(stack, SUBMITTER, consultation())
    until(browser, lambda d: referral_item(d, third), "a referral after the reconnection")
    for shown in (case_id, second, third):
        assert len(browser.find_elements(By.CSS_SELECTOR, f'li.referral:has(a[href="#/cases/{shown}"])')) == 1
    assert page_errors(browser) == []
    screenshot(browser, "console-queue.png", tmp_path)

    # The queue passes axe-core's checks, and fits a tablet held upright.
    assert run_axe(browser) == []
    desk = {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**desk, "width": 768, "height": 1024})
    try:
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, "no sideways scrolling at 768 px"
        buttons = browser.find_elements(By.CSS_SELECTOR, "li.referral button")
        assert all(b.size["height"] >= 40 for b in buttons), "buttons big enough to touch"
    finally:
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", desk)

    # The case page: this partner's part of the decision and the referrals' states; personal details only on request.
    poll(
        lambda: (
            httpx.get(f"{stack.url('conference')}/v1/cases/{case_id}/plans", headers=stack.headers(PARTNER)).status_code
            == 200
        ),
        "conference to follow the case",
    )
    go(browser, f"#/cases/{case_id}")
    until(
        browser,
        lambda d: case_state(d) == "shown",
        "the case page",
    )
    page = browser.find_element(By.CSS_SELECTOR, "section.case").text
    assert "決定のうち、貴機関の関わりとその理由だけを表示しています。" in page
    assert "名張市生活支援相談センター" in page and "生活困窮" in page
    assert "名張市教育委員会" not in page.split("依頼の状況")[0], "the decision shows the partner's own part only"
    assert "受諾済み" in page
    assert browser.find_element(By.ID, "show-personal-details").text == "同意に基づき表示（開示として記録されます）"
    assert browser.find_element(By.ID, "personal-details").is_displayed() is False
    assert person not in browser.page_source
    assert page_errors(browser) == []
    screenshot(browser, "console-case.png", tmp_path)
    assert run_axe(browser) == []

    # Personal details: refused without 本人同意, shown once the household consents; both on the ledger.
    browser.find_element(By.ID, "show-personal-details").click()
    refusal = until(browser, lambda d: d.find_element(By.ID, "personal-error").text, "the refusal")
    assert refusal == "個人情報を表示する根拠（本人同意など）がありません。"
    consent = {"given_by": "self", "members": [0], "share_with": [PARTNER]}
    given = httpx.post(
        f"{stack.url('intake')}/v1/cases/{case_id}/consents", json=consent, headers=stack.headers(SUBMITTER)
    )
    assert given.status_code == 201, given.text
    browser.find_element(By.ID, "show-personal-details").click()
    table = until(
        browser,
        lambda d: (
            d.find_element(By.ID, "personal-details").is_displayed() and d.find_element(By.ID, "personal-details")
        ),
        "the details",
    )
    assert person in table.text and "1980-01-02" in table.text and "本人同意" in table.text
    ledger = httpx.get(
        f"{stack.url('intake')}/v1/cases/{case_id}/disclosures", headers=stack.headers("operator")
    ).json()
    releases = [
        (row["basis"], row["outcome"])
        for row in ledger
        if row["recipient"] == PARTNER and row["channel"] == "personal_details"
    ]
    assert releases == [("none", "refused"), ("consent", "released")], releases

    # Signing out forgets the token: the sign-in form again, and nothing of the case left in the page.
    browser.find_element(By.ID, "sign-out").click()
    until(browser, lambda d: app_state(d, "view") == "signin", "the sign-in form")
    assert case_id not in browser.find_element(By.TAG_NAME, "body").text
    storage = browser.execute_script(
        "return [localStorage.length, sessionStorage.length, document.cookie, window.location.href]"
    )
    assert storage[:3] == [0, 0, ""], "nothing kept in the browser"
    assert "token" not in storage[3] and "eyJ" not in storage[3]


# --- 2. an unrelated agency learns nothing; the lead links a possible same household ------------------------


def test_an_unrelated_agency_finds_nothing_and_the_lead_links_a_same_household(
    stack: Stack, browser: "WebDriver", tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    member = {"name": f"名張 花子{uuid.uuid4().hex[:4]}", "kana": "ナバリ ハナコ", "birth_date": "1979-06-01"}
    secret_details = {**member, "address": "三重県名張市鴻之台1-1", "phone": "0595-63-0000"}
    case_id = submit(stack, SUBMITTER, consultation(**secret_details))
    # A later consultation from another agency about the same person: a possible same household for the lead.
    repeat_id = submit(stack, PARTNER, consultation(**member))
    poll(lambda: partner_referral(stack, case_id).get("status") == "requested", "the case to be routed")

    sign_in(browser, stack, UNRELATED)
    time.sleep(1)  # the feed has had its chance to deliver anything it would (it delivers nothing here)
    body = browser.find_element(By.TAG_NAME, "body")
    assert browser.find_elements(By.CSS_SELECTOR, "li.referral") == []
    go(browser, f"#/cases/{case_id}")
    until(
        browser,
        lambda d: case_state(d) == "hidden",
        "the neutral message",
    )
    assert browser.find_element(By.ID, "case-hidden").text == NOT_SHOWN
    shown = browser.find_element(By.CSS_SELECTOR, "section.case").text
    source = browser.page_source
    for secret in (
        case_id,
        case_id[-8:],
        repeat_id,
        *secret_details.values(),
        "生活困窮",
        "名張市生活支援相談センター",
    ):
        assert secret not in source and secret not in body.text, secret
    # The same page as for a case id that was never issued.
    go(browser, f"#/cases/{uuid.uuid4()}")
    until(
        browser,
        lambda d: case_state(d) == "hidden",
        "the neutral message",
    )
    assert browser.find_element(By.CSS_SELECTOR, "section.case").text == shown
    assert browser.find_elements(By.CSS_SELECTOR, '.menu a[href="#/lead"]')[0].is_displayed() is False
    assert page_errors(browser) == []

    # An agency without the coordinator scope (the submitter) has no queue, and is told so once.
    sign_in(browser, stack, SUBMITTER, live=False)
    refused = until(browser, lambda d: d.find_element(By.ID, "page-error").text, "the missing scope")
    assert refused.startswith("この機関の資格情報には、受付一覧を見る権限（coordinator）がありません。")
    until(browser, lambda d: app_state(d, "connection") == "closed", "the feed to stay closed")
    assert browser.find_elements(By.CSS_SELECTOR, "li.referral") == []

    # The lead: the item, linked in the page after the confirmation; intake agrees.
    lead = stack.headers(LEAD)
    intake = stack.url("intake")
    item = poll(
        lambda: next(
            (
                m
                for m in httpx.get(f"{intake}/v1/household-matches", params={"status": "open"}, headers=lead).json()
                if {m["case_id"], m["matched_case_id"]} == {case_id, repeat_id}
            ),
            None,
        ),
        "the possible same household",
    )
    sign_in(browser, stack, LEAD)
    lead_menu = browser.find_element(By.CSS_SELECTOR, '.menu a[href="#/lead"]')
    assert lead_menu.is_displayed()
    lead_menu.click()
    row = until(
        browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'li.match[data-match-id="{item["id"]}"]'), "the item"
    )[0]
    assert row.get_attribute("data-status") == "open"
    assert secret_details["name"] not in browser.page_source, "an item names two cases, never a person"
    assert run_axe(browser) == []
    confirm(browser, row.find_element(By.CSS_SELECTOR, 'button[data-action="link"]'))
    until(
        browser,
        lambda d: (
            d.find_element(By.CSS_SELECTOR, f'li.match[data-match-id="{item["id"]}"]').get_attribute("data-status")
            == "linked"
        ),
        "the item to be shown linked",
    )
    linked = httpx.get(f"{intake}/v1/household-matches", params={"status": "linked"}, headers=lead).json()
    [decided] = [m for m in linked if m["id"] == item["id"]]
    assert (decided["status"], decided["decided_by"]) == ("linked", LEAD)

    # The lead's case page holds the whole decision: the patterns and every engaged agency with its reason.
    go(browser, f"#/cases/{case_id}")
    until(browser, lambda d: case_state(d) == "shown", "the lead's case page")
    decision = browser.find_element(By.CSS_SELECTOR, 'section[aria-labelledby="decision-title"]').text
    assert "協働の中核として、決定の全体を表示しています。" in decision
    assert "複数の世帯員が課題を抱える" in decision
    assert "名張市生活支援相談センター" in decision and "名張市教育委員会" in decision
    assert secret_details["name"] not in browser.page_source, "personal details only on request"
    assert run_axe(browser) == []
    go(browser, "#/lead")
    until(browser, lambda d: app_state(d, "view") == "lead", "the lead's page")

    # The lead drafts the case's 支援プラン in the page; its next evaluation is listed; the calendar downloads.
    poll(
        lambda: httpx.get(f"{stack.url('conference')}/v1/cases/{case_id}/plans", headers=lead).status_code == 200,
        "conference to follow the case",
    )
    browser.find_element(By.ID, "plan-case").send_keys(case_id)
    browser.find_element(By.ID, "plan-goals").send_keys("就労に向けた生活の立て直し")
    confirm(browser, browser.find_element(By.CSS_SELECTOR, '#plan-form button[type="submit"]'))
    until(browser, lambda d: "第1版を案として作成しました" in d.find_element(By.ID, "plan-message").text, "the plan")
    [plan] = httpx.get(f"{stack.url('conference')}/v1/cases/{case_id}/plans", headers=lead).json()
    assert (plan["version"], plan["status"], plan["goals"]) == (1, "drafted", ["就労に向けた生活の立て直し"])
    browser.find_element(By.ID, "load-evaluations").click()
    until(browser, lambda d: case_id[-8:] in d.find_element(By.ID, "lead-alerts").text, "the plan's evaluation date")
    meetings = until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#lead-calendar li"), "the meeting calendar")
    assert any("ケース会議" in meeting.text for meeting in meetings)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    browser.find_element(By.ID, "download-ical").click()
    calendar = poll(lambda: next(iter(downloads.glob("*.ics")), None), "the iCal file")
    assert calendar.name == f"{LEAD}.ics"
    text = calendar.read_text(encoding="utf-8")
    assert text.startswith("BEGIN:VCALENDAR") and "BEGIN:VEVENT" in text
    assert run_axe(browser) == []
    assert page_errors(browser) == []


# --- 3. an expired token returns to the sign-in form -------------------------------------------------------


def stub_token(agency: str) -> str:
    """An unsigned token of the shape intake issues (the stand-in services below never verify it)."""
    claims = {"sub": agency, "scope": "coordinator", "municipalities": [MUNICIPALITY], "exp": int(time.time()) + 900}
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJub25lIn0.{encoded}.x"


def test_an_expired_token_returns_to_the_sign_in_form(browser: "WebDriver") -> None:
    """A 401 from any call (here the feed's, as when the 15 minutes are up) forgets the token and says why."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    intake = FastAPI()

    @intake.post("/v1/token")
    async def token() -> dict[str, Any]:
        return {
            "access_token": stub_token("stub-agency"),
            "token_type": "Bearer",
            "expires_in": 900,
            "scope": "coordinator",
        }

    router = FastAPI()
    problems.install(router)
    router.include_router(console.router)

    @router.get("/v1/referrals")
    async def referrals() -> list[dict[str, Any]]:
        return []

    @router.get("/v1/feed")
    async def feed(request: Request) -> JSONResponse:
        return problems.problem_response(request, status=401, slug="unauthenticated", detail="the token has expired")

    with serving(intake) as intake_port:
        router.state.runtime = SimpleNamespace(settings=Settings(intake_port=intake_port, conference_port=free_port()))
        with serving(router, lifespan="on") as router_port:
            browser.get(f"http://127.0.0.1:{router_port}/console")
            until(browser, lambda d: d.find_element(By.ID, "client-id").is_displayed(), "the sign-in form")
            ActionChains(browser).send_keys(Keys.TAB).perform()
            assert browser.switch_to.active_element.get_attribute("class") == "skip-link", "the skip link comes first"
            browser.find_element(By.ID, "client-id").send_keys("stub-agency")
            browser.find_element(By.ID, "client-secret").send_keys("secret")
            browser.find_element(By.ID, "client-secret").send_keys(Keys.ENTER)
            message = until(browser, lambda d: d.find_element(By.ID, "signin-error").text, "the expiry message")
            assert message == "サインインの有効期限が切れました。もう一度サインインしてください。"
            assert app_state(browser, "view") == "signin"
            assert browser.find_element(By.ID, "client-secret").get_attribute("value") == ""
            assert run_axe(browser) == []
            assert page_errors(browser) == []
