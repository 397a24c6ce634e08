"""The key store of per-case keys (crypto-shredding, shared/sealing.py): outside the event log, in a
database of its own.

Each case gets a random 256-bit key the first time an event of it is sealed. Every service that reads
sealed fields (intake, router, conference) reads the keys of a batch's cases in one query and keeps them
in memory for a short while; metrics reads none. Erasing a case overwrites its key with NULL and keeps
the row as a tombstone (that the case was erased, and when), so a late event of it is published without
its sensitive fields and a reader knows to skip, not to wait.

Where it lives (`MARUGOTO_KEYSTORE_URL`): in production a PostgreSQL database of its own, whose backups
are kept for a short period only (docs/operations.md): a key destroyed today must not come back from a
backup, or an erasure would not be one. Without the setting: the service database's `keystore` schema on
PostgreSQL (tests), or `keystore.db` in the data directory (SQLite, `marugoto up`).
"""

import os
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from sqlalchemy import Column, DateTime, Engine, LargeBinary, MetaData, String, Table, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlmodel import create_engine

from shared.settings import Settings

log = structlog.get_logger()

SCHEMA = "keystore"
METADATA = MetaData()
CASE_KEY = Table(
    "case_key",
    METADATA,
    Column("case_id", String(64), primary_key=True),
    Column("key", LargeBinary, nullable=True),  # NULL: erased
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("erased_at", DateTime(timezone=True), nullable=True),
    schema=SCHEMA,
)
KEY_BYTES = 32
KeyState = Literal["live", "erased", "unknown"]


class MissingCaseKey(LookupError):
    """A sealed event names a case the key store has never held a key for."""


def keystore_url(settings: Settings) -> str:
    """Where the keys are: the setting, else the service database (PostgreSQL), else a SQLite file."""
    url = settings.keystore_url.get_secret_value() if settings.keystore_url else settings.database_url
    if url:
        for scheme in ("postgresql://", "postgres://"):
            if url.startswith(scheme):
                return "postgresql+psycopg://" + url.removeprefix(scheme)
        return url
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{settings.data_dir / 'keystore.db'}"


def keystore_engine(settings: Settings) -> Engine:
    """An engine on the key store with its table in place (created if absent)."""
    url = keystore_url(settings)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        engine = engine.execution_options(schema_translate_map={SCHEMA: None})
        with engine.begin() as connection:
            connection.execute(text("PRAGMA journal_mode=WAL"))
        try:
            METADATA.create_all(engine)
        except OperationalError as error:
            # Services start together: another process created the table between the check and the CREATE.
            if "already exists" not in str(error):
                raise
        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)
    with engine.begin() as connection:
        # One process at a time: concurrent CREATE ... IF NOT EXISTS can still collide in the catalogue.
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('marugoto.keystore'))"))
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"'))
        METADATA.create_all(connection)
    return engine


class CaseKeys:
    """Per-case keys: made on first use, read in batches, erased for good.

    Live keys are cached for `ttl_s` (a process drops one at once when it learns of an erasure, and in
    any case within that time); erasures are cached for the life of the process, since none is undone.
    """

    def __init__(self, engine: Engine, *, ttl_s: float = 300.0, max_cached: int = 50_000) -> None:
        self._engine = engine
        self._ttl_s = ttl_s
        self._max_cached = max_cached
        self._cache: dict[str, tuple[bytes | None, float]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> "CaseKeys":
        return cls(keystore_engine(settings))

    def keys_for(self, case_ids: Iterable[str], *, create: bool) -> dict[str, bytes | None]:
        """The key of each case (None: erased). With `create`, a case without a key gets one; without,
        a case the store never held is left out of the answer."""
        now = time.monotonic()
        found: dict[str, bytes | None] = {}
        wanted: list[str] = []
        for case_id in set(case_ids):
            cached = self._cache.get(case_id)
            if cached is not None and (cached[0] is None or now - cached[1] < self._ttl_s):
                found[case_id] = cached[0]
            else:
                wanted.append(case_id)
        if wanted:
            with self._engine.begin() as connection:
                if create:
                    self._create(connection, wanted)
                rows = connection.execute(
                    select(CASE_KEY.c.case_id, CASE_KEY.c.key).where(CASE_KEY.c.case_id.in_(wanted))
                ).all()
            if len(self._cache) + len(rows) > self._max_cached:
                self._cache.clear()
            for case_id, key in rows:
                found[case_id] = key
                self._cache[case_id] = (key, now)
        return found

    def _create(self, connection: Any, case_ids: list[str]) -> None:
        now = datetime.now(UTC)
        rows = [{"case_id": c, "key": os.urandom(KEY_BYTES), "created_at": now} for c in case_ids]
        insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
        connection.execute(insert(CASE_KEY).values(rows).on_conflict_do_nothing(index_elements=["case_id"]))

    def erase(self, case_id: str) -> None:
        """Destroy the case's key for good (a tombstone row stays); done again, it changes nothing."""
        now = datetime.now(UTC)
        with self._engine.begin() as connection:
            done = connection.execute(
                update(CASE_KEY)
                .where(CASE_KEY.c.case_id == case_id, CASE_KEY.c.erased_at.is_(None))
                .values(key=None, erased_at=now)
            ).rowcount
            if not done:
                insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
                connection.execute(
                    insert(CASE_KEY)
                    .values(case_id=case_id, key=None, created_at=now, erased_at=now)
                    .on_conflict_do_nothing(index_elements=["case_id"])
                )
        self._cache[case_id] = (None, time.monotonic())
        log.info("case_key_erased", case_id=case_id)

    def forget(self, case_id: str) -> None:
        """Drop any copy of the case's key this process holds (an erasure was announced)."""
        self._cache[case_id] = (None, time.monotonic())

    def state(self, case_id: str) -> KeyState:
        """Whether the store holds a live key for the case, a tombstone, or nothing."""
        with self._engine.connect() as connection:
            row = connection.execute(select(CASE_KEY.c.key).where(CASE_KEY.c.case_id == case_id)).first()
        if row is None:
            return "unknown"
        return "erased" if row[0] is None else "live"
