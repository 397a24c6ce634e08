"""What conference needs beside its database and broker, built once when it starts."""

from collections.abc import Mapping
from dataclasses import dataclass

from services.conference.config import MunicipalityConference


@dataclass(frozen=True)
class ConferenceContext:
    """Each served municipality's meeting configuration (agencies' hours, rooms, 推進会議 cadence), by code."""

    configs: Mapping[str, MunicipalityConference]
