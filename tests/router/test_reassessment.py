"""New facts re-route: a later contact's new members, issues or urgency make a new decision version
that may add agencies and raise the tier but never drops one; a contact that comes before its case's
consultation is kept until the case is routed; redelivery changes nothing; the lead takes an agency
off by cancelling its referral with a coded reason."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from services.router import decisions
from services.router.batch import RoutingBatch
from services.router.context import RouterContext
from services.router.models import PendingContact, RouterProcessedEvent
from shared import db
from shared.consultation import ConsultationSummary, MemberSummary
from shared.consumer import Effect, apply_batch
from shared.errors import DomainError
from shared.events import (
    ConsultationReceived,
    ContactRecorded,
    Envelope,
    EventData,
    MemberIssues,
    RoutingDecided,
    new_event,
)
from shared.problems import status_of
from shared.vocabulary import FoundBy, IssueTag, Pathway, Relation, Urgency
from tests.router.conftest import MUNICIPALITY, as_agency, referrals_by_agency, route
from tests.router.test_need_to_know import read, staged
from tests.router.test_referral_life import in_thread, move, refused, waiting_for_a_lock

LEAD = "nabari-houkatsu"
# 地域07, tier 2: the lead, the 自立相談支援機関 (poverty) and the employment office (employment).
POVERTY, EMPLOYMENT = ["poverty"], ["employment"]
TIER2_AGENCIES = {LEAD, "nabari-jiritsu", "hellowork-nabari"}


def contact(
    case_id: str,
    *,
    members: Sequence[tuple[Relation, list[str]]] = (),
    issues: Sequence[tuple[int, list[str]]] = (),
    urgency: Urgency | None = None,
) -> Envelope[ContactRecorded]:
    data = ContactRecorded(
        case_id=case_id,
        contact_id=str(uuid.uuid4()),
        submitted_by="hoken-07",
        received_at=datetime.now(UTC),
        pathway=Pathway.self_,
        found_by=FoundBy.window,
        added_members=[
            MemberSummary(relation=relation, issues=[IssueTag(tag) for tag in tags]) for relation, tags in members
        ],
        added_issues=[MemberIssues(position=p, issues=[IssueTag(tag) for tag in tags]) for p, tags in issues],
        urgency=urgency,
    )
    return new_event(data, source="/test", subject=case_id, municipality_code=MUNICIPALITY)


def consultation(case_id: str, area: str, *members: list[str]) -> Envelope[ConsultationReceived]:
    household: list[dict[str, Any]] = [
        {"relation": "self" if i == 0 else "child", "issues": issues} for i, issues in enumerate(members)
    ]
    summary = ConsultationSummary.model_validate({"area": area, "pathway": "self", "household": household})
    data = ConsultationReceived(
        case_id=case_id, consultation_id=case_id, submitted_by="t", received_at=datetime.now(UTC), consultation=summary
    )
    return new_event(data, source="/test", subject=case_id, municipality_code=MUNICIPALITY)


def consume(engine: Engine, ctx: RouterContext, *envelopes: Envelope[Any]) -> list[bool]:
    """Apply one consumer batch as the router's subscriber does (prepare, effects, processed-event rows)."""
    effects: dict[type[EventData], Effect] = {
        ConsultationReceived: partial(decisions.route, ctx=ctx),
        ContactRecorded: partial(decisions.record_contact, ctx=ctx),
    }
    return apply_batch(
        engine,
        RouterProcessedEvent,
        [(envelope, effects[type(envelope.data)]) for envelope in envelopes],
        consumer="marugoto-router",
        unit=RoutingBatch,
        prepare=decisions.prepare_batch,
    )


def history(engine: Engine, case_id: str) -> list[Any]:
    """The case's decisions as its lead reads them (GET /v1/cases/{id}/decisions)."""
    found = read(engine, case_id, as_agency(LEAD), in_force_only=False)
    assert found is not None
    return list(found)


def engaged(decision: Any) -> set[str]:
    return {e["agency_id"] for e in decision.engaged}


def test_a_new_member_with_a_prefecture_issue_makes_a_tier3_version_that_adds_and_drops_nothing(
    router_engine: Engine, ctx: RouterContext
) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY, EMPLOYMENT)
    before = referrals_by_agency(router_engine, case_id)
    news = contact(case_id, members=[(Relation.parent, ["cancer"])])

    assert consume(router_engine, ctx, news) == [True]

    first, second = history(router_engine, case_id)
    assert (second.sequence, second.kind, second.requested_by, second.tier) == (2, "reassessment", None, 3)
    added = {"mie-cancer", "mie-sanpo"}  # がん: the 拠点病院 and the 産業保健総合支援センター
    assert engaged(second) == TIER2_AGENCIES | added, "every agency engaged before stays"
    assert "prefecture_category" in [p["id"] for p in second.patterns]
    changes = second.changes
    assert (changes.contact_id, changes.tier_from, changes.tier_to) == (news.data.contact_id, 2, 3)
    assert (sorted(changes.added_agencies), changes.kept_agencies) == (sorted(added), [])
    assert (changes.added_members, changes.added_issues) == (1, ["cancer"])
    assert first.changes is None, "the first decision changed nothing"

    after = referrals_by_agency(router_engine, case_id)
    assert set(after) == TIER2_AGENCIES | added
    assert all(after[a].id == before[a].id for a in TIER2_AGENCIES), "those on the case keep their referral"
    assert {after[a].decision_id for a in added} == {second.id}
    assert after["mie-cancer"].tags == ["cancer"], "a new partner learns the tag it is engaged for"
    [decided] = [e for e in staged(router_engine, RoutingDecided) if e.case_id == case_id and e.sequence == 2]
    assert (decided.kind, decided.tier, decided.changes) == ("reassessment", 3, changes)


def test_an_agency_the_rules_no_longer_pick_is_kept_and_the_lead_takes_it_off_with_a_reason(
    router_engine: Engine, ctx: RouterContext
) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY)  # tier 1: the まちの保健室 of 地域07
    assert set(referrals_by_agency(router_engine, case_id)) == {"hoken-07"}

    consume(router_engine, ctx, contact(case_id, issues=[(0, ["employment", "poverty"])]))

    _, second = history(router_engine, case_id)
    assert (second.tier, second.changes.tier_from, second.changes.added_issues) == (2, 1, ["employment"])
    assert second.changes.kept_agencies == ["hoken-07"]
    assert engaged(second) == TIER2_AGENCIES | {"hoken-07"}
    [kept] = [e for e in second.engaged if e["agency_id"] == "hoken-07"]
    assert kept["rule_id"] == "tier1_place" and kept["reason"].startswith("kept:")
    place = referrals_by_agency(router_engine, case_id)["hoken-07"]
    assert place.status == "requested", "kept, not dropped"

    # Taking it off is the lead's explicit act, with a coded reason; a partner may not.
    problem = refused(router_engine, ctx, place.id, "cancelled", "", by=as_agency(LEAD))
    assert (status_of(problem), problem.code) == (422, "reason-required")
    problem = refused(router_engine, ctx, place.id, "cancelled", "handed_over", by=as_agency("hellowork-nabari"))
    assert (status_of(problem), problem.code) == (403, "not-the-lead")
    move(router_engine, ctx, place.id, "cancelled", "handed_over", by=as_agency(LEAD))
    assert referrals_by_agency(router_engine, case_id)["hoken-07"].status == "cancelled"

    # The next reassessment no longer keeps it: it is off the case.
    consume(router_engine, ctx, contact(case_id, urgency=Urgency.urgent))
    third = history(router_engine, case_id)[-1]
    assert "hoken-07" not in engaged(third) and third.changes.kept_agencies == []


def test_a_change_of_urgency_alone_is_a_new_version_with_the_same_agencies(
    router_engine: Engine, ctx: RouterContext
) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY, EMPLOYMENT)
    consume(router_engine, ctx, contact(case_id, urgency=Urgency.urgent))

    first, second = history(router_engine, case_id)
    assert engaged(second) == engaged(first) and second.tier == first.tier
    changes = second.changes
    assert (changes.urgency_from, changes.urgency_to, changes.added_agencies) == ("routine", "urgent", [])
    assert len(referrals_by_agency(router_engine, case_id)) == len(TIER2_AGENCIES), "no new referral"
    [decided] = [e for e in staged(router_engine, RoutingDecided) if e.case_id == case_id and e.sequence == 2]
    assert decided.urgency == "urgent"


def test_a_contact_with_no_new_facts_changes_nothing(router_engine: Engine, ctx: RouterContext) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY, EMPLOYMENT)
    plain = contact(case_id)
    known = contact(case_id, issues=[(1, ["employment"])], urgency=Urgency.routine)  # already on the case
    assert consume(router_engine, ctx, plain, known) == [True, True]
    assert len(history(router_engine, case_id)) == 1


def test_a_contact_before_its_consultation_is_applied_once_the_case_is_routed(
    router_engine: Engine, ctx: RouterContext
) -> None:
    early, same_batch = str(uuid.uuid4()), str(uuid.uuid4())
    news = contact(early, members=[(Relation.spouse, ["cancer"])])
    consume(router_engine, ctx, news)
    with db.transaction(router_engine, RoutingBatch) as session:
        assert session.get(PendingContact, news.data.contact_id) is not None, "kept, not lost"
    received = consultation(early, "chiiki-07", POVERTY, EMPLOYMENT)
    consume(router_engine, ctx, received)

    first, second = history(router_engine, early)
    assert (first.kind, first.tier, second.kind, second.tier) == ("initial", 2, "reassessment", 3)
    assert second.changes.contact_id == news.data.contact_id
    with db.transaction(router_engine, RoutingBatch) as session:
        assert session.exec(select(PendingContact).where(PendingContact.case_id == early)).first() is None

    # Both in one batch, the contact first (the topics are not ordered against each other).
    other = contact(same_batch, issues=[(0, ["employment"])])
    consume(router_engine, ctx, other, consultation(same_batch, "chiiki-07", POVERTY))
    assert [(d.kind, d.tier) for d in history(router_engine, same_batch)] == [("initial", 1), ("reassessment", 2)]

    # Redelivered, the events change nothing more: the processed-event table knows them.
    assert consume(router_engine, ctx, news, received, other) == [False, False, False]
    assert len(history(router_engine, early)) == 2 and len(history(router_engine, same_batch)) == 2


def test_a_contact_routed_in_the_same_batch_as_its_consultation_is_applied_after_it(
    router_engine: Engine, ctx: RouterContext
) -> None:
    case_id = str(uuid.uuid4())
    consume(
        router_engine,
        ctx,
        consultation(case_id, "chiiki-07", POVERTY),
        contact(case_id, issues=[(0, ["employment"])]),
    )
    assert [(d.kind, d.tier) for d in history(router_engine, case_id)] == [("initial", 1), ("reassessment", 2)]
    assert set(referrals_by_agency(router_engine, case_id)) == TIER2_AGENCIES | {"hoken-07"}


def test_issues_for_a_member_the_case_does_not_have_cannot_be_applied(
    router_engine: Engine, ctx: RouterContext
) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY, EMPLOYMENT)
    with pytest.raises(DomainError) as caught:
        consume(router_engine, ctx, contact(case_id, issues=[(2, ["health"])]))
    assert caught.value.code == "unappliable-contact", "dead-lettered with its reason"
    assert len(history(router_engine, case_id)) == 1


def test_a_partner_reads_no_changes_of_other_agencies(router_engine: Engine, ctx: RouterContext) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY, EMPLOYMENT)
    consume(router_engine, ctx, contact(case_id, members=[(Relation.parent, ["cancer"])]))
    partner = read(router_engine, case_id, as_agency("hellowork-nabari"), in_force_only=False)
    assert partner is not None
    assert [(d.view, d.changes) for d in partner] == [("partner", None), ("partner", None)]


@pytest.mark.parametrize("first", ["consultation", "contact"])
def test_a_consultation_and_its_contact_applied_at_once_by_two_instances_lose_nothing(
    router_engine: Engine, ctx: RouterContext, first: str
) -> None:
    """Two instances each hold one of the topics: whichever applies its event second waits for the
    case's lock, then sees what the first committed (a routed case, or a contact kept for it)."""
    case_id = str(uuid.uuid4())
    received = consultation(case_id, "chiiki-07", POVERTY)
    news = contact(case_id, issues=[(0, ["employment"])])
    early, late = (received, news) if first == "consultation" else (news, received)
    holding = RoutingBatch(router_engine, expire_on_commit=False)
    transaction = holding.begin()
    decisions.prepare_batch(holding, [early])
    if first == "consultation":
        decisions.route(holding, received, ctx=ctx)
    else:
        decisions.record_contact(holding, news, ctx=ctx)

    second, outcome = in_thread(lambda: consume(router_engine, ctx, late))
    try:
        assert waiting_for_a_lock(router_engine), "the second waits for the case's lock"
        assert second.is_alive()
        transaction.commit()
    finally:
        holding.close()
        second.join(timeout=30)
    assert "error" not in outcome, outcome
    assert [(d.kind, d.tier) for d in history(router_engine, case_id)] == [("initial", 1), ("reassessment", 2)]
