"""The directory in force for each municipality, kept from the router's DirectoryPublished.

The directory files seed a fresh deployment; every version the router puts in force afterwards (an
admin's PUT, or a changed file) arrives as an event, is stored in `directory_in_force` and replaces the
one in memory, so the next case meeting invites a new lead and books the new hours and rooms without a
restart, and after one. Meetings already held keep the `directory_version` they froze. Instances of the
service share the consumer group, so each event reaches one of them: the others read the table every
few seconds (`follow_directories`).
"""

import asyncio
from datetime import datetime
from typing import Any

import structlog
from pydantic import ValidationError
from sqlmodel import JSON, Field, Session, SQLModel, select

from services.conference.context import ConferenceContext
from services.conference.models import SCHEMA
from shared.db import UTCDateTime
from shared.directory import DirectoryError, load_directory
from shared.events import DirectoryPublished, Envelope
from shared.runtime import Runtime

log = structlog.get_logger()
FOLLOW_INTERVAL_S = 2.0


class DirectoryInForce(SQLModel, table=True):
    """The directory version in force for a municipality, as the router last published it."""

    __tablename__ = "directory_in_force"
    __table_args__ = {"schema": SCHEMA}

    municipality_code: str = Field(primary_key=True, max_length=6)
    version: str = Field(max_length=40)
    body: dict[str, Any] = Field(sa_type=JSON)
    published_at: datetime = Field(sa_type=UTCDateTime)


def apply_directory_published(
    session: Session, envelope: Envelope[DirectoryPublished], *, context: ConferenceContext
) -> None:
    """Store the published version unless a later one is stored already (events may arrive late or twice)."""
    data = envelope.data
    code = envelope.municipalitycode
    row = session.get(DirectoryInForce, code)
    if row is not None and row.published_at >= data.published_at:
        return
    if row is None:
        row = DirectoryInForce(
            municipality_code=code, version=data.version, body=data.body, published_at=data.published_at
        )
    else:
        row.version, row.body, row.published_at = data.version, data.body, data.published_at
    session.add(row)
    _keep(context, code, data.body, data.published_at)


def load_stored(session: Session, context: ConferenceContext) -> None:
    """Put in force every stored version later than the one in memory (at start, and then to follow)."""
    for row in session.exec(select(DirectoryInForce)).all():
        current = context.published.get(row.municipality_code)
        if current is None or current < row.published_at:
            _keep(context, row.municipality_code, row.body, row.published_at)


def _load_stored(runtime: Runtime, context: ConferenceContext) -> None:
    with Session(runtime.engine) as session:
        load_stored(session, context)


async def follow_directories(runtime: Runtime) -> None:
    """Pick up the versions another instance stored, for as long as the service runs."""
    context = runtime.context_as(ConferenceContext)
    while True:
        await asyncio.sleep(FOLLOW_INTERVAL_S)
        try:
            await asyncio.to_thread(_load_stored, runtime, context)
        except Exception as exc:
            log.warning("directory_follow_failed", error=repr(exc))


def _keep(context: ConferenceContext, code: str, body: dict[str, Any], published_at: datetime) -> None:
    try:
        directory = load_directory(body)
        if directory.municipality.code != code:
            raise DirectoryError(f"the body is the directory of {directory.municipality.code}")
        kept = context.keep(directory, body, published_at)
    except (DirectoryError, ValidationError, ValueError) as error:
        # The router validated it; a body this version cannot read keeps the previous directory in force.
        log.error("directory_unreadable", municipality_code=code, error=str(error))
        return
    if kept:
        log.info("directory_in_force", municipality_code=code, version=directory.version)
