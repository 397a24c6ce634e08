"""An in-process intake app on the real broker and PostgreSQL, with helpers to act as agencies."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.cli import upgrade_databases
from services.intake.app import create
from shared.auth import Scope
from shared.events import EventData, ReferralRequested, ReferralStatus, ReferralStatusChanged, encode, new_event
from shared.settings import Settings
from tests.conftest import log_staged_events, make_settings, new_database, new_topic_prefix, topic_of

PARTNER = "nabari-shakyo"  # a partner agency of the demo directory that submits consultations
OTHER = "nabari-jiritsu"
ENGAGED = "mie-hikikomori"


@pytest.fixture(scope="module")
async def intake_settings(
    kafka_bootstrap: str,
    postgres_admin_url: str,
    secrets_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Settings]:
    """Settings of one intake app shared by a test module (its own database and topics)."""
    with new_database(postgres_admin_url) as database_url:
        prefix = await new_topic_prefix(kafka_bootstrap)
        yield make_settings(kafka_bootstrap, database_url, prefix, secrets_env, tmp_path_factory.mktemp("intake"))


@pytest.fixture(scope="module")
async def intake(intake_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a running intake app (lifespan started: broker, relay and consumers)."""
    upgrade_databases(intake_settings, ["intake"])
    log_staged_events(str(intake_settings.database_url), ["intake"])
    app = create(intake_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            yield client


@pytest.fixture
def as_partner(bearer: Callable[..., dict[str, str]]) -> dict[str, str]:
    return bearer(PARTNER, Scope.submit, Scope.read_own)


@pytest.fixture
def as_other(bearer: Callable[..., dict[str, str]]) -> dict[str, str]:
    return bearer(OTHER, Scope.submit, Scope.read_own)


@pytest.fixture
def as_engaged(bearer: Callable[..., dict[str, str]]) -> dict[str, str]:
    return bearer(ENGAGED, Scope.submit, Scope.read_own, Scope.coordinator)


@pytest.fixture
def as_operator(bearer: Callable[..., dict[str, str]]) -> dict[str, str]:
    return bearer("operator", Scope.operator, Scope.read_own)


def with_person(body: dict[str, Any], position: int = 0, **details: str) -> dict[str, Any]:
    """`body` with personal details added to one member."""
    household = [dict(m) for m in body["household"]]
    household[position].update(details)
    return {**body, "household": household}


async def publish_as_router(settings: Settings, case_id: str, data: EventData) -> None:
    """Publish `data` on its topic, keyed by the case, as the router would."""
    event = new_event(data, source="/marugoto/router", subject=case_id, municipality_code="242080")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic_of(settings, type(data)), encode(event), key=case_id.encode())
    finally:
        await producer.stop()


async def publish_referral(settings: Settings, case_id: str, agency_id: str, referral_id: str | None = None) -> str:
    """Publish the router's referral of `agency_id` to the case; returns the referral id."""
    referral = ReferralRequested(
        referral_id=referral_id or str(uuid.uuid4()),
        case_id=case_id,
        decision_id=str(uuid.uuid4()),
        agency_id=agency_id,
        agency_type="hikikomori_support_center",
        tier=2,
        rule_id="partner",
        legal_basis="実施要領 3(2) 表",
        requested_at=datetime.now(UTC),
    )
    await publish_as_router(settings, case_id, referral)
    return referral.referral_id


async def publish_status(
    settings: Settings,
    case_id: str,
    referral_id: str,
    agency_id: str,
    to_status: ReferralStatus,
    from_status: ReferralStatus = "requested",
    version: int = 0,
) -> None:
    """Publish the router's news that a referral moved to `to_status` (its `version` 0: unversioned)."""
    change = ReferralStatusChanged(
        referral_id=referral_id,
        case_id=case_id,
        agency_id=agency_id,
        from_status=from_status,
        to_status=to_status,
        reason_code="capacity" if to_status == "rejected" else None,
        changed_by=agency_id,
        changed_at=datetime.now(UTC),
        version=version,
    )
    await publish_as_router(settings, case_id, change)


async def until_status(client: httpx.AsyncClient, url: str, headers: dict[str, str], status: int) -> None:
    """Poll GET `url` until it answers `status` (the consumers apply events asynchronously)."""
    for _ in range(150):
        if (await client.get(url, headers=headers)).status_code == status:
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"{url} never answered {status}")


async def until_json(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], condition: Callable[[Any], bool]
) -> Any:
    """Poll GET `url` until its 200 body satisfies `condition`; returns that body."""
    body: Any = None
    for _ in range(150):
        response = await client.get(url, headers=headers)
        if response.status_code == 200:
            body = response.json()
            if condition(body):
                return body
        await asyncio.sleep(0.2)
    pytest.fail(f"{url} never satisfied the condition; last body: {body}")
