"""Metrics' composition root."""

from fastapi import FastAPI

from services.metrics import dashboard, handlers
from services.metrics.api import router
from services.metrics.context import CountedMunicipality, MetricsContext
from services.metrics.indicators import Rules
from services.metrics.service import FactBatch
from shared.directory import read_directory_files
from shared.runtime import Runtime, ServiceDefinition, create_app
from shared.settings import Settings


def counted_municipalities(settings: Settings) -> dict[str, CountedMunicipality]:
    """Each municipality's counting rules [LOCAL] (the `metrics:` section), agencies' sectors and the
    fiscal year from which it runs the 重層的支援体制整備事業, from its directory."""
    found = {}
    for code, (directory, data) in read_directory_files(settings.directory_files).items():
        section = data.get("metrics") or {}
        rules = Rules(
            networked_min_attended=int(section.get("networked_min_attended", 2)),
            networked_last_k=int(section.get("networked_last_k", 3)),
            sectors={agency.id: agency.sector for agency in directory.agencies},
            jusoteki_since_fiscal_year=directory.municipality.jusoteki_since_fiscal_year,
            directory=directory,
        )
        found[code] = CountedMunicipality(name=directory.municipality.name, rules=rules)
    return found


def _wire(runtime: Runtime) -> MetricsContext:
    context = MetricsContext(municipalities=counted_municipalities(runtime.settings))
    handlers.wire(runtime)
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
)


def create(settings: Settings) -> FastAPI:
    """The metrics app for `settings`."""
    return create_app(DEFINITION, settings)
