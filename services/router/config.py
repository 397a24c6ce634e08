"""The municipalities the router serves: each one's directory and rules, loaded from files [LOCAL]."""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from services.router.rules import RuleSet
from shared.directory import Directory, read_directory_files


@dataclass(frozen=True)
class MunicipalityConfig:
    """A municipality's agency directory and its routing rules."""

    directory: Directory
    rules: RuleSet


def load_municipalities(paths: Iterable[Path]) -> dict[str, MunicipalityConfig]:
    """Read directory files (the scenario-file shape); the demo municipality when none is given."""
    return {
        code: MunicipalityConfig(directory=directory, rules=RuleSet.from_mapping(data))
        for code, (directory, data) in read_directory_files(paths).items()
    }
