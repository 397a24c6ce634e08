"""What metrics needs beside its database and broker, built once when it starts."""

from collections.abc import Mapping
from dataclasses import dataclass

from services.metrics.indicators import Rules


@dataclass(frozen=True)
class CountedMunicipality:
    """A municipality the service reports on: its name and its counting rules [LOCAL]."""

    name: str
    rules: Rules


@dataclass(frozen=True)
class MetricsContext:
    """Each configured municipality's name and counting rules, by code."""

    municipalities: Mapping[str, CountedMunicipality]

    def rules_of(self, code: str) -> tuple[Rules, str | None]:
        """The municipality's rules and name; the default rules and no name for one not configured here."""
        counted = self.municipalities.get(code)
        return (counted.rules, counted.name) if counted is not None else (Rules(), None)
