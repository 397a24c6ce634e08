"""The municipalities the router serves: each one's directory and rules, loaded from files [LOCAL]."""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from services.router.directory import Directory, DirectoryError, demo_directory_path, load_directory
from services.router.rules import RuleSet


@dataclass(frozen=True)
class MunicipalityConfig:
    """A municipality's agency directory and its routing rules."""

    directory: Directory
    rules: RuleSet


def load_municipalities(paths: Iterable[Path]) -> dict[str, MunicipalityConfig]:
    """Read directory files (the scenario-file shape); the demo municipality when none is given."""
    files = list(paths) or [demo_directory_path()]
    configs: dict[str, MunicipalityConfig] = {}
    for path in files:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise DirectoryError(f"cannot read {path}: {error}") from None
        directory = load_directory(data)
        code = directory.municipality.code
        if code in configs:
            raise DirectoryError(f"{path}: municipality {code} is configured twice")
        configs[code] = MunicipalityConfig(directory=directory, rules=RuleSet.from_mapping(data))
    return configs
