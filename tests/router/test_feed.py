"""The coordinators' feed: numbered per agency in commit order, so a reader paging with a cursor never
misses an entry written concurrently; on Kafka, keyed by agency id; and on both, each agency learns only
the issue tags it was engaged for."""

import json
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import Engine
from sqlmodel import col, select

from services.cli import upgrade_databases
from services.router import cases, decisions, feed, referrals
from services.router.app import create
from services.router.batch import RoutingBatch
from services.router.context import RouterContext
from services.router.models import FeedEntry, TransitionCreate
from shared import db
from shared.auth import Scope
from shared.consultation import ConsultationSummary
from shared.events import (
    AgencyFeedEntry,
    ConsultationReceived,
    DisclosureRecorded,
    Envelope,
    decode,
    encode,
    new_event,
)
from shared.settings import Settings
from tests.conftest import read_events, topic_of
from tests.router.conftest import as_agency, referrals_by_agency, route
from tests.router.test_directory_api import poll_json_asgi, publish_consultation

LEAD = "nabari-houkatsu"
WRITERS, CASES_PER_WRITER, PAGE = 4, 12, 5


def all_entries(engine: Engine, agency_id: str) -> list[FeedEntry]:
    with db.transaction(engine, RoutingBatch) as session:
        return list(
            session.exec(select(FeedEntry).where(FeedEntry.agency_id == agency_id).order_by(col(FeedEntry.sequence)))
        )


def test_a_reader_paging_through_a_feed_written_concurrently_sees_every_entry_once_in_order(
    router_engine: Engine, ctx: RouterContext
) -> None:
    """Writers (a consumer routing cases, API threads moving referrals) feed the lead at once, while a
    coordinator pages with `after`. Each writer dawdles inside its transaction after writing its entries,
    as a busy one does; with an autoincrement cursor the reader then steps over an entry that commits
    after a higher-numbered one became visible."""
    failures: list[BaseException] = []
    writing = threading.Event()
    writing.set()

    def routing_writer(seed: int) -> None:
        dawdle = random.Random(seed)
        try:
            for _ in range(CASES_PER_WRITER):
                with db.transaction(router_engine, RoutingBatch) as session:
                    decisions.route(session, consultation_envelope(), ctx=ctx)
                    time.sleep(dawdle.uniform(0, 0.02))
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    def accepting_writer(seed: int) -> None:
        # Accepts the lead's referrals as they appear: a status_changed entry in the lead's feed each.
        dawdle = random.Random(seed)
        accepted: set[str] = set()
        try:
            while writing.is_set() or len(accepted) < expected_cases():
                with db.transaction(router_engine, RoutingBatch) as session:
                    waiting = referrals.list_referrals(session, agency_id=LEAD, status="requested")
                for referral in waiting:
                    with db.transaction(router_engine, RoutingBatch) as session:
                        body = TransitionCreate(to="accepted")
                        referrals.transition(
                            session, referral_id=referral.id, body=body, principal=as_agency(LEAD), ctx=ctx
                        )
                        time.sleep(dawdle.uniform(0, 0.02))
                    accepted.add(referral.id)
                if not waiting:
                    time.sleep(0.005)
        except BaseException as error:
            failures.append(error)

    def expected_cases() -> int:
        return WRITERS * CASES_PER_WRITER

    seen: list[tuple[int, str, str]] = []

    def read_page(after: int) -> list[FeedEntry]:
        with db.transaction(router_engine, RoutingBatch) as session:
            return feed.feed_entries(session, LEAD, after=after, limit=PAGE)

    routers = [threading.Thread(target=routing_writer, args=(i,)) for i in range(WRITERS)]
    accepter = threading.Thread(target=accepting_writer, args=(99,))
    for thread in [*routers, accepter]:
        thread.start()
    cursor = 0
    while any(t.is_alive() for t in routers) or accepter.is_alive():
        if not any(t.is_alive() for t in routers):
            writing.clear()
        for entry in read_page(cursor):
            seen.append((entry.sequence, entry.referral_id, entry.kind))
            cursor = entry.sequence
    while page := read_page(cursor):  # the writers are done: read what is left
        seen.extend((e.sequence, e.referral_id, e.kind) for e in page)
        cursor = page[-1].sequence
    assert not failures, failures

    stored = [(e.sequence, e.referral_id, e.kind) for e in all_entries(router_engine, LEAD)]
    cases = expected_cases()
    assert len(stored) == 2 * cases, "one referral_requested and one status_changed per case"
    assert [sequence for sequence, _, _ in stored] == list(range(1, len(stored) + 1)), "numbered without gaps"
    assert seen == stored, "the reader saw every entry exactly once, in order"


def consultation_envelope() -> Envelope[ConsultationReceived]:
    """A tier-2 consultation in 地域07 (生活困窮 and 就労): the lead plus two partners, three agencies fed at once."""
    case_id = str(uuid.uuid4())
    summary = ConsultationSummary.model_validate(
        {
            "area": "chiiki-07",
            "pathway": "self",
            "household": [{"relation": "self", "issues": ["poverty"]}, {"relation": "child", "issues": ["employment"]}],
        }
    )
    data = ConsultationReceived(
        case_id=case_id, consultation_id=case_id, submitted_by="t", received_at=datetime.now(UTC), consultation=summary
    )
    return new_event(data, source="/test", subject=case_id, municipality_code="242080")


def test_each_agency_has_its_own_sequence_from_one(router_engine: Engine, ctx: RouterContext) -> None:
    first = route(router_engine, ctx, "chiiki-07", ["poverty"], ["employment"])
    second = route(router_engine, ctx, "chiiki-07", ["poverty", "housing"])
    for agency_id, case_ids in {
        LEAD: [first, second],
        "nabari-jiritsu": [first, second],
        "hellowork-nabari": [first],
    }.items():
        entries = all_entries(router_engine, agency_id)
        assert [(e.sequence, e.case_id) for e in entries] == list(enumerate(case_ids, start=1)), agency_id


def test_the_entries_of_a_rolled_back_transaction_are_never_numbered(router_engine: Engine, ctx: RouterContext) -> None:
    """One session, two transactions: the first one's entries die with it, the second's start at 1."""
    with RoutingBatch(router_engine, expire_on_commit=False) as session:
        abandoned = session.begin()
        decisions.route(session, consultation_envelope(), ctx=ctx)
        abandoned.rollback()
        with session.begin():
            kept = decisions.route(session, consultation_envelope(), ctx=ctx)
    entries = all_entries(router_engine, LEAD)
    assert [(e.sequence, e.case_id) for e in entries] == [(1, kept.case_id)]


def test_a_consultation_of_a_rolled_back_transaction_is_decided_again(
    router_engine: Engine, ctx: RouterContext
) -> None:
    """The same consultation in the next transaction of the same session: its decision, referrals and
    entries died with the first one, so it is decided (and fed) again rather than found decided."""
    envelope = consultation_envelope()
    with RoutingBatch(router_engine, expire_on_commit=False) as session:
        abandoned = session.begin()
        decisions.route(session, envelope, ctx=ctx)
        abandoned.rollback()
        with session.begin():
            decisions.route(session, envelope, ctx=ctx)
    with db.transaction(router_engine, RoutingBatch) as session:
        assert len(cases.decisions_of_case(session, envelope.data.case_id)) == 1
        assert len(cases.referrals_of_case(session, envelope.data.case_id)) == 3
    assert [e.case_id for e in all_entries(router_engine, LEAD)] == [envelope.data.case_id]


def test_a_moved_referral_is_fed_after_its_request(router_engine: Engine, ctx: RouterContext) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", ["poverty"], ["employment"])
    referral = referrals_by_agency(router_engine, case_id)["hellowork-nabari"]
    with db.transaction(router_engine, RoutingBatch) as session:
        referrals.transition(
            session,
            referral_id=referral.id,
            body=TransitionCreate(to="accepted"),
            principal=as_agency("hellowork-nabari"),
            ctx=ctx,
        )
    entries = all_entries(router_engine, "hellowork-nabari")
    assert [(e.sequence, e.kind, e.body["status"]) for e in entries] == [
        (1, "referral_requested", "requested"),
        (2, "status_changed", "accepted"),
    ]


@pytest.fixture
async def router_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    upgrade_databases(settings, ["router"])
    app = create(settings)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://r") as client:
        yield client


async def test_the_kafka_feed_is_keyed_by_agency_id_and_numbered_like_the_http_feed(
    router_app: httpx.AsyncClient, settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    """An agency's integration follows its own key; each record carries the entry's number in that feed."""
    operator = bearer("operator", Scope.operator, Scope.coordinator)
    case_id = str(uuid.uuid4())
    await publish_consultation(settings, case_id, "chiiki-01")  # 法律 and 生活困窮: the lead and nabari-jiritsu
    await poll_json_asgi(router_app, f"/v1/cases/{case_id}/decision", operator)
    referrals = (await router_app.get(f"/v1/referrals?case_id={case_id}", headers=operator)).json()
    agencies = {r["agency_id"] for r in referrals}
    assert agencies == {LEAD, "nabari-jiritsu"}

    def of_case(records: list[Any]) -> list[Any]:
        return [r for r in records if decode(r.value, AgencyFeedEntry).data.case_id == case_id]

    records = of_case(
        await read_events(
            str(settings.kafka_bootstrap_servers),
            topic_of(settings, AgencyFeedEntry),
            until=lambda rs: len(of_case(rs)) >= len(referrals),
        )
    )
    assert len(records) == len(referrals)
    for record in records:
        entry = decode(record.value, AgencyFeedEntry)
        assert record.key == entry.data.agency_id.encode(), "keyed by the agency the entry is for"
        assert dict(record.headers)["correlation_id"] == entry.id.encode(), "a trace names the event"
        assert entry.subject == entry.data.agency_id
        page = await router_app.get(f"/v1/feed/entries?agency_id={entry.data.agency_id}", headers=operator)
        [same] = [e for e in page.json()["entries"] if e["referral_id"] == entry.data.referral_id]
        assert same["id"] == entry.data.entry_id
    assert {r.key.decode() for r in records} == agencies


async def publish_household(settings: Settings, case_id: str, area: str, household: list[dict[str, Any]]) -> None:
    """Publish a consultation of this household to the real broker, as intake would."""
    summary = ConsultationSummary.model_validate({"area": area, "pathway": "self", "household": household})
    data = ConsultationReceived(
        case_id=case_id, consultation_id=case_id, submitted_by="t", received_at=datetime.now(UTC), consultation=summary
    )
    event = new_event(data, source="/test", subject=case_id, municipality_code="242080")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic_of(settings, ConsultationReceived), encode(event), key=case_id.encode())
    finally:
        await producer.stop()


async def test_a_dv_tag_reaches_only_the_lead_and_the_agencies_engaged_for_it_on_http_and_on_kafka(
    router_app: httpx.AsyncClient, settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    """Done when 2: a household with spousal violence (指針 第四) and a child out of work, routed by the
    router consuming from the real broker; each agency's feed read back over HTTP and from Kafka."""
    operator = bearer("operator", Scope.operator, Scope.coordinator)
    case_id = str(uuid.uuid4())
    household = [
        {"relation": "self", "issues": ["domestic_violence"]},
        {"relation": "child", "issues": ["employment", "poverty"]},
    ]
    await publish_household(settings, case_id, "chiiki-03", household)
    await poll_json_asgi(router_app, f"/v1/cases/{case_id}/decision", operator)
    referrals = (await router_app.get(f"/v1/referrals?case_id={case_id}", headers=operator)).json()
    engaged_for_dv = {"nabari-fukushi", "mie-dv"}
    others = {"hellowork-nabari", "nabari-jiritsu"}
    assert {r["agency_id"] for r in referrals} == {LEAD} | engaged_for_dv | others

    def coordinator(agency_id: str) -> dict[str, str]:
        return bearer(agency_id, Scope.coordinator)

    http_issues: dict[str, set[str]] = {}
    for agency_id in {LEAD} | engaged_for_dv | others:
        page = (await router_app.get("/v1/feed/entries", headers=coordinator(agency_id))).json()
        [entry] = [e for e in page["entries"] if e["case_id"] == case_id]
        http_issues[agency_id] = set(entry["body"]["issues"])

    def of_case(records: list[Any]) -> list[AgencyFeedEntry]:
        entries = [decode(r.value, AgencyFeedEntry).data for r in records]
        return [entry for entry in entries if entry.case_id == case_id]

    records = await read_events(
        str(settings.kafka_bootstrap_servers),
        topic_of(settings, AgencyFeedEntry),
        until=lambda rs: len(of_case(rs)) >= len(referrals),
    )
    kafka_issues = {entry.agency_id: set(entry.issues) for entry in of_case(records)}

    for issues in (http_issues, kafka_issues):
        assert {agency for agency, tags in issues.items() if "domestic_violence" in tags} == {LEAD} | engaged_for_dv
        assert issues[LEAD] == {"domestic_violence", "employment", "poverty"}, "the lead sees the whole household"
        assert issues["hellowork-nabari"] == {"employment"}
        assert issues["nabari-jiritsu"] == {"poverty"}
        assert issues["mie-dv"] == issues["nabari-fukushi"] == {"domestic_violence"}

    # The decision: an agency with no part gets the answer of a case that does not exist.
    stranger = await router_app.get(f"/v1/cases/{case_id}/decision", headers=coordinator("nabari-kyoiku"))
    unknown_id = str(uuid.uuid4())
    unknown = await router_app.get(f"/v1/cases/{unknown_id}/decision", headers=coordinator("nabari-kyoiku"))
    assert stranger.status_code == unknown.status_code == 404
    assert stranger.json() == json.loads(unknown.text.replace(unknown_id, case_id))
    listed = await router_app.get(f"/v1/cases/{case_id}/decisions", headers=coordinator("nabari-kyoiku"))
    assert listed.status_code == 404 and listed.json()["type"] == stranger.json()["type"]
    # An engaged partner: its own engagement, its own tag and reason, nothing of the violence.
    partner = await router_app.get(f"/v1/cases/{case_id}/decision", headers=coordinator("hellowork-nabari"))
    assert partner.status_code == 200
    view = partner.json()
    assert view["view"] == "partner"
    assert [(e["agency_id"], e["tags"], e["reason"]) for e in view["engaged"]] == [
        ("hellowork-nabari", ["employment"], "tag employment → public_employment_office")
    ]
    assert view["patterns"] == view["excluded"] == view["resource_gaps"] == []
    assert "domestic_violence" not in partner.text
    lead = (await router_app.get(f"/v1/cases/{case_id}/decision", headers=coordinator(LEAD))).json()
    assert lead["view"] == "full" and len(lead["engaged"]) == len(referrals)

    # Each read is in the disclosure ledger (on Kafka, for intake to keep): the refusal too.
    def reads(records: list[Any]) -> list[DisclosureRecorded]:
        rows = [decode(r.value, DisclosureRecorded).data for r in records]
        return [row for row in rows if row.case_id == case_id and row.channel == "decision_read"]

    ledger = reads(
        await read_events(
            str(settings.kafka_bootstrap_servers),
            topic_of(settings, DisclosureRecorded),
            until=lambda rs: {r.recipient for r in reads(rs)} >= {"nabari-kyoiku", "hellowork-nabari", LEAD},
        )
    )
    by_reader = {(row.recipient, row.outcome, row.basis) for row in ledger}
    assert {("nabari-kyoiku", "refused", "none"), ("hellowork-nabari", "released", "engagement")} <= by_reader
    assert (LEAD, "released", "engagement") in by_reader and ("operator", "released", "operator") in by_reader
