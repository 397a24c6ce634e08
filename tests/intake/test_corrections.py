"""訂正 at intake (issue 26, done-when 3): a correction is a new version with who and why, its previous values
kept encrypted, the household's request recorded with its deadline, and one event for each agency the ledger
shows received a corrected field, naming fields and never values."""

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from services.intake.app import vault_from
from shared import db
from shared.auth import Scope
from shared.events import PersonalDetailsCorrected, decode
from shared.settings import Settings
from tests.conftest import read_all, read_events, topic_of
from tests.e2e.test_spine import CONSULTATION_8050
from tests.intake.conftest import PARTNER, publish_referral, until_status, with_person

TOWN = "242080"
RECEIVED = "mie-hikikomori"  # read the member's name under consent
NOTHING = "nabari-jiritsu"  # engaged, never read anything
REFUSED = "mie-saposute"  # engaged, asked, refused (no consent covers it)
STRANGER = "hellowork-nabari"  # no part in the case


def query(settings: Settings, sql: str, **params: Any) -> list[Any]:
    engine = db.make_engine(settings, "intake")
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    finally:
        engine.dispose()


def correction_id_of(record: Any) -> str:
    return decode(record.value, PersonalDetailsCorrected).data.correction_id


async def corrections(settings: Settings, correction_id: str) -> list[Any]:
    """Every PersonalDetailsCorrected on the topic, once one of `correction_id` arrived."""
    bootstrap, topic = str(settings.kafka_bootstrap_servers), topic_of(settings, PersonalDetailsCorrected)
    await read_events(bootstrap, topic, until=lambda rs: any(correction_id_of(r) == correction_id for r in rs))
    # Staged in one transaction: once one is on the topic, the others follow at once.
    return await read_all(bootstrap, [topic], idle_s=2.0)


async def corrections_of(settings: Settings, correction_id: str) -> list[Any]:
    """The PersonalDetailsCorrected events of one correction."""
    return [r for r in await corrections(settings, correction_id) if correction_id_of(r) == correction_id]


async def open_case(intake: httpx.AsyncClient, submitter: dict[str, str], name: str) -> str:
    body = with_person(CONSULTATION_8050, 0, name=name, birth_date="1943-02-11", address="名張市桔梗が丘1-2-3")
    submitted = await intake.post("/v1/consultations", json=body, headers=submitter)
    assert submitted.status_code == 202, submitted.text
    case_id: str = submitted.json()["case_id"]
    consent = {"given_by": "self", "members": [0], "share_with": [RECEIVED]}
    assert (await intake.post(f"/v1/cases/{case_id}/consents", json=consent, headers=submitter)).status_code == 201
    return case_id


async def test_a_correction_reaches_only_the_agencies_that_received_the_corrected_field(
    intake: httpx.AsyncClient, intake_settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    submitter = bearer(PARTNER, Scope.submit, Scope.read_own)
    agencies = {a: bearer(a, Scope.read_own) for a in (RECEIVED, NOTHING, REFUSED, STRANGER)}
    old_name, new_name = f"名張 {uuid.uuid4().hex[:6]}", f"名張 {uuid.uuid4().hex[:6]}"
    case_id = await open_case(intake, submitter, old_name)
    for agency in (RECEIVED, NOTHING, REFUSED):
        await publish_referral(intake_settings, case_id, agency)
        await until_status(intake, f"/v1/cases/{case_id}", agencies[agency], 200)
    details = f"/v1/cases/{case_id}/personal-details"
    before = await intake.get(details, headers=agencies[RECEIVED])
    assert before.status_code == 200 and before.json()["members"][0]["name"] == old_name
    assert (await intake.get(details, headers=agencies[REFUSED])).status_code == 403
    # The submitter read the details too, but it corrects them: it is not told of its own correction.
    assert (await intake.get(details, headers=submitter)).status_code == 200

    body = {
        "member": 0,
        "details": {"name": new_name},
        "reason": "recorded_in_error",
        "requested_by": "self",
        "note": "本人より氏名の誤記の申出",
    }
    corrected = await intake.post(f"/v1/cases/{case_id}/corrections", json=body, headers=submitter)
    assert corrected.status_code == 201, corrected.text
    correction = corrected.json()
    assert (correction["member"], correction["version"], correction["fields"]) == (0, 2, ["name"])
    assert (correction["reason"], correction["corrected_by"]) == ("recorded_in_error", PARTNER)
    assert old_name not in corrected.text and new_name not in corrected.text

    records = await corrections_of(intake_settings, correction["id"])
    assert [r.key for r in records] == [RECEIVED.encode()], "only the agency that received the name"
    event = decode(records[0].value, PersonalDetailsCorrected)
    assert event.subject == RECEIVED and event.municipalitycode == TOWN
    assert event.data.model_dump(mode="json", exclude={"correction_id", "corrected_at"}) == {
        "case_id": case_id,
        "agency_id": RECEIVED,
        "member": 0,
        "fields": ["name"],
        "version": 2,
        "reason": "recorded_in_error",
        "corrected_by": PARTNER,
    }
    raw = records[0].value.decode()
    assert old_name not in raw and new_name not in raw and "申出" not in raw, "no value and no note on Kafka"

    # The version row: who and why, the previous value kept encrypted (readable only with the vault).
    [row] = await asyncio.to_thread(
        query,
        intake_settings,
        "SELECT version, fields, previous, corrected_by, reason, note FROM intake.personal_detail_version"
        " WHERE case_id = :c",
        c=case_id,
    )
    assert (row.version, row.fields, row.corrected_by, row.reason) == (2, ["name"], PARTNER, "recorded_in_error")
    assert row.note == "本人より氏名の誤記の申出" and set(row.previous) == {"name"}
    assert old_name not in str(row.previous)
    assert vault_from(intake_settings).cipher.decrypt(row.previous["name"]) == old_name

    # The household's request, answered, with its deadline (the municipality's default: 30 days).
    requests = (await intake.get(f"/v1/cases/{case_id}/requests", headers=submitter)).json()
    [request] = [r for r in requests if r["kind"] == "correction"]
    assert (request["status"], request["requested_by"], request["recorded_by"]) == ("corrected", "self", PARTNER)
    [(deadline, received_at)] = await asyncio.to_thread(
        query,
        intake_settings,
        "SELECT deadline, received_at FROM intake.subject_request WHERE id = :r",
        r=correction["request_id"],
    )
    assert deadline - received_at == timedelta(days=30)
    assert datetime.fromisoformat(correction["deadline"]) == deadline

    # The agency reads the new value through the release, on the ledger as always.
    after = await intake.get(details, headers=agencies[RECEIVED])
    assert after.status_code == 200 and after.json()["members"][0]["name"] == new_name
    operator = bearer("operator", Scope.operator, Scope.read_own)
    ledger = (await intake.get(f"/v1/cases/{case_id}/disclosures", headers=operator)).json()
    reads = [r for r in ledger if r["recipient"] == RECEIVED and r["outcome"] == "released"]
    assert len([r for r in reads if "members.0.name" in r["fields"]]) == 2


async def test_an_operators_correction_reaches_the_submitter_and_only_for_the_fields_it_received(
    intake: httpx.AsyncClient, intake_settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    submitter = bearer(PARTNER, Scope.submit, Scope.read_own)
    received = bearer(RECEIVED, Scope.read_own)
    case_id = await open_case(intake, submitter, f"名張 {uuid.uuid4().hex[:6]}")
    await publish_referral(intake_settings, case_id, RECEIVED)
    await until_status(intake, f"/v1/cases/{case_id}", received, 200)
    assert (await intake.get(f"/v1/cases/{case_id}/personal-details", headers=received)).status_code == 200
    assert (await intake.get(f"/v1/cases/{case_id}/personal-details", headers=submitter)).status_code == 200

    operator = bearer("operator", Scope.operator, Scope.read_own)
    # Member 1 had no personal details: nobody received any, so nobody is told.
    first = {"member": 1, "details": {"phone": "0595-12-3456"}, "reason": "person_request", "requested_by": "family"}
    response = await intake.post(f"/v1/cases/{case_id}/corrections", json=first, headers=operator)
    assert response.status_code == 201 and response.json()["version"] == 2, response.text
    body = {"member": 0, "details": {"address": "名張市つつじが丘南1-1"}, "reason": "changed", "requested_by": "self"}
    corrected = await intake.post(f"/v1/cases/{case_id}/corrections", json=body, headers=operator)
    assert corrected.status_code == 201, corrected.text
    every = await corrections(intake_settings, corrected.json()["id"])
    records = [r for r in every if correction_id_of(r) == corrected.json()["id"]]
    assert sorted(r.key for r in records) == sorted([PARTNER.encode(), RECEIVED.encode()])
    assert {decode(r.value, PersonalDetailsCorrected).data.corrected_by for r in records} == {"operator"}
    assert all(correction_id_of(r) != response.json()["id"] for r in every)

    again = {**body, "details": {"address": "名張市つつじが丘南2-2", "phone": "0595-99-0000"}}
    corrected = await intake.post(f"/v1/cases/{case_id}/corrections", json=again, headers=operator)
    assert corrected.json()["version"] == 3 and corrected.json()["fields"] == ["address", "phone"]
    records = await corrections_of(intake_settings, corrected.json()["id"])
    assert [decode(r.value, PersonalDetailsCorrected).data.fields for r in records] == [["address"]] * 2, (
        "an agency is told of the fields it received: member 0 had no phone"
    )


async def test_who_may_correct_and_what_a_correction_must_change(
    intake: httpx.AsyncClient, intake_settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    submitter = bearer(PARTNER, Scope.submit, Scope.read_own)
    name = f"名張 {uuid.uuid4().hex[:6]}"
    case_id = await open_case(intake, submitter, name)
    engaged = bearer(RECEIVED, Scope.submit, Scope.read_own)
    await publish_referral(intake_settings, case_id, RECEIVED)
    await until_status(intake, f"/v1/cases/{case_id}", engaged, 200)
    url = f"/v1/cases/{case_id}/corrections"
    body: dict[str, Any] = {"member": 0, "details": {"kana": "なばり"}, "reason": "other", "requested_by": "self"}

    assert (await intake.post(url, json=body, headers=engaged)).status_code == 403
    stranger = await intake.post(url, json=body, headers=bearer(STRANGER, Scope.submit, Scope.read_own))
    unknown = await intake.post("/v1/cases/no-such-case/corrections", json=body, headers=submitter)
    assert stranger.status_code == unknown.status_code == 404
    assert stranger.json()["type"] == unknown.json()["type"]

    for wrong in (
        {**body, "member": 7},
        {**body, "details": {"name": name}},
        {**body, "details": {"kana": "Nabari"}},
        {**body, "details": {}},
        {**body, "reason": "because"},
        {**body, "requested_by": "山田"},
    ):
        refused = await intake.post(url, json=wrong, headers=submitter)
        assert refused.status_code == 422, (wrong, refused.text)
        assert name not in refused.text
    assert (
        await asyncio.to_thread(
            query, intake_settings, "SELECT 1 FROM intake.personal_detail_version WHERE case_id = :c", c=case_id
        )
        == []
    ), "nothing recorded by a refused correction"


async def test_the_blind_index_follows_the_corrected_details(
    intake: httpx.AsyncClient, bearer: Callable[..., dict[str, str]]
) -> None:
    submitter = bearer(PARTNER, Scope.submit, Scope.read_own)
    old_name, new_name = f"名張 {uuid.uuid4().hex[:6]}", f"名張 {uuid.uuid4().hex[:6]}"
    case_id = await open_case(intake, submitter, old_name)
    body = {"member": 0, "details": {"name": new_name}, "reason": "changed", "requested_by": "self"}
    assert (await intake.post(f"/v1/cases/{case_id}/corrections", json=body, headers=submitter)).status_code == 201

    async def duplicates_of(name: str) -> list[str]:
        repeat = with_person(CONSULTATION_8050, 0, name=name, birth_date="1943-02-11")
        response = await intake.post("/v1/consultations", json=repeat, headers=submitter)
        assert response.status_code == 202, response.text
        return [d["case_id"] for d in response.json()["possible_duplicates"]]

    assert case_id in await duplicates_of(new_name)
    assert case_id not in await duplicates_of(old_name)


async def test_an_erased_case_has_nothing_to_correct(
    intake: httpx.AsyncClient, intake_settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    submitter = bearer(PARTNER, Scope.submit, Scope.read_own)
    case_id = await open_case(intake, submitter, f"名張 {uuid.uuid4().hex[:6]}")
    engine = db.make_engine(intake_settings, "intake")
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE intake.case SET erased_at = now() WHERE id = :c"), {"c": case_id})
    finally:
        engine.dispose()
    body = {"member": 0, "details": {"name": "名張 花子"}, "reason": "changed", "requested_by": "self"}
    refused = await intake.post(f"/v1/cases/{case_id}/corrections", json=body, headers=submitter)
    assert refused.status_code == 410 and refused.json()["type"].endswith("/case-erased"), refused.text
