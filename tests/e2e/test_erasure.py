"""保存期間 and 消去 end to end (issue 26, done-when 1), through the four services as processes and the broker:
a case ends (終結) at a 重層的支援会議, the retention job runs with its clock moved past the municipality's
retention period, and then the personal details are gone from intake, every service has dropped its
copies, the case's events are still on Kafka with their sensitive fields unreadable under any key the
system holds, the indicators are unchanged, and `marugoto metrics rebuild` gives the same counts."""

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from services.cli import upgrade_databases
from shared.auth import Scope
from shared.case_keys import CASE_KEY, CaseKeys
from shared.directory import demo_directory_path
from shared.events import EVENT_MODELS, InvalidEvent
from shared.sealing import unseal
from shared.settings import Settings
from tests.conftest import read_all, service_env
from tests.e2e.processes import ServiceProcess, running
from tests.e2e.test_case_life import Api, hold_with_decision
from tests.e2e.test_spine import PERSONAL

pytestmark = pytest.mark.e2e

TOWN = "242080"
LEAD = "nabari-houkatsu"
YEAR = 2026
HOUSEHOLD = {  # a mother fleeing violence and her son out of school, in 地域03
    "municipality_code": TOWN,
    "area": "chiiki-03",
    "pathway": "self",
    "household": [
        {"relation": "self", "age": 41, "issues": ["domestic_violence", "poverty"], **PERSONAL},
        {"relation": "child", "age": 14, "issues": ["education"]},
    ],
}
# What must not be readable of the erased case anywhere: its area, issue tags and age bands (as JSON
# strings: an agency type such as board_of_education is no tag).
SENSITIVE = ('"chiiki-03"', '"domestic_violence"', '"education"', '"poverty"', '"40-49"', '"10-14"')


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    """名張市 keeping a case three years after 終結 (its [LOCAL] 文書保存年限), and no referral deadline firing."""
    data = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    data["routing"] = {"reminder_after_business_hours": 10_000, "escalate_after_business_hours": 20_000}
    data["intake"] = {"retention": {"years_after_closure": 3, "years_after_last_contact": 5}}
    path = tmp_path / "directory.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    upgrade_databases(settings)
    env = service_env(settings, MARUGOTO_DIRECTORY_FILES=json.dumps([str(path)]))
    with running(("intake", "router", "conference", "metrics"), env, tmp_path) as services:
        services["env"] = env  # type: ignore[assignment]
        yield services


def marugoto(env: dict[str, str], *args: str) -> str:
    """Run the `marugoto` command as an operator would, in a process of its own."""
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def rows(database_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as connection:
        return connection.execute(query, params).fetchall()


def of_case(records: list[Any], case_id: str) -> list[Any]:
    return [r for r in records if case_id in r.value.decode()]


async def test_a_case_past_its_retention_period_is_erased_and_the_counts_stay(
    stack: dict[str, Any], settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    env = stack.pop("env")
    partner = Api(stack, bearer("nabari-shakyo", Scope.submit, Scope.read_own, municipalities=(TOWN,)))
    lead = Api(stack, bearer(LEAD, Scope.coordinator, Scope.read_own, municipalities=(TOWN,)))
    operator = Api(stack, bearer("operator", Scope.operator, Scope.coordinator, Scope.read_own, municipalities=(TOWN,)))
    case_id = (await partner.call("POST", "intake", "/v1/consultations", HOUSEHOLD, expect=202))["case_id"]
    other_id = (await partner.call("POST", "intake", "/v1/consultations", HOUSEHOLD, expect=202))["case_id"]
    decision = await operator.until("router", f"/v1/cases/{case_id}/decision", lambda body: True)
    assert decision["tier"] in (2, 3)
    consent = {"given_by": "self", "members": [0, 1], "share_with": ["engaged"], "purpose": "支援の調整"}
    await partner.call("POST", "intake", f"/v1/cases/{case_id}/consents", consent, expect=201)

    # 終結 at a 重層的支援会議; intake learns it from conference.
    closure = {"type": "closure", "closure_reason": "goals_met", "lead_agency": LEAD}
    await hold_with_decision(lead, case_id, [closure])
    ended = await operator.until("intake", f"/v1/cases/{case_id}", lambda body: body["closed_at"] is not None)
    closed_at = datetime.fromisoformat(ended["closed_at"])

    # The operator sees nothing due in the next 30 days, and the job's own preview puts the case three
    # years after its 終結 (the municipality's period), the other case five years after its last contact.
    assert case_id not in {d["case_id"] for d in await operator.call("GET", "intake", "/v1/retention/upcoming")}
    later = (closed_at + timedelta(days=3 * 365 + 2)).isoformat()
    preview = marugoto(env, "retention", "preview", "--as-of", later)
    assert f"{case_id}\t{TOWN}\tclosure" in preview and other_id not in preview

    report_path = f"/v1/indicators?municipality={TOWN}&fiscal_year={YEAR}"
    before = await operator.until("metrics", report_path, lambda body: True)
    await asyncio.sleep(2)  # let metrics count everything the case caused before taking the snapshot
    before = await operator.call("GET", "metrics", report_path)
    events_before = await read_all(str(settings.kafka_bootstrap_servers), _topics(settings), opened=False)
    assert any(b'"sealed":"' in r.value for r in of_case(events_before, case_id)), "sealed while the case lives"

    # The clock moves past the period: the job erases the case (and only it).
    ran = marugoto(env, "retention", "run", "--as-of", later)
    assert "erased 1 case(s)" in ran

    # Intake: the personal details are gone; what is left says only that an erasure happened.
    erased = await operator.until("intake", f"/v1/cases/{case_id}", lambda body: body["erased_at"] is not None)
    assert erased["status"] == "erased"
    gone = await partner.call("GET", "intake", f"/v1/cases/{case_id}/personal-details", expect=410)
    assert gone["type"].endswith("/case-erased")
    url = str(settings.database_url)
    assert rows(url, "SELECT count(*) FROM intake.member WHERE case_id = %s", case_id) == [(0,)]
    assert rows(url, "SELECT count(*) FROM intake.match_key WHERE case_id = %s", case_id) == [(0,)]
    assert rows(url, "SELECT facts::text FROM intake.contact WHERE case_id = %s", case_id) == [("{}",)]
    kept_members = rows(url, "SELECT personal::text FROM intake.member WHERE case_id = %s", other_id)
    assert len(kept_members) == 2 and "address" in kept_members[0][0], "the other case keeps its (encrypted) details"
    ledger = await operator.call("GET", "intake", f"/v1/cases/{case_id}/disclosures")
    assert [(r["channel"], r["outcome"], r["fields"]) for r in ledger if r["channel"] == "erasure"] == [
        ("erasure", "erased", [])
    ]
    kept = await operator.call("GET", "intake", f"/v1/cases/{other_id}")
    assert kept["erased_at"] is None

    # Every service has dropped its copies of the case's sensitive fields.
    for _ in range(100):
        facts = rows(url, "SELECT consultation::text FROM router.case_facts WHERE case_id = %s", case_id)
        if facts and "chiiki-03" not in facts[0][0]:
            break
        await asyncio.sleep(0.2)
    router_rows = [
        *rows(url, "SELECT consultation::text FROM router.case_facts WHERE case_id = %s", case_id),
        *rows(url, "SELECT engaged::text, changes::text FROM router.decision WHERE case_id = %s", case_id),
        *rows(url, "SELECT tags::text FROM router.referral WHERE case_id = %s", case_id),
        *rows(url, "SELECT body::text FROM router.feed_entry WHERE case_id = %s", case_id),
    ]
    router_text = " ".join(str(cell) for row in router_rows for cell in row)
    assert not [s for s in SENSITIVE if s in router_text], router_text
    for _ in range(100):
        intake_copy = rows(url, "SELECT area, issues::text FROM conference.case_intake WHERE case_id = %s", case_id)
        if intake_copy == [("", "[]")]:
            break
        await asyncio.sleep(0.2)
    assert intake_copy == [("", "[]")]

    # Kafka: the case's events are all still there, and no key the system holds opens their sealed fields.
    keys = CaseKeys.from_settings(settings)
    assert keys.state(case_id) == "erased" and keys.state(other_id) == "live"
    events_after = await read_all(str(settings.kafka_bootstrap_servers), _topics(settings), opened=False)
    before_ids = {json.loads(r.value)["id"] for r in of_case(events_before, case_id)}
    after = {json.loads(r.value)["id"]: r for r in of_case(events_after, case_id)}
    assert before_ids <= set(after), "no event of the erased case left the log"
    erasure = [json.loads(r.value) for r in after.values() if json.loads(r.value)["type"] == "jp.marugoto.case.erased"]
    assert [e["data"]["reason"] for e in erasure] == ["retention"]
    sealed = [json.loads(r.value) for r in after.values() if json.loads(r.value).get("sealed")]
    assert {e["type"] for e in sealed} >= {
        "jp.marugoto.consultation.received",
        "jp.marugoto.routing.decided",
        "jp.marugoto.agency.feed_entry",
    }
    on_the_wire = " ".join(r.value.decode() for r in after.values())
    assert not [s for s in SENSITIVE if s in on_the_wire], "a sensitive field of the case is in clear on Kafka"
    held = rows(url, "SELECT key FROM keystore.case_key WHERE key IS NOT NULL")
    assert held, "the key store holds the other cases' keys"
    for envelope in sealed:
        for (key,) in held:
            with pytest.raises(InvalidEvent):
                unseal(json.loads(json.dumps(envelope)), bytes(key))
    assert rows(url, f"SELECT key FROM {CASE_KEY.schema}.{CASE_KEY.name} WHERE case_id = %s", case_id) == [(None,)]
    # What the indicators count stayed in clear.
    opening = next(e for e in sealed if e["type"] == "jp.marugoto.consultation.received")
    assert opening["data"]["consultation"]["pathway"] == "self" and opening["data"]["consultation"]["household"] == []

    # The indicators are unchanged, live and after a rebuild of every fact from the topics.
    await asyncio.sleep(2)
    assert (await operator.call("GET", "metrics", report_path))["indicators"] == before["indicators"]
    rebuilt_log = marugoto(env, "metrics", "rebuild")
    assert "rebuilt from" in rebuilt_log
    rebuilt = await operator.call("GET", "metrics", report_path)
    assert rebuilt["indicators"] == before["indicators"]
    counted = {i["id"]: i["value"] for i in rebuilt["indicators"]}
    # Both households are still counted, by intake route (R10), tier and pattern; the ended one as ended.
    assert (counted["R10"], counted["OPS-CASE-TIERS"], counted["OPS-PATTERNS"], counted["CASES-ENDED"]) == (2, 2, 2, 1)


def _topics(settings: Settings) -> list[str]:
    return sorted({settings.kafka_topic_prefix + model.topic for model in EVENT_MODELS.values()})
