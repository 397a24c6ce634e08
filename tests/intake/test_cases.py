"""Cases, contacts, idempotency, access, duplicates, consent and audited personal details."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

import services.metrics.app  # noqa: F401 - registers the metrics tables
from services.metrics import service as metrics
from services.metrics.models import FACT_TABLES
from shared import db
from shared.auth import Scope
from shared.events import (
    ConsentGiven,
    ConsentRevoked,
    ConsultationReceived,
    ContactRecorded,
    Envelope,
    decode,
)
from shared.settings import Settings
from tests.conftest import read_events, topic_of
from tests.e2e.test_spine import CONSULTATION_8050
from tests.intake.conftest import ENGAGED, publish_referral, until_status, with_person


async def submit(intake: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any] | None = None) -> str:
    response = await intake.post("/v1/consultations", json=body or CONSULTATION_8050, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["case_id"])


async def test_same_idempotency_key_twice_opens_one_case(intake: httpx.AsyncClient, as_partner: dict[str, str]) -> None:
    headers = {**as_partner, "Idempotency-Key": f"k-{uuid.uuid4()}"}
    before = len((await intake.get("/v1/cases", headers=as_partner)).json())
    first = await intake.post("/v1/consultations", json=CONSULTATION_8050, headers=headers)
    second = await intake.post("/v1/consultations", json=CONSULTATION_8050, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    after = len((await intake.get("/v1/cases", headers=as_partner)).json())
    assert after == before + 1

    changed = {**CONSULTATION_8050, "area": "chiiki-08"}
    reused = await intake.post("/v1/consultations", json=changed, headers=headers)
    assert reused.status_code == 422
    assert reused.json()["type"].endswith("/idempotency-key-reused")


async def test_contact_adds_to_cumulative_count_but_not_to_distinct_cases(
    intake: httpx.AsyncClient, intake_settings: Settings, as_partner: dict[str, str]
) -> None:
    case_id = await submit(intake, as_partner)
    response = await intake.post(
        f"/v1/cases/{case_id}/contacts", json={"pathway": "self", "found_by": "outreach"}, headers=as_partner
    )
    assert response.status_code == 202, response.text
    timeline = (await intake.get(f"/v1/cases/{case_id}", headers=as_partner)).json()
    assert [c["kind"] for c in timeline["contacts"]] == ["opening", "follow_up"]

    # The events metrics consumes, read from Kafka and counted by metrics' own code.
    bootstrap = str(intake_settings.kafka_bootstrap_servers)
    key = case_id.encode()
    opened = await read_events(bootstrap, topic_of(intake_settings, ConsultationReceived), until=_has_key(key))
    contacts = await read_events(bootstrap, topic_of(intake_settings, ContactRecorded), until=_has_key(key))
    events: list[Envelope[Any]] = [decode(r.value, ConsultationReceived) for r in opened if r.key == key]
    events += [decode(r.value, ContactRecorded) for r in contacts if r.key == key]
    assert len(events) == 2
    engine = db.make_engine(intake_settings, "metrics")
    db.upgrade(engine, "metrics")
    with db.transaction(engine, metrics.FactBatch) as session:
        metrics.wipe(session, FACT_TABLES)
        for event in events:
            metrics.count(session, event)
    with Session(engine) as session:
        report = metrics.report(session, municipality_code="242080", year=metrics.fiscal_year(datetime.now(UTC)))
    engine.dispose()
    values = {i.id: i.value for i in report.indicators}
    assert values["M8"] == 1, "one household: one 実件数"
    assert values["M8-延べ"] == 2, "two contacts: two 延べ"


def _has_key(key: bytes) -> Callable[[list[Any]], bool]:
    return lambda records: any(r.key == key for r in records)


async def test_agencies_see_only_their_own_cases(
    intake: httpx.AsyncClient,
    as_partner: dict[str, str],
    as_other: dict[str, str],
    bearer: Callable[..., dict[str, str]],
) -> None:
    case_id = await submit(intake, as_partner)
    hidden = await intake.get(f"/v1/cases/{case_id}", headers=as_other)
    missing = await intake.get("/v1/cases/no-such-case", headers=as_other)
    assert hidden.status_code == missing.status_code == 404, "no part in it: as if the case did not exist"
    assert hidden.headers["content-type"] == "application/problem+json"
    assert hidden.json()["type"] == missing.json()["type"]
    assert hidden.json()["detail"] == f"no case {case_id}"
    assert case_id not in {c["id"] for c in (await intake.get("/v1/cases", headers=as_other)).json()}

    anonymous = await intake.get(f"/v1/cases/{case_id}")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert (await intake.get(f"/v1/cases/{case_id}", headers={"Authorization": "Bearer forged"})).status_code == 401

    read_only = bearer("nabari-shakyo", Scope.read_own)
    no_submit = await intake.post("/v1/consultations", json=CONSULTATION_8050, headers=read_only)
    assert no_submit.status_code == 403
    assert "submit" in no_submit.json()["detail"]


async def test_repeat_household_is_offered_as_a_link_not_merged(
    intake: httpx.AsyncClient, as_partner: dict[str, str], as_other: dict[str, str]
) -> None:
    first = await submit(
        intake,
        as_partner,
        with_person(CONSULTATION_8050, name="名張 花子", kana="なばり はなこ", birth_date="1942-05-03"),
    )
    response = await intake.post(
        "/v1/consultations",
        json=with_person(CONSULTATION_8050, name="名張　花子", kana="ナバリハナコ", birth_date="1942-05-03"),
        headers=as_partner,
    )
    assert response.status_code == 202
    second = response.json()
    assert second["case_id"] != first, "a new case; nothing is merged silently"
    assert second["possible_duplicates"] == [{"case_id": first, "add_contact": f"/v1/cases/{first}/contacts"}]

    stranger = await submit(
        intake, as_partner, with_person(CONSULTATION_8050, name="伊賀 一郎", birth_date="1960-01-01")
    )
    assert stranger not in {first, second["case_id"]}


async def test_personal_details_need_engagement_and_consent_and_every_read_is_audited(
    intake: httpx.AsyncClient,
    intake_settings: Settings,
    as_partner: dict[str, str],
    as_other: dict[str, str],
    as_engaged: dict[str, str],
    as_operator: dict[str, str],
) -> None:
    body = with_person(CONSULTATION_8050, 0, name="名張 花子", kana="ナバリ ハナコ", birth_date="1942-05-03")
    body = with_person(body, 1, name="名張 一郎", address="三重県名張市1丁目2番3号", phone="0595-00-0000")
    case_id = await submit(intake, as_partner, body)
    details_url = f"/v1/cases/{case_id}/personal-details"

    own = await intake.get(details_url, headers=as_partner)
    assert own.status_code == 200
    assert [m["name"] for m in own.json()["members"]] == ["名張 花子", "名張 一郎"]

    await publish_referral(intake_settings, case_id, ENGAGED)
    await until_status(intake, f"/v1/cases/{case_id}", as_engaged, 200)
    no_consent = await intake.get(details_url, headers=as_engaged)
    assert no_consent.status_code == 403
    assert "no consent" in no_consent.json()["detail"]

    consent = await intake.post(
        f"/v1/cases/{case_id}/consents",
        json={"given_by": "self", "members": [1], "share_with": ["engaged"]},
        headers=as_partner,
    )
    assert consent.status_code == 201, consent.text
    consent_id = consent.json()["id"]
    shared = await intake.get(details_url, headers=as_engaged)
    assert shared.status_code == 200
    assert [(m["position"], m["name"], m["phone"]) for m in shared.json()["members"]] == [
        (1, "名張 一郎", "0595-00-0000")
    ], "only the member the consent covers"

    assert (await intake.get(details_url, headers=as_other)).status_code == 404, "no part in the case"

    note = "名張 一郎さんの長女（名張 桜）から電話で撤回の申し出"
    revoked = await intake.post(
        f"/v1/cases/{case_id}/consents/{consent_id}/revocation",
        json={"reason": "representative_request", "note": note},
        headers=as_partner,
    )
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert revoked.json()["revocation_note"] == note
    bootstrap = str(intake_settings.kafka_bootstrap_servers)
    records = await read_events(bootstrap, topic_of(intake_settings, ConsentRevoked), until=_has_key(case_id.encode()))
    [record] = [r for r in records if r.key == case_id.encode()]
    revocation = decode(record.value, ConsentRevoked)
    assert revocation.data.consent_id == consent_id and revocation.data.reason == "representative_request"
    assert "名張" not in record.value.decode(), "the note stays in intake"
    given = await read_events(bootstrap, topic_of(intake_settings, ConsentGiven), until=_has_key(case_id.encode()))
    [consent_event] = [decode(r.value, ConsentGiven) for r in given if r.key == case_id.encode()]
    assert consent_event.data.given_by == "self"

    [own_view] = (await intake.get(f"/v1/cases/{case_id}", headers=as_partner)).json()["consents"]
    assert own_view["revocation_reason"] == "representative_request" and own_view["revocation_note"] == note
    [engaged_view] = (await intake.get(f"/v1/cases/{case_id}", headers=as_engaged)).json()["consents"]
    assert engaged_view["revocation_reason"] == "representative_request"
    assert engaged_view["revocation_note"] is None, "the note may name people: the submitter's and operators' only"

    after = await intake.get(details_url, headers=as_engaged)
    assert after.status_code == 403
    assert "revoked" in after.json()["detail"]

    log = (await intake.get(f"/v1/audit-log?case_id={case_id}", headers=as_operator)).json()
    attempts = [(e["agency_id"], e["outcome"]) for e in reversed(log)]
    assert attempts == [
        ("nabari-shakyo", "granted"),
        (ENGAGED, "refused"),
        (ENGAGED, "granted"),
        ("nabari-jiritsu", "refused"),
        (ENGAGED, "refused"),
    ]
    assert (await intake.get("/v1/audit-log", headers=as_partner)).status_code == 403


async def test_consent_takes_codes_not_names_of_who_gave_it_or_why_it_was_revoked(
    intake: httpx.AsyncClient, as_partner: dict[str, str]
) -> None:
    case_id = await submit(intake, as_partner)
    named = await intake.post(
        f"/v1/cases/{case_id}/consents",
        json={"given_by": "名張 花子", "members": [0], "share_with": ["engaged"]},
        headers=as_partner,
    )
    assert named.status_code == 422
    [error] = named.json()["errors"]
    assert error["field"] == "given_by" and error["label"] == "同意者"
    assert "'guardian'" in error["message"], "the allowed codes are listed"

    consent = await intake.post(
        f"/v1/cases/{case_id}/consents",
        json={"given_by": "guardian", "members": [0], "share_with": ["engaged"]},
        headers=as_partner,
    )
    assert consent.status_code == 201, consent.text
    free_text = await intake.post(
        f"/v1/cases/{case_id}/consents/{consent.json()['id']}/revocation",
        json={"reason": "後見人の名張 太郎さんが撤回"},
        headers=as_partner,
    )
    assert free_text.status_code == 422
    assert [e["field"] for e in free_text.json()["errors"]] == ["reason"]


async def test_audit_log_is_append_only_and_details_are_encrypted_at_rest(
    intake: httpx.AsyncClient, intake_settings: Settings, as_partner: dict[str, str], as_other: dict[str, str]
) -> None:
    body = with_person(CONSULTATION_8050, 0, name="伊賀 文子", birth_date="1939-11-23", phone="0595-11-2233")
    case_id = await submit(intake, as_partner, body)
    assert (await intake.get(f"/v1/cases/{case_id}/personal-details", headers=as_partner)).status_code == 200
    assert (await intake.get(f"/v1/cases/{case_id}/personal-details", headers=as_other)).status_code == 404
    engine = db.make_engine(intake_settings, "intake")
    count = text("SELECT count(*) FROM intake.audit_log WHERE case_id = :case_id").bindparams(case_id=case_id)
    try:
        with engine.connect() as conn:
            stored = " ".join(
                str(row[0])
                for row in conn.execute(
                    text("SELECT personal FROM intake.member WHERE case_id = :case_id"), {"case_id": case_id}
                )
            )
            assert conn.execute(count).scalar_one() == 2, "both reads, granted and refused, are audited"
        assert stored, "the member's details are stored"
        assert "伊賀" not in stored and "1939" not in stored and "0595" not in stored
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("UPDATE intake.audit_log SET outcome = 'granted' WHERE case_id = :c"), {"c": case_id})
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("DELETE FROM intake.audit_log WHERE case_id = :c"), {"c": case_id})
        with engine.connect() as conn:
            assert conn.execute(count).scalar_one() == 2, "nothing was changed or removed"
    finally:
        engine.dispose()
