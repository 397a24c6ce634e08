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

Breakdowns are laid out as in a 実績報告 table: one labelled Japanese column per breakdown value that has
a label (当事者, 家族・地域, 専門機関, 行政, 知人; each tier; each pattern; …, `labels.LABELS`), each with
its percentage beside it (the share the API gives, else the count's share of the row's value). Values
without a label (an agency, an actor, a municipality code) stay in one その他の内訳 cell. A percentage
is hidden with its count, and with the row's total.

The target is the one in force when the fiscal year began; any later revision is listed beside it
with its value, author, reason and date (目標の改定).
"""

import csv
import io
from collections.abc import Iterator, Mapping

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from services.metrics.labels import LABELS, ROUTES
from services.metrics.models import IndicatorReport, IndicatorValue, TargetRevision
from shared.calendar import JST

LEADING = ["指標ID", "指標名", "定義", "区分", "目標値", "実績値", "達成率(%)", "目標の改定"]
TRAILING = ["その他の内訳", "その他の割合・比率"]
PERCENT = "（%）"  # the header suffix of the percentage beside a breakdown column
SUPPRESSED = "x"  # 秘匿: the mark Japanese official statistics use for suppressed cells
SOURCE_LABELS = {"events": "イベント集計", "manual": "入力値", "directory": "ディレクトリ集計"}

Cell = str | float


def _number(value: float | None) -> Cell:
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


def columns(report: IndicatorReport) -> list[str]:
    """The breakdown keys that get columns of their own: every route, and each labelled key the report
    uses, in the order of the labels table."""
    used = {key for i in report.indicators for key in (*i.by_dimension, *(i.shares or {}))}
    return [key for key in LABELS if key in ROUTES or key in used]


def headers(report: IndicatorReport) -> list[str]:
    """The header row: the indicator, its target and value, then a labelled column and its percentage per key."""
    labelled = [header for key in columns(report) for header in (LABELS[key], LABELS[key] + PERCENT)]
    return [*LEADING, *labelled, *TRAILING]


def _revisions(revisions: list[TargetRevision]) -> str:
    return "; ".join(
        f"{r.set_at.astimezone(JST):%Y-%m-%d} {_number(r.value)}（{r.set_by}、理由: {r.reason}）" for r in revisions
    )


def _percent(indicator: IndicatorValue, key: str) -> float | None:
    """The share the API gives for a key, else its count's share of the row's value (counts only)."""
    shares = indicator.shares or {}
    if key in shares:
        return shares[key]
    count = indicator.by_dimension.get(key)
    base = {"count": indicator.value, "percent": sum(indicator.by_dimension.values())}.get(indicator.unit)
    if count is None or not base:
        return None
    return round(100 * count / base, 1)


def _row(indicator: IndicatorValue, keys: list[str], suppress_below: int | None) -> list[Cell]:
    value: Cell = _number(indicator.value)
    attainment: Cell = "" if indicator.attainment is None else indicator.attainment
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
    labelled: list[Cell] = []
    for key in keys:
        count = indicator.by_dimension.get(key)
        percent = _percent(indicator, key)
        # A percentage with a hidden total gives the total back from the count beside it.
        percent_hidden = key in hidden_shares or key in hidden or (value == SUPPRESSED and percent is not None)
        labelled += [
            SUPPRESSED if key in hidden else _number(count),
            SUPPRESSED if percent_hidden and percent is not None else _number(percent),
        ]
    columned = set(keys)
    return [
        indicator.id,
        indicator.name_ja,
        indicator.definition,
        SOURCE_LABELS.get(indicator.source, indicator.source),
        _number(indicator.target),
        value,
        attainment,
        _revisions(indicator.target_revisions),
        *labelled,
        _joined({k: v for k, v in indicator.by_dimension.items() if k not in columned}, hidden),
        _joined({k: v for k, v in shares.items() if k not in columned}, hidden_shares),
    ]


def rows(report: IndicatorReport, suppress_below: int | None = None) -> Iterator[list[Cell]]:
    """One row per indicator, cell for cell under `headers(report)`."""
    keys = columns(report)
    for indicator in report.indicators:
        yield _row(indicator, keys, suppress_below)


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
    writer.writerow(headers(report))
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
    header = headers(report)
    sheet.append(header)
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for row in rows(report, suppress_below):
        sheet.append(row)
    widths = [12, 48, 40, 12, 10, 10, 10, 40]
    for index, name in enumerate(header, start=1):
        width = widths[index - 1] if index <= len(widths) else max(10, 2 * len(name) + 2)
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "C3"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
