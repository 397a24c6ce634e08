"""Issue 8, point 2: with a Docker engine, the end-to-end spine runs on testcontainers' Kafka and PostgreSQL.

The same test as tests/e2e/test_spine.py (four service processes, a consultation routed, referred,
scheduled and counted, no personal data on any topic), against Kafka in KRaft mode and PostgreSQL 16 in
containers, with the idempotent producer on as in production. These containers are started here
whatever KAFKA_BOOTSTRAP_SERVERS or MARUGOTO_TEST_POSTGRES_URL say. Without a Docker engine the test is
skipped with that reason; the embedded broker and this machine's PostgreSQL run the spine in
tests/e2e/test_spine.py either way.
"""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.cli import upgrade_databases
from shared.settings import Settings
from tests.conftest import docker_available, service_env
from tests.e2e.processes import ServiceProcess, running
from tests.e2e.test_spine import test_consultation_is_routed_referred_scheduled_and_counted as spine

NO_DOCKER = (
    "no Docker engine: the testcontainers path (Kafka in KRaft mode + PostgreSQL) needs one; "
    "the embedded broker and this machine's PostgreSQL run the same spine test in tests/e2e/test_spine.py"
)

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not docker_available(), reason=NO_DOCKER)]


@pytest.fixture(scope="module")
def kafka_bootstrap() -> Iterator[str]:
    """Kafka in KRaft mode in a container (overrides the session's broker for this module)."""
    from testcontainers.community.kafka import KafkaContainer

    with KafkaContainer().with_kraft() as kafka:
        yield kafka.get_bootstrap_server()


@pytest.fixture(scope="module")
def postgres_admin_url() -> Iterator[str]:
    """PostgreSQL 16 in a container (overrides the session's server for this module)."""
    from testcontainers.community.postgres import PostgresContainer

    with PostgresContainer("postgres:16", driver=None) as postgres:
        yield postgres.get_connection_url()


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    """The four services as separate processes, configured as in production (idempotent producer)."""
    upgrade_databases(settings)
    env = service_env(settings, MARUGOTO_KAFKA_ENABLE_IDEMPOTENCE="true")
    with running(("intake", "router", "conference", "metrics"), env, tmp_path) as services:
        yield services


async def test_spine_on_testcontainers(
    stack: dict[str, ServiceProcess], settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    await spine(stack, settings, bearer)
