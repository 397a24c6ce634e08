"""開示 (disclosure request): an operator records the household's request and exports what intake holds about
the household and its disclosure ledger, as JSON and as a printable page, naming nothing of any other household.

Two households of one municipality: A (with a second case linked to it as the same household) and B, a
possible same household of A that nobody linked; each has releases and refusals on its ledger.
"""

import json
import random
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml

from shared.auth import Scope
from shared.directory import demo_directory_path
from shared.settings import Settings
from tests.conftest import make_settings, new_database, new_topic_prefix
from tests.e2e.test_spine import CONSULTATION_8050
from tests.intake.conftest import ENGAGED, OTHER, PARTNER, with_person

TOWN = "242080"
ANSWER_WITHIN_DAYS = 10


@pytest.fixture(scope="module")
async def intake_settings(
    kafka_bootstrap: str,
    postgres_admin_url: str,
    secrets_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Settings]:
    """Intake's settings with the demo directory answering requests within 10 days (its own database and topics)."""
    folder = tmp_path_factory.mktemp("disclosure")
    data = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    data["intake"] = {"requests": {"answer_within_days": ANSWER_WITHIN_DAYS}}
    path = folder / "directory.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with new_database(postgres_admin_url) as database_url:
        prefix = await new_topic_prefix(kafka_bootstrap)
        settings = make_settings(kafka_bootstrap, database_url, prefix, secrets_env, folder)
        yield settings.model_copy(update={"directory_files": [path]})


def tag() -> str:
    return uuid.uuid4().hex[:10]


async def submit(intake: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = await intake.post("/v1/consultations", json=body, headers=headers)
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


class Household:
    """The strings and ids of one household, to look for in an export."""

    def __init__(self) -> None:
        self.case_ids: list[str] = []
        self.strings: list[str] = []

    def all(self) -> list[str]:
        return self.case_ids + self.strings


@pytest.fixture(scope="module")
async def households(intake: httpx.AsyncClient, bearer: Callable[..., dict[str, str]]) -> dict[str, Any]:
    """Household A (two linked cases) and household B (a possible same household of A, never linked)."""
    partner = bearer(PARTNER, Scope.submit, Scope.read_own)
    other = bearer(OTHER, Scope.submit, Scope.read_own)
    engaged = bearer(ENGAGED, Scope.submit, Scope.read_own)
    operator = bearer("operator", Scope.operator, Scope.read_own)
    kana, born = "ナバリ " + "".join(random.choice("アイウエオカキクケコサシスセソ") for _ in range(10)), "1942-05-03"

    a, b = Household(), Household()
    a_name, a_child, a_address = f"名張A {tag()}", f"名張A子 {tag()}", f"名張市A町 {tag()}"
    body = with_person(CONSULTATION_8050, 0, name=a_name, kana=kana, birth_date=born, address=a_address)
    body = with_person(body, 1, name=a_child, phone="0595-11-1111")
    first = await submit(intake, partner, body)
    a.case_ids.append(first["case_id"])
    a.strings += [a_name, a_child, a_address, first["consultation_id"]]

    # The same household, met again by another agency: linked by an operator.
    a2_name = f"名張A2 {tag()}"
    again = await submit(intake, other, with_person(CONSULTATION_8050, 0, name=a2_name, kana=kana, birth_date=born))
    [match] = [
        m
        for m in await ok(await intake.get("/v1/household-matches?status=open", headers=operator))
        if m["case_id"] == again["case_id"]
    ]
    await ok(await intake.post(f"/v1/household-matches/{match['id']}/link", headers=operator))
    a.case_ids.append(again["case_id"])
    a.strings.append(a2_name)

    # Another household whose reading and birth date meet A's: a possible same household, never linked.
    b_name, b_address, b_phone = f"別世帯B {tag()}", f"名張市B町 {tag()}", f"0595-{random.randrange(10**6, 10**7)}"
    b_body = with_person(
        CONSULTATION_8050, 0, name=b_name, kana=kana, birth_date=born, address=b_address, phone=b_phone
    )
    other_household = await submit(intake, partner, b_body)
    b.case_ids.append(other_household["case_id"])
    b.strings += [b_name, b_address, b_phone, other_household["consultation_id"]]
    b_matches = [
        m
        for m in await ok(await intake.get("/v1/household-matches?status=open", headers=operator))
        if m["case_id"] == other_household["case_id"]
    ]
    assert {m["matched_case_id"] for m in b_matches} >= {first["case_id"]}, "B is a possible same household of A"
    b.strings += [m["id"] for m in b_matches]

    # Releases and refusals on both ledgers, and notes in free text on both.
    for case_id in (a.case_ids[0], b.case_ids[0]):
        await ok(await intake.get(f"/v1/cases/{case_id}", headers=partner))
        await ok(await intake.get(f"/v1/cases/{case_id}/personal-details", headers=partner))
        assert (await intake.get(f"/v1/cases/{case_id}/personal-details", headers=engaged)).status_code == 404
    a_purpose, b_purpose, b_note = f"A目的 {tag()}", f"B目的 {tag()}", f"B撤回 {tag()}"
    consent = {"given_by": "self", "members": [0], "share_with": ["engaged"]}
    a_consent = await ok(
        await intake.post(
            f"/v1/cases/{a.case_ids[0]}/consents", json={**consent, "purpose": a_purpose}, headers=partner
        ),
        201,
    )
    b_consent = await ok(
        await intake.post(
            f"/v1/cases/{b.case_ids[0]}/consents", json={**consent, "purpose": b_purpose}, headers=partner
        ),
        201,
    )
    await ok(
        await intake.post(
            f"/v1/cases/{b.case_ids[0]}/consents/{b_consent['id']}/revocation",
            json={"reason": "person_request", "note": b_note},
            headers=partner,
        )
    )
    b_stop_note = f"B停止 {tag()}"
    b_stop = await ok(
        await intake.post(
            f"/v1/cases/{b.case_ids[0]}/use-restriction",
            json={"requested_by": "self", "note": b_stop_note},
            headers=partner,
        ),
        201,
    )
    a.strings += [a_purpose, a_consent["id"]]
    b.strings += [b_purpose, b_note, b_consent["id"], b_stop_note, b_stop["id"]]
    return {"a": a, "b": b, "operator": operator, "partner": partner, "other": other}


async def ledger_ids(intake: httpx.AsyncClient, case_id: str, operator: dict[str, str]) -> set[str]:
    return {row["id"] for row in await ok(await intake.get(f"/v1/cases/{case_id}/disclosures", headers=operator))}


async def request_disclosure(
    intake: httpx.AsyncClient, case_id: str, headers: dict[str, str], **body: Any
) -> httpx.Response:
    return await intake.post(
        f"/v1/cases/{case_id}/disclosure-requests", json={"requested_by": "self", **body}, headers=headers
    )


async def test_the_export_lists_what_is_held_and_every_disclosure_and_nothing_of_another_household(
    intake: httpx.AsyncClient, households: dict[str, Any]
) -> None:
    a, b, operator = households["a"], households["b"], households["operator"]
    received = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    accepted = await ok(
        await request_disclosure(intake, a.case_ids[0], operator, received_at=received.isoformat(), note="窓口で受付"),
        201,
    )
    request = accepted["request"]
    assert (request["kind"], request["status"], request["requested_by"]) == ("disclosure", "disclosed", "self")
    assert datetime.fromisoformat(request["deadline"]) == received + timedelta(days=ANSWER_WITHIN_DAYS)
    assert request["closed_at"] is not None and request["closed_by"] == "operator"

    a_ledger = await ledger_ids(intake, a.case_ids[0], operator)
    b_ledger = await ledger_ids(intake, b.case_ids[0], operator)
    assert b_ledger and not a_ledger & b_ledger

    response = await intake.get(accepted["export_json"], headers=operator)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    export = response.json()
    assert export["format"] == "marugoto.disclosure-export/1"
    assert export["request"]["id"] == request["id"]
    assert set(export["household"]) == set(a.case_ids), "the linked same-household case is included"
    assert {d["id"] for d in export["disclosures"]} == a_ledger, "every disclosure of the household"
    assert {d["outcome"] for d in export["disclosures"]} == {"released", "refused"}
    first = next(c for c in export["cases"] if c["id"] == a.case_ids[0])
    assert first["members"][0]["address"] in a.strings and first["members"][1]["phone"] == "0595-11-1111"
    assert first["consents"][0]["purpose"] in a.strings
    assert [r["kind"] for r in first["requests"]] == ["disclosure"]
    assert {e["case_id"] for e in export["audit_log"]} <= set(a.case_ids)
    assert {e["action"] for e in export["audit_log"]} >= {"personal_details.read", "disclosure_export.answered"}

    page = await intake.get(accepted["export_html"], headers=operator)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert '<html lang="ja">' in page.text and "提供記録" in page.text

    as_json = json.dumps(export, ensure_ascii=False)
    for text in (as_json, page.text):
        for held in a.all():
            assert held in text, held
        for ledger_id in a_ledger:
            assert ledger_id in text, ledger_id
        for foreign in b.all() + sorted(b_ledger):
            assert foreign not in text, f"{foreign} of another household is in the export"


async def test_each_read_rebuilds_the_export_and_is_audited(
    intake: httpx.AsyncClient, households: dict[str, Any]
) -> None:
    a, operator = households["a"], households["operator"]
    accepted = await ok(await request_disclosure(intake, a.case_ids[1], operator), 201)
    url = accepted["export_json"]
    before = await ok(await intake.get(url, headers=operator))
    await ok(await intake.get(f"/v1/cases/{a.case_ids[1]}/personal-details", headers=households["other"]))
    after = await ok(await intake.get(url, headers=operator))
    assert len(after["disclosures"]) == len(before["disclosures"]) + 1, "built from what is held now"
    audit = await ok(await intake.get(f"/v1/audit-log?case_id={a.case_ids[1]}", headers=operator))
    reads = [e for e in audit if e["action"] == "disclosure_export.read"]
    assert len(reads) == 2 and all(accepted["request"]["id"] in e["detail"] for e in reads)
    by_accept = await intake.get(url.split("?")[0], headers={**operator, "Accept": "text/html"})
    assert by_accept.headers["content-type"].startswith("text/html")
    assert (await intake.get(url.split("?")[0], headers=operator)).json()["format"] == "marugoto.disclosure-export/1"


async def test_only_an_operator_of_the_municipality_records_or_reads_one(
    intake: httpx.AsyncClient, households: dict[str, Any], bearer: Callable[..., dict[str, str]]
) -> None:
    a, b, operator = households["a"], households["b"], households["operator"]
    accepted = await ok(await request_disclosure(intake, a.case_ids[0], operator), 201)
    elsewhere = bearer("operator", Scope.operator, Scope.read_own, municipalities=("242098",))
    unknown = await request_disclosure(intake, str(uuid.uuid4()), operator)
    assert unknown.status_code == 404
    for headers in (households["partner"], households["other"], elsewhere):
        refused = await request_disclosure(intake, a.case_ids[0], headers)
        assert (refused.status_code, refused.json()["type"]) == (unknown.status_code, unknown.json()["type"])
        assert refused.json()["detail"] == f"no case {a.case_ids[0]}"
        assert (await intake.get(accepted["export_json"], headers=headers)).status_code == 404
    b_request = (await ok(await intake.get(f"/v1/cases/{b.case_ids[0]}/requests", headers=operator)))[0]["id"]
    for wrong in (f"/v1/cases/{a.case_ids[0]}/disclosure-requests/{b_request}/export",
                  f"/v1/cases/{a.case_ids[0]}/disclosure-requests/{uuid.uuid4()}/export"):  # fmt: skip
        missing = await intake.get(wrong, headers=operator)
        assert (missing.status_code, missing.json()["type"].rsplit("/", 1)[-1]) == (
            404,
            "disclosure-request-not-found",
        )


async def test_the_request_is_listed_with_its_outcome_and_deadline(
    intake: httpx.AsyncClient, households: dict[str, Any]
) -> None:
    a, operator = households["a"], households["operator"]
    before = datetime.now(UTC)
    accepted = await ok(await request_disclosure(intake, a.case_ids[0], operator), 201)
    listed = await ok(await intake.get(f"/v1/cases/{a.case_ids[0]}/requests", headers=operator))
    [mine] = [r for r in listed if r["id"] == accepted["request"]["id"]]
    assert (mine["kind"], mine["status"]) == ("disclosure", "disclosed")
    received = datetime.fromisoformat(mine["received_at"])
    assert received >= before - timedelta(seconds=1)
    assert datetime.fromisoformat(mine["deadline"]) == received + timedelta(days=ANSWER_WITHIN_DAYS)
    by_submitter = await ok(await intake.get(f"/v1/cases/{a.case_ids[0]}/requests", headers=households["partner"]))
    assert mine in by_submitter
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    assert (await request_disclosure(intake, a.case_ids[0], operator, received_at=future)).status_code == 422


async def test_the_page_escapes_free_text(intake: httpx.AsyncClient, households: dict[str, Any]) -> None:
    a, operator = households["a"], households["operator"]
    note = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    accepted = await ok(await request_disclosure(intake, a.case_ids[0], operator, note=note), 201)
    page = await intake.get(accepted["export_html"], headers=operator)
    assert page.status_code == 200
    assert "<script" not in page.text and "<img" not in page.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page.text
    exported = await ok(await intake.get(accepted["export_json"], headers=operator))
    assert exported["request"]["note"] == note


async def test_the_export_holds_the_earlier_versions_a_correction_replaced(
    intake: httpx.AsyncClient, households: dict[str, Any]
) -> None:
    """訂正 keeps the replaced values (encrypted): they are held, so the export lists them."""
    a, operator, partner = households["a"], households["operator"], households["partner"]
    case_id = a.case_ids[0]
    new_address = f"名張市訂正町 {tag()}"
    correction = {"member": 0, "details": {"address": new_address}, "reason": "changed", "requested_by": "self"}
    await ok(await intake.post(f"/v1/cases/{case_id}/corrections", json=correction, headers=partner), 201)
    accepted = await ok(await request_disclosure(intake, case_id, operator), 201)
    export = await ok(await intake.get(accepted["export_json"], headers=operator))
    [case] = [c for c in export["cases"] if c["id"] == case_id]
    assert case["members"][0]["address"] == new_address
    [version] = case["corrections"]
    assert (version["member"], version["version"], version["fields"]) == (0, 2, ["address"])
    assert version["previous"]["address"] and version["previous"]["address"] != new_address
    assert version["corrected_by"] == "nabari-shakyo" and version["reason"] == "changed"
    page = (await intake.get(accepted["export_html"], headers=operator)).text
    assert "個人情報の訂正の履歴" in page and version["previous"]["address"] in page
