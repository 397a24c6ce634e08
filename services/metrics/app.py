"""Metrics' composition root."""

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from sqlmodel import Session

from services.metrics import dashboard, handlers
from services.metrics.api import router
from services.metrics.context import CountedMunicipality, MetricsContext
from services.metrics.indicators import Rules
from services.metrics.service import FactBatch
from shared.directory import Directory, read_directory_files
from shared.directory_in_force import follow_directories
from shared.runtime import Runtime, ServiceDefinition, create_app
from shared.settings import Settings


def counted_municipalities(settings: Settings) -> dict[str, CountedMunicipality]:
    """Each municipality's counting rules [LOCAL] (the `metrics:` section), agencies' sectors and the
    fiscal year from which it runs the 重層的支援体制整備事業, from its directory file."""
    return {
        code: counted_municipality(directory, data)
        for code, (directory, data) in read_directory_files(settings.directory_files).items()
    }


def counted_municipality(directory: Directory, data: Mapping[str, Any]) -> CountedMunicipality:
    """A municipality's counting rules from its directory and the directory's data (the file's shape, with
    its `metrics:` section): from a file at start, or from a DirectoryPublished (handlers.py)."""
    section = data.get("metrics") or {}
    rules = Rules(
        networked_min_attended=int(section.get("networked_min_attended", 2)),
        networked_last_k=int(section.get("networked_last_k", 3)),
        sectors={agency.id: agency.sector for agency in directory.agencies},
        jusoteki_since_fiscal_year=directory.municipality.jusoteki_since_fiscal_year,
        directory=directory,
    )
    return CountedMunicipality(name=directory.municipality.name, rules=rules)


def _wire(runtime: Runtime) -> MetricsContext:
    # The files seed a fresh deployment; the versions the router published since replace them, and a
    # DirectoryPublished replaces a municipality's rules in place while the service runs.
    context = MetricsContext(municipalities=counted_municipalities(runtime.settings), counted_of=counted_municipality)
    with Session(runtime.engine) as session:
        context.in_force.load_stored(session)
    handlers.wire(runtime, context.in_force)
    return context


DEFINITION = ServiceDefinition(
    name="metrics",
    title="Marugoto metrics",
    description="Outcome indicators (成果把握項目) per municipality and fiscal year, from the event stream.",
    outbox_model=None,
    publishes=(),
    wire=_wire,
    unit_of_work=FactBatch,
    routers=(router, dashboard.router),
    background=(follow_directories,),
)


def create(settings: Settings) -> FastAPI:
    """The metrics app for `settings`."""
    return create_app(DEFINITION, settings)
