"""Every routing rule's legal basis (根拠) rests on the text it cites — a line of the seed report or an article
of the Social Welfare Act — and what the system adds beyond the text is labelled 設計上の選択 (issue 24).

The seed is `../shared/seed/000_2cdb01159b995531.txt` beside the repository (DOMAIN.md cites it by line).
"""

import re
from pathlib import Path

import pytest

from services.router import rules as routing
from services.router.rules import DESIGN_CHOICE, Rule

SEED = Path(__file__).resolve().parents[3] / "shared" / "seed" / "000_2cdb01159b995531.txt"

# Each rule: the seed lines it cites, with words that stand on each line, and whether part of it is ours.
# A rule added to rules.py without a row here fails test_every_rule_is_listed.
CITED: dict[str, tuple[dict[int, str], bool]] = {
    "prefecture_category": (
        {2258: "医療的ケアを要する状態にある児童", 2825: "刑務所出所者等に対する支援体制を市町村と連携して構築"},
        False,
    ),
    "multiple_members": ({3381: "課題を抱える者が複数人存在するケース"}, True),
    "multiple_issues": ({3381: "相談者本人のみが複数の課題を抱えているケース"}, True),
    "gap_between_systems": (
        {
            3381: "既存サービスの活用が困難な課題を抱えているケース",
            2230: "制度の狭間にある課題",
            3387: "障害が疑われる者",
            3389: "高次脳機能障害",
        },
        True,
    ),
    "backup_requested": (
        {2103: "支援関係機関に対し、協力を求めることができる体制", 2214: "第百六条の三第一項第三号"},
        False,
    ),
    "tier1_place": ({2103: "相談に応じ", 2202: "地域住民の相談を包括的に受け止める場を整備する"}, False),
    "general_window": ({2103: "相談に応じ", 2758: "各種の相談窓口を一つに集約"}, True),
    "lead": (
        {
            2105: "生活困窮者自立相談支援事業を行う者",
            2234: "協働の中核を担う機能",
            2236: "地域の実情に応じて協議し、適切な機関が担う",
        },
        False,
    ),
    "partner": ({3383: "連携先（例）", 3389: "医療機関", 3489: "法テラス"}, True),
    "confidential_exclusion": (
        {2258: "身近な地域では当事者が声を上げにくく", 2744: "身近な地域であるからこそ相談できない人"},
        True,
    ),
    "capacity": ({}, True),
    "prefecture_support_requested": ({2258: "市町村と連携して構築", 2825: "市町村と連携して構築"}, True),
    "return_to_community": (
        {2248: "地域住民、ボランティア等との連携・協働", 3375: "地域住民・ボランティアとの協働", 1242: "見守り"},
        True,
    ),
    "reroute": ({3367: "「たらい回し」", 3383: "連携先（例）", 3389: "医療機関"}, True),
    "reroute_to_lead": (
        {2105: "支援関係機関", 2234: "協働の中核を担う機能", 2236: "地域の実情に応じて協議し、適切な機関が担う"},
        True,
    ),
    "escalation": ({3425: "定期的に相談支援機関等による支援の実施状況を把握"}, True),
}

# The articles a rule may cite, each where its text stands: 106条の2 and 106条の3 in the seed's 参考資料1;
# 106条の4–6 (the 2020 amendment) in ../shared/LAW-2020.md. 106条の3第1項 is cited by its item (号): the
# paragraph as a whole is the municipality's duty and no basis for any one rule (the prefecture's part is
# 指針 第四, not the Act's 106条の3).
ARTICLES = {
    "106条の2": (2083, "第106条の2"),
    "106条の3第1項第1号": (2101, "一 地域福祉に関する活動への地域住民の参加"),
    "106条の3第1項第2号": (2103, "二 地域住民等が自ら"),
    "106条の3第1項第3号": (2105, "三 生活困窮者自立支援法"),
    "106条の3第2項": (2107, "2 厚生労働大臣は、前項各号に掲げる事業に関して"),
}
LATER_ARTICLES = {"106条の4", "106条の5", "106条の6"}


def all_rules() -> list[Rule]:
    return [value for value in vars(routing).values() if isinstance(value, Rule)]


def seed_refs(basis: str) -> set[int]:
    """Every seed line a basis names: `seed L2258` and each end of `seed L3383–L3389`."""
    return {int(n) for ref in re.findall(r"seed L(\d+(?:–L\d+)?)", basis) for n in re.findall(r"\d+", ref)}


def test_every_rule_is_listed() -> None:
    assert sorted(rule.id for rule in all_rules()) == sorted(CITED)


@pytest.mark.parametrize("rule", all_rules(), ids=lambda rule: rule.id)
def test_each_basis_cites_exactly_its_seed_lines(rule: Rule) -> None:
    lines, _ = CITED[rule.id]
    assert seed_refs(rule.legal_basis) == set(lines), rule.legal_basis


@pytest.mark.parametrize("rule", all_rules(), ids=lambda rule: rule.id)
def test_each_cited_seed_line_says_what_the_rule_rests_on(rule: Rule) -> None:
    if not SEED.exists():
        pytest.skip(f"the seed report is not beside the repository ({SEED})")
    seed = SEED.read_text(encoding="utf-8").splitlines()
    lines, _ = CITED[rule.id]
    for number, words in lines.items():
        assert words in seed[number - 1], f"seed L{number} does not say {words!r}"


@pytest.mark.parametrize("rule", all_rules(), ids=lambda rule: rule.id)
def test_each_cited_article_exists_and_is_cited_by_its_item(rule: Rule) -> None:
    cited = re.findall(r"社会福祉法(\d+条(?:の\d+)?(?:第\d+項)?(?:第\d+号)?)", rule.legal_basis)
    assert all(article in ARTICLES or article in LATER_ARTICLES for article in cited), cited
    in_seed = [article for article in cited if article in ARTICLES]
    if in_seed and not SEED.exists():
        pytest.skip(f"the seed report is not beside the repository ({SEED})")
    seed = SEED.read_text(encoding="utf-8").splitlines() if in_seed else []
    for article in in_seed:
        number, words = ARTICLES[article]
        assert words in seed[number - 1], f"seed L{number} is not 社会福祉法{article}"


@pytest.mark.parametrize("rule", all_rules(), ids=lambda rule: rule.id)
def test_design_choices_say_so(rule: Rule) -> None:
    lines, ours = CITED[rule.id]
    assert (DESIGN_CHOICE in rule.legal_basis) is ours, rule.legal_basis
    if not lines:
        # Nothing in the text to rest on: the basis opens with the label, never with a citation.
        assert rule.legal_basis.startswith(DESIGN_CHOICE)


def test_the_two_design_inferences_the_issue_names_are_not_presented_as_rules_of_the_seed() -> None:
    """Confidential exclusion and escalation timers are ours: the basis opens with the label."""
    assert routing.CONFIDENTIAL_EXCLUSION.legal_basis.startswith(f"{DESIGN_CHOICE}:")
    assert routing.ESCALATION.legal_basis.startswith(f"{DESIGN_CHOICE} [LOCAL]:")


def test_the_prefecture_category_rests_on_the_guideline_not_on_article_106_3() -> None:
    """指針 第四 (seed L2258) gives the prefecture's part; 106条の3第1項 is the municipality's duty."""
    for rule in (routing.PREFECTURE_CATEGORY, routing.PREFECTURE_SUPPORT):
        assert "106条の3" not in rule.legal_basis
        assert rule.legal_basis.startswith("指針 第四")


def test_watching_over_is_not_attributed_to_the_guideline() -> None:
    """見守り is the report's own summary (seed L1242), not words of 指針 第二."""
    basis = routing.RETURN_TO_COMMUNITY.legal_basis
    assert "指針 第二" not in basis
    assert "見守り" in basis and "seed L1242" in basis and "指針の文言ではない" in basis


@pytest.mark.parametrize("rule", all_rules(), ids=lambda rule: rule.id)
def test_each_basis_fits_the_referral_column(rule: Rule) -> None:
    """referrals.legal_basis is VARCHAR(200): a longer basis would fail the referral's insert."""
    assert len(rule.legal_basis) <= 200
