"""What conference needs beside its database and broker, built once when it starts."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.conference.config import MunicipalityConference, build_configs
from shared.directory import Directory


@dataclass(frozen=True)
class ConferenceContext:
    """Each served municipality's meeting configuration (agencies' hours, rooms, 推進会議 cadence), by code.

    `configs` changes while the service runs: a DirectoryPublished replaces a municipality's directory
    (services/conference/directories.py) and every configuration is rebuilt from `directories`, since a
    prefecture-wide agency's `serves` spans them all. `published` holds when each one in force was
    published; the files a fresh deployment was seeded from have none.
    """

    configs: dict[str, MunicipalityConference]
    directories: dict[str, tuple[Directory, Mapping[str, Any]]] = field(default_factory=dict)
    published: dict[str, datetime] = field(default_factory=dict)

    def keep(self, directory: Directory, data: Mapping[str, Any], published_at: datetime) -> bool:
        """Put `directory` (with its `conference:` section in `data`) in force unless a later one already
        is; True if it now is. Raises pydantic's ValidationError for an unreadable `conference:`."""
        code = directory.municipality.code
        current = self.published.get(code)
        if current is not None and current >= published_at:
            return False
        directories = {**self.directories, code: (directory, data)}
        configs = build_configs(directories)
        # Replaced key by key, never emptied: requests and consumers read the same dict meanwhile.
        self.configs.update(configs)
        self.directories.update(directories)
        self.published[code] = published_at
        return True
