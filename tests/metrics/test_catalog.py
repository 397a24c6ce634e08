"""The catalogue of outcome indicators (成果把握項目) pinned to the report, row by row: M1–M15 (seed
L1932–L1972, DOMAIN.md §6.2) and R1–R14 (seed L1974–L2043, §6.3), with the two-part companions and
M8's extra rows.

Each row of `CATALOG` is typed here from DOMAIN.md (R1 and R3 in the seed's fuller wording, L1982 and
L1990, which DOMAIN.md shortens): its id, the report's name, the seed lines and how
the metrics service gets it (counted from events, from the directory, or entered by hand). The first
tests check that the service's catalogue has exactly these rows, of that kind, under the report's
names. The tests after them pin each indicator counted from events to its definition, on facts built
in memory, in ways that tell it from a plausible wrong reading. Definitions already pinned so by
test_definitions.py are not repeated: M8 and its rows (seed L1954–L1955), M10 (L1959–L1960, with M11
and M12's 困難事例等), M7 and R8 with their shares (L1954, L2013).
"""

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

import pytest

from services.metrics.indicators import (
    DIRECTORY_INDICATORS,
    EVENT_INDICATORS,
    MANUAL,
    MANUAL_IDS,
    Computed,
    Facts,
    Indicator,
    Rules,
    compute,
)
from services.metrics.models import CaseFact, ContactFact, MeetingFact
from tests.metrics.test_definitions import case, contact

Kind = Literal["events", "directory", "manual"]
Naming = Callable[[str], str]

YEAR = 2024
IN_YEAR = datetime(YEAR, 10, 1, 1, 0, tzinfo=UTC)  # 10:00 JST, 1 October 2024
YEAR_BEFORE = datetime(YEAR - 1, 10, 1, 1, 0, tzinfo=UTC)
CODE = "242080"


# How an implementation's name follows from the report's: each step a transformation a reader can check.


def as_is(name: str) -> str:
    return name


def without_examples(name: str) -> str:
    """The report's parenthesised examples left out: 取組（座談会、勉強会、ワークショップ等）の → 取組の."""
    return re.sub(r"（[^）]*）", "", name)


def listed_with_nakaguro(name: str) -> str:
    """The items of a list joined by ・ where the report joins them by 、 (種類、数 → 種類・数)."""
    return name.replace("、", "・")


def count_part(name: str) -> str:
    """The first of "the number, and the share of the area covered" (M7, R6, R8): the number."""
    return name.split("、")[0]


def share_part(name: str) -> str:
    """The second of "the number, and the share of the area covered", with its subject and unit:
    活動拠点の数、カバーしている地域の割合 → 活動拠点がカバーしている地域の割合（%）."""
    count, share = name.split("、")
    subject = re.sub(r"の(設置)?数$", "", count)
    return (share if share.startswith(subject) else f"{subject}が{share}") + "（%）"


def item(k: int) -> Naming:
    """The k-th of the items the name ends with: 取組の実施回数・参加者数 → 取組の参加者数 (k = 1)."""

    def pick(name: str) -> str:
        stem, _, items = name.rpartition("の")
        return f"{stem}の{items.split('・')[k]}"

    return pick


def qualified(suffix: str) -> Naming:
    """The report's name, then what the row counts of it: （実件数） or （延べ件数） (DOMAIN.md §6.4)."""
    return lambda name: name + suffix


def unscoped(scope: str) -> Naming:
    """The report's name without its scope: M8-全機関 counts every partner, not only the general window."""
    return lambda name: name.removeprefix(scope)


def steps(*naming: Naming) -> Naming:
    def apply(name: str) -> str:
        for step in naming:
            name = step(name)
        return name

    return apply


class Row(NamedTuple):
    """A row of the catalogue as DOMAIN.md §6.2–6.3 gives it, and how the service names and gets it."""

    id: str
    slug: str  # the id in ASCII, for the test's id
    report_name: str  # DOMAIN.md's 日本語 column, footnote mark (※1) and all
    seed: str
    kind: Kind
    naming: Naming = as_is


CATALOG: tuple[Row, ...] = (
    Row("M1", "M1", "ネットワーク化された福祉分野における主体の数 (※1)", "L1942–L1943", "events"),
    Row("M2", "M2", "ネットワーク化された福祉分野以外の主体の数 (※1)", "L1942", "events"),
    Row("M3", "M3", "関係機関の情報共有ルール・ツール等の整備件数", "L1942–L1943", "manual"),
    Row("M4", "M4", "関係機関における相互のネットワーク構築状況に関する認識 (※2)", "L1942", "manual"),
    Row("M5", "M5", "福祉分野以外の部門の相談支援包括化に係る会議等への出席回数", "L1947", "events"),
    Row("M6", "M6", "庁内関係部門における多機関連携の取組に対する満足度 (※)", "L1947–L1948", "manual"),
    Row(
        "M7",
        "M7",
        "総合相談窓口の設置数、総合相談窓口がカバーしている地域の割合",
        "L1954–L1955",
        "directory",
        count_part,
    ),
    Row(
        "M7-カバー率",
        "M7-coverage",
        "総合相談窓口の設置数、総合相談窓口がカバーしている地域の割合",
        "L1954–L1955",
        "directory",
        share_part,
    ),
    Row("M8", "M8", "総合相談窓口での相談受付数", "L1954–L1955", "events", qualified("（実件数）")),
    Row(
        "M8-新規継続",
        "M8-new-continuing",
        "総合相談窓口での相談受付数",
        "L1955",
        "events",
        qualified("（実件数）のうち新規・継続"),
    ),
    Row("M8-延べ", "M8-all-contacts", "総合相談窓口での相談受付数", "L1955", "events", qualified("（延べ件数）")),
    Row(
        "M8-全機関",
        "M8-every-partner",
        "総合相談窓口での相談受付数",
        "L1954–L1955",
        "events",
        steps(unscoped("総合相談窓口での"), qualified("（実件数、全機関）")),
    ),
    Row("M9", "M9", "総合相談窓口に対する認知度 (※)", "L1954", "manual"),
    Row("M10", "M10", "調査等の実施により把握した困難事例等の数", "L1959–L1960", "events"),
    Row("M11", "M11", "アウトリーチによって把握・対応した困難事例等の数", "L1959", "events"),
    Row("M12", "M12", "福祉関係機関以外からの困難事例等の受付件数", "L1959", "events"),
    Row("M13", "M13", "多機関が連携した対応を実施した事例等の数 (※1)", "L1964–L1965", "events"),
    Row("M14", "M14", "多機関が連携した事例への対応に関する関係機関の満足度 (※2)", "L1964", "manual"),
    Row("M15", "M15", "多機関連携により新たに創出された資源・財源等の数", "L1971–L1972", "manual"),
    Row(
        "R1",
        "R1",
        "住民等における地域福祉等に対する参加意識の向上に向けた取組（座談会、勉強会、ワークショップ等）の実施回数",
        "L1982–L1985",
        "manual",
        without_examples,
    ),
    Row("R2", "R2", "住民等における地域福祉等に対する参加意識の向上 (※)", "L1982", "manual"),
    Row(
        "R3",
        "R3",
        "地域福祉に取り組む担い手増加に向けた取組（イベント、研修等）の実施回数・参加者数",
        "L1990",
        "manual",
        steps(without_examples, item(0)),
    ),
    Row(
        "R3-参加者数",
        "R3-participants",
        "地域福祉に取り組む担い手増加に向けた取組（イベント、研修等）の実施回数・参加者数",
        "L1990",
        "manual",
        steps(without_examples, item(1)),
    ),
    Row(
        "R4",
        "R4",
        "地域福祉に取り組む担い手の増加数（団体数、個人数等）",
        "L1990–L1991",
        "manual",
        without_examples,
    ),
    Row("R5", "R5", "地域福祉に取り組む担い手の活動実績（活動実施回数等）", "L1990", "manual", without_examples),
    Row("R6", "R6", "活動拠点の数、カバーしている地域の割合", "L1997–L2001", "manual", count_part),
    Row("R6-カバー率", "R6-coverage", "活動拠点の数、カバーしている地域の割合", "L1997–L2001", "manual", share_part),
    Row(
        "R7",
        "R7",
        "活動拠点の利用状況（利用者数、活動実施回数等）",
        "L1997–L2007",
        "manual",
        without_examples,
    ),
    Row("R8", "R8", "丸ごと受け止める場の数、カバーしている地域の割合", "L2013–L2014", "directory", count_part),
    Row(
        "R8-カバー率",
        "R8-coverage",
        "丸ごと受け止める場の数、カバーしている地域の割合",
        "L2013–L2014",
        "directory",
        share_part,
    ),
    Row("R9", "R9", "丸ごと受け止める場の運営に参画する住民ボランティア・団体数", "L2013", "manual"),
    Row(
        "R10",
        "R10",
        "相談受付経路別（当事者・専門機関・家族・地域等）の事例数、割合",
        "L2018–L2031",
        "events",
        steps(without_examples, listed_with_nakaguro),
    ),
    Row("R11", "R11", "地域生活課題に関する検討への参加者数", "L2037–L2038", "manual"),
    Row("R12", "R12", "新たに認識された課題の種類、数", "L2037", "manual", listed_with_nakaguro),
    Row("R13", "R13", "課題解決に向けた取組の実施件数", "L2042–L2043", "manual"),
    Row("R14", "R14", "課題解決に向けた取組にあたり新たに巻き込んだ主体の数", "L2042–L2043", "manual"),
)

# Names the service shortens so that they are no longer the report's (reported, not accepted).


def seed_id(row: Row) -> str:
    return f"{row.slug}-seed-{row.seed.replace('–', '-')}"


def catalogue() -> dict[str, tuple[Indicator, Kind]]:
    """Every indicator of the service's three registries, by id, with the registry it is in."""
    found: dict[str, tuple[Indicator, Kind]] = {}
    registries: Sequence[tuple[Kind, Sequence[Indicator]]] = (
        ("events", [entry.indicator for entry in EVENT_INDICATORS]),
        ("directory", [entry.indicator for entry in DIRECTORY_INDICATORS]),
        ("manual", MANUAL),
    )
    for kind, indicators in registries:
        for entry in indicators:
            assert entry.id not in found, f"{entry.id} is registered twice"
            found[entry.id] = (entry, kind)
    return found


def report_name(row: Row) -> str:
    """The name the report gives the row, as the service should show it."""
    return row.naming(re.sub(r"\s*\(※\d?\)$", "", row.report_name))


# Facts built in memory.


def present(participant: str, kind: str = "agency", sector: str = "welfare", attended: bool = True) -> dict[str, Any]:
    """An attendance record as metrics stores it (shared.events.AttendanceRecord, dumped)."""
    return {"participant": participant, "kind": kind, "sector": sector, "attended": attended}


def meeting(
    meeting_id: str,
    kind: str,
    attendance: list[dict[str, Any]],
    *,
    case_id: str | None = None,
    held: bool = True,
    days: int = 0,
) -> MeetingFact:
    at = IN_YEAR + timedelta(days=days)
    return MeetingFact(
        meeting_id=meeting_id,
        municipality_code=CODE,
        kind=kind,
        case_id=case_id,
        scheduled_at=at,
        starts_at=at,
        held_at=at if held else None,
        attendance=attendance,
    )


def facts(
    cases: Sequence[CaseFact] = (),
    contacts: Sequence[ContactFact] = (),
    *,
    before: Sequence[CaseFact] = (),
    household: dict[str, str] | None = None,
    meetings: Sequence[MeetingFact] = (),
    promotion_history: Sequence[MeetingFact] = (),
) -> Facts:
    """A report window's facts: cases received in it, contacts and meetings in it, cases received before it."""
    return Facts(
        fiscal_year=YEAR,
        cases=list(cases),
        household=household or {},
        contacts=list(contacts),
        decisions=[],
        referrals=[],
        all_referrals=[],
        meetings=list(meetings),
        promotion_history=list(promotion_history),
        approved_plans=[],
        evaluations=[],
        endings=[],
        life_at_end=[],
        transfers_out=[],
        transfers_in=[],
        every_case=[*before, *cases],
    )


def busy() -> Facts:
    """A window with something for every indicator events can count: survey, outreach, a case from
    outside welfare, a case meeting of two agencies, 推進会議 with a division outside welfare."""
    cases = [
        case("s1", "specialist_agency", found_by="survey"),
        case("o1", "family_or_community", found_by="outreach"),
        case("h1", "government", by="hellowork"),
    ]
    together = [present("shakyo"), present("hospital", sector="non_welfare")]
    divisions = [*together, present("housing-division", "municipal_division", "non_welfare")]
    return facts(
        cases,
        [contact(c.case_id, 0) for c in cases],
        meetings=[meeting("cm", "case_meeting", together, case_id="o1"), meeting("pm", "promotion_meeting", divisions)],
        promotion_history=[meeting(f"p{n}", "promotion_meeting", divisions, days=-30 * n) for n in (2, 1, 0)],
    )


def by_id(found: list[Computed]) -> dict[str, Computed]:
    return {c.indicator.id: c for c in found}


# The catalogue: every row of the report, and nothing else under an M or R id.


def test_the_catalogue_is_the_reports_29_indicators_with_their_companions_seed_l1932_l2043() -> None:
    """Seed L1932–L1972 (M1–M15) and L1974–L2043 (R1–R14): 15 + 14 = 29 indicators (DOMAIN.md §6.3),
    with the rows the service splits them into; the service registers no M or R id beyond these."""
    assert len({row.id.split("-")[0] for row in CATALOG}) == 29
    assert [row.id.split("-")[0] for row in CATALOG if "-" not in row.id] == [
        *(f"M{n}" for n in range(1, 16)),
        *(f"R{n}" for n in range(1, 15)),
    ]
    registered = {id for id in catalogue() if re.match(r"[MR]\d", id)}
    assert registered == {row.id for row in CATALOG}


@pytest.mark.parametrize("row", CATALOG, ids=seed_id)
def test_each_indicator_is_in_the_catalogue_as_the_report_has_it(row: Row) -> None:
    """The row is registered once, of its kind: counted from events (and never entered by hand over
    the count), counted from the directory (an entry may win over it), or entered by hand (and never
    computed from events, however many events there are)."""
    registered, kind = catalogue()[row.id]
    assert kind == row.kind
    found = by_id(compute(busy(), Rules(sectors={"hellowork": "non_welfare"}), {row.id: 7.0}))
    if row.kind == "events":
        assert row.id not in MANUAL_IDS, "an entry by hand would not be the count of events"
        assert found[row.id].indicator.source == "events"
        assert found[row.id].value != 7.0, "counted from the events, whatever is entered"
    elif row.kind == "directory":
        assert row.id in MANUAL_IDS
        assert (found[row.id].indicator.source, found[row.id].value) == ("manual", 7.0), "the entry wins"
        assert by_id(compute(busy(), Rules()))[row.id].indicator.source == "directory"
    else:
        assert (row.id in MANUAL_IDS, registered.source) == (True, "manual")
        assert row.id not in found, "entered by hand, never computed from events"


@pytest.mark.parametrize(
    "row",
    [row for row in CATALOG],
    ids=seed_id,
)
def test_each_indicator_has_the_reports_name(row: Row) -> None:
    """The service's Japanese name is the report's, or a named step from it: the examples in
    parentheses left out, a list's 、 written ・ (R10, R12), a two-part indicator's part, M8's 実件数 /
    延べ件数 qualifier (§6.4)."""
    registered, _ = catalogue()[row.id]
    assert registered.name_ja == report_name(row)


# Definitions of the indicators counted from events, on facts that tell them from wrong readings.


def test_m1_m2_networked_is_attending_n_of_the_last_k_promotion_meetings_seed_l1942_l1943() -> None:
    """Seed L1942 ※1: "networked" needs a definition, e.g. regular attendance at the 相談支援包括化推進会議;
    [LOCAL] here at least N of the last K, split by sector: welfare (M1), outside welfare (M2)."""
    attendance = [  # oldest first
        [present("shakyo"), present("hospital", sector="non_welfare"), present("kosodate")],
        [present("shakyo"), present("hospital", sector="non_welfare"), present("kosodate"), present("houkatsu")],
        [
            present("shakyo"),
            present("houkatsu", attended=False),
            present("housing-division", "municipal_division", "non_welfare"),
        ],
        [
            present("shakyo"),
            present("houkatsu", attended=False),  # listed but absent: 1 of the last 3
            present("housing-division", "municipal_division", "non_welfare"),
            present("hellowork", sector="non_welfare"),  # once only
        ],
    ]
    history = [meeting(f"p{n}", "promotion_meeting", who) for n, who in enumerate(attendance)]
    found = by_id(compute(facts(promotion_history=history), Rules(networked_min_attended=2, networked_last_k=3)))
    assert (found["M1"].value, found["M1"].breakdown) == (1, {"shakyo": 1})
    # The hospital and kosodate came to 2 meetings, but only 1 of the last 3: not networked under the rule.
    assert (found["M2"].value, found["M2"].breakdown) == (1, {"housing-division": 1})
    assert found["M1"].indicator.definition == "直近3回の推進会議のうち2回以上出席"

    four = by_id(compute(facts(promotion_history=history), Rules(networked_min_attended=2, networked_last_k=4)))
    assert four["M2"].breakdown == {"hospital": 1, "housing-division": 1}
    assert four["M1"].breakdown == {"kosodate": 1, "shakyo": 1}, "houkatsu attended 1 of the 3 it is listed at"
    every = by_id(compute(facts(promotion_history=history), Rules(networked_min_attended=3, networked_last_k=3)))
    assert (every["M1"].value, every["M2"].value) == (1, 0)


def test_m5_counts_attendances_of_municipal_divisions_outside_welfare_at_held_meetings_seed_l1947() -> None:
    """Seed L1947: 福祉分野以外の部門の…会議等への出席回数: each attendance of a municipal division
    outside welfare at a meeting held, by kind of meeting; not agencies outside welfare, not welfare
    divisions, not a division absent or at a meeting not held."""
    housing = present("housing-division", "municipal_division", "non_welfare")
    meetings = [
        meeting(
            "pm",
            "promotion_meeting",
            [
                housing,
                present("welfare-division", "municipal_division", "welfare"),
                present("hellowork", sector="non_welfare"),
                present("school-division", "municipal_division", "non_welfare", attended=False),
            ],
        ),
        meeting("cm", "case_meeting", [housing, present("shakyo")], case_id="c1"),
        meeting("later", "case_meeting", [housing], case_id="c2", held=False),
    ]
    m5 = by_id(compute(facts(meetings=meetings), Rules()))["M5"]
    assert (m5.value, m5.breakdown) == (2, {"case_meeting": 1, "promotion_meeting": 1}), "attendances, not divisions"


def test_m11_counts_households_reached_by_outreach_at_intake_or_a_later_contact_seed_l1959() -> None:
    """Seed L1959: アウトリーチによって把握・対応した: found by outreach (at intake) or handled by it (a
    later contact in the window, of a case received in it or before), once per household."""
    new = [
        case("found", found_by="outreach"),
        case("handled", found_by="window"),
        case("window-only", found_by="window"),
    ]
    earlier = case("earlier", at=YEAR_BEFORE)
    quiet = case("quiet", found_by="outreach", at=YEAR_BEFORE)  # found by outreach last year, not contacted since
    contacts = [
        contact("found", 0),
        contact("handled", 0),
        contact("handled", 2, found_by="outreach"),
        contact("window-only", 0),
        contact("window-only", 1),
        contact("earlier", 3, found_by="outreach"),
        contact("earlier", 4, found_by="outreach"),
        contact("linked", 5, found_by="outreach"),  # a case linked to "earlier": the same household
    ]
    window = facts(new, contacts, before=[earlier, quiet], household={"linked": "earlier"})
    m11 = by_id(compute(window, Rules()))["M11"]
    assert (m11.value, m11.breakdown) == (3, {"cases": 3}), "found, handled and earlier, each once"


def test_m12_counts_cases_received_from_agencies_outside_welfare_by_submitter_not_route_seed_l1959() -> None:
    """Seed L1959: 福祉関係機関以外からの…受付件数: cases received in the window that an agency outside
    welfare submitted, by intake route; an agency's sector decides, not the route 専門機関."""
    sectors = {"hellowork": "non_welfare", "police": "non_welfare", "shakyo": "welfare"}
    cases = [
        case("h1", "self", by="hellowork"),
        case("p1", "government", by="police"),
        case("s1", "specialist_agency", by="shakyo"),  # from a welfare agency
        case("u1", "specialist_agency", by="unlisted"),  # sector unknown
    ]
    earlier = case("h0", "self", by="hellowork", at=YEAR_BEFORE)  # received last year
    window = facts(cases, [*(contact(c.case_id, 0) for c in cases), contact("h0", 1)], before=[earlier])
    m12 = by_id(compute(window, Rules(sectors=sectors)))["M12"]
    assert (m12.value, m12.breakdown) == (2, {"government": 1, "self": 1})


def test_m13_counts_cases_with_a_held_case_meeting_attended_by_two_agencies_seed_l1964_l1965() -> None:
    """Seed L1964 ※1: 多機関が出席するケース会議の開催等 as the proxy: a case counts once if a meeting on
    it (a ケース会議, or the 2020 amendment's 支援会議 or 重層的支援会議) was held and attended by at least
    two agencies (関係機関; a municipal division, 庁内関係部門 in the report's words at L1947, is not one).
    A 推進会議 is on no single case."""
    two = [present("shakyo"), present("hospital", sector="non_welfare")]
    meetings = [
        meeting("m1", "case_meeting", two, case_id="c1"),
        meeting("m1-again", "case_meeting", [present("shakyo"), present("school")], case_id="c1"),
        meeting("m2", "case_meeting", [present("shakyo"), present("hospital", attended=False)], case_id="c2"),
        meeting("m3", "case_meeting", [present("shakyo"), present("x", "municipal_division")], case_id="c3"),
        meeting("m4", "case_meeting", two, case_id="c4", held=False),
        meeting("m5", "case_meeting", [present("shakyo"), present("shakyo")], case_id="c5"),
        meeting("m6", "promotion_meeting", two),
        meeting("m7", "case_meeting", [*two, present("police", sector="non_welfare")], case_id="c7"),
        meeting("m8", "support_meeting", two, case_id="c8"),
        meeting("m9", "plan_meeting", two, case_id="c9"),
    ]
    m13 = by_id(compute(facts(meetings=meetings), Rules()))["M13"]
    assert (m13.value, m13.breakdown) == (4, {"cases": 4}), "c1 (once), c7, the 支援会議's c8, the plan meeting's c9"

    one_agency = [meeting("only", "case_meeting", [present("shakyo")], case_id="c1")]
    assert by_id(compute(facts(meetings=one_agency), Rules()))["M13"].value == 0


def test_r10_counts_new_cases_by_intake_route_with_shares_in_percent_seed_l2018_l2031() -> None:
    """Seed L2018–L2031: 相談受付経路別の事例数、割合, as 氷見市's tables of 経路別新規相談件数割合: the new
    cases of the window by intake route, each once however often contacted, with shares in percent."""
    routes = ["self", "self", "family_or_community", "family_or_community", "family_or_community"]
    routes += ["specialist_agency", "specialist_agency", "government"]
    cases = [case(f"c{n}", route) for n, route in enumerate(routes)]
    contacts = [contact(c.case_id, 0) for c in cases] + [contact("c0", n) for n in (1, 2, 3)]
    earlier = case("earlier", "acquaintance", at=YEAR_BEFORE)  # continuing: not a new case
    r10 = by_id(compute(facts(cases, [*contacts, contact("earlier", 4)], before=[earlier]), Rules()))["R10"]
    assert r10.value == 8
    assert r10.breakdown == {"family_or_community": 3, "government": 1, "self": 2, "specialist_agency": 2}
    assert r10.shares == {"family_or_community": 37.5, "government": 12.5, "self": 25.0, "specialist_agency": 25.0}
    assert sum(r10.shares.values()) == 100.0
