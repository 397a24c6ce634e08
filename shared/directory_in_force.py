"""The directory version in force for each municipality, kept by every service from the router's
DirectoryPublished.

The directory files seed a fresh deployment; every version the router puts in force afterwards (an
admin's PUT, or a changed file) arrives as an event, is stored in the service's `directory_in_force` table
and put in force in memory by the service's own `put_in_force` (intake: the areas a consultation may name;
conference: leads, hours and rooms; metrics: the counting rules). A version published earlier than the one
in force (arriving late, or twice) changes nothing. Instances of a service share its consumer group, so
each event reaches one of them: the others read the table every few seconds (`follow`), and every
instance reads it at start, so a restart keeps what the router published.
"""

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import JSON, Field, Session, SQLModel, select

from shared.db import UTCDateTime
from shared.directory import Directory, DirectoryError, load_directory
from shared.events import DirectoryPublished, Envelope
from shared.runtime import Runtime

log = structlog.get_logger()
FOLLOW_INTERVAL_S = 2.0


class DirectoryInForceColumns(SQLModel):
    """The columns of a service's `directory_in_force` table: the version in force for a municipality, as
    the router last published it. Each service declares the table in its own schema."""

    municipality_code: str = Field(primary_key=True, max_length=6)
    version: str = Field(max_length=40)
    body: dict[str, Any] = Field(sa_type=JSON)
    published_at: datetime = Field(sa_type=UTCDateTime)


# Puts a directory (with the body it was read from, for the services' own sections) in force in memory;
# raises DirectoryError, ValueError or pydantic's ValidationError for a body the service cannot use.
PutInForce = Callable[[Directory, Mapping[str, Any]], None]


class DirectoriesInForce:
    """Which version is in force for each municipality, and since when it was published."""

    def __init__(self, table: type[DirectoryInForceColumns], put_in_force: PutInForce) -> None:
        self._table = table
        self._put_in_force = put_in_force
        self.published: dict[str, datetime] = {}

    def apply(self, session: Session, envelope: Envelope[DirectoryPublished]) -> None:
        """Store the published version and put it in force, unless a later one is stored already."""
        data = envelope.data
        code = envelope.municipalitycode
        row = session.get(self._table, code)
        if row is not None and row.published_at >= data.published_at:
            return
        if row is None:
            row = self._table(
                municipality_code=code, version=data.version, body=data.body, published_at=data.published_at
            )
        else:
            row.version, row.body, row.published_at = data.version, data.body, data.published_at
        session.add(row)
        self.keep(code, data.body, data.published_at)

    def load_stored(self, session: Session) -> None:
        """Put in force every stored version later than the one in memory (at start, and then to follow)."""
        for row in session.exec(select(self._table)).all():
            current = self.published.get(row.municipality_code)
            if current is None or current < row.published_at:
                self.keep(row.municipality_code, row.body, row.published_at)

    def keep(self, code: str, body: Mapping[str, Any], published_at: datetime) -> bool:
        """Put `body` in force for `code` unless a later version already is; True if it now is."""
        current = self.published.get(code)
        if current is not None and current >= published_at:
            return False
        try:
            directory = load_directory(body)
            if directory.municipality.code != code:
                raise DirectoryError(f"the body is the directory of {directory.municipality.code}")
            self._put_in_force(directory, body)
        except (DirectoryError, ValidationError, ValueError) as error:
            # The router validated it; a body this version cannot read keeps the previous one in force.
            log.error("directory_unreadable", municipality_code=code, error=str(error))
            return False
        self.published[code] = published_at
        log.info("directory_in_force", municipality_code=code, version=directory.version)
        return True

    async def follow(self, engine: Engine) -> None:
        """Pick up the versions another instance stored, for as long as the service runs."""

        def load() -> None:
            with Session(engine) as session:
                self.load_stored(session)

        while True:
            await asyncio.sleep(FOLLOW_INTERVAL_S)
            try:
                await asyncio.to_thread(load)
            except Exception as exc:
                log.warning("directory_follow_failed", error=repr(exc))


async def follow_directories(runtime: Runtime) -> None:
    """A service's background job: follow the versions its other instances store (the context keeps its
    `DirectoriesInForce` as `in_force`)."""
    in_force = getattr(runtime.context, "in_force", None)
    if not isinstance(in_force, DirectoriesInForce):
        raise TypeError(f"the {runtime.service} service's context keeps no directories in force")
    await in_force.follow(runtime.engine)
