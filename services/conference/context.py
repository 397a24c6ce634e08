"""What conference needs beside its database and broker, built once when it starts."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.conference.config import MunicipalityConference, build_configs
from services.conference.models import DirectoryInForce
from shared.directory import Directory
from shared.directory_in_force import DirectoriesInForce


@dataclass(frozen=True)
class ConferenceContext:
    """Each served municipality's meeting configuration (agencies' hours, rooms, 推進会議 cadence), by code.

    `configs` changes while the service runs: each version the router publishes replaces a municipality's
    directory (`in_force`, shared/directory_in_force.py) and every configuration is rebuilt from
    `directories`, since a prefecture-wide agency's `serves` spans them all. Meetings already held keep
    the `directory_version` they froze.
    """

    configs: dict[str, MunicipalityConference]
    directories: dict[str, tuple[Directory, Mapping[str, Any]]] = field(default_factory=dict)
    in_force: DirectoriesInForce = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_force", DirectoriesInForce(DirectoryInForce, self._put_in_force))

    def _put_in_force(self, directory: Directory, data: Mapping[str, Any]) -> None:
        """Put `directory` (with its `conference:` section in `data`) in force. Raises pydantic's
        ValidationError for an unreadable `conference:`, leaving the configuration as it was."""
        directories = {**self.directories, directory.municipality.code: (directory, data)}
        configs = build_configs(directories)
        # Replaced key by key, never emptied: requests and consumers read the same dict meanwhile.
        self.configs.update(configs)
        self.directories.update(directories)
