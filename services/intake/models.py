"""Intake's tables (schema `intake`) and its API shapes."""

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as DataField
from sqlmodel import Field, SQLModel, Text

from shared.consultation import Consultation
from shared.db import UTCDateTime
from shared.inbox import ProcessedEventBase
from shared.municipality import is_valid_code
from shared.outbox import OutboxBase

SCHEMA = "intake"


class Case(SQLModel, table=True):
    """A household's case (ケース): opened by its first consultation, joined by later contacts."""

    __tablename__ = "case"
    __table_args__ = {"schema": SCHEMA}

    id: str = Field(primary_key=True, max_length=36)
    municipality_code: str = Field(max_length=6, index=True)
    submitted_by: str = Field(max_length=100, index=True)
    opened_at: datetime = Field(default_factory=lambda: datetime.now(UTC), sa_type=UTCDateTime)


class ConsultationRecord(SQLModel, table=True):
    """One consultation (相談) as received, kept whole."""

    __tablename__ = "consultation"
    __table_args__ = {"schema": SCHEMA}

    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(foreign_key=f"{SCHEMA}.case.id", index=True, max_length=36)
    received_at: datetime = Field(default_factory=lambda: datetime.now(UTC), sa_type=UTCDateTime)
    body: str = Field(sa_type=Text)


class IntakeOutbox(OutboxBase, table=True):
    """Events intake has committed to publish."""

    __tablename__ = "outbox"
    __table_args__ = {"schema": SCHEMA}


class IntakeProcessedEvent(ProcessedEventBase, table=True):
    """Events intake has applied (none yet; kept so every service has the same shape)."""

    __tablename__ = "processed_event"
    __table_args__ = {"schema": SCHEMA}


class ConsultationCreate(Consultation):
    """Body of POST /v1/consultations: the consultation and the municipality it belongs to."""

    model_config = ConfigDict(extra="forbid")

    municipality_code: str = DataField(pattern=r"^\d{6}$", description="全国地方公共団体コード (6 digits)")

    @field_validator("municipality_code")
    @classmethod
    def _check_digit(cls, value: str) -> str:
        if not is_valid_code(value):
            raise ValueError("check digit does not match (全国地方公共団体コード)")
        return value


class ConsultationAccepted(BaseModel):
    """Response to a submitted consultation."""

    case_id: str
    consultation_id: str
    received_at: datetime


class CasePublic(BaseModel):
    """A case as its submitting agency sees it."""

    id: str
    municipality_code: str
    submitted_by: str
    opened_at: datetime
    consultations: list[str]


FIELD_LABELS = {
    "municipality_code": "市町村コード",
    "area": "圏域",
    "pathway": "相談受付経路",
    "found_by": "把握の経緯",
    "existing_services_fit": "既存サービスの活用可否",
    "backup_requested": "バックアップ要請",
    "urgency": "緊急度",
    "household": "世帯",
    "relation": "続柄",
    "age": "年齢",
    "issues": "課題",
}
