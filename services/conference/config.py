"""How each municipality runs its meetings [LOCAL]: the `conference:` section of its directory file,
its agencies' hours and its rooms."""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.conference import slots
from services.conference.errors import UnknownMunicipality
from shared.directory import Directory, read_directory_files


class PromotionMeetingConfig(BaseModel):
    """How a municipality runs its 推進会議: cadence, the body it reuses, whether it approves plans."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The report has the 推進会議 meet 定期的に (seed L3441): quarterly unless the municipality says
    # otherwise [LOCAL] (盛岡市 and 東海村 every two months, 江戸川区 every three, or on_demand).
    cadence: Literal["every_n_months", "fixed_months", "on_demand"] = "every_n_months"
    every_months: int = Field(default=3, ge=1, le=12)
    months: list[int] = Field(default_factory=list)  # 能美市-like fixed months
    reuses: str | None = None  # e.g. 支援調整会議, 地域ケア会議
    approves_plans: bool = False  # 呉市: the case meeting drafts, the 推進会議 approves
    review_after_days: int = Field(default=90, ge=0)
    duration_minutes: int = Field(default=120, ge=15)


class PlansConfig(BaseModel):
    """How a municipality runs its 支援プラン: where plans are approved, and the defaults of a first draft."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The 支援決定 of a 重層的支援会議 (Art. 106-4) approves plans; a municipality without the 事業 may
    # approve them at the case meeting instead (a plan decision with plan_approved, with 本人同意).
    approved_at: Literal["plan_meeting", "case_meeting"] = "plan_meeting"
    monitoring_interval_days: int = Field(default=20, ge=1, le=260)  # business days (about a month)
    evaluation_after_days: int = Field(default=90, ge=1, le=730)  # calendar days to the first 評価


class ConferenceSettings(BaseModel):
    """The `conference:` section of a directory file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    meeting_minutes: int = Field(default=60, ge=15, le=480)
    deadline_business_days: dict[str, int] = Field(default_factory=lambda: {"urgent": 2, "soon": 5, "routine": 10})
    rooms: list[dict[str, Any]] = Field(default_factory=list)
    promotion_meeting: PromotionMeetingConfig = PromotionMeetingConfig()
    plans: PlansConfig = PlansConfig()


@dataclass(frozen=True)
class MunicipalityConference:
    """A municipality's agencies (with their hours), rooms and meeting rules, and for each agency the
    municipalities whose directories list it too (a prefecture-wide agency serves several)."""

    directory: Directory
    settings: ConferenceSettings
    hours: Mapping[str, slots.WeeklyHours]
    rooms: tuple[slots.Room, ...]
    serves: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def code(self) -> str:
        """The municipality's code."""
        return self.directory.municipality.code

    def municipalities_of(self, participants: Iterable[str]) -> list[str]:
        """This municipality and every other one any of the participants serves, sorted: where their
        bookings live."""
        codes = {self.code}
        for participant in participants:
            codes |= self.serves.get(participant, frozenset())
        return sorted(codes)


def load_configs(paths: Iterable[Any]) -> dict[str, MunicipalityConference]:
    """Each configured municipality's conference configuration, from the directory files."""
    return build_configs(read_directory_files(paths))


def build_configs(read: Mapping[str, tuple[Directory, Mapping[str, Any]]]) -> dict[str, MunicipalityConference]:
    """Each municipality's conference configuration from its directory and the directory's data (the file's
    shape, with its `conference:` section)."""
    # An agency is one agency under one id in every directory that lists it (e.g. mie-dv, scope prefecture).
    serving: defaultdict[str, set[str]] = defaultdict(set)
    for code, (directory, _) in read.items():
        for agency in directory.agencies:
            serving[agency.id].add(code)
    configs = {}
    for code, (directory, data) in read.items():
        settings = ConferenceSettings.model_validate(data.get("conference") or {})
        hours = {a.id: slots.parse_hours(a.business_hours, slots.DEFAULT_HOURS) for a in directory.agencies}
        rooms = tuple(slots.Room(id=str(r["id"]), capacity=int(r["capacity"])) for r in settings.rooms)
        serves = {a.id: frozenset(serving[a.id]) for a in directory.agencies}
        configs[code] = MunicipalityConference(
            directory=directory, settings=settings, hours=hours, rooms=rooms, serves=serves
        )
    return configs


def config_of(configs: Mapping[str, MunicipalityConference], code: str) -> MunicipalityConference:
    """The municipality's configuration; UnknownMunicipality when it has no directory here."""
    config = configs.get(code)
    if config is None:
        raise UnknownMunicipality(code)
    return config
