"""転居: a case transferred to another municipality of this deployment (a new case there, personal details
only under a consent covering it) or outside it (a printable hand-off summary), by the municipality's lead
coordinator or an operator, once; every release on the ledger.

This module's intake serves two municipalities (名張市 and a second one built from the same directory).
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import text

from shared import db
from shared.auth import Scope
from shared.directory import demo_directory_path
from shared.events import CaseTransferred, ConsultationReceived, EventData, decode
from shared.settings import Settings
from tests.conftest import make_settings, new_database, new_topic_prefix, read_events, topic_of
from tests.e2e.test_spine import CONSULTATION_8050
from tests.intake.conftest import ENGAGED, OTHER, PARTNER, publish_referral, with_person

TOWN = "242080"  # 名張市, the demo directory
OTHER_TOWN = "242098"  # a second municipality of the same deployment
OUTSIDE = "131016"  # a municipality this deployment does not serve
LEAD = "nabari-houkatsu"  # 名張市's lead agency (協働の中核)


@pytest.fixture(scope="module")
async def intake_settings(
    kafka_bootstrap: str,
    postgres_admin_url: str,
    secrets_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Settings]:
    """Intake's settings with two municipalities' directories (its own database and topics)."""
    folder = tmp_path_factory.mktemp("transfers")
    data = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    data["municipality"] = {**data["municipality"], "code": OTHER_TOWN, "name": "隣市"}
    second = folder / "second.yaml"
    second.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with new_database(postgres_admin_url) as database_url:
        prefix = await new_topic_prefix(kafka_bootstrap)
        settings = make_settings(kafka_bootstrap, database_url, prefix, secrets_env, folder)
        yield settings.model_copy(update={"directory_files": [demo_directory_path(), second]})


@pytest.fixture
def as_lead(bearer: Callable[..., dict[str, str]]) -> dict[str, str]:
    return bearer(LEAD, Scope.coordinator, Scope.read_own, municipalities=(TOWN,))


@pytest.fixture
def as_operator(bearer: Callable[..., dict[str, str]]) -> dict[str, str]:
    """An operator of both municipalities (the receiving case is read with it)."""
    return bearer("operator", Scope.operator, Scope.read_own, municipalities=(TOWN, OTHER_TOWN))


def household() -> dict[str, Any]:
    """A consultation about a household nobody else in the module submits, both members named."""
    body = with_person(CONSULTATION_8050, 0, name=f"名張 {uuid.uuid4().hex[:8]}", birth_date="1942-05-03")
    return with_person(body, 1, name=f"名張 {uuid.uuid4().hex[:8]}", birth_date="1973-01-09", phone="0595-00-0000")


async def submit(intake: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]) -> str:
    response = await intake.post("/v1/consultations", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["case_id"])


async def consent(intake: httpx.AsyncClient, headers: dict[str, str], case_id: str, **body: Any) -> str:
    response = await intake.post(
        f"/v1/cases/{case_id}/consents", json={"given_by": "self", "share_with": ["engaged"], **body}, headers=headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def transfer(
    intake: httpx.AsyncClient, headers: dict[str, str], case_id: str, to: str, area: str | None = None
) -> httpx.Response:
    body = {"to_municipality_code": to, "reason": "moved"} | ({"to_area": area} if area else {})
    return await intake.post(f"/v1/cases/{case_id}/transfers", json=body, headers=headers)


def query(settings: Settings, sql: str, **params: Any) -> list[Any]:
    engine = db.make_engine(settings, "intake")
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    finally:
        engine.dispose()


async def published(settings: Settings, model: type[EventData], key: str) -> list[Any]:
    """The events of `model` keyed `key`, as the broker has them."""
    raw = key.encode()
    records = await read_events(
        str(settings.kafka_bootstrap_servers), topic_of(settings, model), until=lambda rs: any(r.key == raw for r in rs)
    )
    return [decode(r.value, model) for r in records if r.key == raw]


async def until_engaged(settings: Settings, referral_id: str) -> None:
    for _ in range(150):
        if await asyncio.to_thread(
            query, settings, "SELECT 1 FROM intake.engagement WHERE referral_id = :r", r=referral_id
        ):
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"referral {referral_id} never reached intake")


def ledger(rows: list[dict[str, Any]], channel: str) -> list[tuple[Any, ...]]:
    return [
        (r["recipient"], r["fields"], r["basis"], r["basis_ref"], r["outcome"]) for r in rows if r["channel"] == channel
    ]


async def test_a_transfer_within_the_deployment_opens_a_case_there_with_the_facts_but_no_details_without_consent(
    intake: httpx.AsyncClient,
    intake_settings: Settings,
    as_partner: dict[str, str],
    as_lead: dict[str, str],
    as_operator: dict[str, str],
) -> None:
    case_id = await submit(intake, as_partner, household())
    await intake.post(
        f"/v1/cases/{case_id}/contacts",
        json={"pathway": "self", "urgency": "soon", "issues": [{"position": 0, "issues": ["poverty"]}]},
        headers=as_partner,
    )
    # A consent to share with agencies here does not cover the municipality the household moves to.
    await consent(intake, as_partner, case_id, members=[0, 1])

    response = await transfer(intake, as_lead, case_id, OTHER_TOWN, "chiiki-03")
    assert response.status_code == 201, response.text
    accepted = response.json()
    to_case_id = accepted["to_case_id"]
    assert to_case_id and to_case_id != case_id
    assert (accepted["personal_details_copied"], accepted["handoff_summary"]) == (False, None)

    [received] = await published(intake_settings, ConsultationReceived, to_case_id)
    assert received.municipalitycode == OTHER_TOWN, "tenanted by the receiving municipality"
    assert (received.data.submitted_by, received.data.consultation.area) == (LEAD, "chiiki-03")
    assert received.data.consultation.urgency == "soon", "the urgency in force, not the opening one"
    assert [(m.relation, m.issues, m.age_band) for m in received.data.consultation.household] == [
        ("self", ["long_term_care", "poverty"], "75+"),
        ("child", ["hikikomori", "employment"], "40-64"),
    ]
    [moved] = await published(intake_settings, CaseTransferred, case_id)
    assert moved.municipalitycode == TOWN
    assert (moved.data.to_case_id, moved.data.from_municipality, moved.data.to_municipality) == (
        to_case_id,
        TOWN,
        OTHER_TOWN,
    )
    assert (moved.data.personal_details_copied, moved.data.transferred_by) == (False, LEAD)

    new_case = (await intake.get(f"/v1/cases/{to_case_id}", headers=as_operator)).json()
    assert (new_case["municipality_code"], new_case["submitted_by"]) == (OTHER_TOWN, LEAD)
    assert new_case["transferred_from"] == {"municipality_code": TOWN, "case_id": case_id}
    assert new_case["transferred_to"] is None
    old_case = (await intake.get(f"/v1/cases/{case_id}", headers=as_partner)).json()
    assert old_case["transferred_to"]["case_id"] == to_case_id
    assert (old_case["transferred_to"]["municipality_code"], old_case["transferred_to"]["reason"]) == (
        OTHER_TOWN,
        "moved",
    )

    personal = query(intake_settings, "SELECT personal FROM intake.member WHERE case_id = :c", c=to_case_id)
    assert [p for (p,) in personal] == [{}, {}], "no personal details without a consent covering the municipality"
    assert query(intake_settings, "SELECT 1 FROM intake.match_key WHERE case_id = :c", c=to_case_id) == []
    rows = (await intake.get(f"/v1/cases/{case_id}/disclosures", headers=as_operator)).json()
    assert ledger(rows, "personal_details") == []
    [(_, fields, basis, basis_ref, outcome)] = [
        row for row in ledger(rows, "case_read") if row[0] == f"municipality:{OTHER_TOWN}"
    ]
    assert ("household" in fields, basis, basis_ref, outcome) == (True, "engagement", "municipality_lead", "released")


async def test_personal_details_go_only_for_the_members_a_live_consent_covering_the_municipality_covers(
    intake: httpx.AsyncClient,
    intake_settings: Settings,
    as_partner: dict[str, str],
    as_lead: dict[str, str],
    as_operator: dict[str, str],
    bearer: Callable[..., dict[str, str]],
) -> None:
    body = household()
    case_id = await submit(intake, as_partner, body)
    covering = await consent(intake, as_partner, case_id, members=[1], municipalities=[OTHER_TOWN])
    revoked = await consent(intake, as_partner, case_id, members=[0], municipalities=[OTHER_TOWN])
    response = await intake.post(
        f"/v1/cases/{case_id}/consents/{revoked}/revocation", json={"reason": "person_request"}, headers=as_partner
    )
    assert response.status_code == 200, response.text
    shown = (await intake.get(f"/v1/cases/{case_id}", headers=as_partner)).json()["consents"]
    assert [c["municipalities"] for c in shown] == [[OTHER_TOWN], [OTHER_TOWN]]

    response = await transfer(intake, as_lead, case_id, OTHER_TOWN, "chiiki-10")
    assert response.status_code == 201, response.text
    to_case_id = response.json()["to_case_id"]
    assert response.json()["personal_details_copied"] is True
    [moved] = await published(intake_settings, CaseTransferred, case_id)
    assert moved.data.personal_details_copied is True

    old = dict(query(intake_settings, "SELECT position, personal FROM intake.member WHERE case_id = :c", c=case_id))
    new = dict(query(intake_settings, "SELECT position, personal FROM intake.member WHERE case_id = :c", c=to_case_id))
    assert new == {0: {}, 1: old[1]}, "only member 1: the consent covering member 0 was revoked"

    rows = (await intake.get(f"/v1/cases/{case_id}/disclosures", headers=as_operator)).json()
    assert ledger(rows, "personal_details") == [
        (
            f"municipality:{OTHER_TOWN}",
            ["members.1.birth_date", "members.1.name", "members.1.phone"],
            "consent",
            covering,
            "released",
        )
    ]
    audit = (await intake.get(f"/v1/audit-log?case_id={case_id}", headers=as_operator)).json()
    assert [(e["agency_id"], e["outcome"]) for e in audit if e["action"] == "personal_details.transfer"] == [
        (LEAD, "granted")
    ]

    # The details came with their match keys: the receiving municipality recognises the household.
    neighbour = bearer("tonari-shakyo", Scope.submit, Scope.read_own, municipalities=(OTHER_TOWN,))
    later = {**body, "municipality_code": OTHER_TOWN, "household": [body["household"][1]]}
    assert (await intake.post("/v1/consultations", json=later, headers=neighbour)).status_code == 202
    matches = (await intake.get("/v1/household-matches", headers=as_operator)).json()
    assert to_case_id in {m["matched_case_id"] for m in matches}
    assert case_id not in {m["matched_case_id"] for m in matches}, "the case left behind is another municipality's"


async def test_outside_the_deployment_the_household_carries_a_printable_summary(
    intake: httpx.AsyncClient,
    intake_settings: Settings,
    as_partner: dict[str, str],
    as_lead: dict[str, str],
    as_operator: dict[str, str],
    bearer: Callable[..., dict[str, str]],
) -> None:
    body = household()
    case_id = await submit(intake, as_partner, body)
    referral_id = await publish_referral(intake_settings, case_id, ENGAGED)
    covering = await consent(intake, as_partner, case_id, members=[0], municipalities=[OUTSIDE])
    cases_before = query(intake_settings, 'SELECT count(*) FROM intake."case"')
    not_yet = await intake.get(f"/v1/cases/{case_id}/handoff-summary", headers=as_lead)
    assert not_yet.status_code == 409, not_yet.text

    await until_engaged(intake_settings, referral_id)  # the summary names the agencies that took part
    response = await transfer(intake, as_operator, case_id, OUTSIDE)
    assert response.status_code == 201, response.text
    accepted = response.json()
    assert accepted["to_case_id"] is None
    assert accepted["handoff_summary"] == f"/v1/cases/{case_id}/handoff-summary"
    assert query(intake_settings, 'SELECT count(*) FROM intake."case"') == cases_before, "no case opens outside"
    [moved] = await published(intake_settings, CaseTransferred, case_id)
    assert (moved.data.to_case_id, moved.data.to_municipality, moved.data.transferred_by) == (None, OUTSIDE, "operator")

    page = await intake.get(accepted["handoff_summary"], headers=as_lead)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "引継ぎ書" in html and "@media print" in html
    assert "三重県ひきこもり地域支援センター" in html, "the engaged agency, named from the directory"
    assert "名張市地域包括支援センター" in html, "the lead's name"
    assert "ひきこもり" in html and "介護" in html, "the issues, in Japanese"
    assert body["household"][0]["name"] in html, "member 0: the consent covers the municipality moved to"
    assert body["household"][1]["name"] not in html, "member 1: no consent covers it"

    rows = (await intake.get(f"/v1/cases/{case_id}/disclosures", headers=as_operator)).json()
    summaries = [r for r in rows if "handoff_summary" in r["fields"]]
    assert [(r["recipient"], r["basis"], r["basis_ref"], r["outcome"]) for r in summaries] == [
        (LEAD, "consent", covering, "released")
    ]
    assert sorted(summaries[0]["fields"]) == ["handoff_summary", "members.0.birth_date", "members.0.name"]

    # Refused attempts are recorded too: one who may read the case hears why, one with no part hears nothing.
    assert (await intake.get(accepted["handoff_summary"], headers=as_partner)).status_code == 403
    stranger = bearer(OTHER, Scope.submit, Scope.read_own, Scope.coordinator)
    assert (await intake.get(accepted["handoff_summary"], headers=stranger)).status_code == 404
    audit = (await intake.get(f"/v1/audit-log?case_id={case_id}", headers=as_operator)).json()
    assert sorted((e["agency_id"], e["outcome"]) for e in audit if e["action"] == "handoff_summary.read") == [
        (LEAD, "granted"),
        (OTHER, "refused"),
        (PARTNER, "refused"),
    ]

    # Once the consent is revoked, the summary carries no personal details.
    revoked = await intake.post(
        f"/v1/cases/{case_id}/consents/{covering}/revocation", json={"reason": "person_request"}, headers=as_partner
    )
    assert revoked.status_code == 200, revoked.text
    again = await intake.get(accepted["handoff_summary"], headers=as_operator)
    assert again.status_code == 200 and body["household"][0]["name"] not in again.text
    rows = (await intake.get(f"/v1/cases/{case_id}/disclosures", headers=as_operator)).json()
    assert [(r["recipient"], r["fields"], r["basis"]) for r in rows if "handoff_summary" in r["fields"]][-1] == (
        "operator",
        ["handoff_summary"],
        "operator",
    )


async def test_only_the_lead_or_an_operator_transfers_a_case_and_only_once(
    intake: httpx.AsyncClient,
    as_partner: dict[str, str],
    as_lead: dict[str, str],
    bearer: Callable[..., dict[str, str]],
) -> None:
    case_id = await submit(intake, as_partner, household())
    not_the_lead = bearer(OTHER, Scope.submit, Scope.read_own, Scope.coordinator, municipalities=(TOWN,))
    lead_elsewhere = bearer(LEAD, Scope.coordinator, Scope.read_own, municipalities=(OTHER_TOWN,))
    lead_without_the_scope = bearer(LEAD, Scope.submit, Scope.read_own, municipalities=(TOWN,))

    assert (await transfer(intake, as_partner, case_id, OUTSIDE)).status_code == 403, "may read it: told why"
    assert (await transfer(intake, not_the_lead, case_id, OUTSIDE)).status_code == 404, "no part in it"
    assert (await transfer(intake, lead_elsewhere, case_id, OUTSIDE)).status_code == 404, "another tenant"
    assert (await transfer(intake, lead_without_the_scope, case_id, OUTSIDE)).status_code == 404
    assert (await transfer(intake, as_lead, "no-such-case", OUTSIDE)).status_code == 404
    unchanged = (await intake.get(f"/v1/cases/{case_id}", headers=as_partner)).json()
    assert unchanged["transferred_to"] is None

    assert (await transfer(intake, as_lead, case_id, OUTSIDE)).status_code == 201
    again = await transfer(intake, as_lead, case_id, OTHER_TOWN, "chiiki-03")
    assert again.status_code == 409 and again.json()["type"].endswith("/case-already-transferred")
    still = await intake.get(f"/v1/cases/{case_id}", headers=as_partner)
    assert still.status_code == 200 and still.json()["transferred_to"]["municipality_code"] == OUTSIDE


async def test_a_transfer_names_the_field_it_cannot_take(
    intake: httpx.AsyncClient, as_partner: dict[str, str], as_lead: dict[str, str]
) -> None:
    case_id = await submit(intake, as_partner, household())
    cases = [
        ((OTHER_TOWN, None), "to_area", "chiiki-03"),  # served here: the receiving area is needed
        ((OTHER_TOWN, "chiiki-99"), "to_area", "chiiki-03"),
        ((TOWN, None), "to_municipality_code", "within the municipality"),
        (("131017", None), "to_municipality_code", "check digit"),
    ]
    for (to, area), field, message in cases:
        response = await transfer(intake, as_lead, case_id, to, area)
        assert response.status_code == 422, (to, area, response.text)
        [error] = response.json()["errors"]
        assert error["field"] == field and message in error["message"], error
    bad_consent = await intake.post(
        f"/v1/cases/{case_id}/consents",
        json={"given_by": "self", "members": [0], "share_with": ["engaged"], "municipalities": ["242099"]},
        headers=as_partner,
    )
    assert bad_consent.status_code == 422
    assert [(e["field"], e["label"]) for e in bad_consent.json()["errors"]] == [("municipalities.0", "転居先")]
    assert (await intake.get(f"/v1/cases/{case_id}", headers=as_partner)).json()["transferred_to"] is None
