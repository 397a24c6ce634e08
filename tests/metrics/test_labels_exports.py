"""Breakdowns in Japanese: one table of labels (`labels.py`) for the API, the exports and the dashboard, and
the exports laid out as a 実績報告 table, a labelled column per route, tier or pattern with its percentage
beside it (issue 24, done-when 2)."""

import csv
import io
from typing import Any, get_args

import openpyxl

from services.metrics import exports
from services.metrics.labels import LABELS, ROUTES, label, labels_of
from services.metrics.models import IndicatorReport, IndicatorValue
from shared.events import MeetingKind
from shared.vocabulary import ClosureReason, IssueTag, Pathway


def test_every_value_of_the_vocabularies_has_a_label_and_no_two_share_one() -> None:
    keys = [*Pathway, *ClosureReason, *IssueTag, *get_args(MeetingKind), "tier1", "tier2", "tier3"]
    assert [key for key in keys if key not in LABELS] == []
    assert len(set(LABELS.values())) == len(LABELS), "a column header names one key"


def test_the_routes_are_the_reports_five_in_its_order() -> None:
    """Seed L2018–L2031 (R10, 相談受付経路): 当事者, 家族・地域, 専門機関, 行政, 知人."""
    assert list(ROUTES.values()) == ["当事者", "家族・地域", "専門機関", "行政", "知人"]
    assert [label(p) for p in Pathway] == ["当事者", "家族・地域", "専門機関", "行政", "知人"]


def test_labels_of_tiers_patterns_and_keys_without_one() -> None:
    assert labels_of(["tier2", "multiple_members", "goals_met", "plan_meeting"]) == {
        "tier2": "市町村域",
        "multiple_members": "複数の世帯員が課題を抱える",
        "goals_met": "目標達成",
        "plan_meeting": "重層的支援会議",
    }
    assert label("tier3:pref-center") == "都道府県域: pref-center", "labelled by its tier"
    assert label("agency-17") == "agency-17", "an id is shown as it is"


def indicator(id: str, value: float | None, by_dimension: dict[str, float], **more: Any) -> IndicatorValue:
    return IndicatorValue(
        id=id, name_ja=id, name_en=id, definition="", source="events", value=value, by_dimension=by_dimension, **more
    )


REPORT = IndicatorReport(
    municipality_code="242080",
    municipality_name="名張市",
    fiscal_year=2017,
    fiscal_year_label="平成29年度 (FY2017)",
    month=None,
    tier=None,
    indicators=[
        indicator(
            "R10",
            40,
            {"family_or_community": 22, "self": 12, "government": 6},
            shares={"family_or_community": 55.0, "government": 15.0, "self": 30.0},
        ),
        indicator("OPS-DECISIONS", 20, {"tier1": 15, "tier2": 4, "tier3": 1}),
        indicator("OPS-PATTERNS", 8, {"multiple_members": 6, "gap_between_systems": 4}),
        indicator("M1", 2, {"actor-a": 1, "actor-b": 1}),
    ],
)


def csv_table(report: IndicatorReport, suppress_below: int | None = None) -> list[dict[str, str]]:
    lines = list(csv.reader(io.StringIO(exports.to_csv(report, suppress_below).decode("utf-8-sig"))))
    assert lines[0] == ["名張市 成果把握項目 実績報告 平成29年度 (FY2017)"]
    return [dict(zip(lines[1], row, strict=True)) for row in lines[2:]]


def test_a_labelled_column_per_route_tier_and_pattern_with_its_percentage() -> None:
    r10, decisions, patterns, m1 = csv_table(REPORT)
    assert [(r10[route], r10[route + "（%）"]) for route in ROUTES.values()] == [
        ("12", "30"),
        ("22", "55"),
        ("", ""),
        ("6", "15"),
        ("", ""),
    ], "the API's shares beside the counts; a route with none is blank"
    tiers = ("住民に身近な圏域", "市町村域", "都道府県域")
    assert [(decisions[t], decisions[t + "（%）"]) for t in tiers] == [("15", "75"), ("4", "20"), ("1", "5")]
    # A decision may fire several patterns: each is a share of the decisions, not of the patterns.
    assert (patterns["複数の世帯員が課題を抱える"], patterns["複数の世帯員が課題を抱える（%）"]) == ("6", "75")
    assert (patterns["制度の狭間"], patterns["制度の狭間（%）"]) == ("4", "50")
    assert "一人が複数の課題を抱える" not in patterns, "a pattern no row has gets no column"
    assert m1["その他の内訳"] == "actor-a: 1; actor-b: 1", "ids have no label and no column"
    assert r10["その他の内訳"] == ""


def test_suppression_hides_each_small_cell_and_its_percentage() -> None:
    r10, decisions, _, _ = csv_table(REPORT, suppress_below=10)
    # 6 (行政) is small; the next smallest shown (12, 当事者) goes with it, so 40 − 22 gives back nothing.
    assert [r10[h] for h in ("当事者", "当事者（%）", "家族・地域", "家族・地域（%）", "行政", "行政（%）")] == [
        "x",
        "x",
        "22",
        "55",
        "x",
        "x",
    ]
    assert r10["実績値"] == "40"
    # 4 and 1 are small and add up to 5, less than 10: the 15 goes too, and the total of 20 stays.
    tiers = ("住民に身近な圏域", "市町村域", "都道府県域")
    assert [(decisions[t], decisions[t + "（%）"]) for t in tiers] == [("x", "x")] * 3
    assert decisions["実績値"] == "20"


def test_the_workbook_has_the_csvs_columns_and_cells() -> None:
    sheet = openpyxl.load_workbook(io.BytesIO(exports.to_xlsx(REPORT, suppress_below=10))).active
    assert sheet is not None
    cells = [["" if c is None else str(c) for c in row] for row in sheet.iter_rows(min_row=2, values_only=True)]
    lines = list(csv.reader(io.StringIO(exports.to_csv(REPORT, suppress_below=10).decode("utf-8-sig"))))
    assert cells[0] == lines[1] and "当事者" in cells[0] and "家族・地域（%）" in cells[0]
    normal = [[c.removesuffix(".0") for c in row] for row in cells[1:]]
    assert normal == lines[2:]
