"""A case's life after routing in the indicators: 支援決定 (plans approved), cases with a plan, plans
evaluated on time, cases ended (終結) by reason, cases under 見守り, and 転居 in and out.

One fiscal year (FY2024) of two towns of one deployment: 名張市 runs the 重層的支援体制整備事業 (from
FY2021, as the demo directory says), its neighbour does not, so the 事業's own indicators (plans,
支援決定, evaluations) apply to the first and read 対象外 for the second, while 終結, 見守り and 転居
are counted in both. Events reach the facts in any order, repeated, batched or through the broker, and
a rebuild from the topics gives the same report.
"""

import asyncio
import io
import random
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Literal

import httpx
import openpyxl
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import Engine

from services.cli import upgrade_databases
from services.metrics import exports, service
from services.metrics.app import counted_municipalities, create
from services.metrics.models import IndicatorReport, IndicatorValue, MetricsProcessedEvent
from services.metrics.rebuild import rebuild
from shared import db
from shared.auth import Scope
from shared.calendar import JST
from shared.consumer import apply_batch
from shared.events import (
    CaseLifeChanged,
    CaseLifeState,
    CaseTransferred,
    Envelope,
    HouseholdLinked,
    MonitoringRecorded,
    PlanStatus,
    SupportPlanChanged,
    encode,
    new_event,
)
from shared.settings import Settings
from shared.vocabulary import ClosureReason
from tests.metrics.test_meeting_kinds import NABARI, NEIGHBOUR, csv_rows, engine, report, two_towns  # noqa: F401

YEAR = 2024
LIFE = (
    "JUSO-SUPPORT-DECISIONS",
    "JUSO-CASES-WITH-PLAN",
    "JUSO-EVALUATIONS-ON-TIME",
    "CASES-ENDED",
    "CASES-WATCHING",
    "OPS-TRANSFERS-OUT",
    "OPS-TRANSFERS-IN",
)
JUSO = LIFE[:3]
HOUKATSU, SHAKYO = "nabari-chiiki-houkatsu", "nabari-shakyo"
LifeEvent = SupportPlanChanged | MonitoringRecorded | CaseLifeChanged | CaseTransferred | HouseholdLinked


def on(month: int, day: int, year: int | None = None) -> datetime:
    """10:00 JST on that day of FY2024 (January to March being in 2025), unless `year` is given."""
    calendar_year = year if year is not None else (YEAR if month >= 4 else YEAR + 1)
    return datetime(calendar_year, month, day, 10, tzinfo=JST)


def plan(case_id: str, version: int, status: PlanStatus, at: datetime, meeting: str | None = None) -> LifeEvent:
    return SupportPlanChanged(
        case_id=case_id,
        plan_id=f"plan-{case_id}",
        version=version,
        status=status,
        main_agency=HOUKATSU,
        roles={HOUKATSU: "主担当", SHAKYO: "居場所"},
        goals=2,
        monitoring_interval_days=20,
        next_evaluation=date(2025, 3, 31),
        changed_by="lead",
        approved_at_meeting=meeting,
        changed_at=at,
    )


def evaluated(
    case_id: str,
    version: int,
    at: datetime,
    on_time: bool,
    kind: Literal["monitoring", "evaluation"] = "evaluation",
) -> LifeEvent:
    return MonitoringRecorded(
        case_id=case_id,
        plan_id=f"plan-{case_id}",
        plan_version=version,
        kind=kind,
        recorded_by=HOUKATSU,
        recorded_at=at,
        on_time=on_time,
    )


def life(
    case_id: str, state: CaseLifeState, at: datetime, reason: ClosureReason | None = None, main: str | None = None
) -> LifeEvent:
    return CaseLifeChanged(
        case_id=case_id,
        state=state,
        reason=reason,
        main_agency=main,
        watch_until=date(2025, 6, 30) if state == "watching" else None,
        changed_at=at,
    )


def moved(case_id: str, at: datetime, *, to_case: str | None, from_code: str, to_code: str | None) -> LifeEvent:
    return CaseTransferred(
        case_id=case_id,
        to_case_id=to_case,
        from_municipality=from_code,
        to_municipality=to_code,
        personal_details_copied=False,
        transferred_by="lead",
        transferred_at=at,
    )


def year_of_events() -> list[Envelope[Any]]:
    """FY2024 of both towns, each event in an envelope of the town that published it."""
    nabari: list[LifeEvent] = [
        # a: plan approved in June, revised (version 2) in September; evaluated on time, then late; 見守り.
        plan("a", 1, "drafted", on(5, 20)),
        plan("a", 1, "approved", on(6, 3), "plan-meeting-1"),
        evaluated("a", 1, on(7, 1), on_time=False, kind="monitoring"),  # a monitoring, not an evaluation
        evaluated("a", 1, on(8, 1), on_time=True),
        plan("a", 2, "drafted", on(9, 1)),
        plan("a", 2, "approved", on(9, 10), "plan-meeting-2"),
        plan("a", 1, "superseded", on(9, 10)),
        evaluated("a", 2, on(12, 1), on_time=False),
        life("a", "watching", on(10, 20), ClosureReason.goals_met, HOUKATSU),
        # j: the same household as a; ended under 見守り later, so the household's reason is j's.
        HouseholdLinked(
            match_id="m-j-a", case_id="j", linked_case_id="a", linked=True, decided_by="lead", decided_at=on(5, 1)
        ),
        life("j", "watching", on(11, 1), ClosureReason.goals_met, HOUKATSU),
        # b: approved on 25 March 2024 (FY2023), evaluated in FY2024; ended as refused.
        plan("b", 1, "approved", on(3, 25, year=YEAR), "plan-meeting-0"),
        evaluated("b", 1, on(5, 10), on_time=True),
        life("b", "closed", on(11, 5), ClosureReason.refused),
        # c: a plan only drafted; ended, reopened by a new contact, ended again: once, under its last reason.
        plan("c", 1, "drafted", on(7, 1)),
        life("c", "closed", on(8, 10), ClosureReason.goals_met),
        life("c", "reopened", on(9, 1)),
        life("c", "closed", on(1, 15), ClosureReason.died),
        # d: approved in July; 見守り from December, reopened in February; evaluated on time in February.
        plan("d", 1, "approved", on(7, 15), "plan-meeting-1"),
        life("d", "watching", on(12, 10), ClosureReason.goals_met, SHAKYO),
        life("d", "reopened", on(2, 1)),
        evaluated("d", 1, on(2, 10), on_time=True),
        evaluated("d", 1, on(4, 5, year=YEAR + 1), on_time=True),  # FY2025
        # k: 見守り from June; it ends in March, which is no second 終結.
        life("k", "watching", on(6, 1), ClosureReason.goals_met, SHAKYO),
        life("k", "closed", on(3, 1), ClosureReason.goals_met),
        # e moves outside the deployment, f to the neighbour (its case g there): both closed as moved_away.
        moved("e", on(11, 20), to_case=None, from_code=NABARI, to_code=None),
        life("e", "closed", on(11, 20), ClosureReason.moved_away),
        moved("f", on(1, 10), to_case="g", from_code=NABARI, to_code=NEIGHBOUR),
        life("f", "closed", on(1, 10), ClosureReason.moved_away),
    ]
    neighbour: list[LifeEvent] = [
        # n1: a plan approved by a meeting of the neighbour's own, evaluated, ended: the 事業's counts do not apply.
        plan("n1", 1, "approved", on(6, 1), "neighbour-meeting"),
        evaluated("n1", 1, on(9, 1), on_time=True),
        life("n1", "closed", on(10, 1), ClosureReason.goals_met),
        # h moves to 名張市 (its case i there).
        moved("h", on(2, 15), to_case="i", from_code=NEIGHBOUR, to_code=NABARI),
        life("h", "closed", on(2, 15), ClosureReason.moved_away),
    ]
    return [
        new_event(data, source="/test", subject=data.case_id, municipality_code=code)
        for code, events in ((NABARI, nabari), (NEIGHBOUR, neighbour))
        for data in events
    ]


# What FY2024 must report, by town: (applicable, value, breakdown) of each indicator.
EXPECTED: dict[str, dict[str, tuple[bool, float | None, dict[str, float]]]] = {
    NABARI: {
        "JUSO-SUPPORT-DECISIONS": (True, 3, {"initial": 2, "revision": 1}),  # a v1, a v2, d v1; not b (FY2023)
        "JUSO-CASES-WITH-PLAN": (True, 2, {"cases": 2}),  # a and d
        "JUSO-EVALUATIONS-ON-TIME": (True, 75.0, {"late": 1, "on_time": 3}),  # a v1, b, d on time; a v2 late
        # Households a (with j), b, c, d, e, f, k: c once, under died; k once, though its 見守り ended.
        "CASES-ENDED": (True, 7, {"died": 1, "goals_met": 3, "moved_away": 2, "refused": 1}),
        "CASES-WATCHING": (True, 1, {HOUKATSU: 1}),  # a's household; d was reopened, k's 見守り ended
        "OPS-TRANSFERS-OUT": (True, 2, {"outside_deployment": 1, "within_deployment": 1}),
        "OPS-TRANSFERS-IN": (True, 1, {NEIGHBOUR: 1}),
    },
    NEIGHBOUR: {
        **dict.fromkeys(JUSO, (False, None, {})),
        "CASES-ENDED": (True, 2, {"goals_met": 1, "moved_away": 1}),
        "CASES-WATCHING": (True, 0, {}),
        "OPS-TRANSFERS-OUT": (True, 1, {"within_deployment": 1}),
        "OPS-TRANSFERS-IN": (True, 1, {NABARI: 1}),
    },
}


def apply_one_by_one(database: Engine, envelopes: list[Envelope[Any]]) -> None:
    """Each event in its own transaction, straight through `service.count` (no inbox in front)."""
    for envelope in envelopes:
        with db.transaction(database, service.FactBatch) as batch:
            service.count(batch, envelope)


def as_listed(database: Engine, envelopes: list[Envelope[Any]]) -> None:
    apply_one_by_one(database, envelopes)


def reversed_each_twice(database: Engine, envelopes: list[Envelope[Any]]) -> None:
    """Latest first, every event delivered twice: a repeated event must change no fact."""
    apply_one_by_one(database, [e for e in reversed(envelopes) for _ in range(2)])


def shuffled_in_one_prefetched_batch(database: Engine, envelopes: list[Envelope[Any]]) -> None:
    """All in one consumer batch, in a random order, its facts read up front as the consumer does."""
    mixed = random.Random(23).sample(envelopes, len(envelopes))
    apply_batch(
        database,
        MetricsProcessedEvent,
        [(e, service.count) for e in mixed],
        consumer="marugoto-metrics",
        unit=service.FactBatch,
        prepare=service.prefetch,
    )


def shown(
    values: dict[str, Any], ids: tuple[str, ...] = LIFE
) -> dict[str, tuple[bool, float | None, dict[str, float]]]:
    return {i: (values[i].applicable, values[i].value, values[i].by_dimension) for i in ids}


@pytest.mark.parametrize("apply", [as_listed, reversed_each_twice, shuffled_in_one_prefetched_batch])
def test_the_year_reports_the_same_whatever_order_the_events_arrive_in(
    two_towns: Settings,  # noqa: F811
    engine: Engine,  # noqa: F811
    apply: Callable[[Engine, list[Envelope[Any]]], None],
) -> None:
    apply(engine, year_of_events())

    for code, expected in EXPECTED.items():
        values = report(two_towns, engine, code)
        assert shown(values, tuple(expected)) == expected, code
    nabari = report(two_towns, engine, NABARI)
    assert nabari["JUSO-EVALUATIONS-ON-TIME"].unit == "percent"
    assert nabari["CASES-ENDED"].unit == "count"
    neighbour = report(two_towns, engine, NEIGHBOUR)
    for indicator in JUSO:
        assert "対象外" in neighbour[indicator].definition and "重層的支援体制整備事業を実施していない" in (
            neighbour[indicator].definition
        ), indicator


def test_a_month_counts_what_happened_in_it_and_who_was_watching_at_its_end(
    two_towns: Settings,  # noqa: F811
    engine: Engine,  # noqa: F811
) -> None:
    as_listed(engine, year_of_events())

    def month(code: str, m: int) -> dict[str, tuple[bool, float | None, dict[str, float]]]:
        """The report of one month, under the rules the service reads from the directory files."""
        rules = counted_municipalities(two_towns)[code].rules
        with db.snapshot(engine) as session:
            found = service.report(session, municipality_code=code, year=YEAR, month=m, rules=rules)
        return shown({i.id: i for i in found.indicators})

    december = month(NABARI, 12)
    assert december["CASES-WATCHING"] == (True, 3, {HOUKATSU: 1, SHAKYO: 2}), "a's household, d and k at 31 December"
    assert december["CASES-ENDED"] == (True, 1, {"goals_met": 1}), "d, under 見守り"
    assert december["JUSO-EVALUATIONS-ON-TIME"] == (True, 0.0, {"late": 1, "on_time": 0})
    assert december["JUSO-SUPPORT-DECISIONS"] == (True, 0, {})
    august = month(NABARI, 8)
    assert august["CASES-ENDED"] == (True, 1, {"goals_met": 1}), "c's first 終結, in its month"
    assert august["CASES-WATCHING"] == (True, 1, {SHAKYO: 1}), "k, since June"
    assert august["JUSO-EVALUATIONS-ON-TIME"][1] == 100.0
    assert month(NABARI, 3)["CASES-ENDED"] == (True, 0, {}), "k's 見守り ended in March: no new 終結"
    assert month(NABARI, 3)["CASES-WATCHING"] == (True, 1, {HOUKATSU: 1}), "a's household only, as at the year's end"
    assert month(NABARI, 10)["JUSO-EVALUATIONS-ON-TIME"] == (True, None, {}), "no evaluation: no share, not 0%"
    assert month(NABARI, 2)["OPS-TRANSFERS-IN"] == (True, 1, {NEIGHBOUR: 1})
    # The year before: b's plan, approved on 25 March 2024.
    fy2023 = report(two_towns, engine, NABARI, YEAR - 1)
    assert shown(fy2023, ("JUSO-SUPPORT-DECISIONS",)) == {"JUSO-SUPPORT-DECISIONS": (True, 1, {"initial": 1})}


async def test_the_api_and_both_exports_carry_them_with_small_cells_suppressed(
    two_towns: Settings,  # noqa: F811
    engine: Engine,  # noqa: F811
    bearer: Callable[..., dict[str, str]],
) -> None:
    as_listed(engine, year_of_events())
    operator = bearer("operator", Scope.operator, municipalities=(NABARI, NEIGHBOUR))
    app = create(two_towns)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://m") as client:

        async def get(path: str, code: str, **params: Any) -> httpx.Response:
            query = {"municipality": code, "fiscal_year": YEAR, **params}
            response = await client.get(path, params=query, headers=operator)
            assert response.status_code == 200, response.text
            return response

        put = await client.put(
            f"/v1/municipalities/{NABARI}/fiscal-years/{YEAR}/targets/JUSO-EVALUATIONS-ON-TIME",
            json={"value": 90, "reason": "実施計画の目標"},  # the year has begun: a reason is required
            headers=operator,
        )
        assert put.status_code == 204, put.text
        api = {
            code: {i["id"]: i for i in (await get("/v1/indicators", code)).json()["indicators"]}
            for code in (NABARI, NEIGHBOUR)
        }
        full = csv_rows((await get("/v1/indicators/export.csv", NABARI)).content)
        hidden = csv_rows((await get("/v1/indicators/export.csv", NABARI, suppress_below=10)).content)
        neighbour = csv_rows((await get("/v1/indicators/export.csv", NEIGHBOUR)).content)
        workbook = (await get("/v1/indicators/export.xlsx", NABARI)).content

    for code, expected in EXPECTED.items():
        assert {
            i: (api[code][i]["applicable"], api[code][i]["value"], api[code][i]["by_dimension"]) for i in expected
        } == (expected), code
    on_time = api[NABARI]["JUSO-EVALUATIONS-ON-TIME"]
    assert (on_time["unit"], on_time["target"], on_time["attainment"]) == ("percent", 90, 83.3)

    row = full["JUSO-EVALUATIONS-ON-TIME"]
    assert (row["実績値"], row["目標値"], row["達成率(%)"]) == ("75", "90", "83.3")
    assert [row[h] for h in ("期限内", "期限内（%）", "期限超過", "期限超過（%）")] == ["3", "75", "1", "25"]
    ended = full["CASES-ENDED"]
    assert [ended[h] for h in ("実績値", "目標達成", "転居", "本人の拒否", "死亡", "その他の内訳")] == [
        "7",
        "3",
        "2",
        "1",
        "1",
        "",
    ]
    assert (ended["目標達成（%）"], ended["死亡（%）"]) == ("42.9", "14.3"), "each reason's share of the 7 ended"
    decisions = full["JUSO-SUPPORT-DECISIONS"]
    assert (decisions["初回"], decisions["見直し"]) == ("2", "1")
    assert full["OPS-TRANSFERS-IN"]["その他の内訳"] == f"{NEIGHBOUR}: 1", "a municipality code has no label"
    # Below 10 every count here is small: hidden, and the share of on-time evaluations with its counts.
    row = hidden["JUSO-EVALUATIONS-ON-TIME"]
    assert [row[h] for h in ("実績値", "達成率(%)", "期限内", "期限内（%）", "期限超過", "期限超過（%）")] == [
        "x",
        "",
        "x",
        "x",
        "x",
        "x",
    ]
    ended = hidden["CASES-ENDED"]
    assert {ended[h] for h in ("実績値", "目標達成", "目標達成（%）", "転居", "本人の拒否", "死亡", "死亡（%）")} == {
        "x"
    }
    for indicator in JUSO:
        cells = list(neighbour[indicator].values())
        assert neighbour[indicator]["実績値"] == "" and set(cells[8:]) == {""}, "blank, never 0"
        assert "対象外" in neighbour[indicator]["定義"]
    assert neighbour["CASES-ENDED"]["実績値"] == "2"

    sheet = openpyxl.load_workbook(io.BytesIO(workbook)).active
    assert sheet is not None
    rows = {row[0]: row for row in sheet.iter_rows(min_row=3, values_only=True)}
    assert rows["JUSO-EVALUATIONS-ON-TIME"][5] == 75 and rows["CASES-WATCHING"][5] == 1


def test_a_percent_is_suppressed_with_the_counts_it_comes_from() -> None:
    def exported(on_time: int, late: int, share: float) -> list[str | float]:
        """The export's actual value and breakdown of a share of on-time evaluations, below 10 suppressed."""
        indicator = IndicatorValue(
            id="JUSO-EVALUATIONS-ON-TIME",
            name_ja="期限内に評価された支援プランの割合（%）",
            name_en="Plan evaluations on time (%)",
            definition="",
            source="events",
            unit="percent",
            value=share,
            by_dimension={"late": late, "on_time": on_time},
        )
        one = IndicatorReport(
            municipality_code=NABARI,
            municipality_name=None,
            fiscal_year=YEAR,
            fiscal_year_label="",
            month=None,
            tier=None,
            indicators=[indicator],
        )
        [row] = exports.rows(one, suppress_below=10)
        cells = dict(zip(exports.headers(one), row, strict=True))
        return [cells[h] for h in ("実績値", "期限超過", "期限内", "期限内（%）")]

    assert exported(30, 12, 71.4) == [71.4, 12, 30, 71.4], "no small count: the share stays"
    assert exported(30, 2, 93.8) == ["x", "x", "x", "x"], "2 late of 32 would follow from 93.8%"
    assert exported(5, 0, 100.0) == ["x", 0, "x", "x"], "100% of 5 evaluations"


async def test_a_rebuild_from_the_topics_reproduces_them(
    two_towns: Settings,  # noqa: F811
    bearer: Callable[..., dict[str, str]],
) -> None:
    """Through the broker: the consumer applies the year (each topic read on its own, so in any order across
    them); `marugoto metrics rebuild` then wipes the facts and reads every counted topic from its start."""
    upgrade_databases(two_towns, ["metrics"])
    envelopes = year_of_events()
    producer = AIOKafkaProducer(bootstrap_servers=two_towns.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for envelope in envelopes:
            topic = two_towns.kafka_topic_prefix + envelope.data.topic
            await producer.send_and_wait(topic, encode(envelope), key=envelope.subject.encode())
    finally:
        await producer.stop()
    operator = bearer("operator", Scope.operator, municipalities=(NABARI, NEIGHBOUR))
    app = create(two_towns)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://m") as client:

        async def reports() -> dict[tuple[str, int | None], Any]:
            found = {}
            for code in (NABARI, NEIGHBOUR):
                for month in (None, 12):
                    params: dict[str, Any] = {"municipality": code, "fiscal_year": YEAR}
                    if month is not None:
                        params["month"] = month
                    response = await client.get("/v1/indicators", params=params, headers=operator)
                    assert response.status_code == 200, response.text
                    found[(code, month)] = response.json()
            return found

        def life_of(body: dict[str, Any]) -> dict[str, Any]:
            return {i["id"]: (i["applicable"], i["value"], i["by_dimension"]) for i in body["indicators"]}

        def complete(found: dict[tuple[str, int | None], Any]) -> bool:
            return all(
                {i: life_of(found[(code, None)])[i] for i in expected} == expected
                for code, expected in EXPECTED.items()
            )

        consumed = await reports()
        for _ in range(150):
            if complete(consumed):
                break
            await asyncio.sleep(0.2)
            consumed = await reports()
        assert complete(consumed), {code: life_of(consumed[(code, None)]) for code in EXPECTED}

        applied = await rebuild(two_towns, quiet_s=2.0)
        rebuilt = await reports()

    per_topic = Counter(two_towns.kafka_topic_prefix + e.data.topic for e in envelopes)
    for topic, n in per_topic.items():
        assert applied[topic] == n, topic
    assert rebuilt == consumed, "the rebuild reproduces every indicator, month and town"
