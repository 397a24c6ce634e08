"""Exports of an indicator report laid out as an annual results report (成果報告), in Japanese."""

import csv
import io
from collections.abc import Iterator

from openpyxl import Workbook
from openpyxl.styles import Font

from services.metrics.models import IndicatorReport, IndicatorValue

HEADERS = ["指標ID", "指標名", "定義", "区分", "目標値", "実績値", "達成率(%)", "内訳"]
SUPPRESSED = "x"  # 秘匿: the mark Japanese official statistics use for suppressed cells


def _cell(value: float | None, suppress_below: int | None) -> str | float:
    if value is None:
        return ""
    if suppress_below and 0 < value < suppress_below:
        return SUPPRESSED
    return int(value) if float(value).is_integer() else value


def rows(report: IndicatorReport, suppress_below: int | None = None) -> Iterator[list[str | float]]:
    """One row per indicator: id, name, definition, source, target, actual, attainment, breakdown."""
    for indicator in report.indicators:
        yield [
            indicator.id,
            indicator.name_ja,
            indicator.definition,
            "イベント集計" if indicator.source == "events" else "入力値",
            _cell(indicator.target, None),
            _cell(indicator.value, suppress_below),
            "" if indicator.attainment is None or _suppressed(indicator, suppress_below) else indicator.attainment,
            _breakdown(indicator, suppress_below),
        ]


def _suppressed(indicator: IndicatorValue, suppress_below: int | None) -> bool:
    return bool(suppress_below and indicator.value is not None and 0 < indicator.value < suppress_below)


def _breakdown(indicator: IndicatorValue, suppress_below: int | None) -> str:
    return "; ".join(f"{k}: {_cell(v, suppress_below)}" for k, v in indicator.by_dimension.items())


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
    for column, width in zip("ABCDEFGH", (12, 48, 40, 12, 10, 10, 10, 48), strict=True):
        sheet.column_dimensions[column].width = width
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
