"""In-process router tests: the service functions on a PostgreSQL database of their own, no broker."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine

from services.cli import upgrade_databases
from services.router import cases, decisions
from services.router.batch import RoutingBatch
from services.router.context import RouterContext
from services.router.deadlines import Clock
from services.router.directories import ConfigCache, store_directory
from services.router.models import Referral
from shared import db
from shared.auth import Principal, Scope
from shared.consultation import ConsultationSummary
from shared.directory import demo_directory_path
from shared.events import ConsultationReceived, new_event
from tests.conftest import make_settings

MUNICIPALITY = "242080"


@pytest.fixture
def router_engine(database_url: str, secrets_env: dict[str, str], tmp_path: Path) -> Iterator[Engine]:
    """The router's tables in this test's database, with the demo directory (名張市) in force."""
    # No broker address is ever dialled: these tests call the service functions, not the app.
    settings = make_settings("127.0.0.1:9", database_url, "unused.", secrets_env, tmp_path)
    upgrade_databases(settings, ["router"])
    engine = db.make_engine(settings, "router")
    body = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    with db.transaction(engine, RoutingBatch) as session:
        store_directory(session, body, source="test", activate=True)
    yield engine
    engine.dispose()


@pytest.fixture
def ctx() -> RouterContext:
    """The real calendar: deadlines lie business days ahead, so no timer fires unless a test says so."""
    return RouterContext(configs=ConfigCache(), clock=Clock())


def route(engine: Engine, ctx: RouterContext, area: str, *members: list[str]) -> str:
    """Route a consultation of a household with these members' issue tags; returns the case id."""
    case_id = str(uuid.uuid4())
    household: list[dict[str, Any]] = [
        {"relation": "self" if i == 0 else "child", "issues": issues} for i, issues in enumerate(members)
    ]
    summary = ConsultationSummary.model_validate({"area": area, "pathway": "self", "household": household})
    data = ConsultationReceived(
        case_id=case_id, consultation_id=case_id, submitted_by="t", received_at=datetime.now(UTC), consultation=summary
    )
    envelope = new_event(data, source="/test", subject=case_id, municipality_code=MUNICIPALITY)
    with db.transaction(engine, RoutingBatch) as session:
        decisions.route(session, envelope, ctx=ctx)
    return case_id


def referrals_by_agency(engine: Engine, case_id: str) -> dict[str, Referral]:
    """The case's referrals by agency (the latest one of each agency)."""
    with db.transaction(engine, RoutingBatch) as session:
        return {r.agency_id: r for r in cases.referrals_of_case(session, case_id)}


def as_agency(agency_id: str, *scopes: Scope, municipalities: tuple[str, ...] = (MUNICIPALITY,)) -> Principal:
    """The credential of a coordinator of `agency_id` (plus any other scopes), serving 名張市 unless told."""
    return Principal(
        agency_id=agency_id,
        scopes=frozenset({Scope.coordinator, *scopes}),
        token_id="test",
        municipalities=frozenset(municipalities),
    )
