"""Route checking: run every scenario of a routing scenario file and compare with its expectations."""

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.router.rules import PATTERNS, Decision, RuleSet, decide
from shared.consultation import Consultation
from shared.directory import Directory, DirectoryError, UnknownArea, load_directory

_PATTERN_IDS = [rule.id for rule in PATTERNS]
_TOP_LEVEL_KEYS = {
    "municipality",
    "agencies",
    "scenarios",
    "routing",
    "intake",
    "conference",
    "metrics",
    *RuleSet.model_fields,
}


class ScenarioFileError(Exception):
    """A scenario file cannot be read or does not have the expected shape."""


class Expectation(BaseModel):
    """What a scenario's decision must show; a key left out is not checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tier: Literal[1, 2, 3] | None = None
    patterns: list[str] | None = None
    lead: str | None = None
    engaged_include: list[str] = Field(default_factory=list)
    engaged_exclude: list[str] = Field(default_factory=list)
    resource_gaps: list[str] = Field(default_factory=list)

    @field_validator("patterns")
    @classmethod
    def _known_patterns(cls, value: list[str] | None) -> list[str] | None:
        # A misspelt pattern would make the scenario fail for the wrong reason.
        unknown = sorted(set(value or []) - set(_PATTERN_IDS))
        if unknown:
            raise ValueError(f"unknown patterns {', '.join(unknown)}")
        return value

    @property
    def checks_lead(self) -> bool:
        """Whether lead was given; lead: null is a real expectation (tier 1 has no lead)."""
        return "lead" in self.model_fields_set


class Scenario(BaseModel):
    """One consultation with the decision it must get."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    note: str | None = None
    consultation: Consultation
    expect: Expectation = Field(default_factory=Expectation)


@dataclass(frozen=True)
class ScenarioFile:
    """A loaded scenario file: the municipality's directory, its rules and the scenarios."""

    directory: Directory
    rules: RuleSet
    scenarios: list[Scenario]


@dataclass(frozen=True)
class ScenarioResult:
    """The decision a scenario got and how it differed from the expectation."""

    scenario_id: str
    decision: Decision | None
    differences: list[str]

    @property
    def passed(self) -> bool:
        """True when nothing differed."""
        return not self.differences


def load_scenario_file(path: Path) -> ScenarioFile:
    """Read and validate a scenario file (directory, tag_partners and scenarios)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ScenarioFileError(f"cannot read: {error}") from None
    return parse_scenario_file(data)


def parse_scenario_file(data: Any) -> ScenarioFile:
    """Validate the already-parsed content of a scenario file."""
    if not isinstance(data, dict):
        raise ScenarioFileError("top level must be a mapping")
    unknown = sorted(set(data) - _TOP_LEVEL_KEYS)
    if unknown:
        raise ScenarioFileError(f"unknown top-level keys: {', '.join(map(str, unknown))}")
    try:
        directory = load_directory(data)
    except DirectoryError as error:
        raise ScenarioFileError(str(error)) from None
    try:
        rules = RuleSet.from_mapping(data)
    except ValidationError as error:
        raise ScenarioFileError(f"invalid rules: {_first_error(error)}") from None
    raw = data.get("scenarios")
    if not isinstance(raw, list):
        raise ScenarioFileError("scenarios: must be a list")
    known_agencies = {agency.id for agency in directory.agencies}
    scenarios: list[Scenario] = []
    for index, item in enumerate(raw):
        name = item.get("id", f"#{index + 1}") if isinstance(item, dict) else f"#{index + 1}"
        try:
            scenario = Scenario.model_validate(item)
        except ValidationError as error:
            raise ScenarioFileError(f"scenario {name}: {_first_error(error)}") from None
        if any(seen.id == scenario.id for seen in scenarios):
            raise ScenarioFileError(f"duplicate scenario id {scenario.id}")
        expected = [*scenario.expect.engaged_include, *scenario.expect.engaged_exclude]
        if scenario.expect.lead is not None:
            expected.append(scenario.expect.lead)
        # An unknown id in engaged_exclude would pass vacuously, hiding a typo.
        strangers = sorted({agency_id for agency_id in expected if agency_id not in known_agencies})
        if strangers:
            raise ScenarioFileError(f"scenario {scenario.id}: unknown agencies {', '.join(strangers)}")
        scenarios.append(scenario)
    return ScenarioFile(directory=directory, rules=rules, scenarios=scenarios)


def check(scenario: Scenario, decision: Decision) -> list[str]:
    """Every way the decision differs from the scenario's expectation; empty when it passes."""
    expect = scenario.expect
    differences: list[str] = []
    if expect.tier is not None and decision.tier != expect.tier:
        differences.append(f"tier {decision.tier} != expected {expect.tier}")
    if expect.patterns is not None and set(decision.pattern_ids) != set(expect.patterns):
        wanted = [pattern for pattern in _PATTERN_IDS if pattern in expect.patterns]
        differences.append(f"patterns {_list(decision.pattern_ids)} != expected {_list(wanted)}")
    if expect.checks_lead and decision.lead != expect.lead:
        differences.append(f"lead {_null(decision.lead)} != expected {_null(expect.lead)}")
    engaged = set(decision.engaged_ids)
    missing = [agency_id for agency_id in expect.engaged_include if agency_id not in engaged]
    if missing:
        differences.append(f"not engaged {_list(missing)}")
    unwanted = [agency_id for agency_id in expect.engaged_exclude if agency_id in engaged]
    if unwanted:
        differences.append(f"engaged but excluded {_list(unwanted)}")
    gaps = set(decision.gap_types)
    unreported = [gap for gap in expect.resource_gaps if gap not in gaps]
    if unreported:
        differences.append(f"gaps not reported {_list(unreported)}")
    return differences


def run_scenarios(scenario_file: ScenarioFile) -> list[ScenarioResult]:
    """Decide every scenario of the file and compare it with its expectation."""
    results: list[ScenarioResult] = []
    for scenario in scenario_file.scenarios:
        try:
            decision = decide(scenario.consultation, scenario_file.directory, scenario_file.rules)
        except UnknownArea as error:
            results.append(ScenarioResult(scenario.id, None, [str(error)]))
            continue
        results.append(ScenarioResult(scenario.id, decision, check(scenario, decision)))
    return results


def route_check(path: Path, out: TextIO) -> int:
    """Print one PASS/FAIL line per scenario and an `N passed, M failed` line; 0 ok, 1 failed, 2 malformed."""
    try:
        scenario_file = load_scenario_file(path)
    except ScenarioFileError as error:
        out.write(f"ERROR {path}: {_one_line(str(error))}\n")
        return 2
    results = run_scenarios(scenario_file)
    for result in results:
        out.write(_line(result) + "\n")
    failed = sum(1 for result in results if not result.passed)
    out.write(f"{len(results) - failed} passed, {failed} failed\n")
    return 0 if failed == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: python -m services.router.scenarios FILE."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m services.router.scenarios SCENARIO_FILE\n")
        return 2
    return route_check(Path(args[0]), sys.stdout)


def _line(result: ScenarioResult) -> str:
    if not result.passed or result.decision is None:
        return f"FAIL {result.scenario_id}: {'; '.join(result.differences)}"
    decision = result.decision
    line = (
        f"PASS {result.scenario_id}: tier {decision.tier} patterns={_list(decision.pattern_ids)}"
        f" lead={_null(decision.lead)} engaged={_list(decision.engaged_ids)}"
    )
    if decision.resource_gaps:
        line += f" gaps={_list(decision.gap_types)}"
    return line


def _list(items: list[str]) -> str:
    return "[" + ", ".join(items) + "]"


def _null(value: str | None) -> str:
    return "null" if value is None else value


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "<root>"
    return f"{location}: {first['msg']}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    raise SystemExit(main())
