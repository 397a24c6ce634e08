"""`shared.db.present` and `rows_with`: a batch's ids looked up by index probes, without statistics."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, text
from sqlmodel import Session, col, select

from shared import db
from shared.inbox import claimed
from shared.settings import Settings
from tests.shared.tables import SCHEMA, Effect, TestProcessedEvent, create_tables

ROWS = 200_000  # on PostgreSQL enough that reading the table costs more than 500 index probes


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        settings = settings.model_copy(update={"database_url": None, "data_dir": tmp_path})
    yield from filled(settings)


@pytest.fixture
def postgres(settings: Settings) -> Iterator[Engine]:
    yield from filled(settings)


def filled(settings: Settings) -> Iterator[Engine]:
    """The test schema's `effect` table: ROWS rows of ROWS / 2 case ids, indexed on case_id and event_id (unique)."""
    engine = db.make_engine(settings, SCHEMA)
    create_tables(engine)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # As with autovacuum off: the table is never analysed during the test.
            conn.execute(text(f'ALTER TABLE "{SCHEMA}".effect SET (autovacuum_enabled = false)'))
            conn.execute(text(f'CREATE INDEX ON "{SCHEMA}".effect (case_id)'))
            conn.execute(text(f'CREATE UNIQUE INDEX ON "{SCHEMA}".effect (event_id)'))
            conn.execute(
                text(
                    f'INSERT INTO "{SCHEMA}".effect (event_id, case_id) '
                    "SELECT 'e' || i, 'case-' || (i % :cases) FROM generate_series(0, :rows - 1) AS i"
                ),
                {"rows": ROWS, "cases": ROWS // 2},
            )
        else:
            conn.execute(text("CREATE INDEX effect_case_id ON effect (case_id)"))
            conn.execute(text("CREATE UNIQUE INDEX effect_event_id ON effect (event_id)"))
            rows = [{"event_id": f"e{i}", "case_id": f"case-{i % (ROWS // 2)}"} for i in range(ROWS)]
            conn.execute(Effect.__table__.insert(), rows)  # type: ignore[attr-defined]
    yield engine
    engine.dispose()


def test_present_returns_the_values_the_table_holds(engine: Engine) -> None:
    wanted = {f"case-{i}" for i in range(0, 1000, 2)} | {f"missing-{i}" for i in range(10)}
    with Session(engine) as session:
        found = db.present(session, col(Effect.case_id), wanted)
        narrowed = db.present(session, col(Effect.case_id), wanted, col(Effect.event_id) == "e4")
        nothing = db.present(session, col(Effect.case_id), set())
    assert found == {f"case-{i}" for i in range(0, 1000, 2)}
    assert narrowed == {"case-4"}
    assert nothing == set()


def test_rows_with_returns_the_rows_of_the_values(engine: Engine) -> None:
    wanted = [f"e{i}" for i in range(0, 1000, 10)] + ["missing"]
    with Session(engine) as session:
        rows = db.rows_with(session, Effect, col(Effect.event_id), wanted)
        nothing = db.rows_with(session, Effect, col(Effect.event_id), [])
    assert sorted(r.event_id for r in rows) == sorted(wanted[:-1])
    assert {r.case_id for r in rows} == {f"case-{i}" for i in range(0, 1000, 10)}
    assert all(isinstance(r, Effect) for r in rows) and nothing == []


def plans(engine: Engine, run: Any) -> list[str]:
    """The PostgreSQL plans of the statements `run(session)` sends (EXPLAIN of each, same parameters)."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Connection, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with Session(engine) as session:
            run(session)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    with engine.connect() as conn:
        explained = [
            "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
            for statement, parameters in sent
        ]
    return explained


def test_present_probes_the_index_of_a_table_never_analysed(postgres: Engine) -> None:
    engine = postgres
    wanted = {f"case-{i}" for i in range(500)}
    (semi_join,) = plans(engine, lambda s: db.present(s, col(Effect.case_id), wanted))
    (in_list,) = plans(
        engine,
        lambda s: s.exec(Effect.__table__.select().where(col(Effect.case_id).in_(wanted))).all(),  # type: ignore[attr-defined]
    )
    assert "Seq Scan on effect" not in semi_join and "Index" in semi_join, semi_join
    # The plain IN list, planned from the default estimate, reads the whole table: what present avoids.
    assert "Seq Scan on effect" in in_list, in_list


def test_rows_with_probes_the_index_of_a_table_never_analysed(postgres: Engine) -> None:
    wanted = [f"e{i}" for i in range(0, 5000, 10)]
    (join,) = plans(postgres, lambda s: db.rows_with(s, Effect, col(Effect.event_id), wanted))
    (in_list,) = plans(postgres, lambda s: s.exec(select(Effect).where(col(Effect.event_id).in_(wanted))).all())
    assert "Seq Scan on effect" not in join and "Index" in join, join
    # Even on a unique column the plain IN list of a batch's keys is planned as a read of the table.
    assert "Seq Scan on effect" in in_list, in_list


def test_claimed_probes_the_key_of_an_inbox_never_analysed(postgres: Engine) -> None:
    """The inbox's key is (consumer, event_id): with the consumer as an extra condition the probes stay."""
    with postgres.begin() as conn:
        conn.execute(text(f'ALTER TABLE "{SCHEMA}".processed_event SET (autovacuum_enabled = false)'))
        conn.execute(
            text(
                f'INSERT INTO "{SCHEMA}".processed_event (consumer, event_id, processed_at) '
                "SELECT 'c', 'e' || i, now() FROM generate_series(0, :rows - 1) AS i"
            ),
            {"rows": ROWS},
        )
    wanted = [f"e{i}" for i in range(0, 5000, 10)] + [f"new-{i}" for i in range(10)]
    with Session(postgres) as session:
        seen = claimed(session, TestProcessedEvent, consumer="c", event_ids=wanted)
        other = claimed(session, TestProcessedEvent, consumer="other", event_ids=wanted)
    assert seen == set(wanted[:-10]) and other == set()
    (plan,) = plans(postgres, lambda s: claimed(s, TestProcessedEvent, consumer="c", event_ids=wanted))
    # One probe per id on both key columns. The plan to avoid reads every row of the consumer through
    # the key's first column and hashes them, once per batch (seen in the benchmark's router runs).
    index_conditions = [line for line in plan.splitlines() if "Index Cond" in line]
    assert "Seq Scan" not in plan and "Hash" not in plan, plan
    assert index_conditions and all("event_id" in line for line in index_conditions), plan
