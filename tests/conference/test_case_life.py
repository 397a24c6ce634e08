"""A case's life after routing: a 終結 closes it (or leaves it under 見守り with its 主担当), a new contact
reopens it as the same case, a 転居 closes it as moved_away; each change published as CaseLifeChanged and
shown on the case's meetings, with no household details."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from services.conference.case_meetings import apply_contact_recorded
from services.conference.life import apply_case_transferred
from services.conference.models import CaseState
from shared import db
from shared.auth import Scope
from shared.events import CaseLifeChanged, CaseTransferred, ContactRecorded, new_event
from tests.conference.test_meeting_kinds import consent, problem
from tests.conference.test_meetings import published
from tests.conference.test_need_to_know import (
    LEAD,
    NABARI,
    NEIGHBOUR,
    Conference,
    conference,
    engine,
    routed,
    two_municipalities,
)

__all__ = ["conference", "engine", "two_municipalities"]  # fixtures, shared with test_need_to_know

ATTENDED = {"attendance": [{"participant": LEAD, "kind": "agency", "sector": "welfare", "attended": True}]}


def life(conference: Conference, case_id: str) -> list[CaseLifeChanged]:
    with db.transaction(conference.engine) as session:
        return [e.data for e in published(session, CaseLifeChanged) if e.data.case_id == case_id]


def state_of(conference: Conference, case_id: str) -> CaseState:
    with db.transaction(conference.engine) as session:
        state = session.get_one(CaseState, case_id)
        session.expunge(state)
        return state


def contact(conference: Conference, case_id: str, *, at: datetime) -> None:
    """Intake's ContactRecorded of a later contact with the household, applied as the consumer does."""
    data = ContactRecorded(
        case_id=case_id,
        contact_id=str(uuid.uuid4()),
        submitted_by="hoken-07",
        received_at=at,
        pathway="self",
        found_by="outreach",
    )
    with db.transaction(conference.engine) as session:
        apply_contact_recorded(session, new_event(data, source="/t", subject=case_id, municipality_code=NABARI))


def transferred(conference: Conference, case_id: str, *, to_case_id: str | None) -> None:
    data = CaseTransferred(
        case_id=case_id,
        to_case_id=to_case_id,
        from_municipality=NABARI,
        to_municipality=NEIGHBOUR if to_case_id else None,
        personal_details_copied=False,
        transferred_by=LEAD,
        transferred_at=datetime.now(UTC),
    )
    with db.transaction(conference.engine) as session:
        apply_case_transferred(session, new_event(data, source="/t", subject=case_id, municipality_code=NABARI))


async def held_plan_meeting(conference: Conference, lead: dict[str, str], case_id: str) -> str:
    created = await conference.client.post("/v1/plan-meetings", json={"case_id": case_id}, headers=lead)
    assert created.status_code == 201, created.text
    path = f"/v1/meetings/{created.json()['id']}"
    assert (await conference.client.post(f"{path}/attendance", json=ATTENDED, headers=lead)).status_code == 200
    return path


async def test_a_closure_closes_the_case_or_leaves_it_watched_and_a_new_contact_reopens_it(
    conference: Conference, bearer: Callable[..., dict[str, str]]
) -> None:
    case_id = str(uuid.uuid4())
    conference.route(routed(case_id, ["hoken-07", "nabari-jiritsu"]))
    consent(conference, case_id)
    client = conference.client
    lead = bearer(LEAD, Scope.coordinator, municipalities=(NABARI,))
    engaged = bearer("hoken-07", Scope.coordinator, municipalities=(NABARI,))
    path = await held_plan_meeting(conference, lead, case_id)
    assert (await client.get(path, headers=engaged)).json()["case_life"] == "active"

    closure: dict[str, Any] = {
        "type": "closure",
        "closure_reason": "goals_met",
        "lead_agency": "hoken-07",
        "watch": True,
        "next_review": "2027-06-01",
    }
    ended = await client.post(f"{path}/decisions", json=closure, headers=lead)
    assert ended.status_code == 201, ended.text
    assert ended.json()["case_life"] == "watching"
    [watching] = life(conference, case_id)
    assert (watching.state, watching.reason, watching.main_agency, str(watching.watch_until)) == (
        "watching",
        "goals_met",
        "hoken-07",
        "2027-06-01",
    )
    assert watching.decided_at_meeting == path.rsplit("/", 1)[-1]

    # A correction of the 終結 (no 見守り after all) is a new change of the case's life.
    corrected = {**closure, "watch": False, "next_review": None, "corrects": ended.json()["decisions"][0]["id"]}
    assert (await client.post(f"{path}/decisions", json=corrected, headers=lead)).status_code == 201
    closed = life(conference, case_id)[-1]
    assert (closed.state, closed.reason, closed.watch_until) == ("closed", "goals_met", None)
    shown = (await client.get(path, headers=engaged)).json()
    assert shown["case_life"] == "closed"
    # No plan is drafted on a closed case: a new contact reopens it first.
    plan = await client.post(f"/v1/cases/{case_id}/plans", json={}, headers=lead)
    assert problem(plan, 409, "plan-not-for-this-case")

    # A contact recorded before the 終結 and delivered late reopens nothing.
    contact(conference, case_id, at=closed.changed_at - timedelta(minutes=5))
    assert len(life(conference, case_id)) == 2
    contact(conference, case_id, at=datetime.now(UTC))
    reopened = life(conference, case_id)[-1]
    assert (reopened.state, reopened.reason, reopened.main_agency) == ("reopened", None, "hoken-07")
    contact(conference, case_id, at=datetime.now(UTC))
    assert len(life(conference, case_id)) == 3, "a reopened case is the same open case: one 実件数"
    assert state_of(conference, case_id).life_state == "reopened"
    assert (await client.post(f"/v1/cases/{case_id}/plans", json={}, headers=lead)).status_code == 201


async def test_a_transfer_closes_the_case_that_moved_away_unless_already_closed(
    conference: Conference, bearer: Callable[..., dict[str, str]]
) -> None:
    moving, watched, ended = (str(uuid.uuid4()) for _ in range(3))
    for case_id in (moving, watched, ended):
        conference.route(routed(case_id, ["hoken-07"]))
        consent(conference, case_id)
    lead = bearer(LEAD, Scope.coordinator, municipalities=(NABARI,))
    for case_id, watch in ((watched, True), (ended, False)):
        path = await held_plan_meeting(conference, lead, case_id)
        closure = {"type": "closure", "closure_reason": "goals_met", "lead_agency": LEAD, "watch": watch}
        if watch:
            closure["next_review"] = "2027-06-01"
        assert (await conference.client.post(f"{path}/decisions", json=closure, headers=lead)).status_code == 201

    new_case = str(uuid.uuid4())
    transferred(conference, moving, to_case_id=new_case)
    [moved] = life(conference, moving)
    assert (moved.state, moved.reason, moved.main_agency) == ("closed", "moved_away", None)
    state = state_of(conference, moving)
    assert (state.life_state, state.life_reason) == ("closed", "moved_away")
    assert (state.transferred_to_case, state.transferred_to_municipality) == (new_case, NEIGHBOUR)

    # Under 見守り, the household that left is no longer watched here.
    transferred(conference, watched, to_case_id=None)
    assert [(c.state, c.reason) for c in life(conference, watched)] == [
        ("watching", "goals_met"),
        ("closed", "moved_away"),
    ]
    # Already closed: the link is kept, and nothing else changes.
    transferred(conference, ended, to_case_id=None)
    assert [(c.state, c.reason) for c in life(conference, ended)] == [("closed", "goals_met")]
    assert state_of(conference, ended).life_reason == "goals_met"
