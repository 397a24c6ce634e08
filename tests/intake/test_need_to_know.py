"""Need-to-know in intake: repeat households without disclosure, 404 for no part, tenants, the disclosure
ledger with its legal bases, the 支援会議 roster, and status changes that arrive out of order.

Two municipalities are served by this module's intake (名張市 and a second one built from the same
directory), so that tenancy is tested within one deployment.
"""

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.intake import service
from shared import db
from shared.auth import Scope
from shared.calendar import JST
from shared.directory import demo_directory_path
from shared.events import DisclosureRecorded, HouseholdLinked, decode
from shared.ids import new_id
from shared.settings import Settings
from tests.conftest import make_settings, new_database, new_topic_prefix, read_events, topic_of
from tests.e2e.test_spine import CONSULTATION_8050
from tests.intake.conftest import (
    ENGAGED,
    OTHER,
    PARTNER,
    publish_as_router,
    publish_referral,
    publish_status,
    with_person,
)

TOWN = "242080"  # 名張市, the demo directory
OTHER_TOWN = "242098"  # a second municipality of the same deployment
LEAD = "nabari-houkatsu"  # 名張市's lead agency (協働の中核)
CONSENT = {"given_by": "self", "members": [1], "share_with": ["engaged"]}


@pytest.fixture(scope="module")
async def intake_settings(
    kafka_bootstrap: str,
    postgres_admin_url: str,
    secrets_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Settings]:
    """Intake's settings with two municipalities' directories (its own database and topics)."""
    folder = tmp_path_factory.mktemp("tenants")
    data = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    data["municipality"] = {**data["municipality"], "code": OTHER_TOWN, "name": "隣市"}
    second = folder / "second.yaml"
    second.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with new_database(postgres_admin_url) as database_url:
        prefix = await new_topic_prefix(kafka_bootstrap)
        settings = make_settings(kafka_bootstrap, database_url, prefix, secrets_env, folder)
        yield settings.model_copy(update={"directory_files": [demo_directory_path(), second]})


def household() -> dict[str, Any]:
    """A consultation about a household nobody else in the module submits (two members, one named)."""
    body = with_person(CONSULTATION_8050, 0, name=f"名張 {uuid.uuid4().hex[:8]}", birth_date="1942-05-03")
    return with_person(body, 1, name=f"名張 {uuid.uuid4().hex[:8]}", phone="0595-00-0000")


async def submit(intake: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = await intake.post("/v1/consultations", json=body, headers=headers)
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


def shape(value: Any) -> Any:
    """The JSON's keys and value types, without the values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


async def token_header(intake: httpx.AsyncClient, client_id: str, secret: str) -> dict[str, str]:
    """An Authorization header from intake's own token endpoint."""
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    granted = await intake.post("/v1/token", data=form)
    assert granted.status_code == 200, granted.text
    return {"Authorization": f"Bearer {granted.json()['access_token']}"}


def query(settings: Settings, sql: str, **params: Any) -> list[Any]:
    engine = db.make_engine(settings, "intake")
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    finally:
        engine.dispose()


async def until_rows(settings: Settings, sql: str, count: int = 1, **params: Any) -> list[Any]:
    """Poll the database (not the API: every read is itself a release) until `sql` returns `count` rows."""
    rows: list[Any] = []
    for _ in range(150):
        rows = await asyncio.to_thread(query, settings, sql, **params)
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.2)
    pytest.fail(f"{sql} never returned {count} rows; last: {rows}")


async def until_engaged(settings: Settings, referral_id: str) -> None:
    await until_rows(settings, "SELECT 1 FROM intake.engagement WHERE referral_id = :r", r=referral_id)


def ledger(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["recipient"], r["channel"], r["basis"], r["basis_ref"], r["outcome"]) for r in rows]


async def test_a_repeat_household_goes_to_the_lead_and_is_never_named_to_another_agency(
    intake: httpx.AsyncClient, intake_settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    engine = db.make_engine(intake_settings, "intake")
    try:
        with db.transaction(engine) as session:
            secrets = {
                agency: service.issue_credential(
                    session, agency_id=agency, name=agency, scopes=[Scope.submit, Scope.read_own], municipalities=[TOWN]
                )
                for agency in (PARTNER, OTHER)
            }
    finally:
        engine.dispose()
    agency_a = await token_header(intake, PARTNER, secrets[PARTNER])
    agency_b = await token_header(intake, OTHER, secrets[OTHER])

    family = household()
    first = (await submit(intake, agency_a, family))["case_id"]
    no_match = await submit(intake, agency_b, household())
    repeat = await submit(intake, agency_b, family)
    assert repeat["possible_duplicates"] == [] == no_match["possible_duplicates"]
    assert shape(repeat) == shape(no_match), "the same answer whether or not another agency knows the household"
    assert first not in str(repeat)
    assert (await intake.get(f"/v1/cases/{first}", headers=agency_b)).status_code == 404

    lead = bearer(LEAD, Scope.coordinator, Scope.read_own, municipalities=(TOWN,))
    items = (await intake.get("/v1/household-matches?status=open", headers=lead)).json()
    [item] = [i for i in items if i["case_id"] == repeat["case_id"]]
    assert (item["matched_case_id"], item["status"], item["municipality_code"]) == (first, "open", TOWN)
    assert set(item) == {
        "id", "municipality_code", "case_id", "matched_case_id", "created_at", "status", "decided_by", "decided_at",
    }, "two cases, never a person"  # fmt: skip
    not_the_lead = bearer(OTHER, Scope.coordinator, Scope.read_own, municipalities=(TOWN,))
    lead_elsewhere = bearer(LEAD, Scope.coordinator, Scope.read_own, municipalities=(OTHER_TOWN,))
    for headers in (agency_a, agency_b, not_the_lead, lead_elsewhere):
        assert (await intake.get("/v1/household-matches", headers=headers)).json() == []
        refused = await intake.post(f"/v1/household-matches/{item['id']}/link", headers=headers)
        assert refused.status_code == 404

    linked = await intake.post(f"/v1/household-matches/{item['id']}/link", headers=lead)
    assert linked.status_code == 200, linked.text
    assert (linked.json()["status"], linked.json()["decided_by"]) == ("linked", LEAD)
    assert (await intake.post(f"/v1/household-matches/{item['id']}/link", headers=lead)).status_code == 409
    assert (await intake.post(f"/v1/household-matches/{item['id']}/dismiss", headers=lead)).status_code == 409
    assert item["id"] not in {
        i["id"] for i in (await intake.get("/v1/household-matches?status=open", headers=lead)).json()
    }

    assert (await intake.get(f"/v1/cases/{first}", headers=agency_a)).json()["linked_cases"] == []
    assert (await intake.get(f"/v1/cases/{repeat['case_id']}", headers=agency_b)).json()["linked_cases"] == []
    operator = bearer("operator", Scope.operator, Scope.read_own, municipalities=(TOWN,))
    assert (await intake.get(f"/v1/cases/{first}", headers=operator)).json()["linked_cases"] == [repeat["case_id"]]
    later = (await intake.get(f"/v1/cases/{repeat['case_id']}", headers=operator)).json()
    assert later["linked_cases"] == [first]

    key = repeat["case_id"].encode()
    records = await read_events(
        str(intake_settings.kafka_bootstrap_servers),
        topic_of(intake_settings, HouseholdLinked),
        until=lambda rs: any(r.key == key for r in rs),
    )
    [event] = [decode(r.value, HouseholdLinked) for r in records if r.key == key]
    assert (event.data.linked_case_id, event.data.linked, event.data.match_id) == (first, True, item["id"])

    exported = (await intake.get(f"/v1/cases/{first}/disclosures", headers=operator)).json()
    assert {r["case_id"] for r in exported} == {first, repeat["case_id"]}, "one household's history: both cases"


async def test_a_household_the_submitter_already_works_on_is_offered_to_it(
    intake: httpx.AsyncClient,
    intake_settings: Settings,
    as_partner: dict[str, str],
    as_engaged: dict[str, str],
) -> None:
    family = household()
    first = (await submit(intake, as_partner, family))["case_id"]
    await until_engaged(intake_settings, await publish_referral(intake_settings, first, ENGAGED))
    repeat = await submit(intake, as_engaged, family)
    assert repeat["possible_duplicates"] == [{"case_id": first, "add_contact": f"/v1/cases/{first}/contacts"}]


async def test_an_agency_with_no_part_is_answered_as_if_the_case_did_not_exist(
    intake: httpx.AsyncClient, as_partner: dict[str, str], as_other: dict[str, str]
) -> None:
    case_id = (await submit(intake, as_partner, household()))["case_id"]
    requests: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/v1/cases/{}", None),
        ("GET", "/v1/cases/{}/personal-details", None),
        ("GET", "/v1/cases/{}/personal-details?basis=support_meeting", None),
        ("POST", "/v1/cases/{}/personal-details/emergency-release", {"note": "命に関わる緊急の状況のため"}),
        ("POST", "/v1/cases/{}/contacts", {"pathway": "self"}),
        ("POST", "/v1/cases/{}/consents", CONSENT),
    ]
    for method, path, body in requests:
        hidden = await intake.request(method, path.format(case_id), json=body, headers=as_other)
        missing = await intake.request(method, path.format("no-such-case"), json=body, headers=as_other)
        assert hidden.status_code == missing.status_code == 404, (path, hidden.text)
        assert {k: v for k, v in hidden.json().items() if k not in {"detail", "instance"}} == {
            k: v for k, v in missing.json().items() if k not in {"detail", "instance"}
        }
        assert (hidden.json()["detail"], missing.json()["detail"]) == (f"no case {case_id}", "no case no-such-case")


async def test_an_operator_and_an_admin_of_one_municipality_reach_nothing_of_another(
    intake: httpx.AsyncClient, bearer: Callable[..., dict[str, str]], as_partner: dict[str, str]
) -> None:
    nabari = (await submit(intake, as_partner, household()))["case_id"]
    neighbour = bearer("tonari-shakyo", Scope.submit, Scope.read_own, municipalities=(OTHER_TOWN,))
    refused = await intake.post("/v1/consultations", json=household(), headers=neighbour)
    assert refused.status_code == 404
    assert refused.json()["type"].endswith("/municipality-not-found")
    tonari = (await submit(intake, neighbour, {**household(), "municipality_code": OTHER_TOWN}))["case_id"]

    operator = bearer("tonari-operator", Scope.operator, Scope.read_own, Scope.submit, municipalities=(OTHER_TOWN,))
    admin = bearer("tonari-admin", Scope.admin, Scope.read_own, municipalities=(OTHER_TOWN,))
    assert (await intake.get(f"/v1/cases/{tonari}", headers=operator)).status_code == 200, "its own municipality"
    for headers in (operator, admin):
        for path in (
            f"/v1/cases/{nabari}",
            f"/v1/cases/{nabari}/personal-details",
            f"/v1/cases/{nabari}/disclosures",
            f"/v1/cases/{nabari}/disclosures.csv",
            f"/v1/municipalities/{TOWN}/support-meeting-roster",
        ):
            response = await intake.get(path, headers=headers)
            assert response.status_code == 404, (path, response.text)
        put = await intake.put(
            f"/v1/municipalities/{TOWN}/support-meeting-roster/{ENGAGED}",
            json={"member_from": "2026-04-01", "confidentiality_acknowledged": True},
            headers=headers,
        )
        assert put.status_code == 404
    for path, body in (
        (f"/v1/cases/{nabari}/contacts", {"pathway": "self"}),
        (f"/v1/cases/{nabari}/consents/any/revocation", {"reason": "person_request"}),
    ):
        assert (await intake.post(path, json=body, headers=operator)).status_code == 404, path
    assert (await intake.get(f"/v1/audit-log?case_id={nabari}", headers=operator)).json() == []
    assert (
        await intake.get(f"/v1/municipalities/{OTHER_TOWN}/support-meeting-roster", headers=admin)
    ).status_code == 200

    platform = bearer("platform-operator", Scope.operator, Scope.read_own, Scope.platform, municipalities=())
    for case_id in (nabari, tonari):
        assert (await intake.get(f"/v1/cases/{case_id}", headers=platform)).status_code == 200
    seen = {c["municipality_code"] for c in (await intake.get("/v1/cases", headers=as_partner)).json()}
    assert seen == {TOWN}
    serves_one = bearer(PARTNER, Scope.submit, Scope.read_own, municipalities=(OTHER_TOWN,))
    assert (await intake.get("/v1/cases", headers=serves_one)).json() == [], "its 名張市 cases are another tenant's"


async def test_every_release_is_in_the_ledger_with_its_basis_and_the_export_lists_them_in_order(
    intake: httpx.AsyncClient,
    intake_settings: Settings,
    bearer: Callable[..., dict[str, str]],
    as_partner: dict[str, str],
    as_engaged: dict[str, str],
    as_other: dict[str, str],
) -> None:
    case_id = (await submit(intake, as_partner, household()))["case_id"]
    operator = bearer("operator", Scope.operator, Scope.read_own, municipalities=(TOWN,))
    admin = bearer("nabari-admin", Scope.admin, municipalities=(TOWN,))
    case_url, details_url = f"/v1/cases/{case_id}", f"/v1/cases/{case_id}/personal-details"
    expected: list[tuple[Any, ...]] = []

    assert (await intake.get(case_url, headers=as_partner)).status_code == 200
    expected.append((PARTNER, "case_read", "engagement", "submitted", "released"))
    assert (await intake.get(case_url, headers=as_other)).status_code == 404
    expected.append((OTHER, "case_read", "none", None, "refused"))
    referral_id = await publish_referral(intake_settings, case_id, ENGAGED)
    await until_engaged(intake_settings, referral_id)
    assert (await intake.get(case_url, headers=as_engaged)).status_code == 200
    expected.append((ENGAGED, "case_read", "engagement", referral_id, "released"))
    assert (await intake.get(case_url, headers=operator)).status_code == 200
    expected.append(("operator", "case_read", "operator", None, "released"))
    listed = (await intake.get("/v1/cases", headers=as_partner)).json()
    assert case_id in {c["id"] for c in listed}
    expected.append((PARTNER, "case_read", "engagement", "submitted", "released"))

    no_basis = await intake.get(details_url, headers=as_engaged)
    assert no_basis.status_code == 403, "engaged, but no consent and no other basis"
    expected.append((ENGAGED, "personal_details", "none", None, "refused"))
    own = await intake.get(details_url, headers=as_partner)
    assert own.status_code == 200 and own.json()["basis"] == "engagement"
    expected.append((PARTNER, "personal_details", "engagement", "submitted", "released"))
    consent = await intake.post(f"{case_url}/consents", json=CONSENT, headers=as_partner)
    assert consent.status_code == 201, consent.text
    consented = await intake.get(details_url, headers=as_engaged)
    assert consented.status_code == 200
    assert [m["position"] for m in consented.json()["members"]] == [1] and consented.json()["basis"] == "consent"
    expected.append((ENGAGED, "personal_details", "consent", consent.json()["id"], "released"))

    not_a_member = await intake.get(f"{details_url}?basis=support_meeting", headers=as_engaged)
    assert not_a_member.status_code == 403
    assert "支援会議" in not_a_member.json()["detail"]
    expected.append((ENGAGED, "personal_details", "none", None, "refused"))
    since = (datetime.now(JST).date() - timedelta(days=30)).isoformat()
    member = await intake.put(
        f"/v1/municipalities/{TOWN}/support-meeting-roster/{ENGAGED}",
        json={"member_from": since, "confidentiality_acknowledged": True},
        headers=admin,
    )
    assert member.status_code == 200 and member.json()["current"] is True, member.text
    meeting = await intake.get(f"{details_url}?basis=support_meeting", headers=as_engaged)
    assert meeting.status_code == 200 and meeting.json()["basis"] == "support_meeting"
    assert [m["position"] for m in meeting.json()["members"]] == [0, 1], "no consent limits this basis"
    expected.append(
        (ENGAGED, "personal_details", "support_meeting", f"support_meeting:{TOWN}:{ENGAGED}:{since}", "released")
    )

    emergency_url = f"{details_url}/emergency-release"
    too_short = await intake.post(emergency_url, json={"note": "急ぎ"}, headers=as_engaged)
    assert too_short.status_code == 422
    assert [e["field"] for e in too_short.json()["errors"]] == ["note"]
    note = "本人が自宅で倒れており家族と連絡が取れない。救急搬送先に氏名と生年月日を伝える必要がある"
    emergency = await intake.post(emergency_url, json={"note": note, "members": [0]}, headers=as_engaged)
    assert emergency.status_code == 200, emergency.text
    assert [m["position"] for m in emergency.json()["members"]] == [0] and emergency.json()["basis"] == "emergency"
    expected.append((ENGAGED, "personal_details", "emergency", service.EMERGENCY_BASIS, "released"))

    feed_entry = DisclosureRecorded(
        disclosure_id=new_id(),
        case_id=case_id,
        recipient=ENGAGED,
        channel="feed_entry",
        fields=["tags", "tier", "area", "deadline", "status"],
        basis="engagement",
        basis_ref=referral_id,
        outcome="released",
        released_by="/marugoto/router",
        at=datetime.now(UTC),
    )
    await publish_as_router(intake_settings, case_id, feed_entry)
    await publish_as_router(intake_settings, case_id, feed_entry)  # redelivered under another event id
    marker = feed_entry.model_copy(update={"disclosure_id": new_id(), "at": datetime.now(UTC)})
    await publish_as_router(intake_settings, case_id, marker)
    await until_rows(intake_settings, "SELECT 1 FROM intake.disclosure WHERE id = :d", d=marker.disclosure_id)
    expected += [(ENGAGED, "feed_entry", "engagement", referral_id, "released")] * 2

    assert (await intake.get(f"{case_url}/disclosures", headers=as_partner)).status_code == 404, "operators only"
    rows = (await intake.get(f"{case_url}/disclosures", headers=operator)).json()
    assert ledger(rows) == expected
    assert [r["note"] for r in rows if r["basis"] == "emergency"] == [note]
    assert all(r["note"] is None for r in rows if r["basis"] != "emergency"), "the note goes with its release only"
    [consented_row] = [r for r in rows if r["basis"] == "consent"]
    assert consented_row["fields"] == ["members.1.name", "members.1.phone"], "names of fields, never values"
    assert note not in str(query(intake_settings, "SELECT payload FROM intake.outbox")), "the note is never published"

    exported = await intake.get(f"{case_url}/disclosures.csv", headers=operator)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.content.startswith(b"\xef\xbb\xbf"), "UTF-8 with a BOM, for Excel"
    table = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert table[0][:3] == ["日時 (at)", "ケースID (case_id)", "提供先 (recipient)"]
    assert [line[-1] for line in table[1:]] == [r["id"] for r in rows], "every release, in the same order"


async def test_the_ledger_is_append_only(
    intake: httpx.AsyncClient, intake_settings: Settings, as_partner: dict[str, str]
) -> None:
    case_id = (await submit(intake, as_partner, household()))["case_id"]
    assert (await intake.get(f"/v1/cases/{case_id}", headers=as_partner)).status_code == 200
    engine = db.make_engine(intake_settings, "intake")
    try:
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("UPDATE intake.disclosure SET outcome = 'refused' WHERE case_id = :c"), {"c": case_id})
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("DELETE FROM intake.disclosure WHERE case_id = :c"), {"c": case_id})
    finally:
        engine.dispose()
    rows = query(intake_settings, "SELECT outcome FROM intake.disclosure WHERE case_id = :c", c=case_id)
    assert [r[0] for r in rows] == ["released"]


async def test_the_support_meeting_roster_is_kept_by_the_municipality_s_admins(
    intake: httpx.AsyncClient, bearer: Callable[..., dict[str, str]]
) -> None:
    admin = bearer("nabari-admin", Scope.admin, municipalities=(TOWN,))
    roster = f"/v1/municipalities/{TOWN}/support-meeting-roster"
    entry_url = f"{roster}/{OTHER}"
    today = datetime.now(JST).date()

    unacknowledged = await intake.put(
        entry_url, json={"member_from": today.isoformat(), "confidentiality_acknowledged": False}, headers=admin
    )
    assert unacknowledged.status_code == 422
    [error] = unacknowledged.json()["errors"]
    assert (error["field"], error["label"]) == ("confidentiality_acknowledged", "守秘義務の確認")
    backwards = {
        "member_from": today.isoformat(),
        "member_until": (today - timedelta(days=1)).isoformat(),
        "confidentiality_acknowledged": True,
    }
    assert (await intake.put(entry_url, json=backwards, headers=admin)).status_code == 422
    unknown = await intake.put(
        f"{roster}/no-such-agency",
        json={"member_from": today.isoformat(), "confidentiality_acknowledged": True},
        headers=admin,
    )
    assert unknown.status_code == 404
    coordinator = bearer(LEAD, Scope.coordinator, Scope.read_own, municipalities=(TOWN,))
    assert (await intake.get(roster, headers=coordinator)).status_code == 404, "admins only"

    added = await intake.put(
        entry_url,
        json={"member_from": (today - timedelta(days=10)).isoformat(), "confidentiality_acknowledged": True},
        headers=admin,
    )
    assert added.status_code == 200, added.text
    assert (added.json()["current"], added.json()["added_by"]) == (True, "nabari-admin")
    ended = await intake.delete(entry_url, headers=admin)
    assert ended.status_code == 200
    assert (ended.json()["current"], ended.json()["member_until"]) == (False, (today - timedelta(days=1)).isoformat())
    [kept] = [e for e in (await intake.get(roster, headers=admin)).json() if e["agency_id"] == OTHER]
    assert kept["member_from"] == (today - timedelta(days=10)).isoformat(), "history is kept"
    assert (await intake.delete(f"{roster}/{ENGAGED}-never", headers=admin)).status_code == 404


async def test_a_late_older_status_change_never_regresses_the_engagement(
    intake: httpx.AsyncClient, intake_settings: Settings, as_partner: dict[str, str]
) -> None:
    case_id = (await submit(intake, as_partner, household()))["case_id"]
    referral_id = await publish_referral(intake_settings, case_id, ENGAGED)
    await until_engaged(intake_settings, referral_id)
    # The outbox published the later change (version 3) first; the earlier one (version 2) arrives after.
    await publish_status(intake_settings, case_id, referral_id, ENGAGED, "accepted", from_status="received", version=3)
    await publish_status(intake_settings, case_id, referral_id, ENGAGED, "received", version=2)
    # Same topic and key, hence same partition: once this one is applied, both before it are too.
    marker = str(uuid.uuid4())
    await publish_status(intake_settings, case_id, marker, OTHER, "rejected", version=2)
    await until_engaged(intake_settings, marker)

    [(status, version)] = query(
        intake_settings, "SELECT status, version FROM intake.engagement WHERE referral_id = :r", r=referral_id
    )
    assert (status, version) == ("accepted", 3)
    timeline = (await intake.get(f"/v1/cases/{case_id}", headers=as_partner)).json()
    assert [r["status"] for r in timeline["referrals"] if r["referral_id"] == referral_id] == ["accepted"]
