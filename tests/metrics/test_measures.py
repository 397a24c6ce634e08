"""Indicators and operational measures from events, fast: each event applied through `service.count` in
its own transaction (what the consumer does on receiving it), the report read through `service.report`
on PostgreSQL; the tier filter also through GET /v1/indicators."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from services.cli import upgrade_databases
from services.metrics import service
from services.metrics.models import IndicatorValue
from shared import db
from shared.consultation import ConsultationSummary
from shared.events import (
    ConferenceCancelled,
    ConferenceRescheduled,
    ConferenceScheduled,
    ConsultationReceived,
    Envelope,
    EventData,
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
        with db.transaction(engine) as session:
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
        household=[{"relation": "self", "issues": ["poverty"]}],  # type: ignore[list-item]
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
        kind=kind,  # type: ignore[arg-type]
        tier=tier,  # type: ignore[arg-type]
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
        tier=tier,  # type: ignore[arg-type]
        rule_id=rule_id,
        legal_basis="x",
        requested_at=at,
    )


def moved(referral_id: str, case_id: str, agency_id: str, to: str, at: datetime) -> ReferralStatusChanged:
    return ReferralStatusChanged(
        referral_id=referral_id,
        case_id=case_id,
        agency_id=agency_id,
        from_status="requested",
        to_status=to,  # type: ignore[arg-type]
        reason_code=None,
        changed_by=agency_id,
        changed_at=at,
    )


def overdue(referral_id: str, case_id: str, stage: str) -> ReferralOverdue:
    return ReferralOverdue(
        referral_id=referral_id,
        case_id=case_id,
        agency_id="a",
        stage=stage,  # type: ignore[arg-type]
        due_at=MAY + timedelta(days=3),
    )


def scheduled(meeting_id: str, case_id: str, tier: int, at: datetime) -> ConferenceScheduled:
    return ConferenceScheduled(
        meeting_id=meeting_id,
        case_id=case_id,
        kind="case_meeting",
        tier=tier,  # type: ignore[arg-type]
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
