"""Conference keeps each municipality's directory in force from the router's DirectoryPublished (issue 24):
a later version replaces the configuration at once, an older or repeated one changes nothing, and a
restart keeps the latest (the files only seed a fresh deployment)."""

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine

from services.conference.config import build_configs
from services.conference.context import ConferenceContext
from shared import db
from shared.directory import demo_directory_path, load_directory
from shared.events import DirectoryPublished, Envelope, new_event
from shared.settings import Settings

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = db.make_engine(settings, "conference")
    db.upgrade(engine, "conference")
    yield engine
    engine.dispose()


def demo_body() -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    return body


def seeded() -> ConferenceContext:
    """A context as the service builds it at start from the demo file."""
    body = demo_body()
    files = {"242080": (load_directory(body), body)}
    return ConferenceContext(configs=build_configs(files), directories=dict(files))


def with_lead(lead: str, **conference: Any) -> dict[str, Any]:
    body = copy.deepcopy(demo_body())
    body["municipality"]["lead"] = lead
    body["conference"] = conference
    return body


def published(body: dict[str, Any], at: datetime) -> Envelope[DirectoryPublished]:
    data = DirectoryPublished(version=f"v{at.timestamp():.0f}", body=body, source="admin:operator", published_at=at)
    return new_event(data, source="/marugoto/router", subject="242080", municipality_code="242080")


def apply(engine: Engine, context: ConferenceContext, envelope: Envelope[DirectoryPublished]) -> None:
    with db.transaction(engine) as session:
        context.in_force.apply(session, envelope)


def test_a_later_version_replaces_the_configuration_and_an_older_one_does_not(engine: Engine) -> None:
    context = seeded()
    configs = context.configs  # the dict the consumers and API read: replaced in place
    rooms = [{"id": "会議室A", "capacity": 8}]
    apply(engine, context, published(with_lead("nabari-jiritsu", rooms=rooms), T0))
    assert configs["242080"].directory.municipality.lead == "nabari-jiritsu"
    assert [room.id for room in configs["242080"].rooms] == ["会議室A"]

    # Late, or delivered again: an earlier publication never replaces a later one.
    apply(engine, context, published(with_lead("nabari-fukushi"), T0 - timedelta(minutes=5)))
    apply(engine, context, published(with_lead("nabari-fukushi"), T0))
    assert configs["242080"].directory.municipality.lead == "nabari-jiritsu"

    apply(engine, context, published(with_lead("nabari-fukushi"), T0 + timedelta(minutes=5)))
    assert configs["242080"].directory.municipality.lead == "nabari-fukushi"
    assert configs["242080"].rooms == ()


def test_a_restart_keeps_the_latest_published_version(engine: Engine) -> None:
    apply(engine, seeded(), published(with_lead("nabari-jiritsu"), T0))

    restarted = seeded()
    assert restarted.configs["242080"].directory.municipality.lead == "nabari-houkatsu"  # the file
    with db.transaction(engine) as session:
        restarted.in_force.load_stored(session)
    assert restarted.configs["242080"].directory.municipality.lead == "nabari-jiritsu"


def test_an_unreadable_conference_section_keeps_the_previous_configuration(engine: Engine) -> None:
    context = seeded()
    before = context.configs["242080"]
    apply(engine, context, published(with_lead("nabari-jiritsu", meeting_minutes=1), T0))
    assert context.configs["242080"] is before
