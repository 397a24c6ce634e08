"""Each indicator pinned to its definition in the report (the seed, chapter 5, by the lines DOMAIN.md §6
gives): 実件数 and its new and continuing households, M8 at the general window beside every partner's,
the 困難事例等 of M10–M12 read alike, the two-part indicators as two values, M7 and R8 from the directory
(a manual value winning), and cases by their latest tier beside decisions by tier.

The definitions are checked on facts built here, then 能美市's 実件数 24 and 延べ 85 (seed L1955) and the
general window's scope through the HTTP API, as a municipality reads them.
"""

import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine

from services.cli import upgrade_databases
from services.metrics import service
from services.metrics.app import create
from services.metrics.indicators import MANUAL, MANUAL_IDS, Computed, Facts, Rules, compute
from services.metrics.models import CaseFact, ContactFact, DecisionFact
from shared import db
from shared.auth import Scope
from shared.consultation import ConsultationSummary
from shared.directory import demo_directory_path, load_directory
from shared.events import ConsultationReceived, ContactRecorded, EventData, new_event
from shared.settings import Settings
from shared.vocabulary import FoundBy, Pathway
from tests.conftest import fast_group_settings

YEAR = 2024
IN_YEAR = datetime(YEAR, 10, 1, 1, 0, tzinfo=UTC)  # 10:00 JST, 1 October 2024
YEAR_BEFORE = datetime(YEAR - 1, 10, 1, 1, 0, tzinfo=UTC)
NOMI = "172103"  # 能美市: no directory here, so its figures are every partner's
NABARI = "242080"  # the demo directory: its general window is nabari-houkatsu


def case(
    case_id: str,
    route: str | None = "self",
    *,
    by: str = "window",
    found_by: str = "window",
    tier: int | None = None,
    at: datetime = IN_YEAR,
) -> CaseFact:
    return CaseFact(
        case_id=case_id,
        municipality_code=NABARI,
        received_at=at,
        pathway=route,
        found_by=found_by,
        submitted_by=by,
        tier=tier,
    )


def contact(case_id: str, n: int, route: str = "self", found_by: str = "window") -> ContactFact:
    return ContactFact(
        contact_id=f"{case_id}-{n}",
        case_id=case_id,
        municipality_code=NABARI,
        received_at=IN_YEAR + timedelta(days=n),
        pathway=route,
        found_by=found_by,
        opening=n == 0,
    )


def decision(case_id: str, tier: int, days: int) -> DecisionFact:
    return DecisionFact(
        decision_id=f"{case_id}-d{days}",
        case_id=case_id,
        municipality_code=NABARI,
        tier=tier,
        kind="routing",
        patterns=[],
        resource_gaps=[],
        decided_at=IN_YEAR + timedelta(days=days),
    )


def facts(
    cases: list[CaseFact],
    contacts: list[ContactFact],
    *,
    before: Sequence[CaseFact] = (),
    decisions: Sequence[DecisionFact] = (),
) -> Facts:
    """The window's facts: cases received in it, contacts and decisions in it, cases received before it."""
    return Facts(
        YEAR,
        cases,
        {},
        contacts,
        list(decisions),
        [],
        [],
        [],
        [],
        approved_plans=[],
        evaluations=[],
        endings=[],
        life_at_end=[],
        transfers_out=[],
        transfers_in=[],
        every_case=[*before, *cases],
    )


def by_id(found: list[Computed]) -> dict[str, Computed]:
    return {c.indicator.id: c for c in found}


def demo_rules(**changes: Any) -> Rules:
    directory = load_directory(yaml.safe_load(demo_directory_path().read_text(encoding="utf-8")))
    return Rules(directory=directory, **changes)


def test_jitsu_kensu_is_every_household_with_a_contact_in_the_period_new_and_continuing_seed_l1955() -> None:
    """§6.4, seed L1955 and L3687: 実件数 counts each household with a contact in the period once, whether
    first received in it (new) or before it (continuing); 延べ counts every contact."""
    new = [case("n1", "self"), case("n2", "family_or_community")]
    earlier = case("c1", "government")
    earlier.received_at = YEAR_BEFORE
    quiet = case("c2", "self")  # received last year, no contact this year: not one of this year's 実件数
    quiet.received_at = YEAR_BEFORE
    contacts = [contact("n1", 0), contact("n1", 1), contact("n2", 0, "family_or_community"), contact("c1", 3)]
    found = by_id(compute(facts(new, contacts, before=[earlier, quiet]), Rules()))

    assert (found["M8"].value, found["M8"].breakdown) == (3, {"family_or_community": 1, "government": 1, "self": 1})
    assert found["M8-新規継続"].breakdown == {"continuing": 1, "new": 2}
    assert found["M8-新規継続"].value == found["M8"].value, "the split adds up to 実件数"
    assert found["M8-延べ"].value == len(contacts), "延べ: every contact, never added to 実件数"
    assert found["R10"].value == 2, "R10 stays the new cases by intake route (seed L2018)"


def test_m8_is_the_general_windows_households_and_every_partners_are_a_second_figure_seed_l1954() -> None:
    """Seed L1954–L1955: M8 counts consultations received at the 総合相談窓口 (the directory's general
    window); M8-全機関 counts every partner's households the same way."""
    rules = demo_rules()
    window = rules.directory.municipality.general_window if rules.directory else ""
    cases = [case("w1", "self", by=window), case("w2", "government", by=window), case("s1", "self", by="nabari-shakyo")]
    contacts = [contact("w1", 0), contact("w1", 1), contact("w2", 0, "government"), contact("s1", 0), contact("s1", 1)]
    found = by_id(compute(facts(cases, contacts), rules))

    assert (found["M8"].value, found["M8"].breakdown) == (2, {"government": 1, "self": 1})
    assert found["M8-延べ"].value == 3, "the window's households' contacts only"
    assert (found["M8-全機関"].value, found["M8-全機関"].breakdown) == (3, {"government": 1, "self": 2})
    # Without a directory there is no window to tell households by: M8 is every partner's.
    unscoped = by_id(compute(facts(cases, contacts), Rules()))
    assert unscoped["M8"].value == unscoped["M8-全機関"].value == 3


def test_konnan_jirei_are_read_alike_by_m10_m11_and_m12_seed_l1959() -> None:
    """Seed L1959–L1960: M10 (found by surveys), M11 (by outreach) and M12 (from outside welfare) count
    the same 困難事例等: by default every such case (the report's reading), under the [LOCAL] rule only
    those whose latest tier reaches it, for all three alike."""
    sectors = {"hellowork": "non_welfare"}
    cases = [
        case("s1", "specialist_agency", found_by="survey", tier=1),
        case("s2", "specialist_agency", found_by="survey", tier=2),
        case("o1", "self", found_by="outreach", tier=1),
        case("o2", "self", found_by="outreach", tier=3),
        case("h1", "government", by="hellowork", tier=1),
        case("h2", "government", by="hellowork", tier=2),
    ]
    window = facts(cases, [contact(c.case_id, 0) for c in cases])
    every = by_id(compute(window, Rules(sectors=sectors)))
    assert [every[i].value for i in ("M10", "M11", "M12")] == [2, 2, 2], "every case, the report's reading"
    assert "全件" in every["M10"].indicator.definition

    difficult = by_id(compute(window, Rules(sectors=sectors, difficult_min_tier=2)))
    assert [difficult[i].value for i in ("M10", "M11", "M12")] == [1, 1, 1], "tier 1 left out by all three"
    assert "最新の層が2以上" in difficult["M12"].indicator.definition


def test_tiers_per_case_by_the_latest_decision_beside_decisions_per_tier() -> None:
    """OPS-DECISIONS counts decisions, so an escalated case counts in each tier; OPS-CASE-TIERS counts
    each case once, under the tier of its last decision in the period."""
    cases = [case("a", "self"), case("b", "self")]
    decisions = [decision("a", 1, 1), decision("a", 2, 5), decision("b", 1, 2)]  # a escalated to tier 2
    found = by_id(compute(facts(cases, [], decisions=decisions), Rules()))
    assert found["OPS-DECISIONS"].breakdown == {"tier1": 2, "tier2": 1}
    assert (found["OPS-CASE-TIERS"].value, found["OPS-CASE-TIERS"].breakdown) == (2, {"tier1": 1, "tier2": 1})


def small_directory(windows_scope: str) -> Rules:
    """Two 中学校区 of three 地域 between them; 丸ごと受け止める場 serving 地域 a1 and all of 中学校区 B."""
    window: dict[str, Any] = {"id": "window", "name": "総合相談窓口", "type": "x", "sector": "welfare"}
    window |= {"scope": "municipality"} if windows_scope == "municipality" else {"scope": "area", "areas": ["a1"]}
    place = {"type": "x", "roles": ["tier1_place"], "scope": "area", "sector": "welfare"}
    data = {
        "municipality": {
            "code": "999001",
            "name": "試験市",
            "prefecture": {"code": "990001", "name": "試験県"},
            "lead": "window",
            "general_window": "window",
            "areas": [
                {"id": "A", "name": "A", "kind": "chu"},
                {"id": "B", "name": "B", "kind": "chu"},
                {"id": "a1", "name": "a1", "kind": "chiiki", "parent": "A"},
                {"id": "a2", "name": "a2", "kind": "chiiki", "parent": "A"},
                {"id": "b1", "name": "b1", "kind": "chiiki", "parent": "B"},
            ],
        },
        "agencies": [
            window,
            {"id": "p1", "name": "場1", "areas": ["a1"], **place},
            {"id": "p2", "name": "場2", "areas": ["B"], **place},
        ],
    }
    return Rules(directory=load_directory(data))


def test_m7_and_r8_come_from_the_directory_as_two_values_and_a_manual_value_wins_seed_l1954_l2013() -> None:
    """Seed L1954 (M7: 総合相談窓口の設置数、カバーしている地域の割合) and L2013 (R8: 丸ごと受け止める場の
    数、カバーしている地域の割合): each a number and a share of the smallest areas covered, two values."""
    empty = facts([], [])
    found = by_id(compute(empty, small_directory("area")))
    assert (found["M7"].value, found["M7-カバー率"].value) == (1, round(100 * 1 / 3, 1)), "a1 of a1, a2, b1"
    assert (found["R8"].value, found["R8-カバー率"].value) == (2, round(100 * 2 / 3, 1)), "a1, and b1 within B"
    assert found["M7"].indicator.source == "directory" and found["M7-カバー率"].indicator.unit == "percent"
    assert by_id(compute(empty, small_directory("municipality")))["M7-カバー率"].value == 100.0

    entered = by_id(compute(empty, small_directory("area"), {"M7": 3, "R8-カバー率": 80.0}))
    assert (entered["M7"].value, entered["M7"].indicator.source) == (3, "manual"), "the entry wins"
    assert entered["R8-カバー率"].value == 80.0 and entered["R8"].value == 2
    assert by_id(compute(empty, Rules()))["M7"].value is None, "no directory, nothing entered: no value"


def test_two_part_indicators_are_entered_as_two_values_seed_l1990_l1997() -> None:
    """R3 (seed L1990: 実施回数・参加者数) and R6 (L1997: 数・カバー率) are entered as two values; M7 and R8,
    counted from the directory, may be entered too; R14 (L2042) is entered, the directory holding no
    history of who joined."""
    for pair in (("R3", "R3-参加者数"), ("R6", "R6-カバー率"), ("M7", "M7-カバー率"), ("R8", "R8-カバー率")):
        assert set(pair) <= MANUAL_IDS, pair
    assert "R14" in MANUAL_IDS
    manual_only = {i.id for i in MANUAL}
    assert not manual_only & {"M7", "M7-カバー率", "R8", "R8-カバー率"}, "one row each, the directory's"


# Through the HTTP API, as a municipality reads them.


@pytest.fixture
def with_demo(settings: Settings) -> Settings:
    # A short consumer-group session: the service joins its group at each start in a second instead of three.
    return settings.model_copy(update={"directory_files": [demo_directory_path()], **fast_group_settings()})


@pytest.fixture
def engine(with_demo: Settings) -> Iterator[Engine]:
    upgrade_databases(with_demo, ["metrics"])
    engine = db.make_engine(with_demo, "metrics")
    yield engine
    engine.dispose()


def count(engine: Engine, code: str, *events: tuple[str, EventData]) -> None:
    for subject, data in events:
        with db.transaction(engine, service.FactBatch) as session:
            service.count(session, new_event(data, source="/test", subject=subject, municipality_code=code))


def received(case_id: str, at: datetime, by: str, route: Pathway = Pathway.self_) -> tuple[str, EventData]:
    summary = ConsultationSummary(
        area="chiiki-01",
        pathway=route,
        found_by=FoundBy.window,
        household=[{"relation": "self", "issues": ["poverty"]}],
    )
    return case_id, ConsultationReceived(
        case_id=case_id, consultation_id=f"{case_id}-0", submitted_by=by, received_at=at, consultation=summary
    )


def again(case_id: str, n: int, by: str) -> tuple[str, EventData]:
    return case_id, ContactRecorded(
        case_id=case_id,
        contact_id=f"{case_id}-{n}",
        submitted_by=by,
        received_at=IN_YEAR + timedelta(hours=n),
        pathway=Pathway.self_,
        found_by=FoundBy.window,
    )


async def indicators(settings: Settings, headers: dict[str, str], code: str) -> dict[str, dict[str, Any]]:
    app = create(settings)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://m") as client:
        return await indicators_of(client, headers, code)


async def indicators_of(client: httpx.AsyncClient, headers: dict[str, str], code: str) -> dict[str, dict[str, Any]]:
    """The municipality's indicators of the fiscal year, from a running metrics service."""
    response = await client.get("/v1/indicators", params={"municipality": code, "fiscal_year": YEAR}, headers=headers)
    assert response.status_code == 200, response.text
    return {i["id"]: i for i in response.json()["indicators"]}


async def test_nomi_24_households_and_85_contacts_through_the_api_seed_l1955(
    with_demo: Settings, engine: Engine, bearer: Callable[..., dict[str, str]]
) -> None:
    """能美市, seed L1955 (and L3687): 相談支援実件数 24, 延べ件数 85. The seed does not say how many of the
    24 were new; here 12 were first received in the period and 12 before it, all contacted in it, and
    their 85 contacts in the period make 延べ."""
    new = [str(uuid.uuid4()) for _ in range(12)]
    continuing = [str(uuid.uuid4()) for _ in range(12)]
    count(engine, NOMI, *(received(c, YEAR_BEFORE, "terai") for c in continuing))
    count(engine, NOMI, *(received(c, IN_YEAR, "terai") for c in new))
    # 12 openings in the period; 73 later contacts, spread over all 24 households (each at least one).
    households = new + continuing
    later = [again(households[n % 24], n + 1, "terai") for n in range(73)]
    count(engine, NOMI, *later)

    found = await indicators(with_demo, bearer("operator", Scope.operator, municipalities=(NOMI,)), NOMI)
    assert found["M8"]["value"] == 24 and found["M8-延べ"]["value"] == 85
    assert found["M8-新規継続"]["by_dimension"] == {"continuing": 12, "new": 12}
    assert found["M8-全機関"]["value"] == 24, "no directory here: every partner's is the window's"


async def test_m8_at_the_general_window_through_the_api_seed_l1954(
    with_demo: Settings, engine: Engine, bearer: Callable[..., dict[str, str]]
) -> None:
    """Seed L1954: 名張市's general window (nabari-houkatsu, from its directory) received 3 households;
    the 社協 2 more: M8 3, M8-全機関 5."""
    at_window = [received(f"w{n}", IN_YEAR, "nabari-houkatsu") for n in range(3)]
    elsewhere = [received(f"s{n}", IN_YEAR, "nabari-shakyo", Pathway.government) for n in range(2)]
    count(engine, NABARI, *at_window, *elsewhere, again("s0", 1, "nabari-shakyo"))

    found = await indicators(with_demo, bearer("operator", Scope.operator, municipalities=(NABARI,)), NABARI)
    assert (found["M8"]["value"], found["M8"]["by_dimension"]) == (3, {"self": 3})
    assert found["M8-延べ"]["value"] == 3, "the 社協's later contact is not the window's"
    assert (found["M8-全機関"]["value"], found["M8-全機関"]["by_dimension"]) == (5, {"government": 2, "self": 3})
    assert found["M8-新規継続"]["by_dimension"] == {"new": 3}


async def test_a_manual_m7_wins_over_the_directory_through_the_api_seed_l1954(
    with_demo: Settings, engine: Engine, bearer: Callable[..., dict[str, str]]
) -> None:
    """M7 (seed L1954) is counted from 名張市's directory until the municipality enters its own figure."""
    operator = bearer("operator", Scope.operator, Scope.admin, municipalities=(NABARI,))
    # One running service answers the three requests, as a municipality would call it (one start-up, not three).
    app = create(with_demo)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://m") as client:
        counted = await indicators_of(client, operator, NABARI)
        assert counted["M7"]["source"] == "directory" and counted["M7"]["value"] == 1
        entered = await client.put(
            f"/v1/municipalities/{NABARI}/fiscal-years/{YEAR}/manual/M7", json={"value": 4}, headers=operator
        )
        assert entered.status_code == 204, entered.text
        found = await indicators_of(client, operator, NABARI)
    assert (found["M7"]["source"], found["M7"]["value"]) == ("manual", 4)
