"""Idempotency-Key for POST requests: the same key and body replay the first response and create nothing.

The record is written in the same transaction as the request's effect, so a request either happened
with its record or not at all. The same key with a different body is refused (422).
"""

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel

from shared import db
from shared.db import UTCDateTime
from shared.problems import Problem

MAX_KEY_LENGTH = 200


class IdempotencyRecordBase(SQLModel):
    """Columns of a service's `idempotency_record` table; each service declares its own table."""

    agency_id: str = Field(primary_key=True, max_length=100)
    key: str = Field(primary_key=True, max_length=MAX_KEY_LENGTH)
    fingerprint: str = Field(max_length=64)
    status_code: int
    response: dict[str, Any] = Field(sa_type=JSON)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC), sa_type=UTCDateTime)


def fingerprint(method: str, path: str, body: Any) -> str:
    """A digest of what a request asks for: method, path and canonical JSON body."""
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def run(
    engine: Engine,
    model: type[IdempotencyRecordBase],
    *,
    agency_id: str,
    key: str | None,
    request_fingerprint: str,
    status_code: int,
    work: Callable[[Session], dict[str, Any]],
) -> tuple[dict[str, Any], bool]:
    """Do `work` once per (agency, key); returns (response body, replayed)."""
    if key is None:
        with db.transaction(engine) as session:
            return work(session), False
    if not key or len(key) > MAX_KEY_LENGTH:
        raise Problem(400, "bad-idempotency-key", f"Idempotency-Key must be 1–{MAX_KEY_LENGTH} characters")
    for _attempt in range(2):
        try:
            with db.transaction(engine) as session:
                record = session.get(model, (agency_id, key))
                if record is not None:
                    if record.fingerprint != request_fingerprint:
                        raise Problem(
                            422,
                            "idempotency-key-reused",
                            "this Idempotency-Key was used with a different request; use a new key",
                        )
                    return dict(record.response), True
                response = work(session)
                session.add(
                    model(
                        agency_id=agency_id,
                        key=key,
                        fingerprint=request_fingerprint,
                        status_code=status_code,
                        response=response,
                    )
                )
                return response, False
        except IntegrityError:
            continue  # a concurrent request with the same key won; the next attempt replays it
    raise Problem(409, "idempotency-conflict", "a request with this Idempotency-Key is in progress; retry")
