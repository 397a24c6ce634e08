"""Metrics' subscribers: every event that an indicator counts, applied exactly once; and the directory in
force for each municipality (its sectors, general windows and `Rules.directory`), from the router's
DirectoryPublished."""

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import structlog
from sqlmodel import JSON, Field, Session, SQLModel, select

from services.metrics import service
from services.metrics.context import CountedMunicipality, MetricsContext
from services.metrics.models import SCHEMA, MetricsProcessedEvent
from shared.db import UTCDateTime
from shared.directory import Directory, DirectoryError, load_directory
from shared.events import (
    CaseLifeChanged,
    CaseTransferred,
    ConferenceCancelled,
    ConferenceHeld,
    ConferenceRescheduled,
    ConferenceScheduled,
    ConsultationReceived,
    ContactRecorded,
    DirectoryPublished,
    Envelope,
    EventData,
    HouseholdLinked,
    MonitoringRecorded,
    ReferralOverdue,
    ReferralRequested,
    ReferralStatusChanged,
    RoutingDecided,
    SupportPlanChanged,
)
from shared.runtime import Runtime

log = structlog.get_logger()
FOLLOW_INTERVAL_S = 2.0

CountedOf = Callable[[Directory, Mapping[str, Any]], CountedMunicipality]

COUNTED: tuple[type[EventData], ...] = (
    ConsultationReceived,
    ContactRecorded,
    RoutingDecided,
    ReferralRequested,
    ReferralStatusChanged,
    ReferralOverdue,
    ConferenceScheduled,
    ConferenceRescheduled,
    ConferenceCancelled,
    ConferenceHeld,
    HouseholdLinked,
    SupportPlanChanged,
    MonitoringRecorded,
    CaseLifeChanged,
    CaseTransferred,
)


class DirectoryInForce(SQLModel, table=True):
    """The directory version in force for a municipality, as the router last published it: read at start,
    so a restart keeps a change made through the router's admin API (the files only seed a fresh one)."""

    __tablename__ = "directory_in_force"
    __table_args__ = {"schema": SCHEMA}

    municipality_code: str = Field(primary_key=True, max_length=6)
    version: str = Field(max_length=40)
    body: dict[str, Any] = Field(sa_type=JSON)
    published_at: datetime = Field(sa_type=UTCDateTime)


class InForce(dict[str, CountedMunicipality]):
    """Each municipality's counting rules from the directory in force, by code: the context's
    `municipalities`, replaced in place when the router publishes a later directory version.

    Each report is counted with the rules in force when it is asked for. A version published earlier
    than the one in force (arriving late, or twice) changes nothing. Instances of the service share the
    consumer group, so each event reaches one of them: the others read `directory_in_force` every few
    seconds (`follow_directories`).
    """

    def __init__(self, seeded: Mapping[str, CountedMunicipality], counted_of: CountedOf) -> None:
        super().__init__(seeded)
        self._counted_of = counted_of
        self.published: dict[str, datetime] = {}

    def apply(self, batch: Session, envelope: Envelope[DirectoryPublished]) -> None:
        """Store the published version and put it in force, unless a later one is stored already."""
        data = envelope.data
        code = envelope.municipalitycode
        row = batch.get(DirectoryInForce, code)
        if row is not None and row.published_at >= data.published_at:
            return
        if row is None:
            row = DirectoryInForce(
                municipality_code=code, version=data.version, body=data.body, published_at=data.published_at
            )
        else:
            row.version, row.body, row.published_at = data.version, data.body, data.published_at
        batch.add(row)
        self.keep(code, data.body, data.published_at)

    def load_stored(self, session: Session) -> None:
        """Put in force every stored version later than the one in memory (at start, and then to follow)."""
        for row in session.exec(select(DirectoryInForce)).all():
            current = self.published.get(row.municipality_code)
            if current is None or current < row.published_at:
                self.keep(row.municipality_code, row.body, row.published_at)

    def keep(self, code: str, body: Mapping[str, Any], published_at: datetime) -> None:
        """Put `body` in force for `code` unless a later version already is."""
        current = self.published.get(code)
        if current is not None and current >= published_at:
            return
        try:
            directory = load_directory(body)
            if directory.municipality.code != code:
                raise DirectoryError(f"the body is the directory of {directory.municipality.code}")
            counted = self._counted_of(directory, body)
        except (DirectoryError, ValueError) as error:
            # The router validated it; a body this version cannot read keeps the previous rules in force.
            log.error("directory_unreadable", municipality_code=code, error=str(error))
            return
        self[code] = counted
        self.published[code] = published_at
        log.info("directory_in_force", municipality_code=code, version=directory.version)


async def follow_directories(runtime: Runtime) -> None:
    """Pick up the versions another instance stored, for as long as the service runs."""
    in_force = runtime.context_as(MetricsContext).municipalities
    if not isinstance(in_force, InForce):
        return

    def load() -> None:
        with Session(runtime.engine) as session:
            in_force.load_stored(session)

    while True:
        await asyncio.sleep(FOLLOW_INTERVAL_S)
        try:
            await asyncio.to_thread(load)
        except Exception as exc:
            log.warning("directory_follow_failed", error=repr(exc))


def wire(runtime: Runtime, in_force: InForce) -> None:
    """Record each counted event (cases, referrals, meetings, plans, case life, transfers) as facts, once;
    keep each municipality's counting rules from the directory in force."""
    runtime.consume(
        MetricsProcessedEvent,
        {**dict.fromkeys(COUNTED, service.count), DirectoryPublished: in_force.apply},
        prepare=service.prefetch,
        description=(
            "Records every consultation, contact, decision, referral, meeting, household link, 支援プラン "
            "version, monitoring and evaluation, 終結/見守り/reopening and 転居 for the indicators, once; "
            "keeps each municipality's counting rules from its directory in force."
        ),
    )
