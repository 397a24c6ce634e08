"""The hand-off summary (引継ぎ書) a household carries when it moves outside this deployment: printable
HTML in Japanese, rendered from what the transfer may release."""

from dataclasses import dataclass
from datetime import datetime
from html import escape

from services.intake.models import MemberDetails
from shared.calendar import JST
from shared.vocabulary import ISSUE_TAG_LABELS, Relation

RELATION_LABELS: dict[str, str] = {
    Relation.self_: "本人",
    Relation.spouse: "配偶者",
    Relation.parent: "親",
    Relation.child: "子",
    Relation.grandparent: "祖父母",
    Relation.grandchild: "孫",
    Relation.sibling: "きょうだい",
    Relation.other: "その他",
}
PERSONAL_LABELS = (
    ("name", "氏名"),
    ("kana", "フリガナ"),
    ("birth_date", "生年月日"),
    ("address", "住所"),
    ("phone", "電話番号"),
)


@dataclass(frozen=True)
class HandoffMember:
    """A household member as the summary shows it: relation, age band, issues, and details if consented."""

    position: int
    relation: str
    age_band: str | None
    issues: list[str]
    details: MemberDetails | None


@dataclass(frozen=True)
class HandoffAgency:
    """An agency that took part in the case: its name from the directory, and where its part stands."""

    name: str
    status: str


@dataclass(frozen=True)
class HandoffSummary:
    """What a hand-off summary shows (never more than the transfer may release)."""

    case_id: str
    from_municipality: str
    to_municipality_code: str
    lead: str
    agencies: list[HandoffAgency]
    members: list[HandoffMember]
    opened_at: datetime
    transferred_at: datetime
    printed_at: datetime


_STYLE = """
body { font-family: "Hiragino Kaku Gothic ProN", "Noto Sans JP", "Yu Gothic", sans-serif; color: #111;
       max-width: 48rem; margin: 2rem auto; line-height: 1.6; }
h1 { font-size: 1.5rem; border-bottom: 2px solid #111; padding-bottom: .25rem; }
h2 { font-size: 1.1rem; margin-top: 1.5rem; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #555; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #eee; white-space: nowrap; }
.note { font-size: .9rem; }
@page { size: A4; margin: 15mm; }
@media print {
  body { margin: 0; max-width: none; font-size: 10.5pt; }
  th { background: none; }
  section { break-inside: avoid; }
}
"""


def _date(value: datetime) -> str:
    local = value.astimezone(JST)
    return f"{local.year}年{local.month}月{local.day}日"


def _issues(tags: list[str]) -> str:
    return "、".join(escape(ISSUE_TAG_LABELS.get(tag, tag)) for tag in tags) or "（なし）"


def _member_rows(members: list[HandoffMember]) -> str:
    rows = []
    for m in members:
        relation = escape(RELATION_LABELS.get(m.relation, m.relation))
        band = escape(m.age_band) if m.age_band else "不明"
        rows.append(f"<tr><td>{m.position + 1}</td><td>{relation}</td><td>{band}</td><td>{_issues(m.issues)}</td></tr>")
    return "\n".join(rows)


def _details_section(members: list[HandoffMember]) -> str:
    consented = [m for m in members if m.details is not None]
    if not consented:
        return (
            '<p class="note">本人同意が転居先に及ばないため、氏名・住所などの個人情報は記載していません。'
            "転居先の窓口で改めてお伝えください。</p>"
        )
    headers = "".join(f"<th>{label}</th>" for _, label in PERSONAL_LABELS)
    rows = []
    for m in consented:
        assert m.details is not None
        cells = "".join(f"<td>{escape(str(getattr(m.details, field) or ''))}</td>" for field, _ in PERSONAL_LABELS)
        rows.append(f"<tr><td>{m.position + 1}</td>{cells}</tr>")
    return (
        f"<table><thead><tr><th>番号</th>{headers}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        '<p class="note">本人同意に基づき、同意の範囲の世帯員についてのみ記載しています。</p>'
    )


def render(summary: HandoffSummary) -> str:
    """The summary as a printable HTML page (A4, Japanese)."""
    agencies = (
        "\n".join(f"<tr><td>{escape(a.name)}</td><td>{escape(a.status)}</td></tr>" for a in summary.agencies)
        or '<tr><td colspan="2">（なし）</td></tr>'
    )
    return f"""<!DOCTYPE html>
<html lang="ja">
<head>
<meta charset="utf-8">
<title>支援の引継ぎ書（転居）</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>支援の引継ぎ書（転居）</h1>
<p class="note">この書面は、転居先の相談窓口にお渡しください。これまでの相談と支援の概要を記したものです。</p>
<section>
<h2>概要</h2>
<table>
<tr><th>転出元</th><td>{escape(summary.from_municipality)}</td></tr>
<tr><th>転居先（市町村コード）</th><td>{escape(summary.to_municipality_code)}</td></tr>
<tr><th>主な担当機関</th><td>{escape(summary.lead)}</td></tr>
<tr><th>相談の受付日</th><td>{_date(summary.opened_at)}</td></tr>
<tr><th>転居の記録日</th><td>{_date(summary.transferred_at)}</td></tr>
<tr><th>作成日</th><td>{_date(summary.printed_at)}</td></tr>
<tr><th>整理番号</th><td>{escape(summary.case_id)}</td></tr>
</table>
</section>
<section>
<h2>世帯と課題</h2>
<table>
<thead><tr><th>番号</th><th>続柄</th><th>年齢区分</th><th>課題</th></tr></thead>
<tbody>
{_member_rows(summary.members)}
</tbody>
</table>
</section>
<section>
<h2>関わった支援機関</h2>
<table>
<thead><tr><th>機関名</th><th>状況</th></tr></thead>
<tbody>
{agencies}
</tbody>
</table>
</section>
<section>
<h2>個人情報</h2>
{_details_section(summary.members)}
</section>
</body>
</html>
"""
