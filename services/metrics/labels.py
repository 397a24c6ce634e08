"""Japanese labels of the keys an indicator's breakdown uses: the one table the API, the exports and the
dashboard all read, so that a route, tier or pattern has the same name everywhere.

A key without a label (an agency or actor id, a tag a municipality added) is shown as it is.
"""

from collections.abc import Iterable

from shared.vocabulary import ISSUE_TAG_LABELS, ClosureReason, Pathway

ROUTES: dict[str, str] = {
    Pathway.self_: "当事者",
    Pathway.family_or_community: "家族・地域",
    Pathway.specialist_agency: "専門機関",
    Pathway.government: "行政",
    Pathway.acquaintance: "知人",
}

TIERS: dict[str, str] = {
    "tier1": "住民に身近な圏域",
    "tier2": "市町村域",
    "tier3": "都道府県域",
}

# 支援対象者の類型 (services/router/rules.py PATTERNS) and the kinds of later decisions that fire one.
PATTERNS: dict[str, str] = {
    "prefecture_category": "都道府県域の対象（類型）",
    "multiple_members": "複数の世帯員が課題を抱える",
    "multiple_issues": "一人が複数の課題を抱える",
    "gap_between_systems": "制度の狭間",
    "backup_requested": "後方支援の要請",
    "prefecture_support": "都道府県への支援要請",
    "return_to_community": "地域への戻し（見守り）",
}

MEETING_KINDS: dict[str, str] = {
    "case_meeting": "ケース会議",
    "support_meeting": "支援会議",
    "plan_meeting": "重層的支援会議",
    "promotion_meeting": "推進会議",
}

CLOSURE_REASONS: dict[str, str] = {
    ClosureReason.goals_met: "目標達成",
    ClosureReason.moved_away: "転居",
    ClosureReason.refused: "本人の拒否",
    ClosureReason.died: "死亡",
    ClosureReason.transferred: "他の支援・制度へ移行",
    ClosureReason.other: "その他",
}


OTHER: dict[str, str] = {
    "": "区分なし",
    "unknown": "不明",
    "window": "窓口",
    "outreach": "アウトリーチ",
    "survey": "調査",
    "cases": "件数",
    "p50": "中央値 (p50)",
    "p90": "90パーセンタイル (p90)",
    "initial": "初回",
    "revision": "見直し",
    "on_time": "期限内",
    "late": "期限超過",
    "within_deployment": "運用内の市町村へ",
    "outside_deployment": "運用外へ",
    "reroutes": "再振り分け",
    "per_case": "ケースあたり",
    "deadline": "期限超過（エスカレーション）",
    "backup": "後方支援の要請（決定）",
    "reminder": "督促",
    "escalation": "エスカレーション",
}

# Routes first, in the report's order (seed L2018–L2031), then the other groups; a key is in one group only.
LABELS: dict[str, str] = {
    str(key): label
    for group in (ROUTES, TIERS, PATTERNS, MEETING_KINDS, CLOSURE_REASONS, ISSUE_TAG_LABELS, OTHER)
    for key, label in group.items()
}


def label(key: str) -> str:
    """The Japanese label of a breakdown key; `tier2:agency` is labelled by its tier; else the key itself."""
    if key in LABELS:
        return LABELS[key]
    head, colon, rest = key.partition(":")
    if colon and head in LABELS:
        return f"{LABELS[head]}: {rest}"
    return key


def labels_of(keys: Iterable[str]) -> dict[str, str]:
    """Key → Japanese label for every key given."""
    return {key: label(key) for key in keys}
