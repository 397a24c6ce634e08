"""The consultation (相談) a partner agency submits: the household as a whole (世帯丸ごと)."""

from pydantic import BaseModel, ConfigDict, Field

from shared.vocabulary import FoundBy, IssueTag, Pathway, Relation, Urgency


class HouseholdMember(BaseModel):
    """One member of the household, with the issues seen in them."""

    model_config = ConfigDict(extra="forbid")

    relation: Relation
    age: int | None = Field(default=None, ge=0, le=130)
    issues: list[IssueTag] = Field(default_factory=list)


class Consultation(BaseModel):
    """What the router needs to decide a case: where, how it came in, and the household."""

    model_config = ConfigDict(extra="forbid")

    area: str = Field(min_length=1, max_length=64)
    pathway: Pathway
    found_by: FoundBy = FoundBy.window
    existing_services_fit: bool = True
    backup_requested: bool = False
    urgency: Urgency = Urgency.routine
    household: list[HouseholdMember] = Field(min_length=1, max_length=30)
