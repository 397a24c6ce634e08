"""Japanese labels of the keys an indicator's breakdown uses: the one table the API, the exports and the
dashboard all read, so that a route, tier or pattern has the same name everywhere.

A key without a label (an agency or actor id, a tag a municipality added) is shown as it is.
"""

from collections.abc import Iterable

from shared.vocabulary import (
    CLOSURE_REASON_LABELS,
    ISSUE_TAG_LABELS,
    MEETING_KIND_LABELS,
    PATTERN_LABELS,
    ROUTE_LABELS,
    TIER_LABELS,
)

ROUTES = ROUTE_LABELS
TIERS = TIER_LABELS
PATTERNS = PATTERN_LABELS
MEETING_KINDS = MEETING_KIND_LABELS
CLOSURE_REASONS = CLOSURE_REASON_LABELS


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
