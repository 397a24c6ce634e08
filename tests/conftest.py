"""Session-wide real infrastructure: one Kafka-protocol broker and one PostgreSQL server.

The broker is the embedded Tansu broker unless KAFKA_BOOTSTRAP_SERVERS names one, or a Docker
engine is reachable (then testcontainers' Kafka in KRaft mode). PostgreSQL is the server at
MARUGOTO_TEST_POSTGRES_URL (default: this machine's, 127.0.0.1:5432), or testcontainers' one when
Docker is reachable and no URL is set. Every test gets its own database and its own topic prefix,
so consumer groups and counts never leak between tests.
"""

import asyncio
import dataclasses
import functools
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer
from psycopg import sql
from sqlalchemy import create_engine

from shared.auth import Scope, TokenIssuer, load_issuer
from shared.case_keys import CaseKeys, keystore_url
from shared.devsecrets import ensure_dev_secrets
from shared.embedded_broker import EmbeddedBroker
from shared.events import EventData
from shared.kafka import ensure_topics
from shared.sealing import unseal
from shared.settings import Settings

POSTGRES_URL = os.environ.get("MARUGOTO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PARTITIONS = 4
# The municipalities the suite's tokens serve unless a test names others: every code its directories
# and events use. Tests of tenancy pass `municipalities=` explicitly.
TEST_MUNICIPALITIES = (
    "011002", "012025", "032018", "131016", "131017", "162043", "162051", "232114",
    "242080", "242081", "242098", "472018", "990001", "999001", "999002", "999999",
)  # fmt: skip


@functools.cache
def docker_available() -> bool:
    """True when a Docker engine answers (never on our machines; CI elsewhere may have one)."""
    if shutil.which("docker") is None:
        return False
    try:
        import docker

        docker.from_env().ping()
    except Exception:
        return False
    return True


# On the embedded broker a consumer-group join takes about half the session timeout, with a floor of about
# a second (docs/adr/0006), and a member killed with SIGKILL holds its partitions until its session
# expires. The services' default (6 s, a 3 s join) would cost every app start, reader and take-over in the
# suite seconds of waiting; the tests use a 2 s session (a 1 s join), with heartbeats often enough to keep
# it. Apache Kafka refuses sessions under its `group.min.session.timeout.ms` (6 s by default), so only on
# the embedded one.
FAST_GROUP_SETTINGS = {"kafka_session_timeout_ms": 2000, "kafka_heartbeat_interval_ms": 300}


def fast_group_settings() -> dict[str, int]:
    """The short consumer-group session (as Settings fields) when the session's broker is the embedded one."""
    if "KAFKA_BOOTSTRAP_SERVERS" in os.environ or docker_available():
        return {}
    return dict(FAST_GROUP_SETTINGS)


def fast_group_env() -> dict[str, str]:
    """The same, as the environment of a service process."""
    return {f"MARUGOTO_{name.upper()}": str(value) for name, value in fast_group_settings().items()}


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The bootstrap address of the session's broker."""
    if configured := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield configured
    elif docker_available():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
    else:
        with EmbeddedBroker(partitions=PARTITIONS) as broker:
            yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A URL of a PostgreSQL server where tests may create and drop databases."""
    if "MARUGOTO_TEST_POSTGRES_URL" not in os.environ and docker_available():
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as postgres:
            yield postgres.get_connection_url()
    else:
        yield POSTGRES_URL


def _replace_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@contextmanager
def new_database(postgres_admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped at the end of the block."""
    name = f"marugoto_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _replace_database(postgres_admin_url, name)
    finally:
        with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def log_staged_events(database_url: str, services: list[str]) -> None:
    """Record every event the services stage in a `<service>.staged_event` table of the test's own.

    The relay deletes an outbox row once it is published, so the outbox alone no longer says what a
    service has staged; a trigger copies each row as it is inserted (and a rolled-back insert leaves
    no copy). Call it after the services' migrations.
    """
    with psycopg.connect(database_url, autocommit=True) as conn:
        for service in services:
            schema = sql.Identifier(service)
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {schema}.staged_event (event_id text, topic text, key text);"
                    "CREATE FUNCTION {schema}.log_staged_event() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "INSERT INTO {schema}.staged_event VALUES (NEW.event_id, NEW.topic, NEW.key); RETURN NEW; END $$;"
                    "CREATE TRIGGER log_staged_event AFTER INSERT ON {schema}.outbox "
                    "FOR EACH ROW EXECUTE FUNCTION {schema}.log_staged_event()"
                ).format(schema=schema)
            )


async def new_topic_prefix(kafka_bootstrap: str) -> str:
    """A topic namespace of its own, with every Marugoto topic created in it."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    await ensure_topics(kafka_bootstrap, partitions=PARTITIONS, prefix=prefix)
    return prefix


@pytest.fixture
def database_url(postgres_admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test."""
    with new_database(postgres_admin_url) as url:
        yield url


@pytest.fixture
async def topic_prefix(kafka_bootstrap: str) -> str:
    """A topic namespace of this test's own."""
    return await new_topic_prefix(kafka_bootstrap)


@pytest.fixture(scope="session")
def secrets_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Signing and personal-data keys for the session, as the environment variables services read."""
    return ensure_dev_secrets(tmp_path_factory.mktemp("secrets"))


@pytest.fixture
def settings(
    kafka_bootstrap: str, database_url: str, topic_prefix: str, secrets_env: dict[str, str], tmp_path: Path
) -> Settings:
    """Settings pointing at the session broker, this test's database and this test's topics."""
    return make_settings(kafka_bootstrap, database_url, topic_prefix, secrets_env, tmp_path)


def make_settings(
    kafka_bootstrap: str, database_url: str, topic_prefix: str, secrets_env: dict[str, str], tmp_path: Path
) -> Settings:
    """Settings for the given broker, database, topic namespace and keys."""
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        DATABASE_URL=database_url,
        kafka_topic_prefix=topic_prefix,
        kafka_topic_partitions=PARTITIONS,
        data_dir=tmp_path / "data",
        outbox_poll_interval_s=0.1,
        auth_private_key_file=secrets_env["MARUGOTO_AUTH_PRIVATE_KEY_FILE"],
        auth_public_key_files=json.loads(secrets_env["MARUGOTO_AUTH_PUBLIC_KEY_FILES"]),
        personal_data_keys=json.loads(secrets_env["MARUGOTO_PERSONAL_DATA_KEYS"]),
        personal_index_key=secrets_env["MARUGOTO_PERSONAL_INDEX_KEY"],
    )
    _keystores_in_use.append(keystore_url(settings))
    del _keystores_in_use[:-3]
    return settings.model_copy(update=fast_group_settings())


# The key stores of the tests' latest settings: the test readers open sealed events with them, as the
# services that hold keys do (shared/sealing.py); `read_events(..., opened=False)` reads them as on the wire.
_keystores_in_use: list[str] = []
_SEALED_MARK = b'"sealed":"'


@functools.cache
def _case_keys(url: str) -> CaseKeys:
    return CaseKeys(create_engine(url), ttl_s=0)


def open_record(record: Any) -> Any:
    """`record` with its sealed fields opened by the key of its case, where a key store of the tests holds it."""
    if not isinstance(record.value, bytes) or _SEALED_MARK not in record.value:
        return record
    envelope = json.loads(record.value)
    case_id = envelope["sealedkey"]
    for url in reversed(_keystores_in_use):
        try:
            key = _case_keys(url).keys_for({case_id}, create=False).get(case_id)
        except Exception:
            continue
        if key is not None:
            return dataclasses.replace(record, value=json.dumps(unseal(envelope, key)).encode())
    return record


@pytest.fixture(scope="session")
def issuer(secrets_env: dict[str, str]) -> TokenIssuer:
    """Issues tokens as intake would, for tests that act as a given agency."""
    return load_issuer(Path(secrets_env["MARUGOTO_AUTH_PRIVATE_KEY_FILE"]).read_text())


@pytest.fixture(scope="session")
def bearer(issuer: TokenIssuer) -> Callable[..., dict[str, str]]:
    """`bearer(agency_id, *scopes, municipalities=…)`: an Authorization header for that agency."""

    def header(agency_id: str, *scopes: Scope, municipalities: tuple[str, ...] = TEST_MUNICIPALITIES) -> dict[str, str]:
        token, _ = issuer.issue(agency_id, scopes or (Scope.submit, Scope.read_own), municipalities=municipalities)
        return {"Authorization": f"Bearer {token}"}

    return header


def service_env(settings: Settings, **extra: Any) -> dict[str, str]:
    """Environment for a service subprocess that uses `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARUGOTO_")}
    env.update(
        MARUGOTO_AUTH_PRIVATE_KEY_FILE=str(settings.auth_private_key_file),
        MARUGOTO_AUTH_PUBLIC_KEY_FILES=json.dumps([str(p) for p in settings.auth_public_key_files]),
        MARUGOTO_PERSONAL_DATA_KEYS=json.dumps([k.get_secret_value() for k in settings.personal_data_keys]),
        MARUGOTO_PERSONAL_INDEX_KEY=settings.personal_index_key.get_secret_value()
        if settings.personal_index_key
        else "",
    )
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=str(settings.kafka_bootstrap_servers),
        DATABASE_URL=str(settings.database_url),
        MARUGOTO_KAFKA_TOPIC_PREFIX=settings.kafka_topic_prefix,
        MARUGOTO_KAFKA_TOPIC_PARTITIONS=str(settings.kafka_topic_partitions),
        MARUGOTO_DATA_DIR=str(settings.data_dir),
        MARUGOTO_OUTBOX_POLL_INTERVAL_S=str(settings.outbox_poll_interval_s),
        MARUGOTO_KAFKA_SESSION_TIMEOUT_MS=str(settings.kafka_session_timeout_ms),
        MARUGOTO_KAFKA_HEARTBEAT_INTERVAL_MS=str(settings.kafka_heartbeat_interval_ms),
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _reader(bootstrap: str, *topics: str) -> AIOKafkaConsumer:
    """A plain aiokafka consumer, not part of the project, in a group of its own, from the beginning."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=f"test-reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=FAST_GROUP_SETTINGS["kafka_session_timeout_ms"] if fast_group_settings() else 6000,
        heartbeat_interval_ms=FAST_GROUP_SETTINGS["kafka_heartbeat_interval_ms"] if fast_group_settings() else 1000,
    )


async def read_events(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[Any]], bool],
    timeout_s: float = 30.0,
    opened: bool = True,
) -> list[Any]:
    """Read records of `topic` from the beginning until `until` holds (or the timeout passes); sealed fields
    opened (`opened`) as a service holding keys reads them, or as they are on the wire."""
    return await _read(_reader(bootstrap, topic), until=until, idle_s=None, timeout_s=timeout_s, opened=opened)


async def read_all(
    bootstrap: str, topics: list[str], *, idle_s: float = 2.0, timeout_s: float = 30.0, opened: bool = True
) -> list[Any]:
    """Every record of `topics` from the beginning: read until nothing new arrives for `idle_s`."""
    reader = _reader(bootstrap, *topics)
    return await _read(reader, until=lambda _: False, idle_s=idle_s, timeout_s=timeout_s, opened=opened)


async def _read(
    consumer: AIOKafkaConsumer,
    *,
    until: Callable[[list[Any]], bool],
    idle_s: float | None,
    timeout_s: float,
    opened: bool = True,
) -> list[Any]:
    await consumer.start()
    records: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        last_new = loop.time()
        while not until(records) and loop.time() < deadline:
            if idle_s is not None and records and loop.time() - last_new >= idle_s:
                break
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                records.extend(map(open_record, batch) if opened else batch)
                last_new = loop.time()
    finally:
        await consumer.stop()
    return records


def topic_of(settings: Settings, model: type[EventData]) -> str:
    """The full name of `model`'s topic under the test's prefix."""
    return settings.kafka_topic_prefix + model.topic
