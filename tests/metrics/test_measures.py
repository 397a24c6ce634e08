"""Indicators and operational measures from events, fast: each event applied through `service.count` in
its own transaction (what the consumer does on receiving it), the report read through `service.report`
on PostgreSQL; the tier filter also through GET /v1/indicators."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from services.cli import upgrade_databases
from services.metrics import service
from services.metrics.app import create
from services.metrics.indicators import Rules
from services.metrics.models import IndicatorValue, ReferralFact
from shared import db
from shared.auth import Scope
from shared.consultation import ConsultationSummary
from shared.events import (
    AttendanceRecord,
    ConferenceCancelled,
    ConferenceHeld,
    ConferenceRescheduled,
    ConferenceScheduled,
    ConsultationReceived,
    ContactRecorded,
    Envelope,
    EventData,
    HouseholdLinked,
    ReferralOverdue,
    ReferralRequested,
    ReferralStatusChanged,
    RoutingDecided,
    new_event,
)
from shared.settings import Settings
from shared.vocabulary import FoundBy, Pathway

CODE = "242080"
YEAR = service.fiscal_year(datetime.now(UTC))
MAY = datetime(YEAR, 5, 12, 1, 0, tzinfo=UTC)  # 10:00 JST, 12 May: inside the fiscal year
JUNE = datetime(YEAR, 6, 9, 1, 0, tzinfo=UTC)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    upgrade_databases(settings, ["metrics"])
    engine = db.make_engine(settings, "metrics")
    yield engine
    engine.dispose()


def envelope(subject: str, data: EventData, code: str = CODE) -> Envelope[EventData]:
    return new_event(data, source="/test", subject=subject, municipality_code=code)


def count(engine: Engine, *envelopes: Envelope[EventData]) -> None:
    for event in envelopes:
        with db.transaction(engine, service.FactBatch) as session:
            service.count(session, event)


def report(engine: Engine, **options: Any) -> dict[str, IndicatorValue]:
    with db.snapshot(engine) as session:
        found = service.report(session, municipality_code=CODE, year=YEAR, **options)
    return {indicator.id: indicator for indicator in found.indicators}


def consultation(
    case_id: str, *, at: datetime = MAY, by: str = "nabari-shakyo", pathway: Pathway = Pathway.self_
) -> ConsultationReceived:
    summary = ConsultationSummary(
        area="chiiki-01",
        pathway=pathway,
        found_by=FoundBy.window,
        household=[{"relation": "self", "issues": ["poverty"]}],
    )
    return ConsultationReceived(
        case_id=case_id, consultation_id=f"{case_id}-0", submitted_by=by, received_at=at, consultation=summary
    )


def decision(
    case_id: str,
    tier: int,
    *,
    n: int = 1,
    kind: str = "initial",
    patterns: tuple[str, ...] = (),
    gaps: tuple[str, ...] = (),
    at: datetime = MAY,
) -> RoutingDecided:
    return RoutingDecided(
        case_id=case_id,
        decision_id=f"{case_id}-d{n}",
        sequence=n,
        kind=kind,
        tier=tier,
        patterns=list(patterns),
        lead="nabari-houkatsu",
        engaged=[],
        resource_gaps=list(gaps),
        directory_version="test",
        urgency="routine",
        decided_at=at + timedelta(minutes=5 * n),
    )


def requested(
    referral_id: str, case_id: str, agency_id: str, tier: int, rule_id: str = "partner", at: datetime = MAY
) -> ReferralRequested:
    return ReferralRequested(
        referral_id=referral_id,
        case_id=case_id,
        decision_id=f"{case_id}-d1",
        agency_id=agency_id,
        agency_type="t",
        tier=tier,
        rule_id=rule_id,
        legal_basis="x",
        requested_at=at,
    )


def moved(
    referral_id: str, case_id: str, agency_id: str, to: str, at: datetime, version: int = 0
) -> ReferralStatusChanged:
    return ReferralStatusChanged(
        referral_id=referral_id,
        case_id=case_id,
        agency_id=agency_id,
        from_status="requested",
        to_status=to,
        reason_code=None,
        changed_by=agency_id,
        changed_at=at,
        version=version,
    )


def overdue(referral_id: str, case_id: str, stage: str) -> ReferralOverdue:
    return ReferralOverdue(
        referral_id=referral_id,
        case_id=case_id,
        agency_id="a",
        stage=stage,
        due_at=MAY + timedelta(days=3),
    )


def scheduled(meeting_id: str, case_id: str, tier: int, at: datetime) -> ConferenceScheduled:
    return ConferenceScheduled(
        meeting_id=meeting_id,
        case_id=case_id,
        kind="case_meeting",
        tier=tier,
        starts_at=at,
        ends_at=at + timedelta(hours=1),
        deadline=at + timedelta(days=2),
        participants=["nabari-houkatsu", "hoken-01"],
    )


def test_a_cancelled_meeting_no_longer_counts_and_a_rescheduled_one_counts_once_at_its_new_time(
    engine: Engine,
) -> None:
    kept, moving, dropped = scheduled("m1", "c1", 2, MAY), scheduled("m2", "c2", 3, MAY), scheduled("m3", "c3", 2, MAY)
    events = [envelope(m.case_id or "", m) for m in (kept, moving, dropped)]
    reschedule = envelope(
        "c2",
        ConferenceRescheduled(
            meeting_id="m2",
            case_id="c2",
            kind="case_meeting",
            starts_at=JUNE,
            ends_at=JUNE + timedelta(hours=1),
            participants=["nabari-houkatsu", "hoken-01"],
            reason="lead unavailable",
        ),
    )
    cancel = envelope("c3", ConferenceCancelled(meeting_id="m3", case_id="c3", kind="case_meeting", reason="moved"))
    # Delivered out of order across topics: the reschedule and the cancellation before their schedules.
    count(engine, reschedule, cancel, *events)

    year = report(engine)["OPS-CASE-MEETINGS"]
    assert (year.value, year.by_dimension) == (2, {"tier2": 1, "tier3": 1}), "the cancelled m3 does not count"
    assert report(engine, month=5)["OPS-CASE-MEETINGS"].by_dimension == {"tier2": 1}, "m2 left May"
    assert report(engine, month=6)["OPS-CASE-MEETINGS"].by_dimension == {"tier3": 1}, "m2 counts at its new time"

    count(engine, reschedule, cancel, *events)  # delivered again: nothing changes
    assert report(engine)["OPS-CASE-MEETINGS"].by_dimension == {"tier2": 1, "tier3": 1}


def test_m12_counts_difficult_cases_that_agencies_outside_welfare_brought(engine: Engine) -> None:
    sectors = {"hellowork-nabari": "non_welfare", "nabari-hospital": "non_welfare", "nabari-shakyo": "welfare"}
    cases = [  # case, submitted by, route, tier
        ("c1", "hellowork-nabari", Pathway.specialist_agency, 2),
        ("c2", "hellowork-nabari", Pathway.specialist_agency, 1),  # not difficult
        ("c3", "nabari-shakyo", Pathway.specialist_agency, 3),  # from welfare
        ("c4", "nabari-hospital", Pathway.government, 3),
    ]
    for case_id, by, pathway, tier in cases:
        count(engine, envelope(case_id, consultation(case_id, by=by, pathway=pathway)))
        count(engine, envelope(case_id, decision(case_id, tier)))
    # 困難事例等 as tier 2 and above, the [LOCAL] choice; by default every case counts (test_definitions.py).
    m12 = report(engine, rules=Rules(sectors=sectors, difficult_min_tier=2))["M12"]
    assert (m12.value, m12.by_dimension) == (2, {"government": 1, "specialist_agency": 1})


def test_m2_counts_non_welfare_actors_networked_under_the_rule(engine: Engine) -> None:
    present = [
        ["shakyo", "hellowork", "housing-division", "school"],  # outside the last three
        ["shakyo", "hellowork", "housing-division"],
        ["hellowork", "school"],
        ["shakyo", "housing-division"],
    ]
    sectors = {
        "shakyo": "welfare",
        "hellowork": "non_welfare",
        "housing-division": "non_welfare",
        "school": "non_welfare",
    }
    for n, attendees in enumerate(present):
        held = ConferenceHeld(
            meeting_id=f"p{n}",
            case_id=None,
            kind="promotion_meeting",
            held_at=MAY + timedelta(days=7 * n),
            attendance=[
                AttendanceRecord(
                    participant=p,
                    kind="municipal_division" if p.endswith("division") else "agency",
                    sector=sectors[p],
                    attended=True,
                )
                for p in attendees
            ],
        )
        count(engine, envelope(held.meeting_id, held))
    values = report(engine, rules=Rules(networked_min_attended=2, networked_last_k=3))
    assert (values["M2"].value, values["M2"].by_dimension) == (2, {"hellowork": 1, "housing-division": 1})
    assert values["M1"].by_dimension == {"shakyo": 1}
    assert report(engine, rules=Rules(networked_min_attended=2, networked_last_k=4))["M2"].value == 3


def test_reroutes_per_case_escalations_and_deadline_breaches(engine: Engine) -> None:
    for case_id in ("c1", "c2", "c3", "c4"):
        count(engine, envelope(case_id, consultation(case_id)), envelope(case_id, decision(case_id, 2)))
    count(
        engine,
        envelope("c1", requested("r1", "c1", "hoken-01", 2)),
        envelope("c1", moved("r1", "c1", "hoken-01", "rejected", MAY + timedelta(hours=2))),
        envelope("c1", requested("r2", "c1", "hoken-02", 2, rule_id="reroute")),
        envelope("c2", requested("r3", "c2", "hoken-03", 2)),
        envelope("c2", requested("r4", "c2", "nabari-houkatsu", 2, rule_id="reroute_to_lead")),
        envelope("c3", requested("r5", "c3", "hoken-05", 2)),
        envelope("c3", overdue("r5", "c3", "reminder")),
        envelope("c3", overdue("r5", "c3", "escalation")),
        envelope("c3", overdue("r5", "c3", "escalation")),  # the same stage twice is one breach
        envelope("c3", requested("r6", "c3", "nabari-houkatsu", 2, rule_id="escalation")),
        envelope("c4", requested("r7", "c4", "hoken-07", 2)),
        envelope("c4", overdue("r7", "c4", "reminder")),
        envelope("c4", decision("c4", 3, n=2, kind="backup")),
        envelope("c4", decision("c4", 3, n=3, kind="prefecture_support")),
    )
    values = report(engine)
    reroutes = values["OPS-REROUTES"]
    assert (reroutes.value, reroutes.shares) == (2, {"per_case": 0.5}), "two re-routes over four cases"
    escalations = values["OPS-ESCALATIONS"]
    assert escalations.by_dimension == {"backup": 1, "deadline": 1, "prefecture_support": 1}
    breaches = values["OPS-DEADLINE-BREACHES"]
    assert (breaches.value, breaches.by_dimension) == (3, {"escalation": 1, "reminder": 2})


def test_open_caseload_by_tier_and_agency_counts_live_referrals_now(engine: Engine) -> None:
    last_year = datetime(YEAR - 1, 6, 1, 1, 0, tzinfo=UTC)
    referrals = [  # id, agency, tier, its latest status (None: just requested), requested at
        ("r1", "hoken-01", 2, None, MAY),
        ("r2", "hoken-01", 2, "accepted", MAY),
        ("r3", "nabari-soudan", 3, "in_progress", MAY),
        ("r4", "nabari-soudan", 2, "rejected", MAY),
        ("r5", "hoken-02", 1, "completed", MAY),
        ("r6", "hoken-02", 1, "on_hold", MAY),
        ("r7", "hoken-01", 2, "received", last_year),  # opened a year ago, still open: it counts now
    ]
    for referral_id, agency, tier, status, at in referrals:
        count(engine, envelope("c1", requested(referral_id, "c1", agency, tier, at=at)))
        if status is not None:
            count(engine, envelope("c1", moved(referral_id, "c1", agency, status, at + timedelta(days=1))))
    # A status change delivered late does not reopen r4; another municipality's referral is not ours.
    count(
        engine,
        envelope("c1", moved("r4", "c1", "nabari-soudan", "received", MAY + timedelta(hours=1))),
        envelope("x1", requested("r8", "x1", "hoken-01", 2), code="162051"),
    )
    caseload = report(engine)["OPS-OPEN-CASELOAD"]
    expected = {"tier1:hoken-02": 1, "tier2:hoken-01": 3, "tier3:nabari-soudan": 1}
    assert (caseload.value, caseload.by_dimension) == (5, expected)


def test_resource_gaps_and_decisions_by_tier_and_pattern(engine: Engine) -> None:
    count(
        engine,
        envelope("c1", decision("c1", 1, patterns=("8050",))),
        envelope("c2", decision("c2", 2, patterns=("8050", "multiple_members"), gaps=("legal_support_center",))),
        envelope("c3", decision("c3", 3, gaps=("legal_support_center", "shelter"))),
    )
    values = report(engine)
    assert values["OPS-DECISIONS"].by_dimension == {"tier1": 1, "tier2": 1, "tier3": 1}
    patterns = values["OPS-PATTERNS"]
    assert (patterns.value, patterns.by_dimension) == (3, {"8050": 2, "multiple_members": 1}), "value: decisions"
    gaps = values["OPS-RESOURCE-GAPS"]
    assert (gaps.value, gaps.by_dimension) == (3, {"legal_support_center": 2, "shelter": 1})


async def test_the_tier_filter_of_get_indicators(
    engine: Engine, settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    # c1 stays tier 1; c2 and c3 are tier 2, c3 only after an escalation; c4 is tier 3.
    count(
        engine,
        *(envelope(c, consultation(c, pathway=p)) for c, p in (("c1", Pathway.self_), ("c2", Pathway.self_))),
        *(envelope(c, consultation(c, pathway=Pathway.government)) for c in ("c3", "c4")),
        envelope("c1", decision("c1", 1)),
        envelope("c2", decision("c2", 2)),
        envelope("c3", decision("c3", 1)),
        envelope("c3", decision("c3", 2, n=2, kind="backup")),
        envelope("c4", decision("c4", 3)),
        envelope("c2", requested("r2", "c2", "hoken-02", 2)),
        envelope("c4", requested("r4", "c4", "hoken-04", 3)),
        envelope("c2", scheduled("m2", "c2", 2, MAY)),
        envelope("c4", scheduled("m4", "c4", 3, MAY)),
    )
    app = create(settings)
    transport = httpx.ASGITransport(app=app)
    headers = bearer("operator", Scope.operator)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://m") as client:

        async def get(**query: Any) -> dict[str, Any]:
            params = {"municipality": CODE, "fiscal_year": YEAR, **query}
            response = await client.get("/v1/indicators", params=params, headers=headers)
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return {i["id"]: i for i in body["indicators"]} | {"tier": body["tier"]}

        everything, tier2 = await get(), await get(tier=2)
        assert (
            await client.get("/v1/indicators", params={"municipality": CODE, "tier": 4}, headers=headers)
        ).status_code == 422

    # Every partner's 実件数: these cases came from the 社協, not the general window M8 counts (seed L1954).
    assert everything["M8-全機関"]["by_dimension"] == {"government": 2, "self": 2}
    assert tier2["tier"] == 2
    assert tier2["M8-全機関"]["by_dimension"] == {"government": 1, "self": 1}, "c2, and c3 at its latest tier"
    assert tier2["OPS-DECISIONS"]["by_dimension"] == {"tier2": 2}, "each decision at its own tier"
    assert tier2["OPS-REFERRALS"]["by_dimension"] == {"tier2": 1}
    assert tier2["OPS-CASE-MEETINGS"]["by_dimension"] == {"tier2": 1}
    assert tier2["OPS-ESCALATIONS"]["by_dimension"] == {"backup": 1}


def test_a_referral_change_published_late_never_undoes_a_later_one(engine: Engine) -> None:
    """Versions order a referral's changes, whatever the clocks of the instances that made them said."""
    count(
        engine,
        *(envelope(c, requested(r, c, "hoken-01", 2)) for r, c in (("r1", "c1"), ("r2", "c2"))),
        # requested (1) → received (2) → rejected (3): the rejecting instance's clock was behind.
        envelope("c1", moved("r1", "c1", "hoken-01", "rejected", MAY + timedelta(hours=1), version=3)),
        envelope("c1", moved("r1", "c1", "hoken-01", "received", MAY + timedelta(hours=2), version=2)),
        # requested (1) → received (2) → accepted (3), delivered as 3 then 2.
        envelope("c2", moved("r2", "c2", "hoken-01", "accepted", MAY + timedelta(hours=3), version=3)),
        envelope("c2", moved("r2", "c2", "hoken-01", "received", MAY + timedelta(hours=3), version=2)),
    )
    with db.snapshot(engine) as session:
        held = {r: (f.status, f.version) for r in ("r1", "r2") if (f := session.get(ReferralFact, r)) is not None}
    assert held == {"r1": ("rejected", 3), "r2": ("accepted", 3)}
    caseload = report(engine)["OPS-OPEN-CASELOAD"]
    assert caseload.by_dimension == {"tier2:hoken-01": 1}, "the rejected r1 stays closed"

    # Changes of before versions (0) still follow their times.
    count(
        engine,
        envelope("c2", moved("r2", "c2", "hoken-01", "completed", MAY + timedelta(hours=5))),
        envelope("c2", moved("r2", "c2", "hoken-01", "in_progress", MAY + timedelta(hours=4))),
    )
    assert report(engine)["OPS-OPEN-CASELOAD"].by_dimension == {}


def linked(match_id: str, case_id: str, earlier: str, is_linked: bool, at: datetime) -> HouseholdLinked:
    return HouseholdLinked(
        match_id=match_id,
        case_id=case_id,
        linked_case_id=earlier,
        linked=is_linked,
        decided_by="nabari-houkatsu",
        decided_at=at,
    )


def test_a_linked_household_counts_once_in_distinct_cases_and_its_contacts_all_count(engine: Engine) -> None:
    later_contact = ContactRecorded(
        case_id="c2",
        contact_id="c2-1",
        submitted_by="nabari-shakyo",
        received_at=JUNE + timedelta(days=1),
        pathway=Pathway.self_,
        found_by=FoundBy.window,
    )
    count(
        engine,
        envelope("c1", consultation("c1")),
        envelope("c2", consultation("c2", at=JUNE, pathway=Pathway.government)),
        envelope("c2", later_contact),
        envelope("c3", consultation("c3", at=JUNE)),
    )

    def distinct_and_all() -> tuple[float | None, float | None, dict[str, float]]:
        values = report(engine)
        return values["M8"].value, values["M8-延べ"].value, values["R10"].by_dimension

    assert distinct_and_all() == (3, 4, {"government": 1, "self": 2})
    # The lead links c2 (the later case) to c1: one household, counted once, as it was first received.
    count(engine, envelope("c2", linked("m1", "c2", "c1", True, JUNE + timedelta(days=2))))
    assert distinct_and_all() == (2, 4, {"self": 2})
    # The same pair linked the other way too (a second match) is still one household.
    count(engine, envelope("c1", linked("m2", "c1", "c2", True, JUNE + timedelta(days=2))))
    assert distinct_and_all() == (2, 4, {"self": 2})

    # Undone: c2 is a case of its own again; the link's earlier decision delivered late does not redo it.
    count(
        engine,
        envelope("c1", linked("m2", "c1", "c2", False, JUNE + timedelta(days=3))),
        envelope("c2", linked("m1", "c2", "c1", False, JUNE + timedelta(days=3))),
        envelope("c2", linked("m1", "c2", "c1", True, JUNE + timedelta(days=2))),
    )
    assert distinct_and_all() == (3, 4, {"government": 1, "self": 2})


async def test_indicators_exports_and_entries_are_limited_to_the_municipalities_served(
    engine: Engine, settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    """An operator and an admin of 名張市 find no other municipality here: 404, as for one that does not exist."""
    other = "242081"
    # c1 at 名張市's general window, which M8 counts (seed L1954); 242081 has no directory: every partner's.
    count(
        engine,
        envelope("c1", consultation("c1", by="nabari-houkatsu")),
        envelope("x1", consultation("x1"), code=other),
    )
    app = create(settings)
    transport = httpx.ASGITransport(app=app)
    operator = bearer("operator", Scope.operator, municipalities=(CODE,))
    admin = bearer("admin", Scope.admin, municipalities=(CODE,))
    platform = bearer("platform", Scope.operator, Scope.platform, municipalities=())
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://m") as client:

        async def indicators(code: str, headers: dict[str, str], path: str = "/v1/indicators") -> httpx.Response:
            return await client.get(path, params={"municipality": code, "fiscal_year": YEAR}, headers=headers)

        def entry(code: str, kind: str, indicator: str) -> str:
            return f"/v1/municipalities/{code}/fiscal-years/{YEAR}/{kind}/{indicator}"

        reads = ["/v1/indicators", "/v1/indicators/export.csv", "/v1/indicators/export.xlsx"]
        for path in reads:
            assert (await indicators(CODE, operator, path)).status_code == 200
            refused = await indicators(other, operator, path)
            assert refused.status_code == 404 and refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["type"].endswith("/municipality-not-found")
            assert (await indicators(other, platform, path)).status_code == 200

        for headers in (operator, admin):
            assert (
                await client.put(entry(CODE, "targets", "M8"), json={"value": 10, "reason": "見直し"}, headers=headers)
            ).status_code == 204
            for kind, indicator in (("targets", "M8"), ("manual", "M3")):
                put = await client.put(entry(other, kind, indicator), json={"value": 99}, headers=headers)
                assert put.status_code == 404, put.text
        # Refused before anything is checked of the value: an unknown indicator elsewhere is a 404 too.
        assert (await client.put(entry(other, "manual", "M8"), json={"value": 1}, headers=operator)).status_code == 404

        theirs = {i["id"]: i for i in (await indicators(other, platform)).json()["indicators"]}
        ours = {i["id"]: i for i in (await indicators(CODE, operator)).json()["indicators"]}
    assert (theirs["M8"]["value"], theirs["M8"]["target"], theirs["M3"]["value"]) == (1, None, None)
    assert (ours["M8"]["value"], ours["M8"]["target"]) == (1, 10)
