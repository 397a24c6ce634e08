"""Router's tables (schema `router`) and API shapes."""

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlmodel import JSON, Field, SQLModel

from shared.db import UTCDateTime
from shared.inbox import ProcessedEventBase
from shared.outbox import OutboxBase

SCHEMA = "router"


class RoutingDecision(SQLModel, table=True):
    """The routing decision (振り分け) of a case, with every reason, as the directory then stood."""

    __tablename__ = "decision"
    __table_args__ = {"schema": SCHEMA}

    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(unique=True, max_length=36)
    municipality_code: str = Field(max_length=6, index=True)
    tier: int
    lead: str | None = Field(default=None, max_length=100)
    patterns: list[dict[str, Any]] = Field(sa_type=JSON)
    engaged: list[dict[str, Any]] = Field(sa_type=JSON)
    excluded: list[dict[str, Any]] = Field(sa_type=JSON)
    resource_gaps: list[dict[str, Any]] = Field(sa_type=JSON)
    directory_version: str = Field(max_length=40)
    decided_at: datetime = Field(default_factory=lambda: datetime.now(UTC), sa_type=UTCDateTime)


class Referral(SQLModel, table=True):
    """A request that one agency take part in a case (つなぎ); it adds an agency, it transfers nothing."""

    __tablename__ = "referral"
    __table_args__ = {"schema": SCHEMA}

    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(index=True, max_length=36)
    decision_id: str = Field(foreign_key=f"{SCHEMA}.decision.id", max_length=36)
    agency_id: str = Field(index=True, max_length=100)
    agency_type: str = Field(max_length=100)
    status: str = Field(default="requested", max_length=20)
    rule_id: str = Field(max_length=60)
    legal_basis: str = Field(max_length=200)
    requested_at: datetime = Field(default_factory=lambda: datetime.now(UTC), sa_type=UTCDateTime)


class RouterOutbox(OutboxBase, table=True):
    """Events the router has committed to publish."""

    __tablename__ = "outbox"
    __table_args__ = {"schema": SCHEMA}


class RouterProcessedEvent(ProcessedEventBase, table=True):
    """Events the router has applied."""

    __tablename__ = "processed_event"
    __table_args__ = {"schema": SCHEMA}


class DecisionPublic(BaseModel):
    """A decision with its reasons, as coordinators and auditors see it."""

    id: str
    case_id: str
    municipality_code: str
    tier: int
    lead: str | None
    patterns: list[dict[str, Any]]
    engaged: list[dict[str, Any]]
    excluded: list[dict[str, Any]]
    resource_gaps: list[dict[str, Any]]
    directory_version: str
    decided_at: datetime


class ReferralPublic(BaseModel):
    """A referral in an agency's queue."""

    id: str
    case_id: str
    agency_id: str
    agency_type: str
    status: str
    rule_id: str
    legal_basis: str
    requested_at: datetime
