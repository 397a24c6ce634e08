"""The indicators from events through the real broker: exact shares, 実件数 vs 延べ件数, exactly-once under
replay, rebuild, targets, manual values and exports."""

import asyncio
import csv
import io
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openpyxl
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from services.cli import upgrade_databases
from services.metrics.app import create
from services.metrics.exports import SOURCE_LABELS
from services.metrics.rebuild import rebuild
from services.metrics.service import fiscal_year
from shared.auth import Scope
from shared.consultation import ConsultationSummary
from shared.events import (
    ConferenceCancelled,
    ConferenceRescheduled,
    ConferenceScheduled,
    ConsultationReceived,
    ContactRecorded,
    EventData,
    ReferralRequested,
    ReferralStatusChanged,
    encode,
    new_event,
)
from shared.settings import Settings
from shared.vocabulary import FoundBy, Pathway
from tests.conftest import make_settings, new_database, new_topic_prefix, read_all

# 氷見市 ふくし相談サポートセンター, new consultations by route, H29 (DOMAIN.md §5.1.1), as shares of 100.
HIMI_H29 = {"self": 8, "family_or_community": 32, "specialist_agency": 27, "government": 31, "acquaintance": 2}
NOW = datetime.now(UTC)
YEAR = fiscal_year(NOW)


@pytest.fixture(scope="module")
async def metrics_settings(
    kafka_bootstrap: str, postgres_admin_url: str, secrets_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Settings]:
    with new_database(postgres_admin_url) as database_url:
        prefix = await new_topic_prefix(kafka_bootstrap)
        yield make_settings(kafka_bootstrap, database_url, prefix, secrets_env, tmp_path_factory.mktemp("metrics"))


@pytest.fixture(scope="module")
async def metrics(metrics_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    upgrade_databases(metrics_settings, ["metrics"])
    app = create(metrics_settings)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://m") as client:
        yield client


@pytest.fixture
def operator(bearer: Callable[..., dict[str, str]]) -> dict[str, str]:
    return bearer("operator", Scope.operator)


def consultation(case_id: str, pathway: str, found_by: str = "window") -> EventData:
    summary = ConsultationSummary(
        area="chiiki-01",
        pathway=Pathway(pathway),
        found_by=FoundBy(found_by),
        household=[{"relation": "self", "issues": ["poverty"]}],
    )
    return ConsultationReceived(
        case_id=case_id,
        consultation_id=f"{case_id}-0",
        submitted_by="nabari-shakyo",
        received_at=NOW,
        consultation=summary,
    )


async def publish(settings: Settings, events: list[tuple[str, EventData]], municipality: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for case_id, data in events:
            event = new_event(data, source="/test", subject=case_id, municipality_code=municipality)
            await producer.send_and_wait(settings.kafka_topic_prefix + data.topic, encode(event), key=case_id.encode())
    finally:
        await producer.stop()


async def report_when(
    client: httpx.AsyncClient, headers: dict[str, str], municipality: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for _ in range(150):
        body = (
            await client.get(f"/v1/indicators?municipality={municipality}&fiscal_year={YEAR}", headers=headers)
        ).json()
        if done(body):
            return body
        await asyncio.sleep(0.2)
    pytest.fail(f"indicators never reached the expected state: {body}")


def value(body: dict[str, Any], indicator: str) -> Any:
    return next(i for i in body["indicators"] if i["id"] == indicator)


async def test_himi_route_mix_and_distinct_versus_cumulative_counts(
    metrics: httpx.AsyncClient, metrics_settings: Settings, operator: dict[str, str]
) -> None:
    code = "162051"  # 氷見市
    events: list[tuple[str, EventData]] = []
    for pathway, n in HIMI_H29.items():
        for _ in range(n):
            case_id = str(uuid.uuid4())
            events.append((case_id, consultation(case_id, pathway)))
    repeat = events[0][0]
    for k in range(3):
        events.append(
            (
                repeat,
                ContactRecorded(
                    case_id=repeat,
                    contact_id=f"{repeat}-{k + 1}",
                    submitted_by="x",
                    received_at=NOW,
                    pathway=Pathway.self_,
                    found_by=FoundBy.outreach,
                ),
            )
        )
    await publish(metrics_settings, events, code)
    body = await report_when(metrics, operator, code, lambda b: value(b, "M8-延べ")["value"] == 103)
    r10 = value(body, "R10")
    assert r10["shares"] == {k: float(v) for k, v in sorted(HIMI_H29.items())}, "氷見市 H29 exactly"
    assert value(body, "M8")["value"] == 100
    assert value(body, "M11")["value"] == 1, "the case with outreach contacts"

    # One household: one consultation and three later contacts → 1 実件数, 4 延べ (checked on its own).
    single = "162043"
    case_id = str(uuid.uuid4())
    contacts: list[tuple[str, EventData]] = [(case_id, consultation(case_id, "self"))]
    contacts += [
        (
            case_id,
            ContactRecorded(
                case_id=case_id,
                contact_id=f"c{k}",
                submitted_by="x",
                received_at=NOW,
                pathway=Pathway.self_,
                found_by=FoundBy.window,
            ),
        )
        for k in range(3)
    ]
    await publish(metrics_settings, contacts, single)
    body = await report_when(metrics, operator, single, lambda b: value(b, "M8-延べ")["value"] == 4)
    assert value(body, "M8")["value"] == 1


async def deliveries(client: httpx.AsyncClient) -> Counter[tuple[str, str]]:
    """The metrics consumer's deliveries so far, by topic and outcome (its Prometheus counter, exact)."""
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    counts: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(response.text):
        if family.name == "marugoto_events_consumed":
            for sample in family.samples:
                if sample.name == "marugoto_events_consumed_total":
                    counts[(sample.labels["topic"], sample.labels["outcome"])] += int(sample.value)
    return counts


async def deliveries_reach(
    client: httpx.AsyncClient, baseline: Counter[tuple[str, str]], added: Counter[tuple[str, str]]
) -> Counter[tuple[str, str]]:
    """Wait until the consumer has seen `added` deliveries more than `baseline`; return the counts then."""
    expected = baseline + added
    counts: Counter[tuple[str, str]] = Counter()
    for _ in range(150):
        counts = await deliveries(client)
        if all(counts[key] >= n for key, n in expected.items()):
            return counts
        await asyncio.sleep(0.2)
    pytest.fail(f"the consumer never saw the deliveries: expected {expected}, saw {counts}")


def meeting_events() -> list[tuple[str, EventData]]:
    """Two case meetings: one rescheduled (it counts once), one cancelled (it does not count)."""
    later = NOW + timedelta(hours=2)
    events: list[tuple[str, EventData]] = []
    for n in (0, 1):
        events.append(
            (
                f"replay-{n}",
                ConferenceScheduled(
                    meeting_id=f"meeting-{n}",
                    case_id=f"replay-{n}",
                    kind="case_meeting",
                    tier=2,
                    starts_at=NOW,
                    ends_at=NOW + timedelta(hours=1),
                    deadline=None,
                    participants=["nabari-houkatsu", "a"],
                ),
            )
        )
    events.append(
        (
            "replay-0",
            ConferenceRescheduled(
                meeting_id="meeting-0",
                case_id="replay-0",
                kind="case_meeting",
                starts_at=later,
                ends_at=later + timedelta(hours=1),
                participants=["nabari-houkatsu", "a"],
                reason="lead unavailable",
            ),
        )
    )
    events.append(
        ("replay-1", ConferenceCancelled(meeting_id="meeting-1", case_id="replay-1", kind="case_meeting", reason="x"))
    )
    return events


async def test_replayed_topics_change_nothing_and_rebuild_gives_identical_numbers(
    metrics: httpx.AsyncClient, metrics_settings: Settings, operator: dict[str, str]
) -> None:
    code = "242080"
    events: list[tuple[str, EventData]] = []
    for n, pathway in enumerate(["self", "government", "government", "specialist_agency"]):
        case_id = f"replay-{n}"
        events.append((case_id, consultation(case_id, pathway, found_by="survey" if n == 0 else "window")))
        events.append(
            (
                case_id,
                ReferralStatusChanged(
                    referral_id=f"r{n}",
                    case_id=case_id,
                    agency_id="a",
                    from_status="requested",
                    to_status="accepted",
                    reason_code=None,
                    changed_by="a",
                    changed_at=NOW + timedelta(hours=n + 1),
                ),
            )
        )
    events += meeting_events()
    prefix = metrics_settings.kafka_topic_prefix
    topics = sorted({prefix + data.topic for _, data in events})
    # Every event applied, on every topic (they arrive independently), before the first reading.
    before = await deliveries(metrics)
    await publish(metrics_settings, events, code)
    await deliveries_reach(metrics, before, Counter((prefix + data.topic, "applied") for _, data in events))
    first = (await metrics.get(f"/v1/indicators?municipality={code}&fiscal_year={YEAR}", headers=operator)).json()
    # The 社協 received these: every partner's 実件数 (M8 is the general window's, seed L1954).
    assert value(first, "M8-全機関")["value"] == 4
    assert value(first, "OPS-TIME-TO-ACCEPT")["by_dimension"] == {"p50": 2.0, "p90": 4.0}
    assert value(first, "OPS-TIME-TO-ACCEPT")["value"] == 2.0
    assert value(first, "M10")["value"] == 1
    assert value(first, "OPS-CASE-MEETINGS")["by_dimension"] == {"tier2": 1}, "the cancelled meeting does not count"

    # Every record of those topics delivered a second time: each is seen as a duplicate, no number changes.
    records = await read_all(str(metrics_settings.kafka_bootstrap_servers), topics)
    replayed = Counter((record.topic, "duplicate") for record in records)
    assert {topic for topic, _ in replayed} == set(topics)
    before = await deliveries(metrics)
    producer = AIOKafkaProducer(bootstrap_servers=metrics_settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for record in records:
            await producer.send_and_wait(record.topic, record.value, key=record.key)
    finally:
        await producer.stop()
    seen = await deliveries_reach(metrics, before, replayed)
    for topic in topics:
        assert seen[(topic, "applied")] == before[(topic, "applied")], f"a replayed event of {topic} was applied again"
    again = (await metrics.get(f"/v1/indicators?municipality={code}&fiscal_year={YEAR}", headers=operator)).json()
    assert again == first

    applied = await rebuild(metrics_settings, quiet_s=2.0)
    assert sum(applied.values()) >= len(events)
    rebuilt = (await metrics.get(f"/v1/indicators?municipality={code}&fiscal_year={YEAR}", headers=operator)).json()
    assert rebuilt == first


EXPORT_ROUTES = {"self": 12, "government": 25, "acquaintance": 1}  # 38 cases; one small cell among them


def seed_export_case_mix(settings: Settings, code: str) -> None:
    """38 consultations, one accepted after 3 hours, one re-route: straight through `service.count`."""
    from services.metrics import service
    from shared import db

    events: list[tuple[str, EventData]] = []
    for pathway, n in EXPORT_ROUTES.items():
        for k in range(n):
            case_id = f"{code}-{pathway}-{k}"
            events.append((case_id, consultation(case_id, pathway)))
    first = events[0][0]
    events.append(
        (
            first,
            ReferralStatusChanged(
                referral_id="e1",
                case_id=first,
                agency_id="a",
                from_status="requested",
                to_status="accepted",
                reason_code=None,
                changed_by="a",
                changed_at=NOW + timedelta(hours=3),
            ),
        )
    )
    events.append(
        (
            first,
            ReferralRequested(
                referral_id="e2",
                case_id=first,
                decision_id="d",
                agency_id="b",
                agency_type="t",
                tier=2,
                rule_id="reroute",
                legal_basis="x",
                requested_at=NOW,
            ),
        )
    )
    engine = db.make_engine(settings, "metrics")
    try:
        for subject, data in events:
            with db.transaction(engine, service.FactBatch) as session:
                service.count(session, new_event(data, source="/test", subject=subject, municipality_code=code))
    finally:
        engine.dispose()


def parsed(cell: Any) -> dict[str, Any]:
    """A breakdown or shares cell ("self: 12; acquaintance: x") back as a mapping (numbers as floats)."""
    if cell in (None, ""):
        return {}
    pairs = (item.split(": ") for item in str(cell).split("; "))
    return {key: text if text == "x" else float(text) for key, text in pairs}


def number(cell: Any) -> Any:
    """A numeric cell of the CSV (text) or the workbook (typed) as a float; blank as None; 'x' as is."""
    if cell in (None, ""):
        return None
    return cell if cell == "x" else float(cell)


def exported(csv_body: bytes, xlsx_body: bytes, api: dict[str, Any]) -> dict[str, list[Any]]:
    """Both exports, checked to carry the same cells, as rows by indicator id (numbers normalised): the
    leading cells, then the breakdown and the shares gathered back from the labelled columns (found by
    the API's label of each key) and the その他 cells."""
    lines = list(csv.reader(io.StringIO(csv_body.decode("utf-8-sig"))))
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx_body)).active
    assert sheet is not None
    cells = [list(row) for row in sheet.iter_rows(values_only=True)]
    header = lines[1]
    assert header == list(cells[1])
    assert header[:8] == ["指標ID", "指標名", "定義", "区分", "目標値", "実績値", "達成率(%)", "目標の改定"]
    assert header[8:13:2] == ["当事者", "家族・地域", "専門機関"], "the routes first, in the report's order"
    assert header[-2:] == ["その他の内訳", "その他の割合・比率"]
    assert lines[0][0] == cells[0][0]
    labels = {i["id"]: i["labels"] for i in api["indicators"]}

    def normal(row: list[Any]) -> list[Any]:
        by = dict(zip(header, row, strict=True))
        breakdown, shares = parsed(by["その他の内訳"]), parsed(by["その他の割合・比率"])
        for key, label in labels[row[0]].items():
            if label in header and by[label] not in (None, ""):
                breakdown[key] = number(by[label])
            if label in header and key in (api_shares[row[0]] or {}):
                shares[key] = number(by[label + "（%）"])
        return [*row[:4], *(number(c) for c in row[4:7]), breakdown, shares]

    api_shares = {i["id"]: i["shares"] for i in api["indicators"]}
    from_csv, from_xlsx = [normal(row) for row in lines[2:]], [normal(row) for row in cells[2:]]
    assert from_csv == from_xlsx, "the CSV and the workbook carry the same cells"
    return {row[0]: row for row in from_xlsx}


async def test_targets_manual_values_and_exports(
    metrics: httpx.AsyncClient, metrics_settings: Settings, operator: dict[str, str]
) -> None:
    code = "232114"  # 豊田市
    seed_export_case_mix(metrics_settings, code)
    base = f"/v1/municipalities/{code}/fiscal-years/{YEAR}"
    target = {"value": 40, "reason": "実施計画の改定"}  # the year has begun: a target needs a reason
    assert (await metrics.put(f"{base}/targets/M8", json=target, headers=operator)).status_code == 204
    assert (
        await metrics.put(f"{base}/manual/M3", json={"value": 2, "note": "共有ルール"}, headers=operator)
    ).status_code == 204
    refused = await metrics.put(f"{base}/manual/M8", json={"value": 2}, headers=operator)
    assert refused.status_code == 422
    query = f"municipality={code}&fiscal_year={YEAR}"
    api = (await metrics.get(f"/v1/indicators?{query}", headers=operator)).json()
    m8 = value(api, "M8")
    assert m8["value"] == 38 and m8["target"] == 40 and m8["attainment"] == 95.0
    assert value(api, "M3")["value"] == 2
    assert value(api, "R10")["shares"] == {"acquaintance": 2.6, "government": 65.8, "self": 31.6}

    async def export(suffix: str = "") -> dict[str, list[Any]]:
        bodies = []
        for extension in ("csv", "xlsx"):
            response = await metrics.get(f"/v1/indicators/export.{extension}?{query}{suffix}", headers=operator)
            assert response.status_code == 200, response.text
            bodies.append(response.content)
        return exported(bodies[0], bodies[1], api)

    # Without suppression: every row, every cell, exactly the API's.
    full = await export()
    assert list(full) == [i["id"] for i in api["indicators"]]
    for i in api["indicators"]:
        # Counted from events, entered, or (M7, R8) counted from the directory: each under the export's label.
        label = SOURCE_LABELS.get(i["source"], i["source"])
        expected = [i["id"], i["name_ja"], i["definition"], label, i["target"], i["value"], i["attainment"]]
        assert full[i["id"]] == [*expected, i["by_dimension"], i["shares"] or {}], i["id"]

    # R10 as the 実績報告 lays it out: a labelled column per route, its percentage beside it.
    response = await metrics.get(f"/v1/indicators/export.csv?{query}", headers=operator)
    lines = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    r10 = dict(zip(lines[1], next(row for row in lines[2:] if row[0] == "R10"), strict=True))
    routes = ("当事者", "家族・地域", "専門機関", "行政", "知人")
    assert [(r10[route], r10[route + "（%）"]) for route in routes] == [
        ("12", "31.6"),
        ("", ""),
        ("", ""),
        ("25", "65.8"),
        ("1", "2.6"),
    ]

    # With suppression below 10: only counts are hidden, and none can be recovered from its row's total.
    small = await export("&suppress_below=10")
    for i in api["indicators"]:
        row = small[i["id"]]
        if i["unit"] not in ("count", "percent"):
            assert row == full[i["id"]], f"{i['id']} is neither a count nor a share of counts: never suppressed"
            continue
        hidden = {k for k, v in row[7].items() if v == "x"}
        assert {k for k, v in i["by_dimension"].items() if 0 < v < 10} <= hidden, i["id"]
        assert all(row[7][k] == v for k, v in i["by_dimension"].items() if k not in hidden), i["id"]
        if i["unit"] == "percent":
            assert row[5] == ("x" if hidden else i["value"]), f"{i['id']}: a share goes with its counts"
            continue
        total_hidden = i["value"] is not None and 0 < i["value"] < 10
        assert row[5] == ("x" if total_hidden else i["value"]), i["id"]
        if hidden and not total_hidden and i["value"] == sum(i["by_dimension"].values()):
            assert len(hidden) >= 2 and sum(i["by_dimension"][k] for k in hidden) >= 10, f"{i['id']}: recoverable"
        for key, share in (i["shares"] or {}).items():
            assert row[8][key] == (
                "x" if key in hidden or (key not in i["by_dimension"] and (hidden or total_hidden)) else share
            )
    # The single small route (1 case) takes the next smallest (12) with it; the total of 38 stays.
    for indicator in ("M8", "R10"):
        assert small[indicator][5:8] == [
            38,
            95.0 if indicator == "M8" else None,
            {"acquaintance": "x", "government": 25, "self": "x"},
        ]
    assert small["R10"][8] == {"acquaintance": "x", "government": 65.8, "self": "x"}, "R10 shares exported"
    assert small["OPS-REROUTES"][5] == "x" and small["OPS-REROUTES"][8] == {"per_case": "x"}
    assert small["OPS-TIME-TO-ACCEPT"][5:8] == [3.0, None, {"p50": 3.0, "p90": 3.0}], "hours are not counts"
    assert small["M3"][5] == 2, "values the municipality entered are not case counts"


def test_complementary_suppression_hides_enough_of_each_row() -> None:
    from services.metrics.exports import hidden_cells

    assert hidden_cells({"a": 12, "b": 25, "c": 30}, 10) == set(), "nothing small, nothing hidden"
    assert hidden_cells({"a": 1, "b": 12, "c": 25}, 10) == {"a", "b"}, "one small cell takes the next smallest"
    assert hidden_cells({"a": 1, "b": 1, "c": 20, "d": 30}, 10) == {"a", "b", "c"}, "hidden cells add up to 10+"
    assert hidden_cells({"a": 3, "b": 9, "c": 40}, 10) == {"a", "b"}, "two small cells of 12 together suffice"
    assert hidden_cells({"a": 2, "b": 0, "c": 15}, 10) == {"a", "c"}, "a zero hides nothing, so it is no complement"


def test_networked_actors_follow_the_municipality_rule(metrics_settings: Settings) -> None:
    """M1/M2: actors that attended at least N of the last K 推進会議, split by sector."""
    from services.metrics import service
    from services.metrics.indicators import Rules
    from shared import db
    from shared.events import AttendanceRecord, ConferenceHeld

    code = "032018"  # 盛岡市
    upgrade_databases(metrics_settings, ["metrics"])
    engine = db.make_engine(metrics_settings, "metrics")
    attendees = [
        ["shakyo", "hospital", "housing-division"],
        ["shakyo", "hospital"],
        ["shakyo", "housing-division"],
        ["shakyo"],
    ]
    sectors = {"shakyo": "welfare", "hospital": "non_welfare", "housing-division": "non_welfare"}
    with db.transaction(engine, service.FactBatch) as session:
        for n, present in enumerate(attendees):
            held = ConferenceHeld(
                meeting_id=f"promotion-{n}",
                case_id=None,
                kind="promotion_meeting",
                held_at=NOW - timedelta(days=60 * (len(attendees) - n)),
                attendance=[
                    AttendanceRecord(
                        participant=p,
                        kind="municipal_division" if p.endswith("division") else "agency",
                        sector=sectors[p],
                        attended=True,
                    )
                    for p in present
                ],
            )
            service.count(session, new_event(held, source="/t", subject=held.meeting_id, municipality_code=code))
    with db.transaction(engine) as session:
        rule = Rules(networked_min_attended=2, networked_last_k=3)
        report = service.report(session, municipality_code=code, year=YEAR, rules=rule)
        strict = service.report(session, municipality_code=code, year=YEAR, rules=Rules(3, 3))
    engine.dispose()
    values = {i.id: i for i in report.indicators}
    # The last three meetings: shakyo 3, hospital 1, housing-division 1 → only shakyo is networked with 2 of 3.
    assert values["M1"].value == 1 and values["M1"].by_dimension == {"shakyo": 1}
    assert values["M2"].value == 0
    assert {i.id: i.value for i in strict.indicators}["M1"] == 1
