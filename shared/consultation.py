"""The consultation (相談) about a household as a whole (世帯丸ごと): the facts routing works on.

Two shapes share those facts: `Consultation` as partner agencies and scenario files write it (exact
ages), and `ConsultationSummary` as events carry it (age bands, never personal details).
"""

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from shared.vocabulary import ContactStatus, FoundBy, IssueTag, Pathway, Relation, Urgency


class MemberFacts(BaseModel):
    """What routing needs of one household member: the relation and the issues seen."""

    model_config = ConfigDict(extra="forbid")

    relation: Relation = Field(description="続柄: relation to the person consulted about")
    issues: list[IssueTag] = Field(default_factory=list, max_length=20, description="課題: issue tags")


class HouseholdMember(MemberFacts):
    """A member as submitted: with an exact age."""

    age: int | None = Field(default=None, ge=0, le=130, description="年齢")


class MemberSummary(MemberFacts):
    """A member as events carry it: an age band instead of the age."""

    age_band: str | None = Field(default=None, description="年齢区分, e.g. 65-74")


class ConsultationFacts(BaseModel):
    """Where the consultation comes from, how it came in, and the household."""

    model_config = ConfigDict(extra="forbid")

    area: str = Field(min_length=1, max_length=64, description="圏域: area id in the municipality's tree")
    pathway: Pathway = Field(description="相談受付経路: intake route")
    found_by: FoundBy = Field(default=FoundBy.window, description="把握の経緯: window, outreach or survey")
    contact: ContactStatus = Field(
        default=ContactStatus.reached,
        description="本人との接触: not_yet_reached when no one has spoken with the person yet",
    )
    existing_services_fit: bool = Field(default=True, description="既存サービスで対応可能か (false = 制度の狭間)")
    backup_requested: bool = Field(default=False, description="バックアップ要請: a tier-1 place asks for backup")
    urgency: Urgency = Field(default=Urgency.routine, description="緊急度")
    household: Sequence[MemberFacts] = Field(min_length=1, max_length=30, description="世帯: the household members")


class Consultation(ConsultationFacts):
    """A consultation as partner agencies and scenario files write it."""

    household: list[HouseholdMember] = Field(min_length=1, max_length=30, description="世帯")


class ConsultationSummary(ConsultationFacts):
    """A consultation as events carry it: no exact ages and no personal details.

    The area and the household are sealed under the case's key on the wire (shared/sealing.py): a reader
    without the key (metrics; anyone once the case is erased) sees them empty.
    """

    area: str = Field(default="", max_length=64, description="圏域: area id; empty where sealed")
    household: list[MemberSummary] = Field(default_factory=list, max_length=30, description="世帯; empty where sealed")
