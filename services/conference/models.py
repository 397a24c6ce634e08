"""Conference's tables (schema `conference`) and API shapes."""

from datetime import UTC, datetime

from pydantic import BaseModel
from sqlmodel import JSON, Field, SQLModel

from shared.db import UTCDateTime
from shared.inbox import ProcessedEventBase
from shared.outbox import OutboxBase

SCHEMA = "conference"


class Meeting(SQLModel, table=True):
    """A scheduled meeting: for now the case meeting (ケース会議) of a tier-2 or tier-3 case."""

    __tablename__ = "meeting"
    __table_args__ = {"schema": SCHEMA}

    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(index=True, max_length=36)
    municipality_code: str = Field(max_length=6, index=True)
    kind: str = Field(max_length=40)
    tier: int
    starts_at: datetime = Field(sa_type=UTCDateTime)
    deadline: datetime = Field(sa_type=UTCDateTime)
    participants: list[str] = Field(sa_type=JSON)
    status: str = Field(default="scheduled", max_length=20)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC), sa_type=UTCDateTime)


class ConferenceOutbox(OutboxBase, table=True):
    """Events conference has committed to publish."""

    __tablename__ = "outbox"
    __table_args__ = {"schema": SCHEMA}


class ConferenceProcessedEvent(ProcessedEventBase, table=True):
    """Events conference has applied."""

    __tablename__ = "processed_event"
    __table_args__ = {"schema": SCHEMA}


class MeetingPublic(BaseModel):
    """A meeting as coordinators see it."""

    id: str
    case_id: str
    municipality_code: str
    kind: str
    tier: int
    starts_at: datetime
    deadline: datetime
    participants: list[str]
    status: str
