"""The kinds of meeting, each with its legal basis: who may be invited, what its invitation and record
may carry, on which basis each release of them rests, and which decisions it takes (LAW-2020.md §3).

Conference never carries personal details: an invitation names the meeting, its time and its case; a
record adds the participants, attendance, minutes and decisions. What differs by kind is to whom, and
on what basis, those are released.
"""

from dataclasses import dataclass

from pydantic import BaseModel

from shared.events import DecisionType, DisclosureBasis, MeetingKind


@dataclass(frozen=True)
class KindRule:
    """One kind of meeting and the rules it is held under."""

    kind: MeetingKind
    name: str
    legal_basis: str
    invitees: str
    # What a release to a participant rests on: its engagement on the case, the 本人同意, or its
    # membership of the 支援会議 roster (Art. 106-6); a 推進会議 releases nothing of a case.
    basis: DisclosureBasis | None
    decisions: frozenset[DecisionType]
    about_case: bool
    needs_consent: bool = False


KINDS: dict[MeetingKind, KindRule] = {
    rule.kind: rule
    for rule in (
        KindRule(
            kind="case_meeting",
            name="ケース会議・担当者会議",
            legal_basis="社会福祉法第106条の3 (包括的な支援体制): the agencies engaged on the case, by referral",
            invitees="the case's lead (推進員) and the agencies engaged on it; kept in step with its referrals",
            basis="engagement",
            decisions=frozenset({"plan"}),
            about_case=True,
        ),
        KindRule(
            kind="support_meeting",
            name="支援会議",
            legal_basis="社会福祉法第106条の6: shared without 本人同意 among the members the municipality named; "
            "members and former members keep it secret (守秘義務, 罰則あり)",
            invitees="current members of the municipality's 支援会議 roster only, the organiser among them; a "
            "member whose membership ends is withdrawn",
            basis="support_meeting",
            decisions=frozenset({"plan"}),
            about_case=True,
        ),
        KindRule(
            kind="plan_meeting",
            name="重層的支援会議",
            legal_basis="社会福祉法第106条の4 (重層的支援体制整備事業) and the municipality's 実施要綱: with 本人同意",
            invitees="the case's lead and the agencies engaged on it (those the plan involves); only for a "
            "case with a live 本人同意",
            basis="consent",
            decisions=frozenset({"support_decision", "closure"}),
            about_case=True,
            needs_consent=True,
        ),
        KindRule(
            kind="promotion_meeting",
            name="相談支援包括化推進会議",
            legal_basis="実施要領 3(4)ウ: the municipality's network; its agenda is aggregated and names no case",
            invitees="every agency of the municipality's network and the lead",
            basis=None,
            decisions=frozenset({"plan"}),
            about_case=False,
        ),
    )
}


def rule_of(kind: str) -> KindRule:
    """The rules of a meeting kind (a kind this service does not know is a bug, not bad input)."""
    return KINDS[kind]  # type: ignore[index]


class KindPublic(BaseModel):
    """A meeting kind as GET /v1/meeting-kinds shows it."""

    kind: MeetingKind
    name: str
    legal_basis: str
    invitees: str
    disclosure_basis: DisclosureBasis | None
    decisions: list[DecisionType]
    needs_consent: bool


def public_kinds() -> list[KindPublic]:
    """Every meeting kind with its basis, invitees and decisions."""
    return [
        KindPublic(
            kind=rule.kind,
            name=rule.name,
            legal_basis=rule.legal_basis,
            invitees=rule.invitees,
            disclosure_basis=rule.basis,
            decisions=sorted(rule.decisions),
            needs_consent=rule.needs_consent,
        )
        for rule in KINDS.values()
    ]
