"""The directory in force for each municipality, kept from the router's DirectoryPublished.

The directory files seed a fresh deployment; every version the router puts in force afterwards (an
admin's PUT, or a changed file) arrives as an event, is stored in `directory_in_force` and replaces the
one in memory, so a new area is accepted without a restart, and after one. Instances of the service
share the consumer group, so each event reaches one of them: the others read the table every few
seconds (`follow_directories`).
"""

import asyncio
from datetime import datetime
from typing import Any

import structlog
from sqlmodel import Session, select

from services.intake.context import IntakeContext
from services.intake.models import DirectoryInForce
from shared.directory import DirectoryError, load_directory
from shared.events import DirectoryPublished, Envelope
from shared.runtime import Runtime

log = structlog.get_logger()
FOLLOW_INTERVAL_S = 2.0


def apply_directory_published(
    session: Session, envelope: Envelope[DirectoryPublished], *, context: IntakeContext
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


def load_stored(session: Session, context: IntakeContext) -> None:
    """Put in force every stored version later than the one in memory (at start, and then to follow)."""
    for row in session.exec(select(DirectoryInForce)).all():
        current = context.published.get(row.municipality_code)
        if current is None or current < row.published_at:
            _keep(context, row.municipality_code, row.body, row.published_at)


def _load_stored(runtime: Runtime, context: IntakeContext) -> None:
    with Session(runtime.engine) as session:
        load_stored(session, context)


async def follow_directories(runtime: Runtime) -> None:
    """Pick up the versions another instance stored, for as long as the service runs."""
    context = runtime.context_as(IntakeContext)
    while True:
        await asyncio.sleep(FOLLOW_INTERVAL_S)
        try:
            await asyncio.to_thread(_load_stored, runtime, context)
        except Exception as exc:
            log.warning("directory_follow_failed", error=repr(exc))


def _keep(context: IntakeContext, code: str, body: dict[str, Any], published_at: datetime) -> None:
    try:
        directory = load_directory(body)
    except DirectoryError as error:
        # The router validated it; a body this version cannot read keeps the previous directory in force.
        log.error("directory_unreadable", municipality_code=code, error=str(error))
        return
    if directory.municipality.code != code:
        log.error("directory_for_another_municipality", municipality_code=code)
        return
    if context.keep(directory, published_at):
        log.info("directory_in_force", municipality_code=code, version=directory.version)
