"""Exports of an indicator report laid out as an annual results report (成果報告), in Japanese.

Small-cell suppression (秘匿, `suppress_below=N`) hides counts of cases, never hours or values a
municipality entered itself, by one rule applied to each row (an indicator's total and breakdown):

1. a count from 1 to N-1 is hidden (primary suppression);
2. while a row's hidden cells are fewer than two or add up to less than N, its smallest shown cell is
   hidden too (complementary suppression), so the total minus the shown cells gives back no small count;
3. a total below N is hidden, and with it the attainment;
4. a share or ratio is hidden with the count it is computed from (share × total would give it back); an
   indicator whose value is a percent of its breakdown's counts (unit `percent`) has its value hidden
   when any of those counts is.

Totals at N or above stay visible, so rows that state the same total (M8 and R10) cannot give a hidden
cell back either. Rows of separate exports (another month, another tier) are not cross-checked.

An indicator that does not apply to the municipality in that year (支援会議 held, where the
重層的支援体制整備事業 is not run) has a blank actual value, never 0, and its definition says 対象外 and why.
"""

import csv
import io
from collections.abc import Iterator, Mapping

from openpyxl import Workbook
from openpyxl.styles import Font

from services.metrics.models import IndicatorReport, IndicatorValue

HEADERS = ["指標ID", "指標名", "定義", "区分", "目標値", "実績値", "達成率(%)", "内訳", "割合・比率"]
SUPPRESSED = "x"  # 秘匿: the mark Japanese official statistics use for suppressed cells
SOURCE_LABELS = {"events": "イベント集計", "manual": "入力値"}


def _number(value: float | None) -> str | float:
    if value is None:
        return ""
    return int(value) if float(value).is_integer() else value


def hidden_cells(cells: Mapping[str, float], threshold: int) -> set[str]:
    """The breakdown cells of one row that suppression hides (rules 1 and 2 of the module docstring)."""
    hidden = {key for key, count in cells.items() if 0 < count < threshold}
    if not hidden:
        return hidden
    shown = sorted((count, key) for key, count in cells.items() if key not in hidden and count > 0)
    while shown and (len(hidden) < 2 or sum(cells[key] for key in hidden) < threshold):
        hidden.add(shown.pop(0)[1])
    return hidden


def _joined(values: Mapping[str, float], hidden: set[str]) -> str:
    return "; ".join(f"{key}: {SUPPRESSED if key in hidden else _number(v)}" for key, v in values.items())


def _row(indicator: IndicatorValue, suppress_below: int | None) -> list[str | float]:
    value: str | float = _number(indicator.value)
    attainment: str | float = "" if indicator.attainment is None else indicator.attainment
    shares = indicator.shares or {}
    hidden: set[str] = set()
    hidden_shares: set[str] = set()
    if suppress_below and indicator.unit in ("count", "percent"):
        hidden = hidden_cells(indicator.by_dimension, suppress_below)
        if indicator.value is not None and (
            bool(hidden) if indicator.unit == "percent" else 0 < indicator.value < suppress_below
        ):
            value, attainment = SUPPRESSED, ""
        # A share keyed like a cell follows that cell; a ratio of the whole row follows any hidden count.
        anything_hidden = bool(hidden) or value == SUPPRESSED
        hidden_shares = {k for k in shares if k in hidden or (k not in indicator.by_dimension and anything_hidden)}
    return [
        indicator.id,
        indicator.name_ja,
        indicator.definition,
        SOURCE_LABELS.get(indicator.source, indicator.source),
        _number(indicator.target),
        value,
        attainment,
        _joined(indicator.by_dimension, hidden),
        _joined(shares, hidden_shares),
    ]


def rows(report: IndicatorReport, suppress_below: int | None = None) -> Iterator[list[str | float]]:
    """One row per indicator: id, name, definition, source, target, actual, attainment, breakdown, shares."""
    for indicator in report.indicators:
        yield _row(indicator, suppress_below)


def title(report: IndicatorReport) -> str:
    """The report's heading: municipality and fiscal year."""
    who = report.municipality_name or report.municipality_code
    period = report.fiscal_year_label + (f" {report.month}月" if report.month else "")
    return f"{who} 成果把握項目 実績報告 {period}"


def to_csv(report: IndicatorReport, suppress_below: int | None = None) -> bytes:
    """UTF-8 CSV with a BOM (so spreadsheet software reads the Japanese correctly)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([title(report)])
    writer.writerow(HEADERS)
    writer.writerows(rows(report, suppress_below))
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(report: IndicatorReport, suppress_below: int | None = None) -> bytes:
    """An Excel workbook with one sheet 成果把握項目."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "成果把握項目"
    sheet.append([title(report)])
    sheet["A1"].font = Font(bold=True, size=13)
    sheet.append(HEADERS)
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for row in rows(report, suppress_below):
        sheet.append(row)
    for column, width in zip("ABCDEFGHI", (12, 48, 40, 12, 10, 10, 10, 48, 40), strict=True):
        sheet.column_dimensions[column].width = width
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
