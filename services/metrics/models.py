"""Metrics' tables (schema `metrics`) and API shapes."""

from pydantic import BaseModel
from sqlmodel import Field, SQLModel

from shared.inbox import ProcessedEventBase

SCHEMA = "metrics"


class IndicatorCount(SQLModel, table=True):
    """One counter: an indicator for a municipality, fiscal year, month and dimension (e.g. tier)."""

    __tablename__ = "indicator_count"
    __table_args__ = {"schema": SCHEMA}

    municipality_code: str = Field(primary_key=True, max_length=6)
    fiscal_year: int = Field(primary_key=True)
    month: int = Field(primary_key=True)
    indicator: str = Field(primary_key=True, max_length=60)
    dimension: str = Field(primary_key=True, max_length=60, default="")
    value: int = 0


class CountedCase(SQLModel, table=True):
    """A case already counted in an indicator of distinct cases (e.g. M13), so it is counted once."""

    __tablename__ = "counted_case"
    __table_args__ = {"schema": SCHEMA}

    indicator: str = Field(primary_key=True, max_length=60)
    case_id: str = Field(primary_key=True, max_length=36)


class MetricsProcessedEvent(ProcessedEventBase, table=True):
    """Events metrics has counted (each exactly once)."""

    __tablename__ = "processed_event"
    __table_args__ = {"schema": SCHEMA}


class IndicatorValue(BaseModel):
    """One indicator's value, with its breakdown by dimension where it has one."""

    id: str
    name_ja: str
    name_en: str
    value: int
    by_dimension: dict[str, int]


class IndicatorReport(BaseModel):
    """Indicators of one municipality and fiscal year."""

    municipality_code: str
    fiscal_year: int
    fiscal_year_label: str
    indicators: list[IndicatorValue]
