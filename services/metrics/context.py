"""What metrics needs beside its database and broker, built once when it starts."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.metrics.indicators import Rules
from services.metrics.models import DirectoryInForce
from shared.directory import Directory
from shared.directory_in_force import DirectoriesInForce


@dataclass(frozen=True)
class CountedMunicipality:
    """A municipality the service reports on: its name and its counting rules [LOCAL]."""

    name: str
    rules: Rules


@dataclass(frozen=True)
class MetricsContext:
    """Each configured municipality's name and counting rules, by code.

    `municipalities` changes while the service runs: each version the router publishes replaces a
    municipality's rules (`in_force`, shared/directory_in_force.py), read with `counted_of`; each report
    is counted with the rules in force when it is asked for.
    """

    municipalities: dict[str, CountedMunicipality]
    counted_of: Callable[[Directory, Mapping[str, Any]], CountedMunicipality]
    in_force: DirectoriesInForce = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_force", DirectoriesInForce(DirectoryInForce, self._put_in_force))

    def _put_in_force(self, directory: Directory, data: Mapping[str, Any]) -> None:
        self.municipalities[directory.municipality.code] = self.counted_of(directory, data)

    def rules_of(self, code: str) -> tuple[Rules, str | None]:
        """The municipality's rules and name; the default rules and no name for one not configured here."""
        counted = self.municipalities.get(code)
        return (counted.rules, counted.name) if counted is not None else (Rules(), None)
