"""An in-process intake app on the real broker and PostgreSQL, with helpers to act as agencies."""

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from services.cli import upgrade_databases
from services.intake.app import create
from shared.auth import Scope
from shared.settings import Settings
from tests.conftest import make_settings, new_database, new_topic_prefix

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
    return bearer(ENGAGED, Scope.read_own, Scope.coordinator)


@pytest.fixture
def as_operator(bearer: Callable[..., dict[str, str]]) -> dict[str, str]:
    return bearer("operator", Scope.operator, Scope.read_own)


def with_person(body: dict[str, Any], position: int = 0, **details: str) -> dict[str, Any]:
    """`body` with personal details added to one member."""
    household = [dict(m) for m in body["household"]]
    household[position].update(details)
    return {**body, "household": household}
