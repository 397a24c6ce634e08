"""Controlled vocabularies shared by every service (DOMAIN.md §3, §5.1; shared/scenarios)."""

from enum import StrEnum


class Pathway(StrEnum):
    """Intake route (相談受付経路), DOMAIN.md §5.1."""

    self_ = "self"  # 当事者
    family_or_community = "family_or_community"  # 家族・地域
    specialist_agency = "specialist_agency"  # 専門機関
    government = "government"  # 行政
    acquaintance = "acquaintance"  # 知人


class FoundBy(StrEnum):
    """How the household came to notice: at a window, by outreach (アウトリーチ) or by a survey (調査)."""

    window = "window"
    outreach = "outreach"
    survey = "survey"


class ContactStatus(StrEnum):
    """Whether the person consulted about has been reached (本人との接触).

    A concern raised by neighbours, a 民生委員 or a school may come before anyone has spoken with the
    person: such a case can be discussed only at the 支援会議 (Art. 106-6), which allows it.
    """

    reached = "reached"
    not_yet_reached = "not_yet_reached"  # 本人未接触


class Urgency(StrEnum):
    """How soon the household needs a response."""

    routine = "routine"
    soon = "soon"
    urgent = "urgent"


class Relation(StrEnum):
    """A household member's relation to the person consulted about (相談者本人)."""

    self_ = "self"
    spouse = "spouse"
    parent = "parent"
    child = "child"
    grandparent = "grandparent"
    grandchild = "grandchild"
    sibling = "sibling"
    other = "other"


class IssueTag(StrEnum):
    """Community-life issue tags (実施要領 3(2) table; the tag_partners keys of the scenario files)."""

    long_term_care = "long_term_care"  # 介護
    childcare = "childcare"  # 子育て
    disability = "disability"  # 障害
    suspected_disability = "suspected_disability"  # 障害の疑い（手帳なし）
    higher_brain_dysfunction = "higher_brain_dysfunction"  # 高次脳機能障害
    mental_health = "mental_health"  # 精神保健
    health = "health"  # 保健医療
    cancer = "cancer"  # がん
    intractable_disease = "intractable_disease"  # 難病（指定）
    undesignated_intractable_disease = "undesignated_intractable_disease"  # 難病（指定外）
    medical_care_child = "medical_care_child"  # 医療的ケア児
    employment = "employment"  # 就労
    hikikomori = "hikikomori"  # ひきこもり
    poverty = "poverty"  # 生活困窮
    housing = "housing"  # 住まい
    social_isolation = "social_isolation"  # 社会的孤立
    education = "education"  # 教育
    domestic_violence = "domestic_violence"  # 配偶者からの暴力
    released_prisoner = "released_prisoner"  # 刑務所出所者
    legal = "legal"  # 法律問題


# The issue tags as staff write them (実施要領 3(2)), for reports, exports and the papers households carry.
ISSUE_TAG_LABELS: dict[str, str] = {
    IssueTag.long_term_care: "介護",
    IssueTag.childcare: "子育て",
    IssueTag.disability: "障害",
    IssueTag.suspected_disability: "障害の疑い（手帳なし）",
    IssueTag.higher_brain_dysfunction: "高次脳機能障害",
    IssueTag.mental_health: "精神保健",
    IssueTag.health: "保健医療",
    IssueTag.cancer: "がん",
    IssueTag.intractable_disease: "難病（指定）",
    IssueTag.undesignated_intractable_disease: "難病（指定外）",
    IssueTag.medical_care_child: "医療的ケア児",
    IssueTag.employment: "就労",
    IssueTag.hikikomori: "ひきこもり",
    IssueTag.poverty: "生活困窮",
    IssueTag.housing: "住まい",
    IssueTag.social_isolation: "社会的孤立",
    IssueTag.education: "教育",
    IssueTag.domestic_violence: "配偶者からの暴力",
    IssueTag.released_prisoner: "刑務所出所者",
    IssueTag.legal: "法律問題",
}


class ClosureReason(StrEnum):
    """Why coordination of a case ended (終結理由), decided at a 重層的支援会議."""

    goals_met = "goals_met"  # 目標達成・課題の整理がついた
    moved_away = "moved_away"  # 転居
    refused = "refused"  # 本人の拒否
    died = "died"  # 死亡
    transferred = "transferred"  # 他の支援・制度へ移行
    other = "other"  # その他


# Japanese labels: the one table the APIs, the exports, the dashboard, the console and the hand-off summary
# read, so that a route, tier, pattern or state has the same name everywhere.

ROUTE_LABELS: dict[str, str] = {
    Pathway.self_: "当事者",
    Pathway.family_or_community: "家族・地域",
    Pathway.specialist_agency: "専門機関",
    Pathway.government: "行政",
    Pathway.acquaintance: "知人",
}

TIER_LABELS: dict[str, str] = {
    "tier1": "住民に身近な圏域",
    "tier2": "市町村域",
    "tier3": "都道府県域",
}

# 支援対象者の類型 (services/router/rules.py PATTERNS) and the kinds of later decisions that fire one.
PATTERN_LABELS: dict[str, str] = {
    "prefecture_category": "都道府県域の対象（類型）",
    "multiple_members": "複数の世帯員が課題を抱える",
    "multiple_issues": "一人が複数の課題を抱える",
    "gap_between_systems": "制度の狭間",
    "backup_requested": "後方支援の要請",
    "prefecture_support": "都道府県への支援要請",
    "return_to_community": "地域への戻し（見守り）",
}

MEETING_KIND_LABELS: dict[str, str] = {
    "case_meeting": "ケース会議",
    "support_meeting": "支援会議",
    "plan_meeting": "重層的支援会議",
    "promotion_meeting": "推進会議",
}

CLOSURE_REASON_LABELS: dict[str, str] = {
    ClosureReason.goals_met: "目標達成",
    ClosureReason.moved_away: "転居",
    ClosureReason.refused: "本人の拒否",
    ClosureReason.died: "死亡",
    ClosureReason.transferred: "他の支援・制度へ移行",
    ClosureReason.other: "その他",
}

# Referral states (FHIR Task) as staff say them.
REFERRAL_STATUS_LABELS: dict[str, str] = {
    "requested": "依頼中",
    "received": "受付済",
    "accepted": "受諾済み",
    "rejected": "辞退",
    "in_progress": "対応中",
    "on_hold": "保留中（見守り）",
    "completed": "完了",
    "failed": "不成立",
    "cancelled": "取消",
}
