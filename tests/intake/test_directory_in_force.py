"""Intake keeps each municipality's directory in force from the router's DirectoryPublished (issue 24):
a new area is accepted as soon as the event arrives, without a restart; an older or repeated
publication changes nothing; and each case names the directory its area was accepted under."""

import asyncio
import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import yaml
from aiokafka import AIOKafkaProducer
from sqlalchemy import text

from shared import db
from shared.auth import Scope
from shared.directory import demo_directory_path, load_directory
from shared.events import DirectoryPublished, encode, new_event
from shared.settings import Settings
from tests.conftest import topic_of
from tests.intake.conftest import PARTNER

NEW_AREA = "chiiki-16"


def with_new_area(area_id: str) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(yaml.safe_load(demo_directory_path().read_text(encoding="utf-8")))
    new = {"id": area_id, "name": area_id, "kind": "elementary_school_district", "parent": "chu-5"}
    body["municipality"]["areas"].append(new)
    return body


async def publish(settings: Settings, body: dict[str, Any], at: datetime) -> str:
    """Publish `body` as the router would, published at `at`; returns the event id."""
    data = DirectoryPublished(version=f"v{at.timestamp():.0f}", body=body, source="admin:operator", published_at=at)
    event = new_event(data, source="/marugoto/router", subject="242080", municipality_code="242080")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic_of(settings, DirectoryPublished), encode(event), key=b"242080")
    finally:
        await producer.stop()
    return event.id


def consultation(area: str) -> dict[str, Any]:
    return {
        "municipality_code": "242080",
        "area": area,
        "pathway": "self",
        "household": [{"relation": "self", "age": 45, "issues": ["poverty"]}],
    }


async def submit_until(intake: httpx.AsyncClient, headers: dict[str, str], area: str, want: int) -> httpx.Response:
    """POST a consultation in `area` until the status is `want` (ten seconds at most)."""
    for _ in range(50):
        response = await intake.post("/v1/consultations", json=consultation(area), headers=headers)
        if response.status_code == want:
            return response
        await asyncio.sleep(0.2)
    raise AssertionError(f"area {area}: never {want}; last {response.status_code} {response.text}")


def query(settings: Settings, sql: str, **params: Any) -> list[Any]:
    engine = db.make_engine(settings, "intake")
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    finally:
        engine.dispose()


async def until_processed(settings: Settings, event_id: str) -> None:
    for _ in range(50):
        if query(settings, "SELECT 1 FROM intake.processed_event WHERE event_id = :id", id=event_id):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"event {event_id} never processed")


async def test_a_published_area_is_accepted_without_restart_and_an_older_publication_changes_nothing(
    intake: httpx.AsyncClient, intake_settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    partner = bearer(PARTNER, Scope.submit, Scope.read_own)
    refused = await intake.post("/v1/consultations", json=consultation(NEW_AREA), headers=partner)
    assert refused.status_code == 422, refused.text

    now = datetime.now(UTC)
    body = with_new_area(NEW_AREA)
    await publish(intake_settings, body, now)
    accepted = await submit_until(intake, partner, NEW_AREA, 202)
    [(version,)] = query(
        intake_settings, 'SELECT directory_version FROM intake."case" WHERE id = :id', id=accepted.json()["case_id"]
    )
    assert version == load_directory(body).version

    # Published earlier (late on the wire), with another area instead: it does not replace the later one.
    late = await publish(intake_settings, with_new_area("chiiki-17"), now - timedelta(minutes=1))
    await until_processed(intake_settings, late)
    refused = await intake.post("/v1/consultations", json=consultation("chiiki-17"), headers=partner)
    assert refused.status_code == 422, refused.text
    assert (await intake.post("/v1/consultations", json=consultation(NEW_AREA), headers=partner)).status_code == 202
    [(stored,)] = query(
        intake_settings, "SELECT version FROM intake.directory_in_force WHERE municipality_code = '242080'"
    )
    assert stored == f"v{now.timestamp():.0f}"
