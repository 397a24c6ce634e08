"""The router publishes DirectoryPublished, through its outbox in the same transaction, whenever a
directory version comes into force (issue 24): an admin's replacement, or a seed file that changed."""

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from services.router.directories import replace_directory, seed_directories
from services.router.errors import InvalidDirectory
from services.router.models import RouterOutbox
from shared import db
from shared.directory import demo_directory_path
from shared.events import DirectoryPublished, Envelope, decode
from shared.settings import Settings


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = db.make_engine(settings, "router")
    db.upgrade(engine, "router")
    yield engine
    engine.dispose()


def demo_body() -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    return body


def published(engine: Engine) -> list[Envelope[DirectoryPublished]]:
    with Session(engine) as session:
        rows = session.exec(select(RouterOutbox).order_by(col(RouterOutbox.id))).all()
    return [
        decode(row.payload.encode(), DirectoryPublished) for row in rows if row.topic.endswith("directory.published")
    ]


def test_a_fresh_seed_publishes_each_file_once(engine: Engine) -> None:
    body = demo_body()
    with db.transaction(engine) as session:
        seed_directories(session, {"242080": body})
    [event] = published(engine)
    assert (event.subject, event.municipalitycode) == ("242080", "242080")
    assert event.data.body == body and event.data.source == "file"

    # A restart with the same file puts nothing new in force: nothing is published.
    with db.transaction(engine) as session:
        seed_directories(session, {"242080": body})
    assert len(published(engine)) == 1

    # A changed file is a new version in force, published with it.
    changed = copy.deepcopy(body)
    changed["municipality"]["general_window"] = "nabari-shakyo"
    with db.transaction(engine) as session:
        seed_directories(session, {"242080": changed})
    first, second = published(engine)
    assert second.data.version != first.data.version
    assert second.data.body["municipality"]["general_window"] == "nabari-shakyo"
    assert second.data.published_at > first.data.published_at


def test_an_admin_replacement_publishes_in_its_transaction(engine: Engine) -> None:
    body = demo_body()
    with db.transaction(engine) as session:
        seed_directories(session, {"242080": body})
    changed = copy.deepcopy(body)
    changed["municipality"]["lead"] = "nabari-jiritsu"
    with db.transaction(engine) as session:
        row = replace_directory(session, "242080", changed, source="admin:operator")
        version = row.version
    seeded, replaced = published(engine)
    assert (replaced.data.version, replaced.data.source) == (version, "admin:operator")
    assert replaced.data.body["municipality"]["lead"] == "nabari-jiritsu"

    # Putting the earlier version back in force is an activation like any other: published again, later.
    with db.transaction(engine) as session:
        replace_directory(session, "242080", body, source="admin:operator")
    again = published(engine)[-1]
    assert again.data.version == seeded.data.version and again.data.published_at > replaced.data.published_at

    # A refused body puts nothing in force and publishes nothing (the transaction rolls back).
    with pytest.raises(InvalidDirectory), db.transaction(engine) as session:
        replace_directory(
            session, "242080", {**body, "municipality": {**body["municipality"], "lead": "nobody"}}, source="x"
        )
    assert len(published(engine)) == 3
