"""Infrastructure faults under a stream of consultations: the broker restarts, PostgreSQL stops.

Intake and the router run as separate OS processes and are never restarted: they must recover by
themselves, and every consultation intake accepted (202) must be routed exactly once.
"""

import asyncio
import functools
import inspect
import logging
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from services.cli import upgrade_databases
from shared.auth import Scope
from shared.embedded_broker import EmbeddedBroker, free_port
from shared.events import RoutingDecided
from tests.conftest import PARTITIONS, make_settings, new_topic_prefix, read_events, service_env, topic_of
from tests.e2e.processes import ServiceProcess, alive, running
from tests.e2e.test_spine import CONSULTATION_8050, ENGAGED_8050

pytestmark = pytest.mark.e2e

OFFER_INTERVAL_S = 0.1  # a steady ten consultations a second
BROKER_OUTAGE_S = 5.0  # from the broker's exit to its restart
DATABASE_OUTAGE_S = 4.0  # from PostgreSQL's stop to its start
ROUTED_BEFORE_FAULT = 10  # the stream is flowing end to end when the fault strikes
ACCEPTED_AFTER_RECOVERY = 10  # a second of the stream: intake takes consultations again, and they are routed


@dataclass
class Offered:
    """What intake answered to the consultations offered to it."""

    accepted: list[str] = field(default_factory=list)  # case ids of 202 answers, in order
    refused: list[int | str] = field(default_factory=list)  # 503, or the name of a transport error
    unexpected: list[tuple[int, str]] = field(default_factory=list)


async def offer_consultations(intake_url: str, headers: dict[str, str], offered: Offered, stop: asyncio.Event) -> None:
    """POST a consultation every OFFER_INTERVAL_S until `stop` is set, recording each answer."""
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    async with httpx.AsyncClient(base_url=intake_url, headers=headers, timeout=10) as client:
        while not stop.is_set():
            try:
                response = await client.post("/v1/consultations", json=CONSULTATION_8050)
            except httpx.HTTPError as exc:
                offered.refused.append(type(exc).__name__)
            else:
                if response.status_code == 202:
                    offered.accepted.append(response.json()["case_id"])
                elif response.status_code == 503 and response.headers["content-type"] == "application/problem+json":
                    offered.refused.append(503)
                else:
                    offered.unexpected.append((response.status_code, response.text[:300]))
            next_at += OFFER_INTERVAL_S
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, next_at - loop.time()))


@asynccontextmanager
async def streaming(intake: ServiceProcess, headers: dict[str, str]) -> AsyncIterator[Offered]:
    """Offer consultations to `intake` in the background for the duration of the block."""
    offered, stop = Offered(), asyncio.Event()
    task = asyncio.create_task(offer_consultations(intake.url, headers, offered, stop))
    try:
        yield offered
    finally:
        stop.set()
        await task


async def eventually(check: Callable[[], Any], *, timeout_s: float, what: str) -> None:
    """Wait until `check()` (sync or async) holds, polling, for at most `timeout_s`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout_s} s: {what}")


async def readiness(service: ServiceProcess) -> tuple[int, dict[str, Any]]:
    """The status and checks of `service`'s /readyz."""
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{service.url}/readyz")
    return response.status_code, response.json()["checks"]


async def not_ready_for(service: ServiceProcess, dependency: str) -> bool:
    status, checks = await readiness(service)
    return status == 503 and checks[dependency] is False


async def all_ready(services: Iterable[ServiceProcess]) -> bool:
    return all([(await readiness(s))[0] == 200 for s in services])


def decisions_by_case(database_url: str) -> Counter[str]:
    """How many routing decisions the router stored for each case."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT case_id, count(*) FROM router.decision GROUP BY case_id").fetchall()
    return Counter({case_id: count for case_id, count in rows})


def referrals_by_case(database_url: str) -> dict[str, Counter[str]]:
    """How many referrals the router stored for each case and agency."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT case_id, agency_id FROM router.referral").fetchall()
    found: dict[str, Counter[str]] = {}
    for case_id, agency_id in rows:
        found.setdefault(case_id, Counter())[agency_id] += 1
    return found


async def routed_at_least(database_url: str, count: int) -> bool:
    return len(await asyncio.to_thread(decisions_by_case, database_url)) >= count


async def assert_each_routed_once(database_url: str, offered: Offered) -> set[str]:
    """Every accepted consultation gets one decision and one referral per engaged agency; returns the decided cases."""
    assert not offered.unexpected, f"intake answered neither 202 nor 503: {offered.unexpected}"
    accepted = set(offered.accepted)
    assert len(accepted) == len(offered.accepted), "a case id was given twice"

    async def all_decided() -> bool:
        return accepted <= set(await asyncio.to_thread(decisions_by_case, database_url))

    await eventually(all_decided, timeout_s=60, what="every accepted consultation is decided")
    decisions = await asyncio.to_thread(decisions_by_case, database_url)
    assert {case: n for case, n in decisions.items() if n != 1} == {}, "exactly one decision per case"
    # A commit whose answer the outage lost is a case intake refused and kept all the same: at most one
    # per refusal, and it too is routed once.
    assert len(set(decisions) - accepted) <= len(offered.refused), "decisions for cases nobody submitted"
    referrals = await asyncio.to_thread(referrals_by_case, database_url)
    twice = {case: referrals.get(case) for case in decisions if referrals.get(case) != Counter(ENGAGED_8050)}
    assert twice == {}, "one referral per engaged agency, none applied twice"
    return set(decisions)


def pids(services: dict[str, ServiceProcess]) -> dict[str, int]:
    return {name: s.process.pid for name, s in services.items() if s.process is not None}


def assert_never_restarted(services: dict[str, ServiceProcess], before: dict[str, int]) -> None:
    assert pids(services) == before, "the same processes ran throughout"
    for name, service in services.items():
        assert service.process is not None and service.process.poll() is None, f"{name} exited"
        assert alive(service.process.pid), f"{name} is a zombie"


# Broker restart ------------------------------------------------------------------------------------

S3_BUCKET = "marugoto-broker"


@contextmanager
def s3_server() -> Iterator[dict[str, str]]:
    """A local S3-compatible server (moto) with one bucket; yields the environment Tansu's S3 engine reads.

    Tansu stores through the Rust object_store crate. It needs AWS_ENDPOINT (or it goes to AWS itself),
    AWS_ALLOW_HTTP (it refuses a plain-HTTP endpoint otherwise) and the credentials (without them it
    asks the cloud instance-metadata service for some). The region defaults to us-east-1.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per S3 request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        env = {
            "AWS_ACCESS_KEY_ID": "marugoto-test",
            "AWS_SECRET_ACCESS_KEY": "marugoto-test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT": f"http://127.0.0.1:{port}",
            "AWS_ALLOW_HTTP": "true",
        }
        s3 = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT"],
            region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        s3.create_bucket(Bucket=S3_BUCKET)
        yield env
    finally:
        server.stop()


async def test_broker_restart_during_a_stream_loses_nothing_and_needs_no_service_restart(
    database_url: str, secrets_env: dict[str, str], tmp_path: Path, bearer: Callable[..., dict[str, str]]
) -> None:
    partner = bearer("nabari-shakyo", Scope.submit)
    prefix = f"t{uuid.uuid4().hex[:10]}."
    with s3_server() as s3_env:
        broker = EmbeddedBroker(
            partitions=PARTITIONS,
            topic_prefix=prefix,
            storage_url=f"s3://{S3_BUCKET}/",
            extra_env=s3_env,
            log_file=tmp_path / "tansu.log",
        )
        await asyncio.to_thread(broker.start)
        try:
            settings = make_settings(broker.bootstrap_servers, database_url, prefix, secrets_env, tmp_path)
            upgrade_databases(settings)
            with running(("intake", "router"), service_env(settings), tmp_path) as services:
                started = pids(services)
                async with streaming(services["intake"], partner) as offered:
                    await eventually(
                        lambda: routed_at_least(database_url, ROUTED_BEFORE_FAULT), timeout_s=30, what="routing"
                    )
                    await asyncio.to_thread(broker.stop)  # SIGTERM, and wait for the exit
                    down_at, accepted_before = time.monotonic(), len(offered.accepted)
                    for service in services.values():
                        await eventually(
                            functools.partial(not_ready_for, service, "broker"),
                            timeout_s=15,
                            what=f"{service.name} not ready",
                        )
                    await asyncio.sleep(max(0.0, BROKER_OUTAGE_S - (time.monotonic() - down_at)))
                    await asyncio.to_thread(broker.start)  # the same port, the same storage
                    await eventually(lambda: all_ready(services.values()), timeout_s=30, what="ready again")
                    accepted_in_outage = len(offered.accepted) - accepted_before
                    recovered = len(offered.accepted)
                    await eventually(
                        lambda: len(offered.accepted) >= recovered + ACCEPTED_AFTER_RECOVERY,
                        timeout_s=20,
                        what="intake accepts after the restart",
                    )
                assert accepted_in_outage > 0, "intake kept accepting while the broker was down"
                decided = await assert_each_routed_once(database_url, offered)

                # A plain consumer reads every decision back from the restarted broker's storage.
                records = await read_events(
                    broker.bootstrap_servers,
                    topic_of(settings, RoutingDecided),
                    until=lambda rs: decided <= {r.key.decode() for r in rs},
                    timeout_s=30,
                )
                assert decided - {r.key.decode() for r in records} == set(), "every decision is on Kafka"
                assert_never_restarted(services, started)
        finally:
            await asyncio.to_thread(broker.stop)


# PostgreSQL stopped --------------------------------------------------------------------------------


@dataclass
class PrivateCluster:
    """A PostgreSQL cluster of one test's own, which the test may stop and start."""

    bin_dir: Path
    base_dir: Path
    port: int

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    def _run(self, tool: str, *args: str) -> None:
        # PostgreSQL refuses to run as root: as root, run its tools as the `postgres` OS user.
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*as_postgres, str(self.bin_dir / tool), *args], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data_dir), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.base_dir} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.base_dir / "log"), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

    def create_database(self, name: str) -> str:
        """Create database `name`; returns its URL."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


def postgres_bin_dir() -> Path:
    """The binaries of the newest PostgreSQL server installed."""
    found = [initdb.parent for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    assert found, "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
    return max(found, key=lambda bin_dir: int(bin_dir.parent.name))


@contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """A new cluster in a temporary directory, started; stopped and removed afterwards, whatever happened."""
    base_dir = Path(tempfile.mkdtemp(prefix="marugoto-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base_dir, "postgres", "postgres")
    cluster = PrivateCluster(postgres_bin_dir(), base_dir, free_port())
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        if cluster.running():
            with suppress(subprocess.SubprocessError):
                cluster.stop("immediate")
        shutil.rmtree(base_dir, ignore_errors=True)


async def test_postgres_outage_makes_services_not_ready_then_they_recover_losing_nothing(
    kafka_bootstrap: str, secrets_env: dict[str, str], tmp_path: Path, bearer: Callable[..., dict[str, str]]
) -> None:
    partner = bearer("nabari-shakyo", Scope.submit)
    with private_cluster() as cluster:
        database_url = cluster.create_database("marugoto")
        prefix = await new_topic_prefix(kafka_bootstrap)
        settings = make_settings(kafka_bootstrap, database_url, prefix, secrets_env, tmp_path)
        upgrade_databases(settings)
        with running(("intake", "router"), service_env(settings), tmp_path) as services:
            started = pids(services)
            async with streaming(services["intake"], partner) as offered:
                await eventually(
                    lambda: routed_at_least(database_url, ROUTED_BEFORE_FAULT), timeout_s=30, what="routing"
                )
                await asyncio.to_thread(cluster.stop, "fast")
                down_at = time.monotonic()
                for service in services.values():
                    await eventually(
                        functools.partial(not_ready_for, service, "database"),
                        timeout_s=10,
                        what=f"{service.name} not ready",
                    )
                refused_before = len(offered.refused)
                await asyncio.sleep(max(0.0, DATABASE_OUTAGE_S - (time.monotonic() - down_at)))
                refused_in_outage = len(offered.refused) - refused_before
                await asyncio.to_thread(cluster.start)
                await eventually(lambda: all_ready(services.values()), timeout_s=30, what="ready again")
                recovered = len(offered.accepted)
                await eventually(
                    lambda: len(offered.accepted) >= recovered + ACCEPTED_AFTER_RECOVERY,
                    timeout_s=20,
                    what="intake accepts after recovery",
                )
            assert refused_in_outage > 0, "consultations offered while the database was down were refused"
            assert set(offered.refused) <= {503}, "a refusal is a 503 problem, not an error or a hang"
            await assert_each_routed_once(database_url, offered)
            assert_never_restarted(services, started)
