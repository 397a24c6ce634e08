"""A batch's facts read up front (`service.prefetch`) give exactly the facts of one event at a time."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select

from services.cli import upgrade_databases
from services.metrics import service
from services.metrics.models import (
    CaseFact,
    ContactFact,
    DecisionFact,
    MeetingFact,
    MetricsProcessedEvent,
    ReferralFact,
)
from shared import db
from shared.consumer import apply_batch
from shared.events import (
    AttendanceRecord,
    ConferenceHeld,
    ConferenceScheduled,
    ContactRecorded,
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
from tests.conftest import make_settings, new_database
from tests.metrics.test_indicators import consultation

T0 = datetime(2026, 6, 1, 9, tzinfo=UTC)
FACTS = (CaseFact, ContactFact, DecisionFact, ReferralFact, MeetingFact)


def case_events(n: int) -> list[EventData]:
    """A case's life: received, decided, referred, accepted, reminded, another contact, a meeting held."""
    case_id, referral_id, meeting_id = f"case-{n}", f"ref-{n}", f"meet-{n}"
    at = T0 + timedelta(hours=n)
    return [
        consultation(case_id, "self"),
        RoutingDecided(
            case_id=case_id,
            decision_id=f"dec-{n}",
            tier=2,
            patterns=["multiple_issues"],
            lead="lead-agency",
            engaged=[],
            resource_gaps=["housing"],
            directory_version="v1",
            urgency="normal",
            decided_at=at,
        ),
        ReferralRequested(
            referral_id=referral_id,
            case_id=case_id,
            decision_id=f"dec-{n}",
            agency_id="lead-agency",
            agency_type="自立相談支援機関",
            tier=2,
            rule_id="lead",
            legal_basis="社会福祉法第106条の3",
            requested_at=at,
        ),
        ReferralOverdue(referral_id=referral_id, case_id=case_id, agency_id="lead-agency", stage="reminder", due_at=at),
        ReferralStatusChanged(
            referral_id=referral_id,
            case_id=case_id,
            agency_id="lead-agency",
            from_status="requested",
            to_status="accepted",
            reason_code=None,
            changed_by="coordinator",
            changed_at=at + timedelta(hours=5),
        ),
        ContactRecorded(
            contact_id=f"contact-{n}",
            case_id=case_id,
            submitted_by="nabari-shakyo",
            received_at=at + timedelta(days=1),
            pathway=Pathway.family_or_community,
            found_by=FoundBy.outreach,
        ),
        ConferenceScheduled(
            meeting_id=meeting_id,
            case_id=case_id,
            kind="case_meeting",
            tier=2,
            starts_at=at + timedelta(days=3),
            deadline=None,
            participants=["lead-agency", "shakyo"],
        ),
        ConferenceHeld(
            meeting_id=meeting_id,
            case_id=case_id,
            kind="case_meeting",
            held_at=at + timedelta(days=3),
            attendance=[
                AttendanceRecord(participant=p, kind="agency", sector="welfare", attended=True)
                for p in ("lead-agency", "shakyo")
            ],
        ),
    ]


def stored(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    engine = db.make_engine(settings, "metrics")
    try:
        with db.transaction(engine) as session:
            return {
                model.__name__: sorted(
                    (row.model_dump() for row in session.exec(select(model))), key=lambda r: sorted(r.items())
                )
                for model in FACTS
            }
    finally:
        engine.dispose()


def apply(settings: Settings, batches: list[list[Envelope[Any]]], *, prepare: bool) -> dict[str, list[dict[str, Any]]]:
    upgrade_databases(settings, ["metrics"])
    engine = db.make_engine(settings, "metrics")
    try:
        for envelopes in batches:
            apply_batch(
                engine,
                MetricsProcessedEvent,
                [(e, service.count) for e in envelopes],
                consumer="marugoto-metrics",
                unit=service.FactBatch,
                prepare=service.prefetch if prepare else None,
            )
    finally:
        engine.dispose()
    return stored(settings)


@pytest.mark.parametrize("split", [1, 3, 5], ids=lambda s: f"split-after-{s}-events-of-a-case")
def test_prefetched_batches_give_the_facts_of_one_event_at_a_time(
    postgres_admin_url: str, secrets_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, split: int
) -> None:
    """Facts made in an earlier batch (read up front), earlier in the same batch, or new: all end the same."""
    lives = [
        [new_event(d, source="/t", subject=f"case-{n}", municipality_code="242098") for d in case_events(n)]
        for n in range(4)
    ]
    # Batch 1 holds the first `split` events of every case, batch 2 the rest, so batch 2's events update
    # facts that batch 1 stored; the event-at-a-time reference has no prefetch at all.
    batched = [[e for life in lives for e in life[:split]], [e for life in lives for e in life[split:]]]
    one_by_one = [[e] for batch in batched for e in batch]
    results = []
    for batches, prepare in ((batched, True), (one_by_one, False)):
        with new_database(postgres_admin_url) as url:
            settings = make_settings("unused:9092", url, "t.", secrets_env, tmp_path_factory.mktemp("prefetch"))
            results.append(apply(settings, batches, prepare=prepare))
    with_prefetch, reference = results
    assert with_prefetch == reference
    assert len(reference["CaseFact"]) == 4 and len(reference["ContactFact"]) == 8
    accepted = {r["case_id"]: r["first_accepted_at"] for r in reference["CaseFact"]}
    assert all(at is not None for at in accepted.values()), "acceptance after the prefetch still reaches the case"
    assert {tuple(r["overdue_stages"]) for r in reference["ReferralFact"]} == {("reminder",)}
