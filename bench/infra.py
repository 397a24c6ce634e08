"""The infrastructure one benchmark run owns: a fresh embedded broker, a database, keys and a work directory."""

import asyncio
import contextlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from psycopg import sql

from services.cli import upgrade_databases
from shared import logs
from shared.devsecrets import ensure_dev_secrets
from shared.embedded_broker import EmbeddedBroker
from shared.kafka import ensure_topics
from shared.settings import Settings

ADMIN_URL = os.environ.get("MARUGOTO_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PARTITIONS = 4  # as the tests' make_settings
SCHEMAS = ("intake", "router", "conference", "metrics", "bench_bare")


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


class Infra:
    """Start with `with Infra() as infra:`; everything is stopped, dropped and deleted at the end."""

    def __init__(self, *, keep_workdir: bool = False) -> None:
        self.keep_workdir = keep_workdir
        self.workdir = Path(tempfile.mkdtemp(prefix="marugoto-bench-"))
        self.database = f"marugoto_bench_{uuid.uuid4().hex[:10]}"
        self.database_url = _with_database(ADMIN_URL, self.database)
        self.broker = EmbeddedBroker(partitions=PARTITIONS, log_file=self.workdir / "broker.log")
        self.secrets: dict[str, str] = {}

    # --- lifecycle -------------------------------------------------------------------------------------
    def __enter__(self) -> "Infra":
        self.secrets = ensure_dev_secrets(self.workdir / "secrets")
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        self.broker.start()
        self._route_logs_to_file()
        return self

    def __exit__(self, *exc: object) -> None:
        self.broker.stop()
        with contextlib.suppress(Exception), psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.database)))
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _route_logs_to_file(self) -> None:
        """Services run in this process log as they do in production (JSON, INFO), but to a file."""
        logs.configure("INFO", service="bench")
        root = logging.getLogger()
        handler = logging.FileHandler(self.workdir / "in-process.log", encoding="utf-8")
        handler.setFormatter(root.handlers[0].formatter)
        root.handlers[:] = [handler]
        quiet_library_loggers()

    # --- configuration ---------------------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    def env(self, prefix: str, **extra: str) -> dict[str, str]:
        """The environment a service of this run is configured with (also used for in-process services)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MARUGOTO_")}
        env.update(self.secrets)
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap,
            DATABASE_URL=self.database_url,
            MARUGOTO_KAFKA_TOPIC_PREFIX=prefix,
            MARUGOTO_KAFKA_TOPIC_PARTITIONS=str(PARTITIONS),
            MARUGOTO_DATA_DIR=str(self.workdir / "data"),
            MARUGOTO_OUTBOX_POLL_INTERVAL_S="0.1",
        )
        env.update(extra)
        return env

    def settings(self, prefix: str) -> Settings:
        """Settings read from `env(prefix)`, exactly as a service process would read them."""
        with patched_environ(self.env(prefix)):
            return Settings()

    async def new_prefix(self) -> str:
        """A fresh topic namespace with every Marugoto topic created in it."""
        prefix = f"b{uuid.uuid4().hex[:8]}."
        await ensure_topics(self.bootstrap, partitions=PARTITIONS, prefix=prefix)
        return prefix

    async def create_topic(self, name: str) -> str:
        """A bench-only topic (baselines), created explicitly like every other topic."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10_000)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)])
        finally:
            await admin.close()
        await asyncio.sleep(0.2)
        return name

    def reset_database(self, settings: Settings, services: tuple[str, ...]) -> None:
        """Empty schemas for the services of one scenario, then `upgrade_databases` as before a start."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            for schema in SCHEMAS:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        upgrade_databases(settings, list(services))

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"


def quiet_library_loggers() -> None:
    """FastStream's logger prints to stderr on its own handler; send it to the log file with the rest."""
    import faststream.kafka  # noqa: F401 - creates the library's loggers

    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] in ("faststream", "aiokafka"):
            logger = logging.getLogger(name)
            logger.handlers[:] = []
            logger.propagate = True


@contextlib.contextmanager
def patched_environ(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def machine_facts() -> dict[str, object]:
    """CPU count and model, memory and Python version of this machine."""
    import platform

    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": mem_gb,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def dump(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2)
