"""The route check runs any scenario file of the shared shape and reports PASS/FAIL per scenario."""

import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.router.scenarios import (
    ScenarioFileError,
    load_scenario_file,
    parse_scenario_file,
    route_check,
    run_scenarios,
)
from tests.router.scenario_files import NABARI, NABARI_CONTRACT

# A second, fictional town shaped differently from 名張市: three area levels, a resident-run
# tier-1 place, a 地域包括 branch as the district's tier-1 place, no tier-1 place at all in the west,
# the town's welfare division as 協働の中核, and the prefecture running 自立相談支援 for the town.
# The town routes 生活困窮 to its 社協 instead (a [LOCAL] override of one tag).
MIDORI = """
tag_partners:
  poverty: [social_welfare_council]

municipality:
  code: "999001"
  name: みどり町
  prefecture: {code: "990001", name: 架空県}
  lead: midori-fukushi-ka
  general_window: midori-madoguchi
  areas:
    - {id: ku-east, name: 東部地区, kind: district}
    - {id: ku-west, name: 西部地区, kind: district}
    - {id: sho-a, name: A小学校区, kind: elementary_school_district, parent: ku-east}
    - {id: sho-b, name: B小学校区, kind: elementary_school_district, parent: ku-east}
    - {id: sho-c, name: C小学校区, kind: elementary_school_district, parent: ku-west}
    - {id: jichi-a1, name: A1自治会, kind: neighbourhood_association, parent: sho-a}
    - {id: jichi-c1, name: C1自治会, kind: neighbourhood_association, parent: sho-c}

agencies:
  - {id: midori-fukushi-ka, name: みどり町福祉課,
     type: municipal_welfare_division, scope: municipality, sector: welfare}
  - {id: midori-madoguchi, name: みどり町総合相談窓口,
     type: general_consultation_window, scope: municipality, sector: welfare,
     business_hours: "mon-fri 08:30-17:15", contact: {tel: "0000-00-0000"}}
  - {id: place-a, name: なんでも相談窓口 A小学校区,
     type: resident_consultation_place, roles: [tier1_place], scope: area, areas: [sho-a], sector: welfare}
  - {id: place-east, name: 地域包括支援センター 東部ブランチ,
     type: community_comprehensive_support_center, roles: [tier1_place], scope: area, areas: [ku-east], sector: welfare}
  - {id: houkatsu-west, name: 地域包括支援センター 西部ブランチ,
     type: community_comprehensive_support_center, scope: area, areas: [ku-west], sector: welfare}
  - {id: midori-houkatsu, name: みどり町地域包括支援センター,
     type: community_comprehensive_support_center, scope: municipality, sector: welfare, capacity: 40}
  - {id: midori-shakyo, name: みどり町社会福祉協議会,
     type: social_welfare_council, scope: municipality, sector: welfare}
  - {id: hub-b-sakura, name: 子育て支援拠点 さくら,
     type: child_rearing_support_hub, scope: area, areas: [sho-a], sector: welfare}
  - {id: hub-a-momo, name: 子育て支援拠点 もも,
     type: child_rearing_support_hub, scope: area, areas: [sho-a], sector: welfare}
  - {id: midori-clinic, name: みどり町診療所,
     type: medical_institution, scope: municipality, sector: non_welfare}
  - {id: hellowork-kaku, name: ハローワーク 架空,
     type: public_employment_office, scope: prefecture, sector: non_welfare}
  - {id: kaku-jiritsu, name: 架空県自立相談支援機関,
     type: independence_support_agency, scope: prefecture, sector: welfare}
  - {id: kaku-teichaku, name: 架空県地域生活定着支援センター,
     type: settlement_support_center, scope: prefecture, sector: welfare}
  - {id: houterasu-kaku, name: 法テラス 架空,
     type: legal_support_center, scope: prefecture, sector: non_welfare}
  # No hikikomori_support_center, youth_support_station or nursery: those are gaps here.

scenarios:
  - id: midori-01-neighbourhood-place
    note: The resident-run place of the 小学校区 is nearer than the district's 地域包括 branch.
    consultation:
      area: jichi-a1
      pathway: self
      household: [{relation: self, age: 80, issues: [long_term_care]}]
    expect:
      tier: 1
      patterns: []
      lead: null
      engaged_include: [place-a]
      engaged_exclude: [place-east, midori-madoguchi]

  - id: midori-02-district-place
    consultation:
      area: sho-b
      pathway: acquaintance
      household: [{relation: self, age: 75, issues: [social_isolation]}]
    expect: {tier: 1, lead: null, engaged_include: [place-east]}

  - id: midori-03-general-window
    note: The west has no tier-1 place; the town's general window receives it.
    consultation:
      area: jichi-c1
      pathway: family_or_community
      household: [{relation: self, age: 70, issues: [social_isolation]}]
    expect:
      tier: 1
      patterns: []
      lead: null
      engaged_include: [midori-madoguchi]
      engaged_exclude: [midori-fukushi-ka]

  - id: midori-04-released-prisoner
    note: Confidential; the parent's care goes to the town-wide 地域包括, not to the district's tier-1 branch.
    consultation:
      area: jichi-a1
      pathway: government
      household:
        - {relation: self, age: 45, issues: [released_prisoner]}
        - {relation: parent, age: 78, issues: [long_term_care]}
    expect:
      tier: 3
      patterns: [prefecture_category, multiple_members]
      lead: midori-fukushi-ka
      engaged_include: [midori-fukushi-ka, kaku-teichaku, midori-houkatsu]
      engaged_exclude: [place-east, place-a, midori-madoguchi]

  - id: midori-05-hikikomori-gap
    consultation:
      area: sho-c
      pathway: family_or_community
      household:
        - {relation: self, age: 52, issues: [employment]}
        - {relation: child, age: 19, issues: [hikikomori]}
    expect:
      tier: 2
      patterns: [multiple_members]
      lead: midori-fukushi-ka
      engaged_include: [hellowork-kaku]
      resource_gaps: [hikikomori_support_center, youth_support_station]

  - id: midori-06-poverty-override
    note: The town's override sends 生活困窮 to its 社協, not to the prefecture's agency.
    consultation:
      area: sho-b
      pathway: self
      household: [{relation: self, age: 38, issues: [poverty, employment]}]
    expect:
      tier: 2
      patterns: [multiple_issues]
      lead: midori-fukushi-ka
      engaged_include: [midori-fukushi-ka, midori-shakyo, hellowork-kaku]
      engaged_exclude: [kaku-jiritsu]

  - id: midori-07-tie-and-gap
    note: Two hubs serve A小学校区; the smallest id is engaged. No nursery anywhere.
    consultation:
      area: jichi-a1
      pathway: self
      existing_services_fit: false
      household: [{relation: self, age: 33, issues: [childcare]}]
    expect:
      tier: 2
      patterns: [gap_between_systems]
      engaged_include: [hub-a-momo]
      engaged_exclude: [hub-b-sakura]
      resource_gaps: [nursery]

  - id: midori-08-legal
    consultation:
      area: sho-c
      pathway: specialist_agency
      household: [{relation: self, age: 60, issues: [legal, health]}]
    expect: {tier: 2, patterns: [multiple_issues], engaged_include: [houterasu-kaku, midori-clinic]}

  - id: midori-09-west-backup
    note: The area-scoped west branch is nearer than the town-wide centre.
    consultation:
      area: jichi-c1
      pathway: specialist_agency
      backup_requested: true
      household: [{relation: self, age: 85, issues: [long_term_care]}]
    expect:
      tier: 2
      patterns: [backup_requested]
      lead: midori-fukushi-ka
      engaged_include: [houkatsu-west]
      engaged_exclude: [midori-houkatsu]
"""


@pytest.fixture
def midori(tmp_path: Path) -> Path:
    path = tmp_path / "routing-midori.yaml"
    path.write_text(MIDORI, encoding="utf-8")
    return path


def _check(path: Path) -> tuple[int, list[str]]:
    out = io.StringIO()
    status = route_check(path, out)
    return status, out.getvalue().splitlines()


def _rewrite(source: Path, target: Path, change: Any) -> Path:
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    change(data)
    target.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return target


def test_every_nabari_scenario_passes() -> None:
    status, lines = _check(NABARI)
    assert status == 0, "\n".join(lines)
    assert lines[-1] == "15 passed, 0 failed"
    assert all(line.startswith("PASS ") for line in lines[:-1])
    assert "PASS nabari-13-fallback-to-district-place: tier 1 patterns=[] lead=null engaged=[hoken-chu5]" in lines


def test_every_scenario_of_another_municipality_passes(midori: Path) -> None:
    status, lines = _check(midori)
    assert status == 0, "\n".join(lines)
    assert lines[-1] == "9 passed, 0 failed"
    assert "PASS midori-03-general-window: tier 1 patterns=[] lead=null engaged=[midori-madoguchi]" in lines


def test_without_the_override_poverty_goes_to_the_prefecture(midori: Path, tmp_path: Path) -> None:
    path = _rewrite(midori, tmp_path / "defaults.yaml", lambda data: data.pop("tag_partners"))
    status, lines = _check(path)
    assert status == 1
    assert "FAIL midori-06-poverty-override: not engaged [midori-shakyo]; engaged but excluded [kaku-jiritsu]" in lines
    assert lines[-1] == "8 passed, 1 failed"


def test_confidential_exclusion_is_recorded(midori: Path) -> None:
    results = {result.scenario_id: result for result in run_scenarios(load_scenario_file(midori))}
    decision = results["midori-04-released-prisoner"].decision
    assert decision is not None
    assert [(e.agency_id, e.rule_id) for e in decision.excluded] == [("place-east", "confidential_exclusion")]


def test_a_wrong_expectation_fails_one_nabari_scenario(tmp_path: Path) -> None:
    def wrong(data: dict[str, Any]) -> None:
        data["scenarios"][0]["expect"]["tier"] = 2

    status, lines = _check(_rewrite(NABARI, tmp_path / "wrong.yaml", wrong))
    assert status == 1
    assert "FAIL nabari-01-single-care: tier 1 != expected 2" in lines
    assert lines[-1] == "14 passed, 1 failed"


def test_every_kind_of_difference_is_named(midori: Path, tmp_path: Path) -> None:
    def wrong(data: dict[str, Any]) -> None:
        data["scenarios"][3]["expect"] = {
            "tier": 2,
            "patterns": ["multiple_issues"],
            "lead": None,
            "engaged_include": ["midori-shakyo"],
            "engaged_exclude": ["kaku-teichaku"],
            "resource_gaps": ["nursery"],
        }

    status, lines = _check(_rewrite(midori, tmp_path / "wrong.yaml", wrong))
    assert status == 1
    assert lines[3] == (
        "FAIL midori-04-released-prisoner: tier 3 != expected 2;"
        " patterns [prefecture_category, multiple_members] != expected [multiple_issues];"
        " lead midori-fukushi-ka != expected null; not engaged [midori-shakyo];"
        " engaged but excluded [kaku-teichaku]; gaps not reported [nursery]"
    )
    assert lines[-1] == "8 passed, 1 failed"


def test_absent_expect_keys_are_not_checked(midori: Path, tmp_path: Path) -> None:
    def loosen(data: dict[str, Any]) -> None:
        for scenario in data["scenarios"]:
            scenario["expect"] = {}

    status, lines = _check(_rewrite(midori, tmp_path / "loose.yaml", loosen))
    assert (status, lines[-1]) == (0, "9 passed, 0 failed")


def test_an_unknown_consultation_area_fails_that_scenario(midori: Path, tmp_path: Path) -> None:
    def move(data: dict[str, Any]) -> None:
        data["scenarios"][0]["consultation"]["area"] = "sho-z"

    status, lines = _check(_rewrite(midori, tmp_path / "moved.yaml", move))
    assert status == 1
    assert lines[0].startswith("FAIL midori-01-neighbourhood-place: unknown area 'sho-z'")


MALFORMED = {
    "bad yaml": ("scenarios: [\n", "cannot read"),
    "not a mapping": ("- just\n- a list\n", "top level must be a mapping"),
    "no scenarios": (MIDORI.split("scenarios:")[0], "scenarios: must be a list"),
    "unknown top-level key": (MIDORI.replace("tag_partners:", "tag_partner:"), "unknown top-level keys: tag_partner"),
    "unknown pattern": (
        MIDORI.replace("patterns: [multiple_issues]", "patterns: [multiple_isues]"),
        "unknown patterns multiple_isues",
    ),
    "unknown agency in expect": (
        MIDORI.replace("engaged_exclude: [kaku-jiritsu]", "engaged_exclude: [kaku-jirtsu]"),
        "unknown agencies kaku-jirtsu",
    ),
    "bad consultation": (
        MIDORI.replace("pathway: acquaintance", "pathway: telepathy"),
        "scenario midori-02-district-place: consultation.pathway",
    ),
    "unknown expect key": (
        MIDORI.replace("engaged_include: [houterasu-kaku", "engaged: [houterasu-kaku"),
        "expect.engaged: Extra inputs",
    ),
    "duplicate scenario id": (
        MIDORI.replace("midori-02-district-place", "midori-01-neighbourhood-place"),
        "duplicate scenario id",
    ),
    "directory error": (MIDORI.replace("parent: sho-c}", "parent: sho-x}"), "unknown parent 'sho-x'"),
    "unknown tag in tag_partners": (
        MIDORI.replace("  poverty: [social", "  povrty: [social"),
        "unknown issue tags in tag_partners: povrty",
    ),
}


@pytest.mark.parametrize(("text", "problem"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_file_is_one_error_line_and_status_2(text: str, problem: str, tmp_path: Path) -> None:
    path = tmp_path / "malformed.yaml"
    path.write_text(text, encoding="utf-8")
    status, lines = _check(path)
    assert status == 2
    assert len(lines) == 1
    assert lines[0].startswith(f"ERROR {path}: ")
    assert problem in lines[0]


def test_a_missing_file_is_status_2(tmp_path: Path) -> None:
    status, lines = _check(tmp_path / "absent.yaml")
    assert status == 2
    assert len(lines) == 1


def test_parse_names_the_problem() -> None:
    data = yaml.safe_load(MIDORI.replace("lead: midori-fukushi-ka\n", "lead: nobody\n", 1))
    with pytest.raises(ScenarioFileError, match="lead 'nobody' is not among the agencies"):
        parse_scenario_file(data)


def test_route_check_command_line_passes_the_shared_scenarios() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "route-check", str(NABARI)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "15 passed, 0 failed"


def test_the_vendored_scenarios_are_the_shared_contract() -> None:
    """The copy in this repository is a scenario file and, when the shared folder is beside the
    repository, the contract itself byte for byte (re-copy it when the contract changes)."""
    vendored = load_scenario_file(NABARI)
    assert vendored.directory.municipality.code == "242080"
    assert len(vendored.scenarios) == 15
    if NABARI_CONTRACT.exists():
        assert NABARI.read_bytes() == NABARI_CONTRACT.read_bytes(), f"{NABARI} is not a copy of {NABARI_CONTRACT}"
