"""Revision 0003 of the router: referrals made before it get the tags they were engaged for and their
version, and their feed entries the case's municipality and no more tags than the agency needs."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from shared import db, migrations
from shared.settings import Settings
from tests.conftest import new_database
from tests.shared.test_migrations import differences, inspected

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
EVERY_TAG = ["employment", "hikikomori", "housing", "poverty"]

decision = sa.table(
    "decision",
    *(sa.column(name) for name in ("id", "case_id", "sequence", "kind", "municipality_code", "tier", "lead")),
    *(sa.column(name, sa.JSON) for name in ("patterns", "engaged", "excluded", "resource_gaps")),
    sa.column("directory_version"),
    sa.column("decided_at", sa.DateTime(timezone=True)),
    schema="router",
)
referral = sa.table(
    "referral",
    *(sa.column(name) for name in ("id", "case_id", "decision_id", "municipality_code", "agency_id", "agency_type")),
    *(sa.column(name) for name in ("tier", "status", "rule_id", "legal_basis", "replaces_referral_id")),
    sa.column("requested_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
    schema="router",
)
transition = sa.table(
    "referral_transition",
    *(sa.column(name) for name in ("referral_id", "from_status", "to_status", "changed_by")),
    sa.column("at", sa.DateTime(timezone=True)),
    schema="router",
)
feed_entry = sa.table(
    "feed_entry",
    *(sa.column(name) for name in ("agency_id", "sequence", "referral_id", "case_id", "kind")),
    sa.column("body", sa.JSON),
    sa.column("at", sa.DateTime(timezone=True)),
    schema="router",
)


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request: pytest.FixtureRequest, postgres_admin_url: str, tmp_path: Path) -> Iterator[Engine]:
    """The router's database, on PostgreSQL or SQLite."""
    if request.param == "sqlite":
        engine = db.make_engine(Settings(DATABASE_URL=None, data_dir=tmp_path / "data"), "router")
        yield engine
        engine.dispose()
        return
    with new_database(postgres_admin_url) as url:
        engine = db.make_engine(Settings(DATABASE_URL=url, data_dir=tmp_path / "data"), "router")
        yield engine
        engine.dispose()


def engaged(agency_id: str, agency_type: str, rule_id: str, reason: str) -> dict[str, Any]:
    return {
        "agency_id": agency_id,
        "agency_type": agency_type,
        "rule_id": rule_id,
        "legal_basis": "x",
        "reason": reason,
    }


def refer(number: int, agency_id: str, agency_type: str, rule_id: str, replaces: str | None = None) -> dict[str, Any]:
    at = T0 + timedelta(minutes=number)
    return {
        "id": f"r-{agency_id}",
        "case_id": "case-1",
        "decision_id": "d-1",
        "municipality_code": "242080",
        "agency_id": agency_id,
        "agency_type": agency_type,
        "tier": 2,
        "status": "requested",
        "rule_id": rule_id,
        "legal_basis": "x",
        "replaces_referral_id": replaces,
        "requested_at": at,
        "updated_at": at,
    }


def test_referrals_and_feed_entries_made_before_need_to_know_are_filled_in_and_redacted(engine: Engine) -> None:
    migrations.upgrade(engine, "router", "0002")
    with inspected(engine, "router") as conn:
        conn.execute(
            decision.insert().values(
                id="d-1",
                case_id="case-1",
                sequence=1,
                kind="initial",
                municipality_code="242080",
                tier=2,
                lead="lead",
                patterns=[],
                excluded=[],
                resource_gaps=[],
                directory_version="v",
                decided_at=T0,
                engaged=[
                    engaged("lead", "center", "lead", "協働の中核 of 名張市"),
                    engaged(
                        "jiritsu",
                        "independence_support_agency",
                        "partner",
                        "tag poverty → independence_support_agency; tag housing → independence_support_agency",
                    ),
                    engaged(
                        "npo", "hikikomori_support_center", "partner", "tag hikikomori → hikikomori_support_center"
                    ),
                    engaged(
                        "hellowork", "public_employment_office", "partner", "tag employment → public_employment_office"
                    ),
                ],
            )
        )
        conn.execute(
            referral.insert(),
            [
                refer(0, "lead", "center", "lead"),
                refer(1, "jiritsu", "independence_support_agency", "partner"),
                refer(2, "npo", "hikikomori_support_center", "partner"),
                refer(3, "hellowork", "public_employment_office", "partner"),
                refer(4, "mie", "hikikomori_support_center", "reroute", replaces="r-npo"),
            ],
        )
        conn.execute(
            transition.insert(),
            [
                {
                    "referral_id": "r-jiritsu",
                    "from_status": "requested",
                    "to_status": "accepted",
                    "changed_by": "j",
                    "at": T0,
                },
                {
                    "referral_id": "r-jiritsu",
                    "from_status": "accepted",
                    "to_status": "in_progress",
                    "changed_by": "j",
                    "at": T0,
                },
                {
                    "referral_id": "r-npo",
                    "from_status": "requested",
                    "to_status": "rejected",
                    "changed_by": "n",
                    "at": T0,
                },
            ],
        )
        conn.execute(
            feed_entry.insert(),
            [
                {
                    "agency_id": agency,
                    "sequence": 1,
                    "referral_id": f"r-{agency}",
                    "case_id": "case-1",
                    "kind": "referral_requested",
                    "body": {"status": "requested", "issues": EVERY_TAG, "area": "chiiki-07"},
                    "at": T0,
                }
                for agency in ("lead", "jiritsu", "mie")
            ],
        )
        conn.commit()

    db.upgrade(engine, "router")

    assert differences(engine, "router") == []
    with inspected(engine, "router") as conn:
        rows = conn.execute(sa.text('SELECT agency_id, tags, version FROM "router".referral')).all()
        entries = conn.execute(sa.text('SELECT agency_id, municipality_code, body FROM "router".feed_entry')).all()

    def loaded(value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value  # SQLite keeps JSON as text

    assert {agency: (loaded(tags), version) for agency, tags, version in rows} == {
        "lead": ([], 1),
        "jiritsu": (["poverty", "housing"], 3),
        "npo": (["hikikomori"], 2),
        "hellowork": (["employment"], 1),
        "mie": (["hikikomori"], 1),  # re-routed: the tags of the referral it replaced
    }
    assert {agency: (code, loaded(body)["issues"]) for agency, code, body in entries} == {
        "lead": ("242080", EVERY_TAG),
        "jiritsu": ("242080", ["housing", "poverty"]),
        "mie": ("242080", ["hikikomori"]),
    }
